import { allGather } from '../collectives/all-gather.js';
import { allToAll } from '../collectives/all-to-all.js';
import type { CollectiveContext } from '../collectives/context.js';
import { DistributedTensor, Replicate, Shard, splitOffsets } from '../collectives/layout.js';
import { hostBytes } from '../collectives/traffic.js';
import type { Device } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { TensorScope } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ExpertLoad } from './expert-load.js';
import { type ExpertPlacement, expertGroups, placeExperts } from './expert-placement.js';
import { expertCapacity, planRouting, type RoutingPlan } from './expert-routing.js';
import { balancedSizes } from './head-split.js';
import { expectShape, loadReplicated } from './load-shards.js';
import { ParallelGatedMlp } from './mlp.js';
import type { Module, Parameter } from './module.js';
import { allOrFree } from './shards.js';
import type { WeightReader } from './weight-reader.js';

export interface MoeShape {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numExperts: number;
  readonly expertsPerToken: number;
}

export interface MoeOptions {
  /** Expert groups the stage's devices split into (default 1: every expert tensor-parallel over them all). */
  readonly ep?: number;
  /** The experts each group holds; default as even as they divide, in order. */
  readonly experts?: readonly (readonly number[])[];
  /** Absent: dropless. Else each expert takes ceil(factor · tokens · k / experts) assignments a forward. */
  readonly capacityFactor?: number;
  /** Where each forward's counts go; with `stage` and `layer` to name them. */
  readonly load?: ExpertLoad;
  readonly stage?: number;
  readonly layer?: number;
}

/** Every routed row of one group, on each of its devices: [group][device in group]. */
type PerGroup<T> = T[][];

/**
 * Mixtral's sparse MoE block with expert parallelism. The input [tokens, hidden] is replicated on the
 * stage; expert group g routes its own slice of the tokens (gate, softmax, top-k, renormalised), sends each
 * row to the group holding its expert with an all_to_all along the rails, runs its experts (SwiGLU: w1, w3,
 * w2; tensor-parallel inside a group of several devices) on what it received, sends the outputs back with a
 * second all_to_all, combines each token's k outputs with its router weights, and all-gathers the slices so
 * the output is replicated again. The routing picks come to the host (k ids a token): the counts size the
 * all_to_all, as in every host-mediated collective here.
 */
export class MixtureOfExperts implements Module {
  readonly placement: ExpertPlacement;
  readonly ep: number;
  private readonly groups: DeviceGroup[];
  private readonly rails: DeviceGroup[];
  private readonly gate: DistributedTensor;
  /** experts[g][i]: group g's i-th expert. */
  private readonly experts: ParallelGatedMlp[][] = [];
  private readonly gateName: string;

  constructor(
    private readonly ctx: CollectiveContext,
    readonly group: DeviceGroup,
    reader: WeightReader,
    /** `model.layers.N`. */
    prefix: string,
    private readonly shape: MoeShape,
    private readonly options: MoeOptions = {},
  ) {
    this.ep = options.ep ?? 1;
    ({ groups: this.groups, rails: this.rails } = expertGroups(group, this.ep));
    this.placement = placeExperts(shape.numExperts, this.ep, options.experts);
    this.gateName = `${prefix}.block_sparse_moe.gate.weight`;
    expectShape(reader, this.gateName, [shape.numExperts, shape.hiddenSize]);
    this.gate = loadReplicated(reader, this.gateName, group);
    try {
      this.placement.experts.forEach((list, g) => {
        this.experts.push([]);
        for (const e of list) {
          this.experts[g]!.push(
            new ParallelGatedMlp(
              ctx,
              this.groups[g]!,
              reader,
              `${prefix}.block_sparse_moe.experts.${e}`,
              shape.hiddenSize,
              shape.intermediateSize,
              undefined,
              { gate: 'w1', up: 'w3', down: 'w2' },
            ),
          );
        }
      });
    } catch (error) {
      this.free();
      throw error;
    }
    options.load?.describe({
      stage: options.stage ?? 0,
      devices: this.groups.map((g) => g.devices.map((d) => d.name)),
      experts: this.placement.experts,
    });
  }

  parameters(): Parameter[] {
    return [{ name: this.gateName, value: this.gate }, ...this.experts.flat().flatMap((m) => m.parameters())];
  }

