import type { HostDevice, HostTensor } from '../runtime/host-device.js';
import type { HostArray, Tensor } from '../runtime/tensor.js';
import type { Run, Segment } from './box.js';
import type { HostLease, Transport } from './transport.js';

function dataOf(tensor: Tensor): HostArray {
  tensor.assertLive('collective');
  return (tensor as HostTensor).data;
}

/** Devices whose memory is the host's (CPU reference, gpu.js): arrays are copied directly. */
export class HostTransport implements Transport {
  constructor(readonly device: HostDevice) {}

  async read(tensor: Tensor, runs: readonly Run[]): Promise<HostLease> {
    const data = dataOf(tensor);
    // One run is handed out as a view: no copy at all for a whole shard.
    if (runs.length === 1) {
      const run = runs[0]!;
      return { data: data.subarray(run.offset, run.offset + run.count), release: () => {} };
    }
    const total = runs.reduce((n, r) => n + r.count, 0);
    const packed = data instanceof Uint32Array ? new Uint32Array(total) : new Float32Array(total);
    let at = 0;
    for (const run of runs) {
      packed.set(data.subarray(run.offset, run.offset + run.count), at);
      at += run.count;
    }
    return { data: packed, release: () => {} };
  }

  write(tensor: Tensor, data: HostArray, elementOffset: number): void {
    dataOf(tensor).set(data, elementOffset);
  }

  /** The tensor is host memory: a write is the copy itself. */
  writesDirectly(): boolean {
    return true;
  }

  /** A copy is one memcpy here, and later writes stay memcpys. */
  copyEndsDirectWrites(): boolean {
    return false;
  }

  copyWithin(src: Tensor, dst: Tensor, segments: readonly Segment[]): void {
    const from = dataOf(src);
    const to = dataOf(dst);
    for (const s of segments) to.set(from.subarray(s.srcOffset, s.srcOffset + s.count), s.dstOffset);
  }

  /** Writes land in host memory at once. */
  flush(): void {}

  destroy(): void {}
}
