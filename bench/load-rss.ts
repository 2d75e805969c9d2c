import { readFileSync } from 'node:fs';
import { LlamaModel } from '../src/models/llama/llama-model.js';
import { DeviceGroup } from '../src/runtime/device-group.js';

/**
 * Run in a fresh process by the model bench: `node load-rss.js DIR DEVICES`. Prints one JSON line with the
 * peak RSS growth of loading DIR tensor-parallel over DEVICES devices, beside the bytes the devices hold.
 */
const [dir, count] = process.argv.slice(2) as [string, string];
const group = await DeviceGroup.open({ count: Number(count), backend: 'webgpu' });
// VmHWM, not resourceUsage().maxRSS: Linux carries ru_maxrss over exec, so a child started by the bench
// would report the bench's own peak until it passed it.
const peakKiB = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
const before = peakKiB();
const model = await LlamaModel.load(group, dir, { plan: { tp: Number(count), pp: 1 } });
const growth = (peakKiB() - before) * 1024;
const shards = group.devices.map((d) => d.ledger.usedBytes);
const deviceBytes = shards.reduce((a, b) => a + b, 0);
const largest = Math.max(...shards);
model.dispose();
group.destroy();
process.stdout.write(
  `${JSON.stringify({
    devices: Number(count),
    rss_growth_mib: growth / 2 ** 20,
    device_mib: deviceBytes / 2 ** 20,
    largest_shard_mib: largest / 2 ** 20,
    host_overhead_mib: (growth - deviceBytes) / 2 ** 20,
    host_overhead_of_largest_shard: (growth - deviceBytes) / largest,
  })}\n`,
);
