// Bit-exact numeric primitives: half-even rounding, f16/bf16/fp8/fp4 codecs, sub-byte packing, ONNX int quantizers.
//
// Conventions used throughout this file:
//  - Inputs are JS numbers (float64). Every encoder rounds the float64 value *once*, directly to the target
//    format (round-to-nearest, ties-to-even unless stated otherwise). For float32-representable inputs this is
//    identical to the IEEE float32 -> target conversion; for general doubles it avoids double rounding.
//  - "code" / "bits" means the unsigned integer bit pattern of the target format (e.g. 0..255 for float8).
//  - The fp8 rules follow the ONNX Cast operator description (opset 19+, tables for `saturate` = 1 / 0), see
//    onnx/docs/Operators.md#Cast and /work/shared/SPEC.md §9.
//  - Nothing here allocates per element; bulk functions allocate at most their output (and a typed-array view).

import type { DType } from './dtype.js';

// ---------------------------------------------------------------------------------------------------------------
// Shared scratch state and exact powers of two
// ---------------------------------------------------------------------------------------------------------------

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const SCRATCH_F64 = new Float64Array(1);
const SCRATCH_F64_U32 = new Uint32Array(SCRATCH_F64.buffer);
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;
const SCRATCH_F32 = new Float32Array(1);
const SCRATCH_F32_U32 = new Uint32Array(SCRATCH_F32.buffer);

/** POW2[k + P2] === 2^k exactly, for k in [-P2, P2]. Built by repeated exact doubling/halving. */
const P2 = 200;
const POW2 = new Float64Array(2 * P2 + 1);
POW2[P2] = 1;
for (let k = 1; k <= P2; k++) {
  POW2[P2 + k] = POW2[P2 + k - 1]! * 2;
  POW2[P2 - k] = POW2[P2 - k + 1]! / 2;
}

const TWO_52 = 4503599627370496;

