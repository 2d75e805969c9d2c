/** Bytes of one kernel's parameter slot: WebGPU's minimum uniform offset alignment (256 on every adapter). */
export const PARAM_SLOT_BYTES = 256;

/** Distinct parameter blocks kept: a decode step's kernels many times over. */
export const PARAM_SLOTS = 1024;

/** A run of consecutive slots whose contents must reach the buffer before the pending batch runs. */
export interface DirtyRun {
  readonly byteOffset: number;
  readonly bytes: Uint8Array;
}

/**
 * Every kernel's parameters, by content, at fixed offsets of one uniform buffer per device. A kernel run
 * again with the same parameters on the same tensors (in a decode step, every kernel but those given the
 * position) then binds exactly what it bound before, and reuses its cached bind group. The two other ways
 * each cost a small kernel as much again as the kernel itself on lavapipe (bench/RESULTS.md, "Dispatch
 * batching"): a uniform buffer per call needs a new bind group every call, and one buffer bound at dynamic
 * offsets makes every dispatch pay for its offsets.
 *
 * A slot is rewritten only for new contents, least recently used first and never while the pending batch
 * uses it; submitted work that still reads the old contents is safe, since a write is ordered after every
 * earlier submit on the queue.
 */
export class ParamTable {
  readonly buffer: GPUBuffer;
  /** The host copy of every slot. */
  private readonly data = new Uint8Array(PARAM_SLOTS * PARAM_SLOT_BYTES);
  /** Slot by contents, least recently used first (a Map keeps insertion order; a hit moves to the end). */
  private readonly slots = new Map<string, number>();
  /** The batch generation that last used each slot: the pending batch's slots are not reassigned. */
  private readonly usedIn = new Float64Array(PARAM_SLOTS).fill(-1);
  private generation = 0;
  /** Slots handed out at least once; the table fills before any is reassigned. */
  private filled = 0;
  private dirty: number[] = [];

  constructor(device: GPUDevice, label: string) {
    this.buffer = device.createBuffer({
      label: `${label}/kernel params`,
      size: this.data.length,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** The byte offset of a slot holding `params` for the pending batch, or null when that batch uses them all. */
  take(params: ArrayBuffer): number | null {
    if (params.byteLength > PARAM_SLOT_BYTES || params.byteLength % 4 !== 0) return null;
    const key = String.fromCharCode(...new Uint16Array(params));
    let slot: number | null | undefined = this.slots.get(key);
    if (slot !== undefined) this.slots.delete(key);
    else {
      slot = this.filled < PARAM_SLOTS ? this.filled++ : this.evict();
      if (slot === null) return null;
      const at = slot * PARAM_SLOT_BYTES;
      this.data.fill(0, at, at + PARAM_SLOT_BYTES);
      this.data.set(new Uint8Array(params), at);
      this.dirty.push(slot);
    }
    this.slots.set(key, slot);
    this.usedIn[slot] = this.generation;
    return slot * PARAM_SLOT_BYTES;
  }

  /** The pending batch is being submitted: the slots it filled, to be written ahead of it. */
  seal(): DirtyRun[] {
    this.generation++;
    const slots = this.dirty.sort((a, b) => a - b);
    this.dirty = [];
    const runs: DirtyRun[] = [];
    for (let i = 0; i < slots.length; ) {
      let j = i + 1;
      while (j < slots.length && slots[j] === slots[j - 1]! + 1) j++;
      const byteOffset = slots[i]! * PARAM_SLOT_BYTES;
      runs.push({
        byteOffset,
        bytes: this.data.subarray(byteOffset, (slots[j - 1]! + 1) * PARAM_SLOT_BYTES),
      });
      i = j;
    }
    return runs;
  }

  destroy(): void {
    this.buffer.destroy();
  }

  /** The least recently used slot the pending batch does not use, taken from its old contents. */
  private evict(): number | null {
    for (const [key, slot] of this.slots) {
      if (this.usedIn[slot] === this.generation) continue;
      this.slots.delete(key);
      return slot;
    }
    return null;
  }
}
