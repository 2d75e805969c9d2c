import type { ChannelOptions, MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/**
 * The two gRPC services of a world, defined statically (grpc-js's generic service definitions) rather than
 * from a .proto through a loader: the store's small requests travel as JSON, and tensor chunks as the raw
 * bytes of a frame (src/distributed/frames.ts) that gRPC carries unchanged, with no codec copying them
 * again. The wire underneath is gRPC's own HTTP/2 framing, flow control and keepalive.
 */

/** One store request: TCPStore's set/get/add/wait/check/delete, by which fields are present. */
export interface StoreRequest {
  readonly key?: string;
  readonly keys?: readonly string[];
  readonly value?: string;
  readonly delta?: number;
  /** How long a get or wait may block on the server before it answers DEADLINE_EXCEEDED. */
  readonly timeoutMs?: number;
}

export interface StoreReply {
  readonly value?: string;
  readonly count?: number;
  readonly present?: readonly boolean[];
}

const toJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const fromJson = (bytes: Buffer): never => JSON.parse(bytes.toString('utf8')) as never;
const same = (bytes: Buffer): Buffer => bytes;

function unary(name: string): MethodDefinition<StoreRequest, StoreReply> {
  return {
    path: `/webgpu_parallel.Store/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: toJson,
    requestDeserialize: fromJson,
    responseSerialize: toJson,
    responseDeserialize: fromJson,
  };
}

export const STORE_SERVICE = {
  set: unary('Set'),
  get: unary('Get'),
  add: unary('Add'),
  wait: unary('Wait'),
  check: unary('Check'),
  delete: unary('Delete'),
} satisfies ServiceDefinition;

export type StoreMethod = keyof typeof STORE_SERVICE;

/**
 * One bidirectional stream per ordered pair of ranks. Rank A opens it to rank B's server; B then writes
 * every frame meant for A on it, so the receiving side of bulk data is always the client, whose HTTP/2
 * receive window grpc-js lets us size (`grpc-node.flow_control_window`); a grpc-js server keeps Node's
 * 64 KiB default. A writes only its hello (and an abort) the other way.
 */
export const DATA_SERVICE = {
  exchange: {
    path: '/webgpu_parallel.Data/Exchange',
    requestStream: true,
    responseStream: true,
    requestSerialize: same,
    requestDeserialize: same,
    responseSerialize: same,
    responseDeserialize: same,
  } satisfies MethodDefinition<Buffer, Buffer>,
} satisfies ServiceDefinition;

/** The largest gRPC message a world sends: a frame holds at most one chunk (a few MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The receive window of a data stream. At 64 KiB (the HTTP/2 default) a loopback stream stalls once per
 * window; bench/RESULTS.md ("Distributed") has the figures that chose this.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Channel options of every client of a world: large messages, a wide window, and keepalive pings so a
 * peer whose host vanished (no FIN, no RST) is noticed within the world's timeout, not TCP's minutes.
 */
export function channelOptions(timeoutMs: number): ChannelOptions {
  const ping = Math.max(1000, Math.min(10_000, Math.floor(timeoutMs / 3)));
  return {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
    'grpc.keepalive_time_ms': ping,
    'grpc.keepalive_timeout_ms': ping,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.enable_retries': 0,
    // Ranks start in any order: a rank waiting for rank 0's store retries within a second, not grpc-js's
    // default backoff (1 s growing to 120 s), which could outlast a short --timeout between two attempts.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    // Ranks talk to addresses of their own world: an http_proxy in the environment must not capture them.
    'grpc.enable_http_proxy': 0,
  };
}

export function serverOptions(): ChannelOptions {
  return {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  };
}