/** High 32 bits of the IEEE binary64 representation of x (sign | 11-bit exponent | top 20 mantissa bits). */
function f64Hi(x: number): number {
  SCRATCH_F64[0] = x;
  return SCRATCH_F64_U32[HI]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Rounding
// ---------------------------------------------------------------------------------------------------------------

/**
 * Round to the nearest integer, ties to even ("banker's rounding", numpy `rint`, IEEE roundTiesToEven).
 * This is the rounding of ONNX QuantizeLinear / Cast and of TensorRT / PyTorch. `Math.round` is NOT a substitute:
 * it rounds ties towards +Infinity (`Math.round(2.5) === 3`, `Math.round(-2.5) === -2`).
 *
 * Exact for every double: uses the fact that float64 addition itself rounds ties-to-even, so
 * `(|x| + 2^52) - 2^52` is |x| rounded to an integer. |x| >= 2^52 is already integral. NaN/±Infinity pass through;
 * the sign of zero results follows x (`roundHalfEven(-0.3) === -0`).
 */
export function roundHalfEven(x: number): number {
  const a = x < 0 ? -x : x;
  if (!(a < TWO_52)) return x; // already an integer, or NaN / ±Infinity
  const r = a + TWO_52 - TWO_52;
  return x < 0 ? -r : x === 0 ? x : r;
}

// ---------------------------------------------------------------------------------------------------------------
// Generic IEEE-style minifloat core
// ---------------------------------------------------------------------------------------------------------------
//
// A format with `m` mantissa bits and minimum normal exponent `emin` (= 1 - bias) stores |v| as the code
//   code = ((E - emin) << m) + n,   E = max(floor(log2 |v|), emin),   n = |v| / 2^(E - m)
// where n in [0, 2^m) for subnormals (E = emin) and n in [2^m, 2^(m+1)] otherwise; a rounding carry
// n = 2^(m+1) lands exactly on the next binade's code, so one formula covers subnormals, normals and carries.
// Codes above the format's largest finite code are overflow (the caller applies saturate/Inf/NaN rules).

/**
 * Round |x| (x finite; `hi` = f64Hi(x)) to the magnitude code of a format. The result may exceed the format's
 * largest finite code, which signals overflow (exponents above `emax` are clamped to emax + 1 so the result is
 * always > maxCode in that case).
 */
function roundMagnitude(x: number, hi: number, m: number, emin: number, emax: number): number {
  const a = x < 0 ? -x : x;
  let e = ((hi >>> 20) & 0x7ff) - 1023; // float64 subnormals/zero give -1023, clamped to emin below
  if (e < emin) e = emin;
  else if (e > emax) e = emax + 1;
  // a * 2^(m - e) is exact (power-of-two scaling well inside the float64 range).
  return ((e - emin) << m) + roundHalfEven(a * POW2[m - e + P2]!);
}

/** Value of a positive magnitude code of a minifloat with `m` mantissa bits and min normal exponent `emin`. */
function magnitudeValue(code: number, m: number, emin: number): number {
  const e = code >>> m;
  const f = code & ((1 << m) - 1);
  if (e === 0) return f * POW2[emin - m + P2]!;
  return ((1 << m) + f) * POW2[e - 1 + emin - m + P2]!;
}

// ---------------------------------------------------------------------------------------------------------------
// float16 (IEEE binary16: 1 sign, 5 exponent bits (bias 15), 10 mantissa bits)
// ---------------------------------------------------------------------------------------------------------------

/** Largest finite float16 value (0x7BFF). */
export const F16_MAX = 65504;

/**
 * Decode an IEEE float16 bit pattern (low 16 bits of `bits`) to a number. Exact (every float16 is a float32).
 * Subnormals, ±0, ±Infinity and NaN are handled.
 */
export function f16BitsToF32(bits: number): number {
  const e = (bits >>> 10) & 0x1f;
  const neg = (bits & 0x8000) !== 0;
  let v: number;
  if (e === 0x1f) v = (bits & 0x3ff) === 0 ? Infinity : NaN;
  else v = magnitudeValue(bits & 0x7fff, 10, -14);
  return neg ? -v : v;
}

/**
 * Encode a number as IEEE float16 bits with round-to-nearest-even. Overflow (|x| >= 65520) gives ±Infinity
 * (0x7C00 / 0xFC00), subnormals are produced exactly (gradual underflow), -0 keeps its sign,
 * NaN gives a quiet NaN (0x7E00, sign bit copied from the input's NaN).
 */
export function f32ToF16Bits(x: number): number {
  const hi = f64Hi(x);
  const s = (hi >>> 16) & 0x8000;
  if (((hi >>> 20) & 0x7ff) === 0x7ff) return x !== x ? 0x7e00 | s : 0x7c00 | s;
  const code = roundMagnitude(x, hi, 10, -14, 15);
  return (code > 0x7bff ? 0x7c00 : code) | s;
}

let F16_LUT: Float32Array | undefined;

/** Decode an array of float16 bit patterns (uses a lazily built 65536-entry table). */
export function decodeF16(u16: Uint16Array, out?: Float32Array): Float32Array {
  const n = u16.length;
  const res = checkOut(out, n, Float32Array);
  let lut = F16_LUT;
  if (lut === undefined) {
    lut = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) lut[i] = f16BitsToF32(i);
    F16_LUT = lut;
  }
  for (let i = 0; i < n; i++) res[i] = lut[u16[i]!]!;
  return res;
}

