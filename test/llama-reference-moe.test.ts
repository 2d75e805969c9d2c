import { describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../src/models/llama-config.js';
import { preset, randomLlamaWeights } from '../src/models/presets.js';
import { makeRandom } from '../src/random.js';
import {
  llamaReferenceGreedy,
  llamaReferenceLogits,
  type MixtralMoeResult,
  mixtralCapacityRef,
  mixtralDroppedRef,
  mixtralMoeRef,
  mixtralRouterRef,
} from './support/llama-reference.js';

const f32 = (values: number[]) => Float32Array.from(values);

describe('mixtralRouterRef', () => {
  it('sends ties to the lower expert index', () => {
    const r = mixtralRouterRef(f32([5, 1, 5, 5, 3, 7, 7, 1]), 2, 4, 2);
    expect(r.indices).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect(r.weights).toEqual([
      [0.5, 0.5],
      [0.5, 0.5],
    ]);
    expect(mixtralRouterRef(f32([3, 7, 7, 1]), 1, 4, 1)).toEqual({ indices: [[1]], weights: [[1]] });
  });

  it('breaks a tie at the k-th place by the lower index', () => {
    const r = mixtralRouterRef(f32([2, 1, 1, 0]), 1, 4, 2);
    expect(r.indices).toEqual([[0, 1]]);
    // softmax then renormalised over {0, 1}: e² / (e² + e) and e / (e² + e).
    expect(r.weights[0]![0]).toBeCloseTo(Math.E / (Math.E + 1), 6);
    expect(r.weights[0]![1]).toBeCloseTo(1 / (Math.E + 1), 6);
  });

  it('picks the lowest indices, each weighted 1/k, when all logits are equal', () => {
    for (const [experts, k] of [
      [8, 2],
      [4, 4],
      [3, 3],
      [5, 1],
      [7, 3],
    ] as const) {
      const r = mixtralRouterRef(new Float32Array(2 * experts).fill(-0.75), 2, experts, k);
      const lowest = Array.from({ length: k }, (_, j) => j);
      expect(r.indices).toEqual([lowest, lowest]);
      for (const row of r.weights) for (const w of row) expect(w).toBeCloseTo(1 / k, 14);
    }
  });

  it('matches a case worked by hand', () => {
    // Logits ln 1..ln 4: the probabilities are 1/10..4/10, so the top two are experts 3 and 2 with
    // 4/7 and 3/7 after renormalising; the second token is the same row reversed.
    const logs = [1, 2, 3, 4].map(Math.log);
    const r = mixtralRouterRef(f32([...logs, ...[...logs].reverse()]), 2, 4, 2);
    expect(r.indices).toEqual([
      [3, 2],
      [0, 1],
    ]);
    for (const row of r.weights) {
      expect(row[0]).toBeCloseTo(4 / 7, 6);
      expect(row[1]).toBeCloseTo(3 / 7, 6);
    }
    // Top-3 of logits [0, ln 2, ln 2 + ln 3 = ln 6, -inf-ish]: weights 1/9, 2/9, 6/9 in order 2, 1, 0.
    const three = mixtralRouterRef(f32([0, Math.log(2), Math.log(6), -30]), 1, 4, 3);
    expect(three.indices).toEqual([[2, 1, 0]]);
    [6 / 9, 2 / 9, 1 / 9].forEach((w, j) => {
      expect(three.weights[0]![j]).toBeCloseTo(w, 6);
    });
  });

  it('refuses k outside 1..experts and logits of the wrong size', () => {
    expect(() => mixtralRouterRef(f32([1, 2]), 1, 2, 3)).toThrow(/top-3 of 2/);
    expect(() => mixtralRouterRef(f32([1, 2]), 1, 2, 0)).toThrow(/top-0/);
    expect(() => mixtralRouterRef(f32([1, 2, 3]), 1, 2, 1)).toThrow(/3 router logits/);
  });
});

describe('Mixtral capacity in the reference', () => {
  /** H = 2, I = 1: small enough to write each expert out by hand. */
  function handConfig(experts: number, k: number): LlamaConfig {
    return {
      ...preset('mixtral-tiny'),
      hiddenSize: 2,
      intermediateSize: 1,
      numExperts: experts,
      expertsPerToken: k,
    };
  }

  function handWeights(gate: number[], experts: number): Record<string, Float32Array> {
    const random = makeRandom(7);
    const w: Record<string, Float32Array> = { 'model.layers.0.block_sparse_moe.gate.weight': f32(gate) };
    for (let e = 0; e < experts; e++) {
      const p = `model.layers.0.block_sparse_moe.experts.${e}`;
      for (const n of ['w1', 'w3', 'w2']) w[`${p}.${n}.weight`] = f32([random() * 2 - 1, random() * 2 - 1]);
    }
    return w;
  }

  /** w2(silu(w1 x) · w3 x) for I = 1, in float64. */
  function expert(w: Record<string, Float32Array>, e: number, x: number[]): number[] {
    const p = `model.layers.0.block_sparse_moe.experts.${e}`;
    const dot = (m: Float32Array) => m[0]! * x[0]! + m[1]! * x[1]!;
    const g = dot(w[`${p}.w1.weight`]!);
    const a = (g / (1 + Math.exp(-g))) * dot(w[`${p}.w3.weight`]!);
    const w2 = w[`${p}.w2.weight`]!;
    return [w2[0]! * a, w2[1]! * a];
  }

  it('computes C = ceil(factor · T · k / E)', () => {
    expect(mixtralCapacityRef(1, 12, 4, 2)).toBe(6);
    expect(mixtralCapacityRef(1.25, 12, 4, 2)).toBe(8);
    expect(mixtralCapacityRef(0.1, 12, 4, 2)).toBe(1);
    expect(mixtralCapacityRef(2, 1, 8, 2)).toBe(1);
    expect(() => mixtralCapacityRef(0, 12, 4, 2)).toThrow(/capacity factor 0/);
    expect(() => mixtralCapacityRef(Number.NaN, 12, 4, 2)).toThrow(/capacity factor/);
  });

  it('drops in token order, leaving the dropped term out (top-1)', () => {
    // Logits (x0, -x0): expert 0 takes the tokens with x0 > 0, which are 0, 1, 3 and 4.
    const config = handConfig(2, 1);
    const w = handWeights([1, 0, -1, 0], 2);
    const rows = [
      [1, 0.5],
      [0.5, -1],
      [-1, 0.25],
      [2, 1],
      [0.75, 0.5],
    ];
    const x = f32(rows.flat());
    // C = ceil(1 · 5 · 1 / 2) = 3: token 4, expert 0's fourth, is dropped.
    const capped = mixtralMoeRef(config, w, 0, x, { capacity: { factor: 1 } });
    expect(capped.routing.indices).toEqual([[0], [0], [1], [0], [0]]);
    expect(capped.dropped).toEqual([1, 0]);
    expect(capped.kept).toEqual([[true], [true], [true], [true], [false]]);
    expect(mixtralDroppedRef(config, w, 0, x, { factor: 1 })).toEqual([1, 0]);
    rows.forEach((row, t) => {
      const want = t === 4 ? [0, 0] : expert(w, capped.routing.indices[t]![0]!, row);
      expect(capped.out[2 * t]).toBeCloseTo(want[0]!, 6);
      expect(capped.out[2 * t + 1]).toBeCloseTo(want[1]!, 6);
    });
    const free = mixtralMoeRef(config, w, 0, x);
    expect(free.dropped).toEqual([0, 0]);
    expect(free.out.subarray(0, 8)).toEqual(capped.out.subarray(0, 8));
    expect(free.out[8]).not.toBe(0);
  });

  it('drops over capacity without renormalising the kept weights (top-2)', () => {
    // Logits (x0, x1, -x0 - x1): token 0 → {0, 1}, token 1 → {1, 2}, token 2 → {0, 2} (ties in each).
    const config = handConfig(3, 2);
    const w = handWeights([1, 0, 0, 1, -1, -1], 3);
    const rows = [
      [1, 1],
      [-1, 0.5],
      [0.5, -1],
    ];
    // C = ceil(0.5 · 3 · 2 / 3) = 1: token 0 fills experts 0 and 1; token 1 keeps only expert 2, which
    // token 2 then finds full, as it finds expert 0.
    const r = mixtralMoeRef(config, w, 0, f32(rows.flat()), { capacity: { factor: 0.5 } });
    expect(r.routing.indices).toEqual([
      [0, 1],
      [1, 2],
      [0, 2],
    ]);
    expect(r.kept).toEqual([
      [true, true],
      [false, true],
      [false, false],
    ]);
    expect(r.dropped).toEqual([1, 1, 1]);
    const e0 = expert(w, 0, rows[0]!);
    const e1 = expert(w, 1, rows[0]!);
    const e2 = expert(w, 2, rows[1]!);
    const want = [
      [0.5 * e0[0]! + 0.5 * e1[0]!, 0.5 * e0[1]! + 0.5 * e1[1]!],
      [0.5 * e2[0]!, 0.5 * e2[1]!],
      [0, 0],
    ];
    want.flat().forEach((v, i) => {
      expect(r.out[i]).toBeCloseTo(v, 6);
    });
  });

  it('reports each layer of a forward pass, with drops of max(0, load - C) per expert', () => {
    const config = preset('mixtral-tiny');
    const weights = randomLlamaWeights(config, 11);
    const ids = Array.from({ length: 12 }, (_, i) => (i * 29 + 3) % config.vocabSize);
    const E = config.numExperts!;
    const k = config.expertsPerToken!;
    const seen: { layer: number; input: Float32Array; moe: MixtralMoeResult }[] = [];
    const capped = llamaReferenceLogits(config, weights, ids, {
      capacity: { factor: 1 },
      onMoe: (layer, input, moe) => seen.push({ layer, input, moe }),
    });
    expect(seen.map((s) => s.layer)).toEqual([0, 1]);
    const C = mixtralCapacityRef(1, ids.length, E, k);
    let total = 0;
    for (const { layer, input, moe } of seen) {
      const load = new Array<number>(E).fill(0);
      for (const chosen of moe.routing.indices) for (const e of chosen) load[e]!++;
      expect(moe.dropped).toEqual(load.map((n) => Math.max(0, n - C)));
      expect(mixtralDroppedRef(config, weights, layer, input, { factor: 1 })).toEqual(moe.dropped);
      total += moe.dropped.reduce((a, b) => a + b, 0);
    }
    // Random routing is not balanced, so factor 1 drops something here, and that changes the logits.
    expect(total).toBeGreaterThan(0);
    const free = llamaReferenceLogits(config, weights, ids);
    expect(capped).not.toEqual(free);
    // A capacity of every assignment (factor E / k) drops nothing: the same logits as none.
    const roomy = llamaReferenceLogits(config, weights, ids, { capacity: { factor: E / k } });
    expect(roomy).toEqual(free);
  });
});

describe('the reference Mixtral against the reference Llama', () => {
  it('gives the dense logits and ids when every expert holds the dense MLP', () => {
    const moeConfig = preset('mixtral-tiny');
    const { numExperts, expertsPerToken, ...dense } = moeConfig;
    const denseConfig: LlamaConfig = dense;
    const denseWeights = randomLlamaWeights(denseConfig, 21);
    // The random gates (and the rest, replaced below) of a Mixtral checkpoint.
    const moeWeights = randomLlamaWeights(moeConfig, 22);
    for (const [name, value] of Object.entries(denseWeights)) {
      if (!name.includes('.mlp.')) moeWeights[name] = value;
    }
    for (let l = 0; l < moeConfig.numLayers; l++) {
      const p = `model.layers.${l}`;
      for (let e = 0; e < numExperts!; e++) {
        const x = `${p}.block_sparse_moe.experts.${e}`;
        moeWeights[`${x}.w1.weight`] = denseWeights[`${p}.mlp.gate_proj.weight`]!;
        moeWeights[`${x}.w3.weight`] = denseWeights[`${p}.mlp.up_proj.weight`]!;
        moeWeights[`${x}.w2.weight`] = denseWeights[`${p}.mlp.down_proj.weight`]!;
      }
    }
    expect(expertsPerToken).toBeLessThan(numExperts!);
    const ids = Array.from({ length: 10 }, (_, i) => (i * 41 + 7) % moeConfig.vocabSize);
    const want = llamaReferenceLogits(denseConfig, denseWeights, ids);
    const routed: number[][] = [];
    const got = llamaReferenceLogits(moeConfig, moeWeights, ids, {
      onMoe: (_, __, moe) => routed.push(...moe.routing.indices),
    });
    // The gates really route: tokens do not all go to the same experts.
    expect(new Set(routed.map((r) => [...r].sort().join())).size).toBeGreaterThan(1);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    // Σ weights = 1 in float64, so only float32 rounding of the sum of k equal terms differs.
    expect(worst / scale).toBeLessThan(1e-6);
    expect(llamaReferenceGreedy(moeConfig, moeWeights, ids.slice(0, 4), 4)).toEqual(
      llamaReferenceGreedy(denseConfig, denseWeights, ids.slice(0, 4), 4),
    );
  });
});
