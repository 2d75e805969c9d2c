import { recvFrom, sendTo } from './point-to-point.js';
import type { ProcessGroup } from './process-group.js';

/** One rank's clock against rank 0's, as NTP measures it. */
export interface ClockOffset {
  readonly rank: number;
  /** The rank's clock minus rank 0's: subtract it from the rank's times to put them on rank 0's clock. */
  readonly offsetNs: number;
  /** The round trip of the ping the offset comes from: the smallest of them. */
  readonly rttNs: number;
  /** What the offset can be off by: half that round trip (the trip's two legs may differ by all of it). */
  readonly residualNs: number;
}

const nowNs = () => performance.now() * 1e6;
const pack = (...values: number[]) => new Float32Array(new Float64Array(values).buffer);
const unpack = (data: Float32Array) => new Float64Array(new Float32Array(data).buffer);

/**
 * Measures every rank's clock offset to rank 0 by pings, as NTP does: rank 0 sends at t0, the rank
 * receives at t1 and answers at t2, rank 0 receives at t3; offset = ((t1 - t0) + (t2 - t3)) / 2, and of
 * `pings` tries the one with the smallest round trip (t3 - t0) - (t2 - t1) is kept, the one least held up
 * on either leg. Every rank calls it at the same point; rank 0 gets every rank's offset (its own 0), the
 * others an empty list.
 */
export async function alignClocks(pg: ProcessGroup, pings = 8): Promise<ClockOffset[]> {
  if (pg.rank !== 0) {
    for (let k = 0; k < pings; k++) {
      await recvFrom(pg, 0);
      const t1 = nowNs();
      await sendTo(pg, 0, pack(t1, nowNs()));
    }
    return [];
  }
  const offsets: ClockOffset[] = [{ rank: 0, offsetNs: 0, rttNs: 0, residualNs: 0 }];
  for (let rank = 1; rank < pg.size; rank++) {
    let best: ClockOffset | null = null;
    for (let k = 0; k < pings; k++) {
      const t0 = nowNs();
      await sendTo(pg, rank, pack(t0));
      const reply = unpack(await recvFrom(pg, rank));
      const t3 = nowNs();
      const [t1, t2] = [reply[0]!, reply[1]!];
      const rttNs = t3 - t0 - (t2 - t1);
      if (!best || rttNs < best.rttNs)
        best = { rank, offsetNs: (t1 - t0 + (t2 - t3)) / 2, rttNs, residualNs: rttNs / 2 };
    }
    offsets.push(best!);
  }
  return offsets;
}
