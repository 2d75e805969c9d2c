/**
 * A WebAssembly SIMD f32 sum, used by the host reduction because V8's scalar loop over three mapped
 * Float32Arrays runs far below memory bandwidth (bounds checks, no vectorisation), while v128 adds
 * keep it bandwidth-bound even after copying the inputs into wasm memory.
 *
 * The module, hand-assembled below (no toolchain at build time), is:
 *
 *   (module
 *     (memory (export "memory") 1)
 *     ;; dst[i] = a[i] + b[i] + c[i] over `bytes` bytes, a multiple of 16; dst may alias a.
 *     (func (export "sum3") (param $dst i32) (param $a i32) (param $b i32) (param $c i32) (param $bytes i32)
 *       (local $i i32)
 *       (block (loop
 *         (br_if 1 (i32.ge_u (local.get $i) (local.get $bytes)))
 *         (v128.store (i32.add (local.get $dst) (local.get $i))
 *           (f32x4.add
 *             (f32x4.add (v128.load (i32.add (local.get $a) (local.get $i)))
 *                        (v128.load (i32.add (local.get $b) (local.get $i))))
 *             (v128.load (i32.add (local.get $c) (local.get $i)))))
 *         (local.set $i (i32.add (local.get $i) (i32.const 16)))
 *         (br 0))))
 *     ;; dst[i] = a[i] + b[i]
 *     (func (export "sum2") (param $dst i32) (param $a i32) (param $b i32) (param $bytes i32)
 *       (local $i i32)
 *       ...the same loop with two loads...))
 */

const GET = 0x20;
const SET = 0x21;
const ADD_I32 = 0x6a;
const LOAD = [0xfd, 0x00, 0x04, 0x00]; // v128.load align=16 offset=0
const STORE = [0xfd, 0x0b, 0x04, 0x00]; // v128.store align=16 offset=0
const ADD_F32X4 = [0xfd, 0xe4, 0x01];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

const sized = (bytes: number[]): number[] => [...uleb(bytes.length), ...bytes];
const section = (id: number, bytes: number[]): number[] => [id, ...sized(bytes)];
const name = (s: string): number[] => sized([...s].map((ch) => ch.charCodeAt(0)));

/** The body of an `inputs`-way sum; params are dst, the inputs, then the byte count; local after them is i. */
function sumBody(inputs: number): number[] {
  const bytes = inputs + 1;
  const i = inputs + 2;
  const at = (param: number) => [GET, param, GET, i, ADD_I32];
  const loads: number[] = [...at(1), ...LOAD];
  for (let k = 2; k <= inputs; k++) loads.push(...at(k), ...LOAD, ...ADD_F32X4);
  return sized([
    0x01,
    0x01,
    0x7f, // one i32 local
    0x02,
    0x40,
    0x03,
    0x40, // block, loop
    GET,
    i,
    GET,
    bytes,
    0x4f,
    0x0d,
    0x01, // br_if 1 (i >= bytes)
    ...at(0),
    ...loads,
    ...STORE,
    GET,
    i,
    0x41,
    0x10,
    ADD_I32,
    SET,
    i, // i += 16
    0x0c,
    0x00,
    0x0b,
    0x0b,
    0x0b, // br 0, end loop, end block, end func
  ]);
}

const MODULE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  ...section(
    1,
    [0x02, 0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00],
  ),
  ...section(3, [0x02, 0x00, 0x01]),
  ...section(5, [0x01, 0x00, 0x01]),
  ...section(7, [
    0x03,
    ...name('memory'),
    0x02,
    0x00,
    ...name('sum3'),
    0x00,
    0x00,
    ...name('sum2'),
    0x00,
    0x01,
  ]),
  ...section(10, [0x02, ...sumBody(3), ...sumBody(2)]),
]);

/** The slice of the WebAssembly JS API used here: the project's libs (ES2023, node types) do not declare it. */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: object };
}

interface Exports {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  sum3(dst: number, a: number, b: number, c: number, bytes: number): void;
  sum2(dst: number, a: number, b: number, bytes: number): void;
}

const PAGE = 64 * 1024;

function instantiate(): Exports | null {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    if (!api?.validate(MODULE)) return null;
    return new api.Instance(new api.Module(MODULE)).exports as Exports;
  } catch {
    return null;
  }
}

/**
 * A SIMD sum with a wasm memory of its own, or null where WebAssembly SIMD is unavailable (the caller then
 * sums in JS). Each CollectiveContext makes one and keeps it, so its memory is grown once and reused.
 */
export function createWasmSum(): WasmSum | null {
  const exports = instantiate();
  return exports ? new WasmSum(exports) : null;
}

/**
 * Elements per block of the sum (128 KiB of f32). Each block's inputs are copied into wasm memory and summed
 * while they are still in the core's L2; copying a whole 2 MiB chunk first left the sum reading 6 MiB back
 * from memory. 16 MiB over 3 inputs on the 2-core dev VM: 2.7-3.2 ms whole-chunk, 2.3-2.6 ms in 128 KiB
 * blocks (32 KiB and 256 KiB blocks were slower); the AllReduce of 16 MiB over 3 lavapipe devices, A/B in
 * one process: 9.7 -> 9.2, 11.8 -> 9.1, 12.1 -> 10.4 ms (medians of three runs).
 */
export const SUM_BLOCK_ELEMENTS = 32 * 1024;

/** The kernel over its wasm memory; growing it detaches old views, so each call builds fresh ones. */
export class WasmSum {
  constructor(private readonly wasm: Exports) {}

  /**
   * The sum of the first `n` elements of every input, in a view on wasm memory that stays valid until the
   * next call (JS is single-threaded between awaits, so a caller writes it out before another sum runs).
   * Memory: the n-element result, then three block-sized input slots.
   */
  sum(inputs: readonly Float32Array[], n: number): Float32Array {
    const block = SUM_BLOCK_ELEMENTS;
    const need = (n + 3 * block) * 4;
    const memory = this.wasm.memory;
    if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
    const heap = new Float32Array(memory.buffer);
    if (inputs.length === 1) {
      heap.set(inputs[0]!.subarray(0, n));
      return heap.subarray(0, n);
    }
    const slots = [n, n + block, n + 2 * block];
    for (let from = 0; from < n; from += block) {
      const count = Math.min(block, n - from);
      this.sumBlock(heap, inputs, from, count, slots);
    }
    return heap.subarray(0, n);
  }

  /**
   * heap[from, from + count) = the sum of two or more inputs over that range: the first three in one pass,
   * then the rest folded in two at a time (the result may alias the sum's first operand).
   */
  private sumBlock(
    heap: Float32Array,
    inputs: readonly Float32Array[],
    from: number,
    count: number,
    slots: readonly number[],
  ): void {
    const vec = (count * 4) & ~15;
    const dst = from * 4;
    let k = 0;
    let into = false;
    while (k < inputs.length) {
      const take = Math.min(inputs.length - k, into ? 2 : 3);
      const operands = into ? [from] : [];
      for (let j = 0; j < take; j++) {
        const slot = slots[operands.length]!;
        heap.set(inputs[k + j]!.subarray(from, from + count), slot);
        operands.push(slot);
      }
      k += take;
      const [a, b, c] = operands.map((o) => o * 4);
      if (operands.length === 2) this.wasm.sum2(dst, a!, b!, vec);
      else this.wasm.sum3(dst, a!, b!, c!, vec);
      for (let i = vec / 4; i < count; i++) {
        let s = 0;
        for (const o of operands) s += heap[o + i]!;
        heap[from + i] = s;
      }
      into = true;
    }
  }
}
