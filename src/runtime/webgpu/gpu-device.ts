import { ParallelError } from '../../errors.js';
import type { Kernels } from '../../kernels/kernels.js';
import type { AdapterSummary, Device, EmptyOptions, KernelSpan } from '../device.js';
import type { MemoryLedger } from '../memory-ledger.js';
import type { DType, HostArray, Shape, Tensor } from '../tensor.js';
import { BYTES_PER_ELEMENT, checkUpload, dtypeOf } from '../tensor.js';
import { DeviceAllocation } from './allocation.js';
import type { BufferCache } from './buffer-cache.js';
import type { BufferUse } from './buffer-uses.js';
import { DeviceHealth } from './device-health.js';
import { type Dispatch, Dispatcher } from './dispatcher.js';
import { GpuTensor } from './gpu-tensor.js';
import { HostVisibleWritePath } from './host-visible-write-path.js';
import { PipelineCache } from './pipeline-cache.js';
import { DeviceProfiling } from './profiling.js';
import { DeviceReads, type MappedRead } from './reads.js';
import type { StagingPool } from './staging-pool.js';
import { QueueWritePath, type WritePath } from './write-path.js';

export type { Dispatch } from './dispatcher.js';
export { DIRECT_WRITE_MAX_BYTES } from './host-visible-write-path.js';
export type { MappedRead } from './reads.js';

/**
 * How the implementation behind the device takes `queue.writeBuffer` (see WritePath). `queue`: it stages
 * every write itself (a GPU whose memory the host does not see, a browser). `host-visible`: Dawn on a CPU
 * adapter (lavapipe), which writes some buffers in place and overflows its upload ring into fresh
 * staging that page-faults (HostVisibleWritePath models both).
 */
export type WritePathKind = 'queue' | 'host-visible';

export interface GpuDeviceOptions {
  readonly id: number;
  /**
   * Whatever the adapter came from (Dawn's instance, `navigator.gpu`), held as long as the device lives:
   * a collected Dawn instance hangs the queue.
   */
  readonly instance?: unknown;
  readonly adapter: GPUAdapter;
  readonly summary: AdapterSummary;
  readonly budgetBytes?: number;
  readonly makeKernels: (device: GpuDevice) => Kernels;
  readonly dumpShader?: (key: string, code: string) => void;
  /** Default `queue`, the plain path: the opener that knows its implementation chooses another. */
  readonly writePath?: WritePathKind;
  /** Called once the device is destroyed (Dawn's opener hands its instance back for reuse). */
  readonly onDestroy?: () => void;
}

/**
 * One WebGPU device: a facade over its parts, each with one job. DeviceAllocation counts and reuses
 * memory; a WritePath takes host writes as the implementation behind the device wants them; DeviceReads
 * reads back; Dispatcher batches kernels, clears and copies and is the one way to the queue, so that
 * profiling (DeviceProfiling), error capture and device loss (DeviceHealth) are handled once for every
 * kernel. The device is made from any GPUAdapter: the openers (open-webgpu.ts for Dawn in Node, a
 * browser's from navigator.gpu) pass what only they know, the write path and what to do on destroy.
 */
export class GpuDevice implements Device {
  readonly id: number;
  readonly name: string;
  readonly backend = 'webgpu' as const;
  readonly adapter: AdapterSummary;
  readonly kernels: Kernels;
  readonly hasDeviceTimestamps: boolean;
  readonly gpu: GPUDevice;
  readonly pipelines: PipelineCache;
  private readonly memory: DeviceAllocation;
  private readonly writes: WritePath;
  private readonly reads: DeviceReads;
  private readonly queue: Dispatcher;
  private readonly profiling: DeviceProfiling;
  private readonly health: DeviceHealth;
  /** Held, never read: see GpuDeviceOptions.instance. */
  readonly instance: unknown;
  private readonly onDestroy: (() => void) | undefined;

