import { isParallelError, ParallelError } from '../../errors.js';
import type { Kernels } from '../../kernels/kernels.js';
import type { AdapterSummary, Device, EmptyOptions, KernelSpan } from '../device.js';
import { MemoryLedger } from '../memory-ledger.js';
import type { DType, HostArray, Shape, Tensor } from '../tensor.js';
import { BYTES_PER_ELEMENT, checkUpload, dtypeOf } from '../tensor.js';
import { BindGroupCache } from './bind-group-cache.js';
import { BufferCache } from './buffer-cache.js';
import { type BufferUse, BufferUses } from './buffer-uses.js';
import { CommandBatch } from './command-batch.js';
import { releaseGpu } from './dawn.js';
import { GpuTensor } from './gpu-tensor.js';
import { LossRace } from './loss-race.js';
import { PARAM_SLOT_BYTES, ParamRing } from './param-ring.js';
import { PipelineCache, type PipelineSource } from './pipeline-cache.js';
import { StagingPool } from './staging-pool.js';
import { TimestampProfiler } from './timestamps.js';
import { UploadRingModel } from './upload-ring.js';

/**
 * Where Dawn writes a buffer directly (a CPU adapter, a buffer the GPU never wrote and no queued work uses:
 * see BufferUses), `queue.writeBuffer` is one memcpy into the buffer's memory, whatever the size, and is
 * always taken (`upload` into a fresh buffer is that case: 20 fresh 1 MiB uploads without a submit fault
 * only the buffers' own pages). Elsewhere it is used only where the write fits Dawn's 4 MiB upload ring: a
 * write that does not fit what the queue has not yet consumed gets freshly allocated staging memory, which
 * lavapipe page-faults on every write (a 16 MiB write into a buffer the GPU had used: ~49 ms, every time).
 * Larger writes, and writes the ring has no room for, go through the device's own upload buffers, which
 * are reused (the same 16 MiB: ~2-3 ms once the pool has grown). Within the ring, writeBuffer is the
 * cheaper path (2 MiB: ~0.1 ms of host time against ~0.2 ms for a staged copy, which pays an encoder, a
 * submit and a re-map). Single writes are held to half the ring; whether one goes into the ring at all is
 * Dawn's own placement, modelled by `UploadRingModel`. The model's batches are released when the submit
 * carrying them completes: Dawn holds a writeBuffer's copy until the next submit (or its own tick, ~3 ms
 * later here) and `onSubmittedWorkDone` covers submitted work only, so releasing at the next completion let
 * writes fall off the ring (two 2 MiB writes and a sync: 13.4 ms a round, 0.27 ms released right). Writes
 * ride on the next submit rather than an empty one of their own: an empty submit per write made the
 * AllReduce slower in an interleaved A/B.
 */
export const DIRECT_WRITE_MAX_BYTES = 2 * 1024 * 1024;

/** Values read into a staging buffer: `data` views its mapped memory until `release`. */
export interface MappedRead {
  readonly data: HostArray;
  release(): void;
}

export interface Dispatch {
  readonly source: PipelineSource;
  /** Bound in order from binding 0: a uniform block of parameters first, when given, then the buffers. */
  readonly params?: ArrayBuffer;
  readonly buffers: readonly GPUBuffer[];
  readonly workgroups: readonly [number, number?, number?];
}

export interface GpuDeviceOptions {
  readonly id: number;
  /** The Dawn instance the adapter came from; the device keeps it alive (a collected one hangs the queue). */
  readonly instance: GPU;
  readonly adapter: GPUAdapter;
  readonly summary: AdapterSummary;
  readonly budgetBytes?: number;
  readonly makeKernels: (device: GpuDevice) => Kernels;
  readonly dumpShader?: (key: string, code: string) => void;
}

/**
 * One WebGPU device. Dispatches go through `dispatch`, the one place that encodes a compute pass, so that
 * profiling, error capture and device loss are handled once for every kernel.
 */
