import { ParallelError } from '../errors.js';
import { recvFrom, sendTo } from './point-to-point.js';
import type { ProcessGroup } from './process-group.js';

/**
 * A JSON value as one point-to-point message (its UTF-8 bytes, length first, padded to whole floats): what
 * a rank reports to another (its measurements), in the same ordered stream as its tensors.
 */
export async function sendJson(pg: ProcessGroup, dst: number, value: unknown): Promise<void> {
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  const words = new Uint8Array(4 + Math.ceil(bytes.length / 4) * 4);
  new DataView(words.buffer).setUint32(0, bytes.length, true);
  words.set(bytes, 4);
  await sendTo(pg, dst, new Float32Array(words.buffer));
}

export async function recvJson(pg: ProcessGroup, src: number): Promise<unknown> {
  const data = await recvFrom(pg, src);
  const words = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const length = words.byteLength >= 4 ? new DataView(words.buffer, words.byteOffset).getUint32(0, true) : -1;
  if (length < 0 || length > words.byteLength - 4) {
    throw new ParallelError('RANK_LOST', `rank ${src} sent a report that is not a JSON message`, {
      where: `recvJson from rank ${src}`,
    });
  }
  return JSON.parse(Buffer.from(words.subarray(4, 4 + length)).toString('utf8'));
}
