import { distributedFromShards, gatherToHost, shardFromHost } from '../collectives/host-io.js';
import { Partial, Shard } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { ProcessGroup } from './process-group.js';
import { allGatherAcrossRanks, allReduceAcrossRanks } from './rank-tensors.js';
import { allReduceRanks } from './ring.js';

export interface HierarchicalCheck {
  readonly op: 'all_reduce_devices' | 'all_gather_devices';
  readonly devices: number;
  /** Wrong values over every device of every rank. */
  readonly wrong: number;
}

/**
 * The collectives across ranks of several local devices each, in closed form: an AllReduce of partials
 * (rank r's device d holds (r+1)(d+1)(i%13+1)) and an AllGather along dim 1 of a tensor sharded over the
 * devices (rank r's element (a, b) is 100r + 10a + b). Every device of every rank checks its copy.
 */
export async function checkHierarchical(pg: ProcessGroup, group: DeviceGroup): Promise<HierarchicalCheck[]> {
  const n = pg.size;
  const r = pg.rank;
  const elements = 1000;
  const f = (i: number) => (i % 13) + 1;
  const partials = group.devices.map((_, d) =>
    Float32Array.from({ length: elements }, (_, i) => (r + 1) * (d + 1) * f(i)),
  );
  const input = distributedFromShards(group, Partial(), [elements], partials, 'partial');
  const summed = await allReduceAcrossRanks(pg, input);
  const scale = ((n * (n + 1)) / 2) * ((group.size * (group.size + 1)) / 2);
  let reduceWrong = 0;
  for (const shard of summed.shards) {
    const got = await shard.read();
    for (let i = 0; i < elements; i++) if (got[i] !== scale * f(i)) reduceWrong++;
  }
  input.free();
  summed.free();

  const rows = 2;
  const cols = 2 * group.size;
  const local = Float32Array.from(
    { length: rows * cols },
    (_, j) => 100 * r + 10 * Math.floor(j / cols) + (j % cols),
  );
  const sharded = shardFromHost(group, local, [rows, cols], Shard(1), 'block');
  const gathered = await allGatherAcrossRanks(pg, sharded, 1);
  let gatherWrong = 0;
  const width = cols * n;
  for (const shard of gathered.shards) {
    const got = await shard.read();
    for (let j = 0; j < rows * width; j++) {
      const a = Math.floor(j / width);
      const c = j % width;
      if (got[j] !== 100 * Math.floor(c / cols) + 10 * a + (c % cols)) gatherWrong++;
    }
  }
  if ((await gatherToHost(gathered)).length !== rows * width) gatherWrong++;
  sharded.free();
  gathered.free();
  const totals = await allReduceRanks(pg, new Float32Array([reduceWrong, gatherWrong]));
  return [
    { op: 'all_reduce_devices', devices: group.size, wrong: totals[0]! },
    { op: 'all_gather_devices', devices: group.size, wrong: totals[1]! },
  ];
}
