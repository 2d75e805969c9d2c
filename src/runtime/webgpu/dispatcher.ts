import { ParallelError } from '../../errors.js';
import { BindGroupCache } from './bind-group-cache.js';
import type { BufferUse } from './buffer-uses.js';
import { CommandBatch } from './command-batch.js';
import type { DeviceHealth } from './device-health.js';
import { PARAM_SLOT_BYTES, ParamTable } from './param-table.js';
import type { PipelineCache, PipelineSource } from './pipeline-cache.js';
import type { DeviceProfiling } from './profiling.js';
import type { WritePath } from './write-path.js';

export interface Dispatch {
  readonly source: PipelineSource;
  /** Bound in order from binding 0: a uniform block of parameters first, when given, then the buffers. */
  readonly params?: ArrayBuffer;
  readonly buffers: readonly GPUBuffer[];
  readonly workgroups: readonly [number, number?, number?];
}

/**
 * A device's queue as the library uses it: kernels, clears and copies are encoded into one pending batch
 * (CommandBatch) and submitted together, before anything that must follow them; every submit of the
 * device goes through `submit`, so that the write path learns what each one touched and when it completed,
 * and the kernel parameters' slots come back.
 */
export class Dispatcher {
  /** Kernels encoded and not yet submitted (see CommandBatch). */
  private batch: CommandBatch | null = null;
  /** Every kernel's parameters, by content, at fixed offsets of one uniform buffer (see ParamTable). */
  private readonly params: ParamTable;
  private readonly bindGroups: BindGroupCache;

  constructor(
    private readonly name: string,
    private readonly gpu: GPUDevice,
    private readonly pipelines: PipelineCache,
    private readonly health: DeviceHealth,
    private readonly writes: WritePath,
    private readonly profiling: DeviceProfiling,
  ) {
    this.params = new ParamTable(gpu, name);
    this.bindGroups = new BindGroupCache(gpu);
  }

  /** Whether encoded work not yet submitted uses the buffer. */
  pendingUses(buffer: GPUBuffer): boolean {
    return this.batch?.has(buffer) ?? false;
  }

  /**
   * Encodes one compute pass into the pending batch; it is submitted with the batch, before anything that
   * must follow it on the queue. A grid with a dimension of zero (a kernel over a tensor with no elements)
   * runs nothing and is skipped before any pipeline or bind group is made: every kernel's guard against
   * empty tensors is here.
   */
  async dispatch(work: Dispatch): Promise<void> {
    this.health.assertUsable(work.source.key);
    if (work.workgroups.some((n) => n === 0)) return;
    const pipeline = await this.health.wait(this.pipelines.get(work.source), work.source.key);
    this.health.assertUsable(work.source.key);
    let offset: number | null = null;
    if (work.params) {
      offset = this.params.take(work.params);
      if (offset === null) {
        // The pending batch holds every slot: submitted, it holds none.
        this.flush();
        offset = this.params.take(work.params);
        if (offset === null) {
          throw new ParallelError(
            'BACKEND',
            `${this.name}: kernel parameters of ${work.params.byteLength} bytes do not fit a ${PARAM_SLOT_BYTES}-byte slot`,
          );
        }
      }
    }
    const batch = this.openBatch();
    const writable = this.pipelines.writableBindings(work.source.key);
    const first = work.params ? 1 : 0;
    for (const [i, buffer] of work.buffers.entries()) batch.touch(buffer, writable.has(first + i));
    const bindGroup = this.bindGroups.get(
      work.source.key,
      this.pipelines.bindGroupLayout(work.source.key),
      offset === null ? null : { buffer: this.params.buffer, offset, size: PARAM_SLOT_BYTES },
      work.buffers,
    );
    const pass = batch.encoder.beginComputePass({
      label: work.source.key,
      ...this.profiling.passTimestamps(work.source.key, batch),
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = work.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    batch.passes++;
    if (batch.full) this.flush();
  }

  /** Clears a buffer in order with the batch's kernels (a reused tensor buffer, before its new owner). */
  clearBuffer(buffer: GPUBuffer): void {
    const batch = this.openBatch();
    batch.encoder.clearBuffer(buffer);
    batch.touch(buffer, true);
  }

  /** Copies ranges between two buffers of this device, in order with the batch's kernels. */
  copyBuffer(
    from: GPUBuffer,
    to: GPUBuffer,
    ranges: readonly { readonly srcByte: number; readonly dstByte: number; readonly bytes: number }[],
  ): void {
    if (ranges.length === 0) return;
    const batch = this.openBatch();
    for (const r of ranges) batch.encoder.copyBufferToBuffer(from, r.srcByte, to, r.dstByte, r.bytes);
    batch.touch(from, false);
    batch.touch(to, true);
  }

  /**
   * Destroys a buffer once no work that uses it can still be submitted: now, unless the pending batch
   * uses it (a tensor freed right after the kernel that read it), then right after the batch's submit.
   */
  retire(buffer: GPUBuffer): void {
    this.bindGroups.forget(buffer);
    if (this.batch?.has(buffer)) this.batch.retired.push(buffer);
    else buffer.destroy();
  }

  /** Submits the pending batch, if any (the host is about to wait for its results, or a bound was reached). */
  flush(): void {
    if (this.batch) this.submit([]);
  }

  /**
   * Submits to the queue, after the pending batch and the parameters it is the first to use. The write path
   * is told what the submit touched and, once it has completed, that it has. Returns the submit's serial.
   */
  submit(commands: GPUCommandBuffer[], uses: readonly BufferUse[] = []): number {
    const batch = this.batch;
    this.batch = null;
    let all = commands;
    let touched = uses;
    if (batch) {
      const before: GPUCommandBuffer[] = [];
      this.writeParams(batch, before);
      all = [...before, batch.encoder.finish(), ...commands];
      touched = [...batch.bufferUses(), ...uses];
    }
    const hostNs = performance.now() * 1e6;
    this.gpu.queue.submit(all);
    const serial = this.writes.submitted(touched);
    if (batch) {
      this.profiling.submitted(batch, hostNs);
      for (const buffer of batch.retired) buffer.destroy();
    }
    const sealed = this.writes.seal();
    if (sealed === null && !batch) return serial;
    const done = () => {
      if (sealed !== null) this.writes.released(sealed);
      this.writes.completedThrough(serial);
    };
    this.gpu.queue.onSubmittedWorkDone().then(done, () => {
      if (sealed !== null) this.writes.released(sealed);
    });
    return serial;
  }

  /** Drops the pending batch and the cached bind groups (the device is being destroyed). */
  destroy(): void {
    this.batch = null;
    this.bindGroups.clear();
  }

  private openBatch(): CommandBatch {
    this.health.assertUsable('dispatch');
    this.batch ??= new CommandBatch(this.gpu);
    return this.batch;
  }

  /** The parameter slots the batch filled, into the table's buffer ahead of it. */
  private writeParams(batch: CommandBatch, before: GPUCommandBuffer[]): void {
    for (const run of this.params.seal()) {
      this.writes.writeParams(this.params.buffer, run.byteOffset, run.bytes, before, batch.retired);
    }
  }
}
