/**
 * The frames a data stream carries, one per gRPC message: a header of five little-endian u32, then
 * the payload. The header names what the payload is, so a receiver files it without parsing anything else:
 *
 *   kind    HELLO (the opener's rank and world), DATA (a collective's chunk), P2P (a send/recv chunk),
 *           ABORT (a peer failed; why, as JSON), BYE (a peer closed its process group)
 *   seq     the collective's call number (DATA) or the pair's send number (P2P)
 *   step    the algorithm's step (a ring step, a chain hop)
 *   chunk   the chunk's index within the step
 *   chunks  how many chunks the step's message has (a receiver of uneven parts learns its length this way)
 *
 * then 3 bytes of padding: grpc-js hands a received message over as a view 5 bytes into its buffer (past
 * gRPC's own length prefix), so a 23-byte header puts the payload on a 4-byte boundary and the f32 chunk is
 * read in place instead of copied (bench/RESULTS.md, "Distributed").
 */
export const FRAME_KIND = { hello: 1, data: 2, p2p: 3, abort: 4, bye: 5 } as const;
export type FrameKind = (typeof FRAME_KIND)[keyof typeof FRAME_KIND];

export const HEADER_BYTES = 23;

export interface FrameHeader {
  readonly kind: FrameKind;
  readonly seq: number;
  readonly step: number;
  readonly chunk: number;
  readonly chunks: number;
}

/** A frame with a copy of the payload taken now: the caller may overwrite its array at once. */
export function encodeFrame(header: FrameHeader, payload?: ArrayBufferView): Buffer {
  const bytes = payload ? payload.byteLength : 0;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + bytes);
  frame.writeUInt32LE(header.kind, 0);
  frame.writeUInt32LE(header.seq >>> 0, 4);
  frame.writeUInt32LE(header.step, 8);
  frame.writeUInt32LE(header.chunk, 12);
  frame.writeUInt32LE(header.chunks, 16);
  frame.fill(0, 20, HEADER_BYTES);
  if (payload) frame.set(new Uint8Array(payload.buffer, payload.byteOffset, bytes), HEADER_BYTES);
  return frame;
}

export function encodeJsonFrame(kind: FrameKind, value: unknown): Buffer {
  return encodeFrame({ kind, seq: 0, step: 0, chunk: 0, chunks: 1 }, Buffer.from(JSON.stringify(value)));
}

export function decodeHeader(frame: Buffer): FrameHeader | null {
  if (frame.length < HEADER_BYTES) return null;
  return {
    kind: frame.readUInt32LE(0) as FrameKind,
    seq: frame.readUInt32LE(4),
    step: frame.readUInt32LE(8),
    chunk: frame.readUInt32LE(12),
    chunks: frame.readUInt32LE(16),
  };
}

export function framePayload(frame: Buffer): Uint8Array {
  return frame.subarray(HEADER_BYTES);
}

/** The payload as f32, viewed in place where it is 4-byte aligned (the usual case), copied where not. */
export function asFloat32(payload: Uint8Array): Float32Array {
  if (payload.byteOffset % 4 === 0) {
    return new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength >>> 2);
  }
  const copy = new Float32Array(payload.byteLength >>> 2);
  new Uint8Array(copy.buffer).set(payload.subarray(0, copy.byteLength));
  return copy;
}