  async forward(x: DistributedTensor): Promise<DistributedTensor> {
    using scope = new TensorScope();
    const [tokens, hidden] = x.globalShape as [number, number];
    const k = this.shape.expertsPerToken;
    const sizes = balancedSizes(tokens, this.ep);
    const offsets = splitOffsets(sizes);
    const t = this.groups[0]!.size;
    const rank = (g: number, i: number) => g * t + i;
    const track = <T extends { free(): void }>(v: T) => scope.track(v);
    // Settled on every device before anything goes on or fails: a body still running when the scope
    // ended would track into a scope already freed. Untracked results are freed by `free` on a failure.
    const onEach = <T>(
      body: (d: Device, g: number, i: number) => Promise<T>,
      free: (value: T) => void = () => {},
    ): Promise<PerGroup<T>> =>
      allOrFree(
        this.groups.map((grp, g) =>
          allOrFree(
            grp.devices.map((d, i) => body(d, g, i)),
            free,
          ),
        ),
        (values) => values.forEach(free),
      );
    const empty = (d: Device, rows: number, label: string) => track(d.empty([rows, hidden], 'f32', label));

    // 1. Each group's token slice, and its routing, on each of its devices (the same on each).
    const slices = await onEach(async (d, g, i) => {
      const shard = x.shards[rank(g, i)]!;
      if (this.ep === 1) return shard;
      if (sizes[g] === 0) return empty(d, 0, 'moe.slice');
      return track(await d.kernels.slice(shard, 0, offsets[g]!, sizes[g]!, 'moe.slice'));
    });
    const routes = await onEach(async (d, g, i) => {
      const n = sizes[g]!;
      if (n === 0) return null;
      const logits = track(
        await d.kernels.batchedMatmul(
          slices[g]![i]!.reshape([1, n, hidden]),
          this.gate.shards[rank(g, i)]!.reshape([1, this.shape.numExperts, hidden]),
          { transposeB: true, label: 'moe.router' },
        ),
      );
      const r = await d.kernels.routerTopK(logits.reshape([n, this.shape.numExperts]), k, 'moe.topk');
      return { indices: track(r.indices), weights: track(r.weights) };
    });
    const picks = await allOrFree(
      routes.map(async (r) => (r[0] ? ((await r[0].indices.read()) as Uint32Array) : new Uint32Array(0))),
      () => {},
    );
    const capacity =
      this.options.capacityFactor === undefined
        ? undefined
        : expertCapacity(this.options.capacityFactor, tokens, k, this.shape.numExperts);
    const plan = planRouting(picks, k, this.placement, capacity);

    // 2. Dispatch: rows for group h's experts, grouped by expert, along each rail.
    const sends = await onEach(async (d, g, i) => {
      const ids = plan.sendIds[g]!;
      if (ids.length === 0) return empty(d, 0, 'moe.send');
      return track(await gather(d, slices[g]![i]!, ids, 'moe.send', track));
    });
    const dispatched = await this.exchange(sends, plan.sendCounts, track);

    // 3. Experts on what each group received; the outputs back in the order they came.
    const outputs = await allOrFree(
      this.groups.map((grp, h) => this.runExperts(grp, h, dispatched.outputs[h]!, plan, hidden, track)),
      () => {},
    );
    const back = transpose(plan.sendCounts);
    const returned = await this.exchange(outputs, back, track);

    // 4. Combine each token's k rows with its router weights; gather the slices back over each rail.
    // These are not tracked: with one group they are the result itself.
    const combined = await onEach(
      async (d, g, i) => {
        const n = sizes[g]!;
        const rows = returned.outputs[g]![i]!;
        if (n === 0 || rows.shape[0] === 0) return d.empty([n, hidden], 'f32', 'moe.out');
        const picked = track(await gather(d, rows, plan.combineIds[g]!, 'moe.picked', track));
        const weights = routes[g]![i]!.weights;
        const sum = await d.kernels.batchedMatmul(
          weights.reshape([n, 1, k]),
          picked.reshape([n, k, hidden]),
          {
            label: 'moe.combine',
          },
        );
        return sum.reshape([n, hidden], { owning: true });
      },
      (t) => t.free(),
    );
    this.options.load?.record({
      stage: this.options.stage ?? 0,
      layer: this.options.layer ?? 0,
      tokens,
      perExpert: plan.perExpert,
      dropped: plan.dropped,
      perGroup: this.placement.experts.map((list) => list.reduce((n, e) => n + plan.perExpert[e]!, 0)),
      allToAllBytes: dispatched.bytes + returned.bytes,
      allToAllMs: dispatched.ms + returned.ms,
    });
    if (this.ep === 1) return new DistributedTensor(this.group, Replicate(), [tokens, hidden], combined[0]!);
    let gathered: DistributedTensor[];
    try {
      gathered = await allOrFree(
        this.rails.map(async (rail, i) => {
          const parts = new DistributedTensor(
            rail,
            Shard(0, sizes),
            [tokens, hidden],
            combined.map((c) => c[i]!),
          );
          return (await allGather(this.ctx, parts)).output;
        }),
        (dt) => dt.free(),
      );
    } catch (error) {
      for (const part of combined.flat()) part.free();
      throw error;
    }
    const shards = this.group.devices.map((_, r) => gathered[r % t]!.shards[Math.floor(r / t)]!);
    // The all-gather hands a slice on as the output where it moved nothing to it (one token, one group).
    for (const part of combined.flat()) if (!shards.includes(part)) part.free();
    return new DistributedTensor(this.group, Replicate(), [tokens, hidden], shards);
  }

