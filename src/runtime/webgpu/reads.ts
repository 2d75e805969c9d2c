import type { DType, HostArray } from '../tensor.js';
import { BYTES_PER_ELEMENT } from '../tensor.js';
import type { BufferUse } from './buffer-uses.js';
import type { DeviceHealth } from './device-health.js';
import type { StagingPool } from './staging-pool.js';
import type { WritePath } from './write-path.js';

/** Values read into a staging buffer: `data` views its mapped memory until `release`. */
export interface MappedRead {
  readonly data: HostArray;
  release(): void;
}

/** What reads need of their device. */
export interface ReadOwner {
  readonly gpu: GPUDevice;
  readonly readStaging: StagingPool;
  submit(commands: GPUCommandBuffer[], uses?: readonly BufferUse[]): number;
}

const emptyOf = (dtype: DType): HostArray => (dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0));

/**
 * Reads back to the host: element ranges of a buffer, packed in order, copied into one pooled MAP_READ
 * staging buffer (one encoder, one submit) and mapped. The data is handed out mapped, without a copy,
 * until `release`, which unmaps the buffer and gives it back to the pool.
 */
export class DeviceReads {
  constructor(
    private readonly owner: ReadOwner,
    private readonly health: DeviceHealth,
    private readonly writes: WritePath,
  ) {}

  async readMapped(
    buffer: GPUBuffer,
    dtype: DType,
    ranges: readonly { readonly offset: number; readonly count: number }[],
    op: string,
    label: string,
  ): Promise<MappedRead> {
    const size = BYTES_PER_ELEMENT[dtype];
    const bytes = ranges.reduce((n, r) => n + r.count, 0) * size;
    // Nothing to read (an empty tensor, a shard with no rows): no copy, no map, nothing to release.
    if (bytes === 0) return { data: emptyOf(dtype), release: () => {} };
    const pool = this.owner.readStaging;
    const staging = pool.acquire(bytes);
    try {
      const encoder = this.owner.gpu.createCommandEncoder({ label: `${op} ${label}` });
      let at = 0;
      for (const r of ranges) {
        if (r.count === 0) continue;
        encoder.copyBufferToBuffer(buffer, r.offset * size, staging, at, r.count * size);
        at += r.count * size;
      }
      const serial = this.owner.submit([encoder.finish()], [{ buffer, writes: false }]);
      await this.health.wait(staging.mapAsync(GPUMapMode.READ, 0, bytes), `${op} of '${label}'`);
      this.writes.completedThrough(serial);
      this.health.throwIfFailed();
    } catch (error) {
      // Also cancels a map still pending when the read failed, so the buffer goes back reusable.
      if (staging.mapState !== 'unmapped') staging.unmap();
      pool.release(staging);
      throw error;
    }
    const range = staging.getMappedRange(0, bytes);
    let released = false;
    return {
      data: dtype === 'u32' ? new Uint32Array(range) : new Float32Array(range),
      release: () => {
        if (released) return;
        released = true;
        staging.unmap();
        pool.release(staging);
      },
    };
  }

  /** A copy of the values, the staging buffer given back at once. */
  async read(
    buffer: GPUBuffer,
    dtype: DType,
    offset: number,
    count: number,
    label: string,
  ): Promise<HostArray> {
    if (count === 0) return emptyOf(dtype);
    const mapped = await this.readMapped(buffer, dtype, [{ offset, count }], 'read', label);
    try {
      return mapped.data.slice();
    } finally {
      mapped.release();
    }
  }
}
