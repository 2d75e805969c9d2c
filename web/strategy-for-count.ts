import { preset } from '../src/models/preset-configs.js';

type Json = Record<string, unknown>;

const MIB = 1024 * 1024;

/**
 * A model strategy for a preset over `count` devices: two pipeline stages where there are two devices or more
 * (the first ceil(count / 2) devices tensor-parallel on the first half of the layers, the rest on the
 * others), one stage otherwise. Small batches keep a run in a page to seconds.
 */
export function presetStrategy(name: string, count: number): Json {
  const layers = preset(name).numLayers;
  const stages =
    count < 2 || layers < 2
      ? [{ name: 'all', kind: 'decoder', devices: range(0, count), layers: [0, layers - 1] }]
      : [
          {
            name: 'front',
            kind: 'decoder',
            devices: range(0, Math.ceil(count / 2)),
            layers: [0, Math.floor(layers / 2) - 1],
          },
          {
            name: 'back',
            kind: 'decoder',
            devices: range(Math.ceil(count / 2), count),
            layers: [Math.floor(layers / 2), layers - 1],
          },
        ];
  return {
    name: `${name} over ${count} devices`,
    hardware: { device_count: count, memory_per_device_bytes: 64 * MIB },
    model: { preset: name },
    batch: { batch_size: 4, seq_len: 16, microbatches: 2 },
    stages,
  };
}

/**
 * A chain strategy (the seed's form) moved onto `count` devices: every device id d becomes d mod count, so
 * seed-fits' [0,1] -> [1,2] -> [2] on 2 devices is [0,1] -> [1,0] -> [0]: the same stages, splits and
 * communications, with the stages sharing devices. A group that would name a device twice keeps it once.
 */
export function chainOnDevices(strategy: Json, count: number): Json {
  const from = (strategy.hardware as { device_count: number }).device_count;
  if (count === from) return strategy;
  const fold = (ids: readonly number[]) => [...new Set(ids.map((d) => d % count))];
  const stages = (strategy.stages as Json[]).map((stage) => {
    const out: Json = { ...stage };
    if (typeof stage.device === 'number') out.device = stage.device % count;
    for (const key of ['tensor_parallel', 'data_parallel']) {
      const part = stage[key] as { devices?: number[]; sizes?: number[] } | undefined;
      if (!part?.devices) continue;
      const { sizes, ...rest } = part;
      const devices = fold(part.devices);
      // Sizes per device no longer fit a group that lost a device; replicas follow the group.
      const keepSizes = sizes !== undefined && devices.length === part.devices.length;
      out[key] = {
        ...rest,
        devices,
        ...(keepSizes ? { sizes } : {}),
        ...(key === 'data_parallel' ? { replicas: devices.length } : {}),
      };
    }
    return out;
  });
  const communications = ((strategy.communications as Json[] | undefined) ?? []).map((c) => ({
    ...c,
    from: fold(c.from as number[]),
    to: fold(c.to as number[]),
  }));
  return {
    ...strategy,
    name: `${String(strategy.name ?? 'strategy')} (on ${count} devices)`,
    hardware: { ...(strategy.hardware as Json), device_count: count },
    stages,
    communications,
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}
