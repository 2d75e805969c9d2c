/** A buffer a submit touches, and whether the GPU writes it there. */
export interface BufferUse {
  readonly buffer: GPUBuffer;
  readonly writes: boolean;
}

interface History {
  /** The GPU has written the buffer (a copy or clear into it, a writable binding): Dawn never forgets it. */
  written: boolean;
  /** The serial of the last submit that touched it. */
  lastSubmit: number;
}

/**
 * Which buffers `queue.writeBuffer` writes straight into, as Dawn decides it. On a device whose memory the
 * host can see (lavapipe, integrated GPUs), Dawn copies a write directly into the buffer when no submitted
 * work still uses it and the GPU has never written it; otherwise it copies into its upload ring and has the
 * queue copy from there (a second copy, on the driver's thread, and ring space that runs out). The rule is
 * Dawn's (vulkan::Buffer::UploadData), and so is the asymmetry: one copy or clear into a buffer makes every
 * later write to it take the ring. On the 2-core dev VM (lavapipe), a 16 MiB AllReduce over 3 devices in one
 * process: ~10 ms into outputs only the host had written, 12-13 ms once an AllGather's copy had written them.
 * Off a CPU adapter the device assumes the ring (a discrete GPU's memory is not the host's; an integrated
 * GPU's may be, which WebGPU does not say), so a wrong guess only costs ring space never used.
 *
 * Serials are this device's own submits. A submit's completion is known when something reports it (a
 * mapped read, a sync, a watched submit); until then the buffers it touched count as in use, which only
 * errs towards the ring.
 */
export class BufferUses {
  private readonly histories = new WeakMap<GPUBuffer, History>();
  private submitted = 0;
  private completed = 0;

  /** The serial the next submit will have: what a write queued now is carried by. */
  get pending(): number {
    return this.submitted + 1;
  }

  /** Records a submit touching `uses`; returns its serial. */
  submit(uses: readonly BufferUse[]): number {
    const serial = ++this.submitted;
    for (const use of uses) this.touch(use.buffer, serial, use.writes);
    return serial;
  }

  /** The GPU will write the buffer in the next submit (a write Dawn queues through its ring). */
  writtenByNextSubmit(buffer: GPUBuffer): void {
    this.touch(buffer, this.pending, true);
  }

  /** Work up to `serial` has completed (queues run in order: so has all before it). */
  completedThrough(serial: number): void {
    if (serial > this.completed) this.completed = serial;
  }

  /** Whether Dawn will copy a write straight into the buffer's memory rather than through its ring. */
  writesDirectly(buffer: GPUBuffer): boolean {
    const history = this.histories.get(buffer);
    return history === undefined || (!history.written && history.lastSubmit <= this.completed);
  }

  private touch(buffer: GPUBuffer, serial: number, writes: boolean): void {
    const history = this.histories.get(buffer);
    if (history) {
      history.written ||= writes;
      history.lastSubmit = Math.max(history.lastSubmit, serial);
    } else this.histories.set(buffer, { written: writes, lastSubmit: serial });
  }
}
