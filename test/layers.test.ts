import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CollectiveContext,
  gatherToHost,
  Replicate,
  Shard,
  shardFromHost,
} from '../src/collectives/index.js';
import { embeddingRef, matmulRef } from '../src/kernels/reference/reference-ops.js';
import {
  ColumnParallelEmbedding,
  ColumnParallelLinear,
  RowParallelLinear,
  VocabParallelEmbedding,
} from '../src/parallel/index.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { expectClose, matmulMagnitude, matmulTolerance, randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();

// [devices, sizes per device or undefined for even]: 1, 2 and 3 devices, even and uneven.
const SPLITS: [number[], number[] | undefined][] = [
  [[0], undefined],
  [[0, 1], undefined],
  [
    [1, 2],
    [7, 17],
  ],
  [[0, 1, 2], undefined],
  [
    [2, 0, 1],
    [3, 12, 9],
  ],
];
const M = 5;
const IN = 24;
const OUT = 24;

describe.skipIf(!available)(`parallel layers on ${TEST_BACKEND}`, () => {
  let all: DeviceGroup;
  let ctx: CollectiveContext;
  const x = randomArray(M * IN, 1);
  const w = randomArray(IN * OUT, 2);
  const bias = randomArray(OUT, 3);
  const want = matmulRef(x, w, M, OUT, IN, bias);
  const scale = matmulMagnitude(x, w, M, OUT, IN).map((s, i) => s + Math.abs(bias[i % OUT]!));
  beforeAll(async () => {
    all = await openTestGroup(3);
    ctx = new CollectiveContext();
  });
  afterAll(() => {
    ctx?.destroy();
    all?.destroy();
  });

  /** The full weight and bias every linear layer of these tests is built from. */
  const linear = (group: DeviceGroup) => ({ group, weight: w, bias, inFeatures: IN, outFeatures: OUT });

  it.each(SPLITS)('ColumnParallelLinear over %j sizes %j (sharded and gathered)', async (ids, sizes) => {
    const group = all.select(ids);
    for (const gatherOutput of [false, true]) {
      const layer = new ColumnParallelLinear(ctx, { ...linear(group), sizes, gatherOutput });
      const input = shardFromHost(group, x, [M, IN], Replicate());
      const { output } = await layer.forward(input);
      expect(output.placement.kind).toBe(gatherOutput ? 'replicate' : 'shard');
      if (gatherOutput)
        for (const s of output.shards) expectClose(await s.read(), want, matmulTolerance(IN), scale);
      else expectClose(await gatherToHost(output), want, matmulTolerance(IN), scale);
      for (const t of [input, output, layer]) t.free();
    }
  });

  it.each(SPLITS)(
    'RowParallelLinear over %j sizes %j (parallel or scattered input, all-reduce or reduce)',
    async (ids, sizes) => {
      const group = all.select(ids);
      const root = all.devices[2]!;
      for (const inputIsParallel of [true, false]) {
        for (const reduceTo of [undefined, root]) {
          const layer = new RowParallelLinear(ctx, { ...linear(group), sizes, inputIsParallel, reduceTo });
          const input = inputIsParallel
            ? shardFromHost(group, x, [M, IN], Shard(1, layer.rowSizes))
            : shardFromHost(all.select([0]), x, [M, IN], Replicate());
          const { output } = await layer.forward(input);
          expect(output.group.size).toBe(reduceTo ? 1 : group.size);
          for (const s of output.shards) expectClose(await s.read(), want, matmulTolerance(IN), scale);
          for (const t of [input, output, layer]) t.free();
        }
      }
    },
  );

  it.each(SPLITS)('Column- and VocabParallelEmbedding over %j sizes %j', async (ids, sizes) => {
    const group = all.select(ids);
    const vocab = 24;
    const hidden = 24;
    const table = randomArray(vocab * hidden, 4);
    const tokens = new Uint32Array([0, 23, 7, 8, 16, 3, 3, 12, 20]);
    const ref = embeddingRef(table, hidden, vocab, tokens);
    const idsDt = shardFromHost(group, tokens, [tokens.length], Replicate(), 'ids');
    const column = new ColumnParallelEmbedding(ctx, {
      group,
      table,
      vocab,
      hidden,
      sizes,
      gatherOutput: true,
    });
    const c = await column.forward(idsDt);
    for (const s of c.output.shards) expect(await s.read()).toEqual(ref);
    const vocabLayer = new VocabParallelEmbedding(ctx, { group, table, vocab, hidden, sizes });
    const v = await vocabLayer.forward(idsDt);
    for (const s of v.output.shards) expect(await s.read()).toEqual(ref);
    for (const t of [idsDt, c.output, v.output, column, vocabLayer]) t.free();
  });

  it('raises SPLIT, GROUP and SHAPE errors', () => {
    const group = all.select([0, 1]);
    const odd = { group, weight: randomArray(5 * 3, 1), inFeatures: 5, outFeatures: 3 };
    expect(() => new ColumnParallelLinear(ctx, odd)).toThrow(expect.objectContaining({ code: 'SPLIT' }));
    expect(() => new RowParallelLinear(ctx, odd)).toThrow(expect.objectContaining({ code: 'SPLIT' }));
    expect(() => new ColumnParallelLinear(ctx, { ...odd, weight: randomArray(14, 1), label: 'fc' })).toThrow(
      expect.objectContaining({ code: 'SHAPE', message: "'fc.weight': 14 values do not fill shape [5, 3]" }),
    );
    expect(
      () => new VocabParallelEmbedding(ctx, { group, table: randomArray(15, 1), vocab: 5, hidden: 3 }),
    ).toThrow(expect.objectContaining({ code: 'SPLIT' }));
  });

  it('rejects inputs on another group or of the wrong shape', async () => {
    const layer = new ColumnParallelLinear(ctx, {
      group: all.select([0, 1]),
      weight: w,
      inFeatures: IN,
      outFeatures: OUT,
    });
    const elsewhere = shardFromHost(all.select([1, 2]), x, [M, IN], Replicate());
    await expect(layer.forward(elsewhere)).rejects.toMatchObject({ code: 'GROUP' });
    const wrong = shardFromHost(all.select([0, 1]), randomArray(M * 4, 1), [M, 4], Replicate());
    await expect(layer.forward(wrong)).rejects.toMatchObject({ code: 'SHAPE' });
    const row = new RowParallelLinear(ctx, {
      group: all.select([0, 1]),
      weight: w,
      inFeatures: IN,
      outFeatures: OUT,
      inputIsParallel: true,
    });
    const badSplit = shardFromHost(all.select([0, 1]), x, [M, IN], Shard(1, [4, 20]));
    await expect(row.forward(badSplit)).rejects.toMatchObject({ code: 'SHAPE' });
    for (const t of [layer, elsewhere, wrong, row, badSplit]) t.free();
  });
});
