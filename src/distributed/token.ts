import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';

/** The gRPC metadata key every store call and data stream carries the world's shared token in. */
export const TOKEN_METADATA_KEY = 'x-webgpu-parallel-token';

/** The environment variable a launcher passes the token in (or a user sets, the same on every node). */
export const TOKEN_ENV = 'WEBGPU_PARALLEL_TOKEN';

/** 32 random bytes, hex: what a launcher generates for its children when the user gave no token. */
export function generateToken(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Whether a call's metadata carries the expected token. Compared in constant time so that a peer that
 * guesses cannot learn the token byte by byte from how long a refusal takes.
 */
export function hasToken(metadata: Metadata, token: string): boolean {
  const got = metadata.get(TOKEN_METADATA_KEY)[0];
  if (typeof got !== 'string') return false;
  const a = Buffer.from(got);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
