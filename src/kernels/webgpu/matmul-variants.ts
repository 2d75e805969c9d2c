import type { MatmulDims } from '../shape-checks.js';

export type MatmulKind = 'register' | 'shared' | 'small_m';

/** What a variant needs to know about the device it may run on. */
export interface MatmulDeviceTraits {
  /** The subgroup size when the adapter has the `subgroups` feature and a fixed size, else null. */
  readonly fixedSubgroupSize: number | null;
  readonly isSoftware: boolean;
  readonly maxWorkgroupsPerDimension: number;
}

/**
 * One matmul kernel configuration. `name` lists every tile parameter; the pipeline key adds the parts
 * that depend on the call (vec4 B, activation, bias), so a key names everything the pipeline was built with.
 */
export interface MatmulVariant {
  readonly name: string;
  readonly kind: MatmulKind;
  readonly entryPoint: string;
  readonly template: Readonly<Record<string, number>>;
  readonly constants: Readonly<Record<string, number>>;
  /** Output rows × columns one workgroup covers. */
  readonly tile: { readonly rows: number; readonly cols: number };
  readonly supports: (dims: MatmulDims, traits: MatmulDeviceTraits) => boolean;
}

const off = { SUBGROUPS: 0, SHARED: 0, SMALL_M: 0 };

function register(sg: number, ra: number, tn4: number, wg: number): MatmulVariant {
  return {
    name: `register/sg${sg}-ra${ra}-tn${tn4 * 4}-wg${wg}`,
    kind: 'register',
    entryPoint: 'register_tiled',
    template: { ...off, SUBGROUPS: 1, SG: sg, RA: ra, TN4: tn4 },
    constants: { WORKGROUP_SIZE: wg },
    tile: { rows: sg * ra, cols: wg * tn4 * 4 },
    supports: (_, traits) => traits.fixedSubgroupSize === sg && wg % sg === 0,
  };
}

function shared(tm: number, tn: number, wx: number, wy: number, bk: number): MatmulVariant {
  return {
    name: `shared/tm${tm}-tn${tn}-wx${wx}-wy${wy}-bk${bk}`,
    kind: 'shared',
    entryPoint: 'shared_tiled',
    template: { ...off, SHARED: 1, TM: tm, TN: tn },
    constants: { WX: wx, WY: wy, BK: bk },
    tile: { rows: wy * tm, cols: wx * tn },
    supports: () => true,
  };
}

function smallM(tm: number, tn4: number, wg: number): MatmulVariant {
  return {
    name: `small_m/tm${tm}-tn${tn4 * 4}-wg${wg}`,
    kind: 'small_m',
    entryPoint: 'small_m',
    template: { ...off, SMALL_M: 1, TM: tm, TN4: tn4 },
    constants: { WORKGROUP_SIZE: wg },
    tile: { rows: tm, cols: wg * tn4 * 4 },
    supports: () => true,
  };
}

/** Every variant the autotuner tries and the tests run. */
export function matmulCatalog(): MatmulVariant[] {
  return [
    // Lavapipe: 8-lane subgroups (256-bit AVX2 over f32); Intel and AMD fix 16 or 32 or 64 lanes.
    register(8, 3, 2, 64),
    register(8, 1, 1, 64),
    register(16, 1, 1, 64),
    register(32, 1, 1, 64),
    shared(8, 4, 8, 8, 16),
    shared(4, 4, 16, 16, 16),
    smallM(1, 2, 8),
    smallM(4, 2, 8),
    smallM(8, 2, 8),
    smallM(4, 1, 64),
  ];
}

export function findVariant(catalog: readonly MatmulVariant[], name: string): MatmulVariant | undefined {
  return (
    catalog.find((v) => v.name === name) ??
    catalog.find((v) => v.name.startsWith(`${name}/`) || v.kind === name)
  );
}

/**
 * The pick without tuning, per kind of adapter: a few rows go to small_m; CPU Vulkan takes the register
 * tile its subgroup size allows; a GPU takes shared memory tiles.
 */
export function defaultVariant(
  dims: MatmulDims,
  traits: MatmulDeviceTraits,
  catalog: readonly MatmulVariant[],
): MatmulVariant {
  const usable = catalog.filter((v) => v.supports(dims, traits));
  const pick = (name: string) => usable.find((v) => v.name.startsWith(name));
  if (dims.m <= 4) return pick(`small_m/tm${dims.m <= 1 ? 1 : 4}`) ?? usable[0]!;
  if (traits.isSoftware) {
    const big = dims.m >= 24 && dims.n >= 256;
    const register = usable.filter((v) => v.kind === 'register');
    const chosen = big ? register[0] : register[register.length - 1];
    if (chosen) return chosen;
  }
  return pick('shared/tm8-tn4') ?? usable[0]!;
}

/**
 * Shapes that should share a tuned pick: each dimension rounded up to a power of two, M exact up to 8 where
 * the kinds change. (Power-of-four buckets put 512^3 and 1024^3 in one class, so one pick served both; on
 * lavapipe their best variants differ.)
 */
export function shapeClass(dims: MatmulDims): string {
  const bucket = (x: number) => (x <= 1 ? 1 : 2 ** Math.ceil(Math.log2(x)));
  const m = dims.m <= 8 ? dims.m : bucket(dims.m);
  return `m${m}-k${bucket(dims.k)}-n${bucket(dims.n)}`;
}
