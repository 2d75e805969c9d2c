/**
 * Runs microbatches through pipeline stages in fill-drain (GPipe forward) order: stage s takes microbatch m
 * once it has finished m - 1 and stage s - 1 has finished m, so stage s works on m while stage s + 1 works
 * on m - 1. Each stage's work is queued on its own devices, so stages on different devices overlap.
 */
export async function runPipeline<In, Carry, Out>(
  microbatches: readonly In[],
  stages: number,
  step: (stage: number, microbatch: In, carry: Carry | null) => Promise<Carry>,
  finish: (microbatch: In, carry: Carry) => Out,
): Promise<Out[]> {
  const stageFree: Promise<unknown>[] = Array.from({ length: stages }, () => Promise.resolve());
  const runs = microbatches.map((mb) => {
    let carry: Promise<Carry | null> = Promise.resolve(null);
    for (let s = 0; s < stages; s++) {
      const previous = carry;
      const turn = Promise.all([previous, stageFree[s]]).then(([c]) => step(s, mb, c));
      // The next microbatch waits for this one to leave the stage, whether it succeeded or not.
      stageFree[s] = turn.catch(() => undefined);
      carry = turn;
    }
    return carry.then((c) => finish(mb, c as Carry));
  });
  // Every run settles before the first error is raised: none is left running on freed buffers.
  const settled = await Promise.allSettled(runs);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<Out>).value);
}