  static async open(options: GpuDeviceOptions): Promise<GpuDevice> {
    const timestamps = options.adapter.features.has('timestamp-query');
    const features: GPUFeatureName[] = timestamps ? ['timestamp-query'] : [];
    if (options.adapter.features.has('subgroups')) features.push('subgroups' as GPUFeatureName);
    const limits = options.adapter.limits;
    const gpu = await options.adapter.requestDevice({
      label: `webgpu:${options.id}`,
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: limits.maxComputeWorkgroupSizeY,
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
    this.onDestroy = options.onDestroy;
    this.gpu = gpu;
    this.hasDeviceTimestamps = timestamps;
    this.health = new DeviceHealth(this.name, gpu);
    this.memory = new DeviceAllocation(this, this.name, options.budgetBytes);
    this.writes =
      options.writePath === 'host-visible' ? new HostVisibleWritePath(this) : new QueueWritePath(gpu.queue);
    this.profiling = new DeviceProfiling(gpu, this.name, timestamps);
    this.pipelines = new PipelineCache(gpu, this.name, options.dumpShader);
    this.queue = new Dispatcher(this.name, gpu, this.pipelines, this.health, this.writes, this.profiling);
    this.reads = new DeviceReads(this, this.health, this.writes);
    this.kernels = options.makeKernels(this);
  }

  get ledger(): MemoryLedger {
    return this.memory.ledger;
  }

  /** Pooled MAP_READ buffers for reads back to the host (collectives lease them too). */
  get readStaging(): StagingPool {
    return this.memory.readStaging;
  }

  /** Pooled MAP_WRITE buffers for large writes into tensors. */
  get uploadStaging(): StagingPool {
    return this.memory.uploadStaging;
  }

  /** Freed tensor buffers kept for the next tensor of the same size. */
  get tensorCache(): BufferCache {
    return this.memory.tensorCache;
  }

  /** Reserves ledger bytes for a tensor, handing back kept buffers first when over budget. */
  reserve(bytes: number, label: string): number {
    return this.memory.reserve(bytes, label);
  }

  releaseCached(): number {
    return this.memory.releaseCached();
  }

  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.health.assertUsable('createBuffer');
    return this.gpu.createBuffer(descriptor);
  }

  empty(shape: Shape, dtype: DType, label: string, options: EmptyOptions = {}): GpuTensor {
    this.health.assertUsable(label);
    return new GpuTensor(this, shape, dtype, label, options.overwritten ?? false);
  }

  upload(data: HostArray, shape: Shape, label: string): GpuTensor {
    checkUpload(data, shape, label, this.name);
    // Written in full below: a recycled buffer needs no clearing first.
    const tensor = this.empty(shape, dtypeOf(data), label, { overwritten: true });
    this.write(tensor, data);
    return tensor;
  }

  /** Writes host values into the tensor starting at an element offset. */
  write(tensor: Tensor, data: HostArray, elementOffset = 0): void {
    const gpuTensor = this.own(tensor, 'write');
    if (elementOffset + data.length > tensor.size) {
      throw new ParallelError(
        'SHAPE',
        `write of ${data.length} values at ${elementOffset} overflows '${tensor.label}'`,
        { where: this.name },
      );
    }
    if (data.byteLength % 4 !== 0 || data.length === 0) return;
    const buffer = gpuTensor.buffer;
    // The queue takes a write before any later submit: kernels still waiting in the batch must go first.
    if (this.queue.pendingUses(buffer)) this.queue.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.writes.write(buffer, elementOffset * BYTES_PER_ELEMENT[tensor.dtype], bytes, tensor.label);
  }

  /** Whether `queue.writeBuffer` into the buffer now goes straight into its memory (see WritePath). */
  writesDirectly(buffer: GPUBuffer): boolean {
    // Pending work on it is submitted before a write, and is then in use until it completes.
    return !this.queue.pendingUses(buffer) && this.writes.writesDirectly(buffer);
  }

  async read(tensor: Tensor, elementOffset = 0, count = tensor.size - elementOffset): Promise<HostArray> {
    const gpuTensor = this.own(tensor, 'read');
    if (elementOffset < 0 || count < 0 || elementOffset + count > tensor.size) {
      throw new ParallelError(
        'SHAPE',
        `read of ${count} values at ${elementOffset} is outside '${tensor.label}'`,
        { where: this.name },
      );
    }
    return this.reads.read(gpuTensor.buffer, tensor.dtype, elementOffset, count, tensor.label);
  }

  /** Element ranges of a tensor, packed in order, mapped without a copy until `release` (see DeviceReads). */
  readMapped(
    tensor: Tensor,
    ranges: readonly { readonly offset: number; readonly count: number }[],
    op = 'read',
  ): Promise<MappedRead> {
    const gpuTensor = this.own(tensor, op);
    return this.reads.readMapped(gpuTensor.buffer, tensor.dtype, ranges, op, tensor.label);
  }

  /** Encodes one compute pass into the pending batch (see Dispatcher.dispatch). */
  dispatch(work: Dispatch): Promise<void> {
    return this.queue.dispatch(work);
  }

  /** Clears a buffer in order with the batch's kernels (a reused tensor buffer, before its new owner). */
  clearBuffer(buffer: GPUBuffer): void {
    this.queue.clearBuffer(buffer);
  }

  /** Copies ranges between two buffers of this device, in order with the batch's kernels. */
  copyBuffer(
    from: GPUBuffer,
    to: GPUBuffer,
    ranges: readonly { readonly srcByte: number; readonly dstByte: number; readonly bytes: number }[],
  ): void {
    this.queue.copyBuffer(from, to, ranges);
  }

  /** Destroys a buffer once no work that uses it can still be submitted (see Dispatcher.retire). */
  retire(buffer: GPUBuffer): void {
    this.queue.retire(buffer);
  }

  /** Submits the pending batch, if any (the host is about to wait for its results, or a bound was reached). */
  flush(): void {
    this.queue.flush();
  }

  /** Bytes of Dawn's upload ring taken by writes the queue has not finished (0 where not modelled). */
  get uploadRingBytes(): number {
    return this.writes.stagedBytes;
  }

  /** Submits to the queue, after the pending batch; returns the submit's serial (see Dispatcher.submit). */
  submit(commands: GPUCommandBuffer[], uses: readonly BufferUse[] = []): number {
    return this.queue.submit(commands, uses);
  }

  /**
   * Submits the writes the implementation still holds, if any: they start now, and their staging comes
   * back once done (a device that only receives writes has no other submit to carry them).
   */
  flushWrites(): void {
    if (this.writes.hasPendingWrites) this.queue.submit([]);
  }

  async sync(): Promise<void> {
    this.health.assertUsable('sync');
    // Flushes writes still held, so that they are part of what is waited for.
    const serial = this.queue.submit([]);
    await this.health.wait(this.gpu.queue.onSubmittedWorkDone(), 'sync');
    this.writes.completedThrough(serial);
    this.health.throwIfFailed();
  }

  setProfileTag(tag: string): void {
    this.profiling.setTag(tag);
  }

  enableProfiling(enabled: boolean): void {
    this.profiling.enable(enabled);
  }

  async takeSpans(): Promise<KernelSpan[]> {
    this.queue.flush();
    return this.profiling.take((work, op) => this.health.wait(work, op));
  }

  /** Raises the first asynchronous validation or out-of-memory error the device reported. */
  throwIfFailed(): void {
    this.health.throwIfFailed();
  }

  destroy(): void {
    if (this.health.destroyed) return;
    // Waits still pending end now, as DESTROYED naming what they waited for.
    this.health.endWaits();
    // Pending kernels are dropped with the device; the buffers freed while they were pending go with it.
    this.queue.destroy();
    // Kept buffers are destroyed one by one while the device still counts as usable.
    this.memory.destroy();
    this.health.markDestroyed();
    this.profiling.destroy();
    this.health.detach();
    this.gpu.destroy();
    this.onDestroy?.();
  }

  get isDestroyed(): boolean {
    return this.health.destroyed;
  }

  private own(tensor: Tensor, op: string): GpuTensor {
    tensor.assertLive(op);
    if (tensor.device !== this) {
      throw new ParallelError(
        'DEVICE_MISMATCH',
        `${op}: '${tensor.label}' lives on ${tensor.device.name}, not ${this.name}`,
        { where: op },
      );
    }
    return tensor as GpuTensor;
  }
}