  free(): void {
    this.gate.free();
    for (const m of this.experts.flat()) m.free();
  }

  /** One all_to_all per rail (all rails at once): rows[g][i] from group g's i-th device. */
  private async exchange(
    rows: PerGroup<Tensor>,
    counts: readonly (readonly number[])[],
    track: <T extends { free(): void }>(v: T) => T,
  ): Promise<{ outputs: PerGroup<Tensor>; bytes: number; ms: number }> {
    const start = performance.now();
    const results = await allOrFree(
      this.rails.map((rail, i) =>
        allToAll(
          this.ctx,
          rows.map((r) => r[i]!),
          counts,
          rail,
          { label: 'moe.all_to_all' },
        ),
      ),
      (r) => {
        for (const o of r.outputs) o.free();
      },
    );
    const ms = performance.now() - start;
    for (const r of results) for (const o of r.outputs) track(o);
    return {
      outputs: this.groups.map((_, h) => results.map((r) => r.outputs[h]!)),
      bytes: results.reduce((n, r) => n + hostBytes(r.traffic), 0),
      ms,
    };
  }

  /** Group h's experts, one after another, on the rows it received; outputs in the order received. */
  private async runExperts(
    grp: DeviceGroup,
    h: number,
    received: readonly Tensor[],
    plan: RoutingPlan,
    hidden: number,
    track: <T extends { free(): void }>(v: T) => T,
  ): Promise<Tensor[]> {
    const total = received[0]!.shape[0]!;
    if (total === 0) return grp.devices.map((d) => track(d.empty([0, hidden], 'f32', 'moe.expert_out')));
    const outs: DistributedTensor[] = [];
    for (const [i, expert] of this.experts[h]!.entries()) {
      const rows = plan.expertRows[h]![i]!;
      if (rows.length === 0) continue;
      const inputs = await allOrFree(
        grp.devices.map((d, r) =>
          rows.length === total
            ? Promise.resolve(received[r]!)
            : gather(d, received[r]!, rows, 'moe.expert_in', track).then(track),
        ),
        () => {},
      );
      const input = new DistributedTensor(grp, Replicate(), [rows.length, hidden], inputs);
      outs.push(track(await expert.forward(input)));
    }
    return allOrFree(
      grp.devices.map(async (d, r) => {
        const parts = outs.map((o) => o.shards[r]!);
        const joined =
          parts.length === 1 ? parts[0]! : track(await d.kernels.concat(parts, 0, 'moe.expert_out'));
        if (isIdentity(plan.returnIds[h]!)) return joined;
        return track(await gather(d, joined, plan.returnIds[h]!, 'moe.return', track));
      }),
      () => {},
    );
  }
}

/** rows[ids] on the device (the embedding kernel is a row gather; an id past the end gives a zero row). */
async function gather(
  d: Device,
  rows: Tensor,
  ids: Uint32Array,
  label: string,
  track: <T extends { free(): void }>(v: T) => T,
): Promise<Tensor> {
  const idTensor = track(d.upload(ids, [ids.length], `${label}.ids`));
  return d.kernels.embedding(rows, idTensor, { label });
}

function isIdentity(ids: Uint32Array): boolean {
  return ids.every((v, i) => v === i);
}

function transpose(m: readonly (readonly number[])[]): number[][] {
  return m[0]!.map((_, j) => m.map((row) => row[j]!));
}
