/**
 * Conversions between f32 and the two 16-bit float formats checkpoints store. Each works on one value: a
 * 16-bit pattern as an unsigned integer in [0, 65535] on one side, a JS number on the other. Narrowing
 * rounds to nearest, ties to even, as PyTorch's `.half()` and `.bfloat16()` do, so a file written here
 * holds the same bits a Python writer would.
 */

// One shared scratch word: reading and writing an f32's bits without allocating per value.
const word = new Float32Array(1);
const wordBits = new Uint32Array(word.buffer);

function bitsOf(value: number): number {
  word[0] = value;
  return wordBits[0]!;
}

function floatOf(bits: number): number {
  wordBits[0] = bits;
  return word[0]!;
}

function decodeF16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// A table of every half value makes bulk decoding one lookup per element; built on first use (256 KiB).
let f16Table: Float32Array | null = null;

function table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = decodeF16(bits);
  }
  return f16Table;
}

/** The value of IEEE half-precision bits (subnormals, ±0, ±inf and NaN included). */
export function f16ToF32(bits: number): number {
  return table()[bits & 0xffff]!;
}

/** Shifts `value` right by `shift` bits, rounding to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** The half-precision bits nearest to `value`: too large becomes ±inf, too small ±0 or a subnormal. */
export function f32ToF16(value: number): number {
  const bits = bitsOf(value);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  // Keep NaN a NaN (quiet bit set) whatever payload bits survive the narrowing.
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // In units of the smallest subnormal (2^-24) the value is the 24-bit significand >> (14 - e).
    const shift = 14 - halfExponent;
    if (shift > 24) return sign;
    // A carry out of the subnormal range lands on the smallest normal's encoding, which is right.
    return sign | roundShift(mantissa | 0x800000, shift);
  }
  // A carry out of the mantissa bumps the exponent, and past the largest finite value gives inf.
  return sign | roundShift((halfExponent << 23) | mantissa, 13);
}

/** The value of bfloat16 bits: the high half of an f32. */
export function bf16ToF32(bits: number): number {
  return floatOf((bits & 0xffff) << 16);
}

/** The bfloat16 bits nearest to `value`; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  const bits = bitsOf(value);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  // Plain-number addition: no 32-bit wrap, and the carry into the exponent rounds the largest values to inf.
  return Math.floor((bits + 0x7fff + ((bits >>> 16) & 1)) / 65536) & 0xffff;
}

/** Decodes `count` 16-bit values of `dtype` from `source` into `out` from `at`. */
export function decodeHalves(
  dtype: 'F16' | 'BF16',
  source: Uint16Array,
  out: Float32Array,
  at: number,
): void {
  if (dtype === 'F16') {
    const lookup = table();
    for (let i = 0; i < source.length; i++) out[at + i] = lookup[source[i]!]!;
    return;
  }
  const wide = new Uint32Array(out.buffer, out.byteOffset + at * 4, source.length);
  for (let i = 0; i < source.length; i++) wide[i] = source[i]! << 16;
}

/** Encodes f32 values as 16-bit `dtype` patterns. */
export function encodeHalves(dtype: 'F16' | 'BF16', data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  const encode = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < data.length; i++) out[i] = encode(data[i]!);
  return out;
}