export class GpuDevice implements Device {
  readonly id: number;
  readonly name: string;
  readonly backend = 'webgpu' as const;
  readonly adapter: AdapterSummary;
  readonly ledger: MemoryLedger;
  readonly kernels: Kernels;
  readonly hasDeviceTimestamps: boolean;
  readonly gpu: GPUDevice;
  readonly pipelines: PipelineCache;
  /** Pooled MAP_READ buffers for reads back to the host (collectives lease them too). */
  readonly readStaging: StagingPool;
  /** Pooled MAP_WRITE buffers for large writes into tensors. */
  readonly uploadStaging: StagingPool;
  /** Freed tensor buffers kept for the next tensor of the same size. */
  readonly tensorCache: BufferCache;
  /** Where Dawn has placed this device's `queue.writeBuffer` copies that the queue has not finished. */
  private readonly uploadRing = new UploadRingModel();
  /** Which buffers the GPU uses and has written: whether Dawn writes one directly or through its ring. */
  private readonly uses = new BufferUses();
  /** Buffers live in memory the host sees (a CPU adapter), where Dawn can write them directly. */
  private readonly hostVisible: boolean;
  private readonly profiler: TimestampProfiler | null;
  private profiling = false;
  private tag = '';
  private hostSpans: KernelSpan[] = [];
  private firstError: ParallelError | null = null;
  private lost: ParallelError | null = null;
  private readonly lossRace = new LossRace();
  private destroyed = false;
  private readonly instance: GPU;
  /** Kernels encoded and not yet submitted (see CommandBatch). */
  private batch: CommandBatch | null = null;
  /** Every kernel's parameters, at dynamic offsets of one uniform buffer (see ParamRing). */
  private readonly params: ParamRing;
  private readonly bindGroups: BindGroupCache;

