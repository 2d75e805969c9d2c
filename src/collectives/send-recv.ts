import type { Device } from '../runtime/device.js';
import { DeviceGroup } from '../runtime/device-group.js';
import type { Tensor } from '../runtime/tensor.js';
import { onOneDevice } from './broadcast.js';
import type { CollectiveContext } from './context.js';
import { Replicate } from './layout.js';
import { redistribute } from './redistribute.js';
import type { Traffic } from './traffic.js';

export interface SendRecvOptions {
  readonly label?: string;
  /** A tensor on `to` to receive into (reused buffers, as nccl's); absent: a new one, or `tensor` itself. */
  readonly out?: Tensor;
}

/** Send/recv: a copy of `tensor` on device `to` (the same tensor when it is already there). */
export async function sendRecv(
  ctx: CollectiveContext,
  tensor: Tensor,
  to: Device,
  options: SendRecvOptions = {},
): Promise<{ output: Tensor; traffic: Traffic }> {
  const { output, traffic } = await redistribute(
    ctx,
    onOneDevice(tensor),
    DeviceGroup.of([to]),
    Replicate(),
    {
      label: options.label ?? 'sendRecv',
      out: options.out ? onOneDevice(options.out) : undefined,
    },
  );
  return { output: output.shards[0]!, traffic };
}
