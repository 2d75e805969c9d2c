import type { Kernels } from '../kernels/kernels.js';
import type { AdapterSummary, BackendName, Device, EmptyOptions, KernelSpan } from './device.js';
import { MemoryLedger } from './memory-ledger.js';
import {
  checkShape,
  checkUpload,
  type DType,
  dtypeOf,
  elementCount,
  type HostArray,
  type Shape,
  Tensor,
} from './tensor.js';

/** A tensor whose storage is a host array: the CPU reference's and gpu.js's. */
export class HostTensor extends Tensor {
  readonly device: HostDevice;
  readonly data: HostArray;
  private readonly handle: number | null;
  private readonly base: HostTensor | undefined;

  /** With `base`, a view of its data (see Tensor.reshape): no bytes of its own in the ledger. */
  constructor(device: HostDevice, data: HostArray, shape: Shape, label: string, base?: HostTensor) {
    super(shape, dtypeOf(data), label);
    this.device = device;
    this.data = data;
    this.base = base;
    this.handle = base ? null : device.ledger.reserve(data.byteLength, label);
  }

  protected override get viewed(): Tensor | undefined {
    return this.base;
  }

  protected release(): void {
    if (this.handle !== null) this.device.ledger.release(this.handle);
  }

  protected viewAs(shape: Shape, label: string): HostTensor {
    return new HostTensor(this.device, this.data, shape, label, this.base ?? this);
  }
}

/** The shared half of every device whose memory is the host's: upload copies, read copies back. */
export abstract class HostDevice implements Device {
  readonly id: number;
  readonly name: string;
  abstract readonly backend: BackendName;
  abstract readonly adapter: AdapterSummary;
  abstract readonly kernels: Kernels;
  readonly ledger: MemoryLedger;
  readonly hasDeviceTimestamps = false;
  private profiling = false;
  private tag = '';
  private spans: KernelSpan[] = [];

  protected constructor(id: number, name: string, budgetBytes?: number) {
    this.id = id;
    this.name = name;
    this.ledger = new MemoryLedger(name, budgetBytes);
  }

  upload(data: HostArray, shape: Shape, label: string): HostTensor {
    checkUpload(data, shape, label, this.name);
    const copy = data instanceof Uint32Array ? new Uint32Array(data) : new Float32Array(data);
    return new HostTensor(this, copy, shape, label);
  }

  /** Wraps an array this device now owns, without copying. */
  adopt(data: HostArray, shape: Shape, label: string): HostTensor {
    return new HostTensor(this, data, shape, label);
  }

  /** Always fresh zeros: host arrays are not reused, so `overwritten` changes nothing. */
  empty(shape: Shape, dtype: DType, label: string, _options?: EmptyOptions): HostTensor {
    checkShape(shape, label);
    const n = elementCount(shape);
    return new HostTensor(this, dtype === 'u32' ? new Uint32Array(n) : new Float32Array(n), shape, label);
  }

  async read(tensor: Tensor): Promise<HostArray> {
    tensor.assertLive('read');
    const data = (tensor as HostTensor).data;
    return data instanceof Uint32Array ? new Uint32Array(data) : new Float32Array(data);
  }

  async sync(): Promise<void> {}

  setProfileTag(tag: string): void {
    this.tag = tag;
  }

  enableProfiling(enabled: boolean): void {
    this.profiling = enabled;
  }

  async takeSpans(): Promise<KernelSpan[]> {
    const spans = this.spans;
    this.spans = [];
    return spans;
  }

  /** Runs one kernel body and, when profiling, records its host-clock span. */
  async timed<T>(label: string, body: () => T | Promise<T>): Promise<T> {
    if (!this.profiling) return body();
    const startNs = performance.now() * 1e6;
    const result = await body();
    this.spans.push({ label, tag: this.tag, startNs, endNs: performance.now() * 1e6 });
    return result;
  }

  /** Host arrays are the garbage collector's to reclaim: nothing is kept for reuse. */
  releaseCached(): number {
    return 0;
  }

  destroy(): void {}
}
