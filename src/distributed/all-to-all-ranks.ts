import { ParallelError } from '../errors.js';
import { FRAME_KIND } from './frames.js';
import { receiveChunks, sendChunks } from './point-to-point.js';
import type { ProcessGroup } from './process-group.js';

/**
 * all_to_all across ranks: rank r passes one part per destination (`parts[j]` goes to rank j, any length,
 * zero too) and gets one part from each source (`result[i]` came from rank i). Every pair's stream carries
 * its part at once, so all links run together; lengths travel with the chunks, no count exchange first.
 */
export async function allToAllRanks(
  pg: ProcessGroup,
  parts: readonly Float32Array[],
): Promise<Float32Array[]> {
  if (parts.length !== pg.size) {
    throw new ParallelError('INVALID_ARGUMENT', `allToAll: ${parts.length} parts for a world of ${pg.size}`, {
      fix: 'pass one part per rank (an empty array for none)',
    });
  }
  const seq = pg.nextSeq();
  // Nearest peers first, in a rotation: rank r sends to r+1, r+2, ... so no rank is every sender's first.
  for (let d = 1; d < pg.size; d++) {
    const dst = (pg.rank + d) % pg.size;
    sendChunks(pg, dst, FRAME_KIND.data, seq, 0, parts[dst]!);
  }
  return Promise.all(
    parts.map((own, src) =>
      src === pg.rank
        ? Promise.resolve(own.slice())
        : receiveChunks(pg, src, FRAME_KIND.data, seq, 0, 'allToAll'),
    ),
  );
}