  static async open(options: GpuDeviceOptions): Promise<GpuDevice> {
    const timestamps = options.adapter.features.has('timestamp-query');
    const features: GPUFeatureName[] = timestamps ? ['timestamp-query'] : [];
    if (options.adapter.features.has('subgroups')) features.push('subgroups' as GPUFeatureName);
    const gpu = await options.adapter.requestDevice({
      label: `webgpu:${options.id}`,
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: options.adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: options.adapter.limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: options.adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: options.adapter.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: options.adapter.limits.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: options.adapter.limits.maxComputeWorkgroupSizeY,
      },
    });
    return new GpuDevice(options, gpu, timestamps);
  }

  /** The subgroup size when the device has subgroups of one fixed size (what register tiles assume). */
  get subgroupSize(): number | null {
    if (!this.gpu.features.has('subgroups')) return null;
    const info = this.gpu.adapterInfo as GPUAdapterInfo & {
      subgroupMinSize?: number;
      subgroupMaxSize?: number;
    };
    const min = info.subgroupMinSize;
    return min !== undefined && min === info.subgroupMaxSize ? min : null;
  }

  private constructor(options: GpuDeviceOptions, gpu: GPUDevice, timestamps: boolean) {
    this.id = options.id;
    this.name = `webgpu:${options.id}`;
    this.adapter = options.summary;
    this.instance = options.instance;
    this.gpu = gpu;
    this.ledger = new MemoryLedger(this.name, options.budgetBytes);
    this.hasDeviceTimestamps = timestamps;
    this.hostVisible = options.summary.isSoftware;
    this.profiler = timestamps ? new TimestampProfiler(gpu, this.name) : null;
    this.pipelines = new PipelineCache(gpu, this.name, options.dumpShader);
    this.readStaging = new StagingPool(this, 'readback');
    this.uploadStaging = new StagingPool(this, 'upload');
    this.tensorCache = new BufferCache(this);
    this.params = new ParamRing(gpu, this.name);
    this.bindGroups = new BindGroupCache(gpu);
    gpu.onuncapturederror = (event: GPUUncapturedErrorEvent) => {
      const code = event.error instanceof GPUOutOfMemoryError ? 'OUT_OF_MEMORY' : 'VALIDATION';
      this.firstError ??= new ParallelError(code, `${this.name}: ${event.error.message}`, {
        where: this.name,
      });
    };
    void gpu.lost.then((info) => {
      this.lost = new ParallelError(
        'DEVICE_LOST',
        `${this.name} was lost (${info.reason}): ${info.message}`,
        {
          where: this.name,
          fix: 'the driver reset or the device was destroyed; open a new device group',
        },
      );
      this.lossRace.lose(this.lost);
    });
    this.kernels = options.makeKernels(this);
  }

  /**
   * Reserves ledger bytes for a tensor. Over budget, the bytes this device merely keeps for reuse (freed
   * tensors, idle staging) are handed back first, so caching never turns a fitting run into MEMORY_BUDGET.
   */
  reserve(bytes: number, label: string): number {
    try {
      return this.ledger.reserve(bytes, label);
    } catch (error) {
      if (!isParallelError(error, 'MEMORY_BUDGET') || this.releaseCached() === 0) throw error;
      return this.ledger.reserve(bytes, label);
    }
  }

  releaseCached(): number {
    const kept = this.tensorCache.heldBytes + this.readStaging.idleBytes + this.uploadStaging.idleBytes;
    this.tensorCache.trim();
    this.readStaging.trim();
    this.uploadStaging.trim();
    return kept;
  }

  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.assertUsable('createBuffer');
    return this.gpu.createBuffer(descriptor);
  }

  empty(shape: Shape, dtype: DType, label: string, options: EmptyOptions = {}): GpuTensor {
    this.assertUsable(label);
    return new GpuTensor(this, shape, dtype, label, options.overwritten ?? false);
  }

  upload(data: HostArray, shape: Shape, label: string): GpuTensor {
    checkUpload(data, shape, label, this.name);
    // Written in full below: a recycled buffer needs no clearing first.
    const tensor = this.empty(shape, dtypeOf(data), label, { overwritten: true });
    // Dawn writes a buffer the GPU has never used straight into its memory, at memcpy speed, whatever the
    // size; a recycled buffer takes the same path as any write.
    if (tensor.recycled) this.write(tensor, data);
    else if (data.byteLength > 0)
      this.gpu.queue.writeBuffer(tensor.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return tensor;
  }

  /** Writes host values into the tensor starting at an element offset. */
  write(tensor: Tensor, data: HostArray, elementOffset = 0): void {
    const gpuTensor = this.own(tensor, 'write');
    const bytes = BYTES_PER_ELEMENT[tensor.dtype];
    if (elementOffset + data.length > tensor.size) {
      throw new ParallelError(
        'SHAPE',
        `write of ${data.length} values at ${elementOffset} overflows '${tensor.label}'`,
        {
          where: this.name,
        },
      );
    }
    if (data.byteLength % 4 !== 0 || data.length === 0) return;
    const byteOffset = elementOffset * bytes;
    const buffer = gpuTensor.buffer;
    // The queue takes a write before any later submit: kernels still waiting in the batch must go first.
    if (this.batch?.has(buffer)) this.flush();
    if (this.writesDirectly(buffer)) {
      // Dawn copies it straight into the buffer's memory, whatever the size: no ring, no copy on the queue.
      this.gpu.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    if (data.byteLength <= DIRECT_WRITE_MAX_BYTES && this.uploadRing.tryAllocate(data.byteLength)) {
      this.gpu.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
      this.uses.writtenByNextSubmit(buffer);
      return;
    }
    const staging = this.uploadStaging.acquire(data.byteLength);
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    new Uint8Array(staging.getMappedRange(0, data.byteLength)).set(view);
    staging.unmap();
    const encoder = this.gpu.createCommandEncoder({ label: `write ${tensor.label}` });
    encoder.copyBufferToBuffer(staging, 0, buffer, byteOffset, data.byteLength);
    this.submit([encoder.finish()], [{ buffer, writes: true }]);
    this.uploadStaging.release(staging);
  }

  /**
   * Whether `queue.writeBuffer` into the buffer now goes straight into its memory (see BufferUses): only
   * where the host sees device memory, the GPU has never written the buffer and no queued work uses it.
   */
  writesDirectly(buffer: GPUBuffer): boolean {
    // Pending work on it is submitted before a write, and is then in use until it completes.
    return this.hostVisible && !this.batch?.has(buffer) && this.uses.writesDirectly(buffer);
  }

  async read(tensor: Tensor, elementOffset = 0, count = tensor.size - elementOffset): Promise<HostArray> {
    this.own(tensor, 'read');
    if (elementOffset < 0 || count < 0 || elementOffset + count > tensor.size) {
      throw new ParallelError(
        'SHAPE',
        `read of ${count} values at ${elementOffset} is outside '${tensor.label}'`,
        {
          where: this.name,
        },
      );
    }
    if (count === 0) return tensor.dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0);
    const mapped = await this.readMapped(tensor, [{ offset: elementOffset, count }]);
    try {
      return mapped.data.slice();
    } finally {
      mapped.release();
    }
  }

  /**
   * Copies element ranges of a tensor, packed in order, into one pooled MAP_READ staging buffer (one
   * encoder, one submit) and maps it. The data is handed out mapped, without a copy, until `release`, which
   * unmaps the buffer and gives it back to the pool.
   */
  async readMapped(
    tensor: Tensor,
    ranges: readonly { readonly offset: number; readonly count: number }[],
    op = 'read',
  ): Promise<MappedRead> {
    const gpuTensor = this.own(tensor, op);
    const size = BYTES_PER_ELEMENT[tensor.dtype];
    const bytes = ranges.reduce((n, r) => n + r.count, 0) * size;
    // Nothing to read (an empty tensor, a shard with no rows): no copy, no map, nothing to release.
    if (bytes === 0) {
      return { data: tensor.dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0), release: () => {} };
    }
    const staging = this.readStaging.acquire(bytes);
    try {
      const encoder = this.gpu.createCommandEncoder({ label: `${op} ${tensor.label}` });
      let at = 0;
      for (const r of ranges) {
        if (r.count === 0) continue;
        encoder.copyBufferToBuffer(gpuTensor.buffer, r.offset * size, staging, at, r.count * size);
        at += r.count * size;
      }
      const serial = this.submit([encoder.finish()], [{ buffer: gpuTensor.buffer, writes: false }]);
      await this.wait(staging.mapAsync(GPUMapMode.READ, 0, bytes), `${op} of '${tensor.label}'`);
      this.uses.completedThrough(serial);
      this.throwIfFailed();
    } catch (error) {
      // Also cancels a map still pending when the read failed, so the buffer goes back reusable.
      if (staging.mapState !== 'unmapped') staging.unmap();
      this.readStaging.release(staging);
      throw error;
    }
    const range = staging.getMappedRange(0, bytes);
    let released = false;
    return {
      data: tensor.dtype === 'u32' ? new Uint32Array(range) : new Float32Array(range),
      release: () => {
        if (released) return;
        released = true;
        staging.unmap();
        this.readStaging.release(staging);
      },
    };
  }

  /**
   * Encodes one compute pass into the device's pending batch (see CommandBatch); it is submitted with the
   * batch, before anything that must follow it on the queue. A grid with a dimension of zero (a kernel over
   * a tensor with no elements) runs nothing and is skipped before any pipeline or bind group is made: every
   * kernel's guard against empty tensors is here.
   */
  async dispatch(work: Dispatch): Promise<void> {
    this.assertUsable(work.source.key);
    if (work.workgroups.some((n) => n === 0)) return;
    const pipeline = await this.wait(this.pipelines.get(work.source), work.source.key);
    this.assertUsable(work.source.key);
    let offset: number | null = null;
    if (work.params) {
      offset = this.params.take(work.params);
      if (offset === null) {
        // Every slot is in flight: submit what waits, and let the oldest batches complete.
        this.flush();
        await this.wait(this.gpu.queue.onSubmittedWorkDone(), work.source.key);
        offset = this.params.take(work.params);
        if (offset === null) throw new ParallelError('BACKEND', `${this.name}: kernel parameters overflow`);
      }
    }
    const batch = this.openBatch();
    if (offset !== null) batch.tookParam(offset);
    const writable = this.pipelines.writableBindings(work.source.key);
    const first = work.params ? 1 : 0;
    for (const [i, buffer] of work.buffers.entries()) batch.touch(buffer, writable.has(first + i));
    const bindGroup = this.bindGroups.get(
      work.source.key,
      this.pipelines.bindGroupLayout(work.source.key),
      work.params ? { buffer: this.params.buffer, offset: 0, size: PARAM_SLOT_BYTES } : null,
      work.buffers,
    );
    const timed = this.profiling && this.profiler !== null;
    const pass = batch.encoder.beginComputePass({
      label: work.source.key,
      ...(timed ? { timestampWrites: this.profiler!.nextPass(work.source.key, this.tag) } : {}),
    });
    pass.setPipeline(pipeline);
    if (offset !== null) pass.setBindGroup(0, bindGroup, [offset]);
    else pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = work.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    batch.passes++;
    if (this.profiling && !timed) batch.untimed.push({ label: work.source.key, tag: this.tag });
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

  private openBatch(): CommandBatch {
    this.assertUsable('dispatch');
    this.batch ??= new CommandBatch(this.gpu);
    return this.batch;
  }

  /** The batch's parameter slots into the ring's buffer (one or two writes: the run may wrap). */
  private writeParams(batch: CommandBatch, before: GPUCommandBuffer[]): void {
    if (batch.firstParam === null) return;
    const total = this.params.data.length;
    const bytes = batch.paramSlots * PARAM_SLOT_BYTES;
    const head = Math.min(bytes, total - batch.firstParam);
    this.writeParamRange(batch.firstParam, head, before, batch);
    if (head < bytes) this.writeParamRange(0, bytes - head, before, batch);
  }

  /**
   * Other batches in flight read the ring, so Dawn takes the write through its upload ring (a copy on
   * the queue, in order before this batch); where the ring model has no room, a staging copy ahead of the
   * batch does the same.
   */
  private writeParamRange(at: number, bytes: number, before: GPUCommandBuffer[], batch: CommandBatch): void {
    const data = this.params.data;
    if (this.writesDirectly(this.params.buffer) || this.uploadRing.tryAllocate(bytes)) {
      this.gpu.queue.writeBuffer(this.params.buffer, at, data, at, bytes);
      return;
    }
    const staging = this.gpu.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(data.subarray(at, at + bytes));
    staging.unmap();
    const encoder = this.gpu.createCommandEncoder({ label: 'kernel params' });
    encoder.copyBufferToBuffer(staging, 0, this.params.buffer, at, bytes);
    before.push(encoder.finish());
    batch.retired.push(staging);
  }

  /** Bytes of Dawn's upload ring taken by writes the queue has not finished (skipped tails included). */
  get uploadRingBytes(): number {
    return this.uploadRing.usedBytes;
  }

  /**
   * Submits to the queue, after the pending batch; every submit of this device's work goes through here,
   * so that the writeBuffer copies it carries are counted down when it completes, and the buffers it `uses`
   * are known to be in use until then. Returns the submit's serial.
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
    const serial = this.uses.submit(touched);
    if (batch) this.afterBatch(batch, hostNs);
    const ring = this.uploadRing.seal();
    if (ring === null && !batch) return serial;
    const done = () => {
      if (ring !== null) this.uploadRing.release(ring);
      this.uses.completedThrough(serial);
      if (batch) this.params.release(batch.paramSlots);
    };
    this.gpu.queue.onSubmittedWorkDone().then(done, () => {
      if (ring !== null) this.uploadRing.release(ring);
    });
    return serial;
  }

  /** A submitted batch: its passes' submit time for the profiler, and the buffers freed while it was open. */
  private afterBatch(batch: CommandBatch, hostNs: number): void {
    if (this.profiler && this.profiling) this.profiler.submitted(hostNs);
    for (const { label, tag } of batch.untimed)
      this.hostSpans.push({ label, tag, startNs: hostNs, endNs: hostNs });
    for (const buffer of batch.retired) buffer.destroy();
  }

  /**
   * Submits the writes Dawn still holds in its upload ring, if any: they start now, and their ring space
   * comes back once done (a device that only receives writes has no other submit to carry them).
   */
  flushWrites(): void {
    if (this.uploadRing.hasPending) this.submit([]);
  }

  async sync(): Promise<void> {
    this.assertUsable('sync');
    // Flushes writes Dawn still holds, so that they are part of what is waited for.
    const serial = this.submit([]);
    await this.wait(this.gpu.queue.onSubmittedWorkDone(), 'sync');
    this.uses.completedThrough(serial);
    this.throwIfFailed();
  }

  setProfileTag(tag: string): void {
    this.tag = tag;
  }

  enableProfiling(enabled: boolean): void {
    this.profiling = enabled;
  }

  async takeSpans(): Promise<KernelSpan[]> {
    this.flush();
    const host = this.hostSpans;
    this.hostSpans = [];
    if (!this.profiler) return host;
    return [...host, ...(await this.wait(this.profiler.take(), 'takeSpans'))];
  }

  /** Raises the first asynchronous validation or out-of-memory error the device reported. */
  throwIfFailed(): void {
    if (this.lost) throw this.lost;
    const error = this.firstError;
    if (error) {
      this.firstError = null;
      throw error;
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    // Waits still pending end now, as DESTROYED naming what they waited for (see `wait`).
    this.lossRace.lose(new ParallelError('DESTROYED', `${this.name} was destroyed`, { where: this.name }));
    // Pending kernels are dropped with the device; the buffers freed while they were pending go with it.
    this.batch = null;
    this.bindGroups.clear();
    this.readStaging.destroy();
    this.uploadStaging.destroy();
    this.tensorCache.trim();
    this.destroyed = true;
    this.profiler?.destroy();
    // Dawn keeps the error handler as a global handle: left set, it would keep this device and all it holds
    // alive until exit (bench/RESULTS.md, "Soak"), and the exit itself waits to tear each one down.
    this.gpu.onuncapturederror = null;
    this.gpu.destroy();
    releaseGpu(this.instance);
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /**
   * Waits for the device, failing with the library's error if the device goes away meanwhile: Dawn rejects
   * a map or a queue wait of a destroyed device with a bare AbortError, which says neither what nor where.
   */
  private async wait<T>(work: Promise<T>, op: string): Promise<T> {
    try {
      return await this.lossRace.race(work);
    } catch (error) {
      if (this.destroyed) {
        throw new ParallelError('DESTROYED', `${this.name} was destroyed during ${op}`, {
          where: `${this.name}: ${op}`,
          fix: 'destroy a device group only after the work on it has been awaited',
          cause: error,
        });
      }
      if (this.lost) {
        throw new ParallelError('DEVICE_LOST', `${this.lost.message} (during ${op})`, {
          where: `${this.name}: ${op}`,
          cause: error,
        });
      }
      throw error;
    }
  }

  private assertUsable(where: string): void {
    if (this.destroyed) throw new ParallelError('DESTROYED', `${this.name} was destroyed`, { where });
    if (this.lost) throw this.lost;
  }

  private own(tensor: Tensor, op: string): GpuTensor {
    tensor.assertLive(op);
    if (tensor.device !== this) {
      throw new ParallelError(
        'DEVICE_MISMATCH',
        `${op}: '${tensor.label}' lives on ${tensor.device.name}, not ${this.name}`,
        {
          where: op,
        },
      );
    }
    return tensor as GpuTensor;
  }
}
