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

/** The kernel over its wasm memory; growing it detaches old views, so each call builds fresh ones. */
export class WasmSum {
  constructor(private readonly wasm: Exports) {}

  /**
   * The sum of the first `n` elements of every input, in a view on wasm memory that stays valid until the
   * next call (JS is single-threaded between awaits, so a caller writes it out before another sum runs).
   */
  sum(inputs: readonly Float32Array[], n: number): Float32Array {
    const slot = n * 4;
    const slots = Math.min(inputs.length, 3);
    const need = slot * slots;
    const memory = this.wasm.memory;
    if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
    const heap = new Float32Array(memory.buffer);
    for (let k = 0; k < slots; k++) heap.set(inputs[k]!.subarray(0, n), k * n);
    const vec = slot & ~15;
    if (inputs.length === 2) this.wasm.sum2(0, 0, slot, vec);
    else if (inputs.length >= 3) this.wasm.sum3(0, 0, slot, 2 * slot, vec);
    const out = heap.subarray(0, n);
    for (let i = vec / 4; i < n; i++) {
      let s = out[i]!;
      for (let k = 1; k < slots; k++) s += heap[k * n + i]!;
      out[i] = s;
    }
    // Beyond three inputs, fold the rest in pairs into slots 1 and 2 (rare: one host reduction per group).
    for (let k = 3; k < inputs.length; k += 2) {
      const pair = inputs.length - k >= 2;
      heap.set(inputs[k]!.subarray(0, n), n);
      if (pair) heap.set(inputs[k + 1]!.subarray(0, n), 2 * n);
      if (pair) this.wasm.sum3(0, 0, slot, 2 * slot, vec);
      else this.wasm.sum2(0, 0, slot, vec);
      for (let i = vec / 4; i < n; i++) out[i]! += heap[n + i]! + (pair ? heap[2 * n + i]! : 0);
    }
    return out;
  }
}
