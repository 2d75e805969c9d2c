/** What a collective moved, for measurement: bytes through the host, bytes copied inside devices. */
export interface Traffic {
  /** Device -> host (staging reads). */
  readonly bytesToHost: number;
  /** Host -> device (writes). */
  readonly bytesFromHost: number;
  /** Copies inside one device (a device in both groups). */
  readonly bytesLocal: number;
  /** Destination shards kept as they were: no bytes moved for them. */
  readonly keptShards: number;
}

export const NO_TRAFFIC: Traffic = { bytesToHost: 0, bytesFromHost: 0, bytesLocal: 0, keptShards: 0 };

/** bytesToHost + bytesFromHost: the bytes that crossed the host. */
export function hostBytes(t: Traffic): number {
  return t.bytesToHost + t.bytesFromHost;
}

export function addTraffic(a: Traffic, b: Traffic): Traffic {
  return {
    bytesToHost: a.bytesToHost + b.bytesToHost,
    bytesFromHost: a.bytesFromHost + b.bytesFromHost,
    bytesLocal: a.bytesLocal + b.bytesLocal,
    keptShards: a.keptShards + b.keptShards,
  };
}
