/** Bytes of one kernel's parameters slot: WebGPU's minimum uniform offset alignment (256 on every adapter). */
export const PARAM_SLOT_BYTES = 256;

/** Slots in the ring: more kernels than the batches a queue has in flight ever hold here. */
export const PARAM_SLOTS = 1024;

/**
 * Every kernel's parameters live in one uniform buffer per device, a ring of 256-byte slots bound with a
 * dynamic offset: a kernel's bind group then names only its storage buffers and this buffer, so the same
 * kernel on the same tensors reuses its bind group (a decode step runs the same kernels on the same
 * buffers every step), where a uniform buffer per call made a new bind group every time (~26 µs each on
 * lavapipe, the largest cost of a small kernel: bench/RESULTS.md, "Dispatch batching"). A batch takes
 * consecutive slots and writes them in one writeBuffer before its submit; they are free again once that
 * submit has completed (queues complete in order, so the ring frees from its oldest end).
 */
export class ParamRing {
  readonly buffer: GPUBuffer;
  /** The host copy of every slot, written into the buffer a batch at a time. */
  readonly data = new Uint8Array(PARAM_SLOTS * PARAM_SLOT_BYTES);
  /** Next slot to hand out, and slots handed out and not yet released (in flight or pending). */
  private next = 0;
  private taken = 0;

  constructor(device: GPUDevice, label: string) {
    this.buffer = device.createBuffer({
      label: `${label}/kernel params`,
      size: this.data.length,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  get free(): number {
    return PARAM_SLOTS - this.taken;
  }

  /** The byte offset of a new slot holding `params`, or null when every slot is in flight. */
  take(params: ArrayBuffer): number | null {
    if (params.byteLength > PARAM_SLOT_BYTES || this.taken === PARAM_SLOTS) return null;
    const slot = this.next;
    this.next = (this.next + 1) % PARAM_SLOTS;
    this.taken++;
    const offset = slot * PARAM_SLOT_BYTES;
    this.data.set(new Uint8Array(params), offset);
    return offset;
  }

  /** Gives back `count` slots from the oldest end, once the submit that read them has completed. */
  release(count: number): void {
    this.taken -= count;
  }

  destroy(): void {
    this.buffer.destroy();
  }
}