/** Encode numbers as float16 bit patterns (round-to-nearest-even, see {@link f32ToF16Bits}). */
export function encodeF16(f: ArrayLike<number>, out?: Uint16Array): Uint16Array {
  const n = f.length;
  const res = checkOut(out, n, Uint16Array);
  for (let i = 0; i < n; i++) res[i] = f32ToF16Bits(f[i]!);
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// bfloat16 (1 sign, 8 exponent bits (bias 127), 7 mantissa bits) — the top half of a float32
// ---------------------------------------------------------------------------------------------------------------

/** Decode a bfloat16 bit pattern (low 16 bits of `bits`): the float32 whose high half it is. Exact. */
export function bf16BitsToF32(bits: number): number {
  SCRATCH_F32_U32[0] = (bits & 0xffff) << 16;
  return SCRATCH_F32[0]!;
}

/**
 * Encode a number as bfloat16 bits with round-to-nearest-even (not truncation). Overflow gives ±Infinity
 * (0x7F80 / 0xFF80), subnormals are rounded exactly, NaN gives quiet NaN 0x7FC0 (sign copied).
 */
export function f32ToBf16Bits(x: number): number {
  const hi = f64Hi(x);
  const s = (hi >>> 16) & 0x8000;
  if (((hi >>> 20) & 0x7ff) === 0x7ff) return x !== x ? 0x7fc0 | s : 0x7f80 | s;
  const code = roundMagnitude(x, hi, 7, -126, 127);
  return (code > 0x7f7f ? 0x7f80 : code) | s;
}

/** Decode an array of bfloat16 bit patterns (writes float32 bit patterns directly). */
export function decodeBf16(u16: Uint16Array, out?: Float32Array): Float32Array {
  const n = u16.length;
  const res = checkOut(out, n, Float32Array);
  const bits = new Uint32Array(res.buffer, res.byteOffset, n);
  for (let i = 0; i < n; i++) bits[i] = u16[i]! << 16;
  return res;
}

/**
 * Encode numbers as bfloat16 bit patterns (round-to-nearest-even). A Float32Array input takes an integer-only fast
 * path on its float32 bits; the result is identical to {@link f32ToBf16Bits} element-wise.
 */
export function encodeBf16(f: ArrayLike<number>, out?: Uint16Array): Uint16Array {
  const n = f.length;
  const res = checkOut(out, n, Uint16Array);
  if (f instanceof Float32Array) {
    const b = new Uint32Array(f.buffer, f.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const u = b[i]!;
      if ((u & 0x7fffffff) > 0x7f800000) res[i] = ((u >>> 16) & 0x8000) | 0x7fc0; // NaN
      else res[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16; // RNE; carries into the exponent (→ Inf) correctly
    }
    return res;
  }
  for (let i = 0; i < n; i++) res[i] = f32ToBf16Bits(f[i]!);
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX float8 types
// ---------------------------------------------------------------------------------------------------------------
//
// | type            | bias | max finite      | NaN codes          | Inf        | -0   |
// |-----------------|------|-----------------|--------------------|------------|------|
// | FLOAT8E4M3FN    | 7    | 448   (0x7E)    | 0x7F, 0xFF         | none       | 0x80 |
// | FLOAT8E4M3FNUZ  | 8    | 240   (0x7F)    | 0x80 only          | none       | none |
// | FLOAT8E5M2      | 15   | 57344 (0x7B)    | 0x7D-0x7F, 0xFD-FF | 0x7C, 0xFC | 0x80 |
// | FLOAT8E5M2FNUZ  | 16   | 57344 (0x7F)    | 0x80 only          | none       | none |
// | FLOAT8E8M0      | 127  | 2^127 (0xFE)    | 0xFF               | none       | no sign bit; 0x00 = 2^-127 |
//
// Cast to E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ (ONNX Cast description, opset 19+), [x] = x rounded RNE to the mantissa width
// with an unbounded exponent:
//   saturate=1: ±Inf -> ±FLT_MAX (all four types); [x] beyond ±FLT_MAX -> ±FLT_MAX; NaN -> NaN; else RNE.
//   saturate=0: E4M3FN: ±Inf and out-of-range -> NaN (0x7F | sign); E5M2: -> ±Inf (0x7C | sign);
//               FNUZ types: -> NaN (0x80). NaN -> NaN.
//   -0 -> -0 (0x80) for E4M3FN/E5M2, -> +0 for the FNUZ types (which also map negative underflow to +0).
// NaN inputs encode as 0x7F | sign (E4M3FN, E5M2; same as onnx's reference float32_to_float8e*) or 0x80 (FNUZ).
// Note: ONNX's docs/technical/float8.md shows "Inf -> NaN" for the FNUZ types under saturate; the normative Cast
// operator table (and the onnx reference implementation) says ±FLT_MAX, which is what is implemented here.

/** qcc dtypes that are 8-bit floats. */
export type Fp8DType = Extract<DType, 'fp8e4m3' | 'fp8e4m3fnuz' | 'fp8e5m2' | 'fp8e5m2fnuz' | 'fp8e8m0'>;

/** Largest finite value of each float8 type. */
export const FP8_MAX: Readonly<Record<Fp8DType, number>> = {
  fp8e4m3: 448,
  fp8e4m3fnuz: 240,
  fp8e5m2: 57344,
  fp8e5m2fnuz: 57344,
  fp8e8m0: 2 ** 127,
};

/**
 * Shared fp8 encoder. `ovfCode` is the non-saturating overflow/Inf result (sign added unless `uz`),
 * `uz` marks the FNUZ types (single NaN 0x80, no negative zero).
 */
function encodeFp8Core(
  x: number,
  saturate: boolean,
  m: number,
  emin: number,
  emax: number,
  maxCode: number,
  ovfCode: number,
  uz: boolean,
): number {
  const hi = f64Hi(x);
  const s = uz ? 0 : (hi >>> 24) & 0x80;
  if (((hi >>> 20) & 0x7ff) === 0x7ff) {
    if (x !== x) return uz ? 0x80 : 0x7f | s; // NaN
    // ±Infinity
    if (saturate) return maxCode | ((hi >>> 24) & 0x80);
    return ovfCode | s;
  }
  const code = roundMagnitude(x, hi, m, emin, emax);
  if (code > maxCode) {
    if (saturate) return maxCode | ((hi >>> 24) & 0x80);
    return ovfCode | s;
  }
  if (uz && code !== 0) return code | ((hi >>> 24) & 0x80);
  return code | s; // uz: s === 0, so ±0 and negative underflow give +0
}

/** Decode FLOAT8E4M3FN bits (bias 7, no Inf, NaN = 0x7F/0xFF, max 448). */
export function decodeFloat8E4M3FN(bits: number): number {
  return LUT_E4M3FN[bits & 0xff]!;
}
/** Encode as FLOAT8E4M3FN (RNE). saturate=true: ±Inf/out-of-range -> ±448; false: -> NaN (0x7F | sign). */
export function encodeFloat8E4M3FN(x: number, saturate = true): number {
  return encodeFp8Core(x, saturate, 3, -6, 8, 0x7e, 0x7f, false);
}

/** Decode FLOAT8E4M3FNUZ bits (bias 8, no Inf, no -0, NaN = 0x80 only, max 240). */
export function decodeFloat8E4M3FNUZ(bits: number): number {
  return LUT_E4M3FNUZ[bits & 0xff]!;
}
/** Encode as FLOAT8E4M3FNUZ (RNE). saturate=true: ±Inf/out-of-range -> ±240; false: -> NaN (0x80). -0 -> 0. */
export function encodeFloat8E4M3FNUZ(x: number, saturate = true): number {
  return encodeFp8Core(x, saturate, 3, -7, 7, 0x7f, 0x80, true);
}

/** Decode FLOAT8E5M2 bits (IEEE-like: bias 15, Inf 0x7C/0xFC, NaN 0x7D-0x7F/0xFD-0xFF, max 57344). */
export function decodeFloat8E5M2(bits: number): number {
  return LUT_E5M2[bits & 0xff]!;
}
/** Encode as FLOAT8E5M2 (RNE). saturate=true: ±Inf/out-of-range -> ±57344; false: -> ±Inf (0x7C | sign). */
export function encodeFloat8E5M2(x: number, saturate = true): number {
  return encodeFp8Core(x, saturate, 2, -14, 15, 0x7b, 0x7c, false);
}

/** Decode FLOAT8E5M2FNUZ bits (bias 16, no Inf, no -0, NaN = 0x80 only, max 57344). */
export function decodeFloat8E5M2FNUZ(bits: number): number {
  return LUT_E5M2FNUZ[bits & 0xff]!;
}
/** Encode as FLOAT8E5M2FNUZ (RNE). saturate=true: ±Inf/out-of-range -> ±57344; false: -> NaN (0x80). -0 -> 0. */
export function encodeFloat8E5M2FNUZ(x: number, saturate = true): number {
  return encodeFp8Core(x, saturate, 2, -15, 15, 0x7f, 0x80, true);
}

/**
 * Rounding of Cast to FLOAT8E8M0 (ONNX Cast `round_mode`, default "up"):
 *  - `up`: the smallest power of two >= |x| ("round away from zero"; what CUDA/MX scale computation does),
 *  - `down`: the largest power of two <= |x| ("towards zero"),
 *  - `nearest`: the nearer of the two bracketing powers 2^e, 2^(e+1); the tie 1.5·2^e rounds up.
 */
export type E8M0RoundMode = 'up' | 'down' | 'nearest';

const E8M0_MIN = 2 ** -127;
const E8M0_MAX = 2 ** 127;

/** Decode FLOAT8E8M0 bits: 2^(bits - 127); 0xFF is NaN. No sign, no zero (0x00 is 2^-127). */
export function decodeFloat8E8M0(bits: number): number {
  const b = bits & 0xff;
  return b === 0xff ? NaN : POW2[b - 127 + P2]!;
}

/**
 * Encode as FLOAT8E8M0 following the ONNX Cast (opset 24+) E8M0 table, on the raw input value:
 *  - NaN -> NaN (0xFF).
 *  - x > E8M0_MAX (2^127, includes +Inf): saturate ? 0xFE : NaN.
 *  - x < E8M0_MIN (2^-127, includes 0): saturate ? 0x00 (= 2^-127) : NaN.
 *  - otherwise round to a power of two per `roundMode` (default "up", the ONNX default); a value in
 *    [2^-127, 2^127] always rounds to a value inside that range, so no further saturation is needed.
 * Negative inputs are undefined behaviour in ONNX; like onnx's reference `to_float8e8m0` (which drops the float's
 * sign bit) the sign is ignored, i.e. |x| is encoded. Note the reference's bit trick treats float32 subnormals
 * (< 2^-126) as if normal; this function uses the mathematical definition (and the spec table) instead.
 */
export function encodeFloat8E8M0(x: number, saturate = true, roundMode: E8M0RoundMode = 'up'): number {
  if (x !== x) return 0xff;
  const a = x < 0 ? -x : x;
  if (a > E8M0_MAX) return saturate ? 0xfe : 0xff;
  if (a < E8M0_MIN) return saturate ? 0x00 : 0xff;
  const hi = f64Hi(a); // a is a normal double here
  const e = ((hi >>> 20) & 0x7ff) - 1023;
  const frac = (hi & 0xfffff) !== 0 || SCRATCH_F64_U32[LO] !== 0;
  if (!frac) return e + 127;
  switch (roundMode) {
    case 'up':
      return e + 128;
    case 'down':
      return e + 127;
    case 'nearest':
      return (hi & 0x80000) !== 0 ? e + 128 : e + 127; // mantissa >= 0.5 (tie included) rounds up
    default:
      throw new RangeError(`unknown E8M0 round mode ${String(roundMode)}`);
  }
}

function buildFp8Lut(m: number, emin: number, special: (code: number) => number | undefined): Float32Array {
  const lut = new Float32Array(256);
  for (let c = 0; c < 256; c++) {
    const sp = special(c);
    if (sp !== undefined) lut[c] = sp;
    else {
      const v = magnitudeValue(c & 0x7f, m, emin);
      lut[c] = c & 0x80 ? -v : v;
    }
  }
  return lut;
}

const LUT_E4M3FN = buildFp8Lut(3, -6, (c) => ((c & 0x7f) === 0x7f ? NaN : undefined));
const LUT_E4M3FNUZ = buildFp8Lut(3, -7, (c) => (c === 0x80 ? NaN : undefined));
const LUT_E5M2 = buildFp8Lut(2, -14, (c) => {
  if ((c & 0x7f) < 0x7c) return undefined;
  if ((c & 0x7f) === 0x7c) return c & 0x80 ? -Infinity : Infinity;
  return NaN;
});
const LUT_E5M2FNUZ = buildFp8Lut(2, -15, (c) => (c === 0x80 ? NaN : undefined));
const LUT_E8M0 = (() => {
  const lut = new Float32Array(256);
  for (let c = 0; c < 256; c++) lut[c] = decodeFloat8E8M0(c);
  return lut;
})();

function fp8Lut(dtype: Fp8DType): Float32Array {
  switch (dtype) {
    case 'fp8e4m3':
      return LUT_E4M3FN;
    case 'fp8e4m3fnuz':
      return LUT_E4M3FNUZ;
    case 'fp8e5m2':
      return LUT_E5M2;
    case 'fp8e5m2fnuz':
      return LUT_E5M2FNUZ;
    case 'fp8e8m0':
      return LUT_E8M0;
    default:
      throw new RangeError(`not a float8 dtype: ${String(dtype)}`);
  }
}

/** Decode one float8 code of the given qcc dtype (`fp8e4m3` = ONNX FLOAT8E4M3FN). */
export function decodeFp8(dtype: Fp8DType, bits: number): number {
  return fp8Lut(dtype)[bits & 0xff]!;
}

/**
 * Encode one value as the given float8 dtype with the ONNX Cast rules (see the per-type encoders).
 * `roundMode` only applies to `fp8e8m0`; the other types always round to nearest, ties to even.
 */
export function encodeFp8(dtype: Fp8DType, x: number, saturate = true, roundMode: E8M0RoundMode = 'up'): number {
  switch (dtype) {
    case 'fp8e4m3':
      return encodeFloat8E4M3FN(x, saturate);
    case 'fp8e4m3fnuz':
      return encodeFloat8E4M3FNUZ(x, saturate);
    case 'fp8e5m2':
      return encodeFloat8E5M2(x, saturate);
    case 'fp8e5m2fnuz':
      return encodeFloat8E5M2FNUZ(x, saturate);
    case 'fp8e8m0':
      return encodeFloat8E8M0(x, saturate, roundMode);
    default:
      throw new RangeError(`not a float8 dtype: ${String(dtype)}`);
  }
}

/** Decode an array of float8 codes (table lookup). */
export function decodeFp8Array(dtype: Fp8DType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const lut = fp8Lut(dtype);
  const n = bytes.length;
  const res = checkOut(out, n, Float32Array);
  for (let i = 0; i < n; i++) res[i] = lut[bytes[i]!]!;
  return res;
}

/** Encode an array of values as float8 codes (same rules as {@link encodeFp8}). */
export function encodeFp8Array(
  dtype: Fp8DType,
  values: ArrayLike<number>,
  saturate = true,
  out?: Uint8Array,
  roundMode: E8M0RoundMode = 'up',
): Uint8Array {
  const n = values.length;
  const res = checkOut(out, n, Uint8Array);
  switch (dtype) {
    case 'fp8e4m3':
      for (let i = 0; i < n; i++) res[i] = encodeFp8Core(values[i]!, saturate, 3, -6, 8, 0x7e, 0x7f, false);
      break;
    case 'fp8e4m3fnuz':
      for (let i = 0; i < n; i++) res[i] = encodeFp8Core(values[i]!, saturate, 3, -7, 7, 0x7f, 0x80, true);
      break;
    case 'fp8e5m2':
      for (let i = 0; i < n; i++) res[i] = encodeFp8Core(values[i]!, saturate, 2, -14, 15, 0x7b, 0x7c, false);
      break;
    case 'fp8e5m2fnuz':
      for (let i = 0; i < n; i++) res[i] = encodeFp8Core(values[i]!, saturate, 2, -15, 15, 0x7f, 0x80, true);
      break;
    case 'fp8e8m0':
      for (let i = 0; i < n; i++) res[i] = encodeFloat8E8M0(values[i]!, saturate, roundMode);
      break;
    default:
      throw new RangeError(`not a float8 dtype: ${String(dtype)}`);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// FLOAT4E2M1 (1 sign, 2 exponent bits (bias 1), 1 mantissa bit; values ±{0, .5, 1, 1.5, 2, 3, 4, 6}; no Inf/NaN)
// ---------------------------------------------------------------------------------------------------------------

const LUT_FP4 = new Float32Array(16);
for (let c = 0; c < 16; c++) {
  const v = magnitudeValue(c & 7, 1, 0);
  LUT_FP4[c] = c & 8 ? -v : v;
}

/** Decode a FLOAT4E2M1 code (low 4 bits of `bits`); 0x8 is -0. */
export function decodeFloat4E2M1(bits: number): number {
  return LUT_FP4[bits & 0xf]!;
}

/**
 * Encode as FLOAT4E2M1 per ONNX Cast (SPEC §9): round to nearest, ties to even code (5 -> 4, 5.1 -> 6,
 * 0.25 -> 0, 0.75 -> 1), always saturating: |x| > 6 -> ±6, ±Inf -> ±6, NaN -> +6 (0x7). -0 and negative values
 * that round to zero give -0 (0x8).
 */
export function encodeFloat4E2M1(x: number): number {
  if (x !== x) return 0x7;
  const hi = f64Hi(x);
  const s = (hi >>> 28) & 0x8;
  if (((hi >>> 20) & 0x7ff) === 0x7ff) return 0x7 | s; // ±Inf
  const code = roundMagnitude(x, hi, 1, 0, 2);
  return (code > 0x7 ? 0x7 : code) | s;
}

// ---------------------------------------------------------------------------------------------------------------
// Sub-byte packing (ONNX raw_data layout: element 0 in the least significant bits of byte 0)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Pack 4-bit values two per byte: element 2i in the low nibble and 2i+1 in the high nibble of byte i; an odd
 * count pads the last high nibble with 0. Output length is ceil(N/2). Accepts int4 values (-8..7, stored in
 * two's complement) and uint4 / fp4 codes (0..15); anything else throws a RangeError.
 */
export function packNibbles(values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  const out = new Uint8Array((n + 1) >>> 1);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (!(v >= -8 && v <= 15) || (v | 0) !== v) throw new RangeError(`packNibbles: value ${v} at ${i} is not a 4-bit integer`);
    out[i >>> 1] |= (v & 0xf) << ((i & 1) << 2);
  }
  return out;
}

/** Unpack `count` signed 4-bit integers (sign-extended to -8..7) from nibble-packed bytes. */
export function unpackInt4(bytes: Uint8Array, count: number, out?: Int8Array): Int8Array {
  checkPacked(bytes, count, 2);
  const res = checkOut(out, count, Int8Array);
  for (let i = 0; i < count; i++) res[i] = ((bytes[i >>> 1]! >>> ((i & 1) << 2)) << 28) >> 28;
  return res;
}

/** Unpack `count` unsigned 4-bit integers (0..15) from nibble-packed bytes. */
export function unpackUint4(bytes: Uint8Array, count: number, out?: Uint8Array): Uint8Array {
  checkPacked(bytes, count, 2);
  const res = checkOut(out, count, Uint8Array);
  for (let i = 0; i < count; i++) res[i] = (bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf;
  return res;
}

/** Unpack and decode `count` FLOAT4E2M1 values from nibble-packed bytes. */
export function unpackFp4(bytes: Uint8Array, count: number, out?: Float32Array): Float32Array {
  checkPacked(bytes, count, 2);
  const res = checkOut(out, count, Float32Array);
  for (let i = 0; i < count; i++) res[i] = LUT_FP4[(bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf]!;
  return res;
}

/** Encode values as FLOAT4E2M1 ({@link encodeFloat4E2M1}) and pack them two per byte ({@link packNibbles} layout). */
export function packFp4(values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  const out = new Uint8Array((n + 1) >>> 1);
  for (let i = 0; i < n; i++) out[i >>> 1] |= encodeFloat4E2M1(values[i]!) << ((i & 1) << 2);
  return out;
}

/**
 * Pack 2-bit values four per byte: element 4i+k in bits [2k, 2k+1] of byte i (element 0 in the lowest two bits),
 * zero padded; output length ceil(N/4). Accepts int2 (-2..1) and uint2 (0..3) values; anything else throws.
 */
export function packCrumbs(values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  const out = new Uint8Array((n + 3) >>> 2);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (!(v >= -2 && v <= 3) || (v | 0) !== v) throw new RangeError(`packCrumbs: value ${v} at ${i} is not a 2-bit integer`);
    out[i >>> 2] |= (v & 3) << ((i & 3) << 1);
  }
  return out;
}

/** Unpack `count` signed 2-bit integers (sign-extended to -2..1) from crumb-packed bytes. */
export function unpackInt2(bytes: Uint8Array, count: number, out?: Int8Array): Int8Array {
  checkPacked(bytes, count, 4);
  const res = checkOut(out, count, Int8Array);
  for (let i = 0; i < count; i++) res[i] = ((bytes[i >>> 2]! >>> ((i & 3) << 1)) << 30) >> 30;
  return res;
}

/** Unpack `count` unsigned 2-bit integers (0..3) from crumb-packed bytes. */
export function unpackUint2(bytes: Uint8Array, count: number, out?: Uint8Array): Uint8Array {
  checkPacked(bytes, count, 4);
  const res = checkOut(out, count, Uint8Array);
  for (let i = 0; i < count; i++) res[i] = (bytes[i >>> 2]! >>> ((i & 3) << 1)) & 3;
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Reference integer quantizers (ONNX QuantizeLinear / DequantizeLinear, SPEC §9)
// ---------------------------------------------------------------------------------------------------------------

/** Integer dtypes usable as QuantizeLinear outputs (plus i32, the bias / accumulator type). */
export type IntQuantDType = Extract<DType, 'i8' | 'u8' | 'i16' | 'u16' | 'i4' | 'u4' | 'i2' | 'u2' | 'i32'>;

/** Inclusive saturation bounds of an integer type. */
export interface IntRange {
  readonly min: number;
  readonly max: number;
}

const SAT_RANGES: Readonly<Record<IntQuantDType, IntRange>> = {
  i8: Object.freeze({ min: -128, max: 127 }),
  u8: Object.freeze({ min: 0, max: 255 }),
  i16: Object.freeze({ min: -32768, max: 32767 }),
  u16: Object.freeze({ min: 0, max: 65535 }),
  i4: Object.freeze({ min: -8, max: 7 }),
  u4: Object.freeze({ min: 0, max: 15 }),
  i2: Object.freeze({ min: -2, max: 1 }),
  u2: Object.freeze({ min: 0, max: 3 }),
  i32: Object.freeze({ min: -2147483648, max: 2147483647 }),
};

/** True if `d` is one of the integer types {@link saturationRange} knows. */
export function isIntQuantDType(d: DType): d is IntQuantDType {
  return Object.prototype.hasOwnProperty.call(SAT_RANGES, d);
}

/** Saturation range of an integer quantized type (e.g. int4 [-8, 7], uint8 [0, 255]). Returns a frozen shared object. */
export function saturationRange(dtype: IntQuantDType): IntRange {
  const r = SAT_RANGES[dtype];
  if (r === undefined) throw new RangeError(`no integer saturation range for dtype ${String(dtype)}`);
  return r;
}

/**
 * ONNX QuantizeLinear for one element: `saturate(roundHalfEven(x / scale) + zeroPoint)`.
 * With `f32` the quotient is rounded to float32 first (`Math.fround`), reproducing bit-exactly the float32
 * arithmetic of onnxruntime / the ONNX reference for float32 x and scale (this can differ from the exact quotient
 * when x/scale is within half a float32 ulp of a .5 tie). Default: exact float64 quotient.
 * NaN (e.g. 0/0) is undefined in ONNX; here it maps to `zeroPoint` (i.e. dequantizes to 0). ±Infinity saturates.
 */
export function quantizeInt(x: number, scale: number, zeroPoint: number, dtype: IntQuantDType, f32 = false): number {
  const r = saturationRange(dtype);
  let t = x / scale;
  if (f32) t = Math.fround(t);
  if (t !== t) return zeroPoint;
  const q = roundHalfEven(t) + zeroPoint;
  return q < r.min ? r.min : q > r.max ? r.max : q;
}

/**
 * ONNX DequantizeLinear for one element: `(q - zeroPoint) * scale`. With `f32` the result is rounded to float32
 * (what ONNX produces for a float32 scale).
 */
export function dequantizeInt(q: number, scale: number, zeroPoint = 0, f32 = false): number {
  const y = (q - zeroPoint) * scale;
  return f32 ? Math.fround(y) : y;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

type TypedArrayCtor<T> = new (n: number) => T;

function checkOut<T extends { length: number }>(out: T | undefined, n: number, ctor: TypedArrayCtor<T>): T {
  if (out === undefined) return new ctor(n);
  if (out.length < n) throw new RangeError(`output array too small: ${out.length} < ${n}`);
  return out;
}

function checkPacked(bytes: Uint8Array, count: number, perByte: number): void {
  if (!Number.isInteger(count) || count < 0 || bytes.length * perByte < count) {
    throw new RangeError(`cannot unpack ${count} elements from ${bytes.length} bytes (${perByte} per byte)`);
  }
}
