export { allToAllRanks } from './all-to-all-ranks.js';
export { broadcastRanks, reduceRanks } from './chain.js';
export { alignClocks, type ClockOffset } from './clock-sync.js';
export {
  busFactor,
  COMM_OPS,
  type CommOp,
  type CommRecord,
  type CommTestOptions,
  runCommTest,
} from './comm-test.js';
export type { TlsFiles } from './credentials.js';
export { type LaunchOptions, type LaunchResult, launch } from './launcher.js';
export { recvFrom, sendTo } from './point-to-point.js';
export { DEFAULT_CHUNK_BYTES, ProcessGroup } from './process-group.js';
export { RankError } from './rank-error.js';
export { allGatherAcrossRanks, allReduceAcrossRanks } from './rank-tensors.js';
export { rawSocketRing } from './raw-socket-probe.js';
export { type RankLayout, type RankMove, redistributeAcrossRanks } from './redistribute-ranks.js';
export { initProcessGroup } from './rendezvous.js';
export { allGatherRanks, allReduceRanks, barrierRanks, reduceScatterRanks } from './ring.js';
export { StoreClient } from './store-client.js';
export { StoreServer } from './store-server.js';
export { generateToken, TOKEN_ENV } from './token.js';
export {
  DEFAULT_TIMEOUT_MS,
  isRankProcess,
  WORLD_ENV,
  type WorldOptions,
  worldFromEnv,
} from './world-options.js';
