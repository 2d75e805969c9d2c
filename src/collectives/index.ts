export { allGather } from './all-gather.js';
export { allReduce } from './all-reduce.js';
export {
  type AllToAllOptions,
  type AllToAllPlan,
  type AllToAllResult,
  allToAll,
  planAllToAll,
} from './all-to-all.js';
export { type Box, boxRuns, type Run, type Segment, shardBox } from './box.js';
export { broadcast, onOneDevice, scatter } from './broadcast.js';
export { CollectiveContext, type CollectiveOptions, type ReduceOn } from './context.js';
export { distributedFromShards, gatherToHost, shardFromHost } from './host-io.js';
export { HostTransport } from './host-transport.js';
export {
  DistributedTensor,
  describePlacement,
  localShape,
  Partial,
  type PartialPlacement,
  type Placement,
  Replicate,
  type ReplicatePlacement,
  Shard,
  type ShardPlacement,
  splitOffsets,
  splitSizes,
} from './layout.js';
export { planTransfer, type TransferPlan } from './plan.js';
export { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';
export { reduce } from './reduce.js';
export { reduceScatter } from './reduce-scatter.js';
export { sendRecv } from './send-recv.js';
export { addTraffic, hostBytes, NO_TRAFFIC, type Traffic } from './traffic.js';
export type { HostLease, Transport } from './transport.js';
export { WebGpuTransport } from './webgpu-transport.js';
