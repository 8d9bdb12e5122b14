// Weight quantization math: per-tensor / per-channel / blocked scales, RNE quantization to INT8 / INT4 / FP8, MSE clipping, SQNR.
//
// Everything here is a pure function over typed arrays (no IR): quantize-weights.ts turns the results into
// initializers behind DequantizeLinear.
//
// Conventions (SPEC §8, §9):
//  - Symmetric (TensorRT: zero point 0): scale = amax / qmax with qmax 127 (int8, the restricted range [-127, 127]
//    that TensorRT uses), 7 (int4), 448 (FP8 E4M3FN, max finite). Asymmetric (integer types only, ORT-style):
//    the range [min(lo, 0), max(hi, 0)] is mapped onto [qmin, qmax] with an integer zero point.
//  - Scales are rounded *up* to float32 (what the initializer stores; up, so that amax / scale <= qmax and nothing
//    inside the range clips) *before* quantizing, so the stored q are exactly
//    round_half_even(w / scale_f32) for the scale that DequantizeLinear reads. The quotient is computed in float64
//    (exact quotient, one rounding) — ONNX QuantizeLinear would compute it in float32; both are valid encodings and
//    DequantizeLinear reproduces our (q - zp) * scale exactly (up to its float32 product).
//  - A group whose elements are all zero gets scale 1 (scales must be > 0 for TensorRT) and q = 0; such groups are
//    counted in `degenerateGroups` and left out of scale statistics. Scales never go below the smallest normal
//    float32 (2^-126): TensorRT and ORT kernels need no denormal scales.
//  - INT4 / UINT4 storage is the ONNX raw layout: two per byte over the flattened (row-major) tensor, element 0 in
//    the low nibble, odd counts padded with a zero high nibble.
//  - FP8 uses ir/numerics' encoder with saturate=1 (ONNX QuantizeLinear's default): |w/scale| > 448 clamps to ±448.
//
// MSE clipping (opt-in, WeightPlan.mseClip): for every group (channel or block) the scale is computed from
// amax·r for each clip ratio r of a grid (default 0.50, 0.51, ..., 1.00: 51 ratios) and the ratio minimising the
// group's sum of squared error Σ (w - dq(q(w)))² in float64 is kept; ties keep the larger ratio (r = 1 first, a
// smaller ratio must be strictly better). Cost: one fake-quantization pass over the tensor per ratio (51x RTN).

import { QccError } from '../../ir/errors.js';
import { decodeFloat8E4M3FN, encodeFloat8E4M3FN, roundHalfEven } from '../../ir/numerics.js';
import type { Granularity, QDType } from './types.js';

/** Element types weights can be quantized to (16-bit weights are not supported). */
export type WeightQDType = Extract<QDType, 'i8' | 'u8' | 'i4' | 'u4' | 'fp8e4m3'>;

/** Smallest normal float32: scales never go below it. */
export const MIN_SCALE = 2 ** -126;

const F32_SCRATCH = new Float32Array(1);
const F32_BITS = new Uint32Array(F32_SCRATCH.buffer);

/** The smallest float32 >= x, for finite x > 0. */
export function f32RoundUp(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  F32_SCRATCH[0] = f;
  F32_BITS[0]! += 1; // f > 0: the next float32 up
  return F32_SCRATCH[0]!;
}

/** The default MSE clipping grid: 0.50, 0.51, ..., 1.00. */
export const DEFAULT_CLIP_RATIOS: readonly number[] = Object.freeze(Array.from({ length: 51 }, (_, i) => (50 + i) / 100));

export function isWeightQDType(d: QDType): d is WeightQDType {
  return d === 'i8' || d === 'u8' || d === 'i4' || d === 'u4' || d === 'fp8e4m3';
}

/** Integer range [qmin, qmax] of a weight dtype (FP8: ±448, the max finite E4M3FN). */
export function quantRange(dtype: WeightQDType): { readonly qmin: number; readonly qmax: number } {
  switch (dtype) {
    case 'i8':
      return { qmin: -128, qmax: 127 };
    case 'u8':
      return { qmin: 0, qmax: 255 };
    case 'i4':
      return { qmin: -8, qmax: 7 };
    case 'u4':
      return { qmin: 0, qmax: 15 };
    case 'fp8e4m3':
      return { qmin: -448, qmax: 448 };
  }
}

/** The magnitude amax maps to under symmetric quantization: 127 (int8), 7 (int4), 448 (FP8 E4M3FN). */
export function symmetricQmax(dtype: WeightQDType): number {
  switch (dtype) {
    case 'i8':
      return 127;
    case 'i4':
      return 7;
    case 'fp8e4m3':
      return 448;
    case 'u8':
    case 'u4':
      throw new QccError('E_UNSUPPORTED', `symmetric quantization to unsigned ${dtype} is not defined (zero point 0 leaves no negative values)`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Group layout: which scale each element uses, as runs of contiguous elements

/**
 * `(t + RNE_MAGIC) - RNE_MAGIC` is t rounded to an integer, ties to even, for |t| < 2^51: the sum lies in
 * [2^52, 2^53) where the float64 spacing is 1, and float64 addition rounds to nearest even. Every use clamps t to
 * the integer bounds [qmin - zp, qmax - zp] first (clamping then rounding equals rounding then clamping, since
 * the bounds are integers), which also keeps |t| small. Same results as ir/numerics roundHalfEven, inline.
 */
const RNE_MAGIC = 6755399441055744; // 1.5 * 2^52

export interface GroupLayout {
  /** Number of scales. */
  readonly count: number;
  /** Shape of the scale / zero-point tensors: [] per-tensor, [D_axis] per-channel, rank-equal for blocked. */
  readonly scaleDims: readonly number[];
  /** Number of elements. */
  readonly size: number;
  /**
   * Runs covering every element exactly once, 4 ints each: start, length, first group, group step (0: the whole
   * run uses the first group; 1: element j of the run uses group first + j). Loops over runs hoist the scale.
   */
  readonly runs: Int32Array;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new QccError('E_UNSUPPORTED', `axis ${axis} is out of range for a rank-${rank} weight`);
  return a;
}

/**
 * Maps the elements of a tensor of `dims` to scales: per-tensor (one), per-channel (one per index of `axis`) or
 * blocked (ONNX opset 21: scale dims equal the tensor's except dims[axis] -> ceil(dims[axis] / size); element
 * (o, k, i) around the axis uses scale (o·nb + floor(k / size))·inner + i).
 */
export function groupLayout(dims: readonly number[], g: Granularity): GroupLayout {
  let n = 1;
  for (const d of dims) n *= d;
  if (g.kind === 'per-tensor') return { count: 1, scaleDims: [], size: n, runs: n > 0 ? Int32Array.of(0, n, 0, 0) : new Int32Array(0) };
  const axis = normAxis(g.axis, dims.length);
  const D = dims[axis]!;
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i]!;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  const runs: number[] = [];
  if (n > 0) {
    if (g.kind === 'per-channel') {
      if (inner > 1) {
        for (let o = 0; o < outer; o++) for (let k = 0; k < D; k++) runs.push((o * D + k) * inner, inner, k, 0);
      } else {
        for (let o = 0; o < outer; o++) runs.push(o * D, D, 0, 1);
      }
    }
  }
  if (g.kind === 'per-channel') return { count: D, scaleDims: [D], size: n, runs: Int32Array.from(runs) };
  const B = g.size;
  if (!Number.isInteger(B) || B < 1) throw new QccError('E_UNSUPPORTED', `block size must be a positive integer, not ${B}`);
  const nb = Math.ceil(D / B);
  if (n > 0) {
    if (inner > 1) {
      for (let o = 0; o < outer; o++) for (let k = 0; k < D; k++) runs.push((o * D + k) * inner, inner, (o * nb + Math.floor(k / B)) * inner, 1);
    } else {
      for (let o = 0; o < outer; o++) for (let b = 0; b < nb; b++) runs.push(o * D + b * B, Math.min(B, D - b * B), o * nb + b, 0);
    }
  }
  const scaleDims = dims.slice();
  scaleDims[axis] = nb;
  return { count: outer * nb * inner, scaleDims, size: n, runs: Int32Array.from(runs) };
}

/** The scale index of every element (row-major). */
export function groupIds(layout: GroupLayout): Int32Array {
  const ids = new Int32Array(layout.size);
  const R = layout.runs;
  for (let r = 0; r < R.length; r += 4) {
    const start = R[r]!;
    const len = R[r + 1]!;
    const g0 = R[r + 2]!;
    const step = R[r + 3]!;
    for (let j = 0; j < len; j++) ids[start + j] = g0 + step * j;
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------------
// Scales

export interface WeightQuantSpec {
  readonly dtype: WeightQDType;
  readonly granularity: Granularity;
  /** Zero point 0 (TensorRT). Asymmetric is integer-only. */
  readonly symmetric: boolean;
  /** Search the per-group clip ratio minimising the squared error (see the file header). */
  readonly mseClip?: boolean;
  /** Clip ratios to search (default {@link DEFAULT_CLIP_RATIOS}); each in (0, 1]. */
  readonly clipRatios?: readonly number[];
}

export interface Scales {
  readonly scale: Float32Array;
  /** Zero point per group (all 0 when symmetric). */
  readonly zeroPoint: Int32Array;
  /** Chosen clip ratio per group (MSE clipping only). */
  readonly clipRatio: Float64Array | undefined;
  /** 1 for groups whose elements are all zero (scale 1). */
  readonly degenerate: Uint8Array;
}

type Floats = Float32Array | Float64Array;

function checkSpec(spec: WeightQuantSpec): void {
  if (!isWeightQDType(spec.dtype)) throw new QccError('E_UNSUPPORTED', `weights cannot be quantized to ${spec.dtype} (supported: i8, u8, i4, u4, fp8e4m3)`);
  if (spec.dtype === 'fp8e4m3' && !spec.symmetric) throw new QccError('E_UNSUPPORTED', 'FP8 quantization is symmetric only (FLOAT8 zero points must be 0)');
  if (spec.symmetric) symmetricQmax(spec.dtype); // refuses unsigned
}

/**
 * Scale and zero point of one group with range [lo, hi] clipped by ratio r, written to out[0] (scale, float32
 * value) and out[1] (zero point); returns false for an all-zero group (scale 1, zero point 0 or qmin).
 */
function groupScale(lo: number, hi: number, r: number, symmetric: boolean, qm: number, qmin: number, qmax: number, out: Float64Array): boolean {
  if (symmetric) {
    const amax = Math.max(-lo, hi) * r;
    out[1] = 0;
    if (!(amax > 0)) {
      out[0] = 1;
      return false;
    }
    const s = f32RoundUp(amax / qm);
    out[0] = s < MIN_SCALE ? MIN_SCALE : s;
    return true;
  }
  const l = Math.min(lo, 0) * r;
  const h = Math.max(hi, 0) * r;
  if (!(h - l > 0)) {
    out[0] = 1;
    out[1] = qmin < 0 ? 0 : qmin;
    return false;
  }
  let s = f32RoundUp((h - l) / (qmax - qmin));
  if (s < MIN_SCALE) s = MIN_SCALE;
  out[0] = s;
  const z = roundHalfEven(qmin - l / s);
  out[1] = z < qmin ? qmin : z > qmax ? qmax : z;
  return true;
}

/** Per-group minimum and maximum (both include 0 from their initial value). Refuses NaN and infinities. */
function groupRanges(w: Floats, layout: GroupLayout): { lo: Float64Array; hi: Float64Array } {
  const G = layout.count;
  const lo = new Float64Array(G);
  const hi = new Float64Array(G);
  const R = layout.runs;
  for (let r = 0; r < R.length; r += 4) {
    const start = R[r]!;
    const end = start + R[r + 1]!;
    const g0 = R[r + 2]!;
    if (R[r + 3] === 0) {
      let mn = lo[g0]!;
      let mx = hi[g0]!;
      for (let i = start; i < end; i++) {
        const v = w[i]!;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        if (v !== v) throw new QccError('E_UNSUPPORTED', `weight element ${i} is NaN`);
      }
      lo[g0] = mn;
      hi[g0] = mx;
    } else {
      for (let i = start, g = g0; i < end; i++, g++) {
        const v = w[i]!;
        if (v < lo[g]!) lo[g] = v;
        if (v > hi[g]!) hi[g] = v;
        if (v !== v) throw new QccError('E_UNSUPPORTED', `weight element ${i} is NaN`);
      }
    }
  }
  for (let g = 0; g < G; g++) {
    if (!Number.isFinite(lo[g]!) || !Number.isFinite(hi[g]!)) throw new QccError('E_UNSUPPORTED', `weight group ${g} holds an infinite value`);
  }
  return { lo, hi };
}

/** The elements of each group, contiguous: `data[offsets[g] .. offsets[g+1])` (float64, exact copies). */
function gatherGroups(w: Floats, layout: GroupLayout): { offsets: Int32Array; data: Float64Array } {
  const G = layout.count;
  const R = layout.runs;
  const offsets = new Int32Array(G + 1);
  for (let r = 0; r < R.length; r += 4) {
    const len = R[r + 1]!;
    const g0 = R[r + 2]!;
    if (R[r + 3] === 0) offsets[g0 + 1] += len;
    else for (let j = 0; j < len; j++) offsets[g0 + j + 1]++;
  }
  for (let g = 0; g < G; g++) offsets[g + 1] += offsets[g]!;
  const fill = offsets.slice(0, G);
  const data = new Float64Array(layout.size);
  for (let r = 0; r < R.length; r += 4) {
    const start = R[r]!;
    const len = R[r + 1]!;
    const g0 = R[r + 2]!;
    if (R[r + 3] === 0) {
      let p = fill[g0]!;
      for (let j = 0; j < len; j++) data[p++] = w[start + j]!;
      fill[g0] = p;
    } else {
      for (let j = 0; j < len; j++) data[fill[g0 + j]!++] = w[start + j]!;
    }
  }
  return { offsets, data };
}

/** Σ (v - dq(q(v)))² over data[a..b) for one group's scale s and zero point z (integer types). */
function intSquaredError(data: Float64Array, a: number, b: number, s: number, z: number, qmin: number, qmax: number): number {
  const tlo = qmin - z;
  const thi = qmax - z;
  let err = 0;
  for (let i = a; i < b; i++) {
    const v = data[i]!;
    let t = v / s;
    t = t < tlo ? tlo : t > thi ? thi : t;
    const e = v - (t + RNE_MAGIC - RNE_MAGIC) * s;
    err += e * e;
  }
  return err;
}

/** Σ (v - dq(q(v)))² over data[a..b) for FP8 E4M3FN with scale s (saturating). */
function fp8SquaredError(data: Float64Array, a: number, b: number, s: number): number {
  let err = 0;
  for (let i = a; i < b; i++) {
    const v = data[i]!;
    const e = v - decodeFloat8E4M3FN(encodeFloat8E4M3FN(v / s, true)) * s;
    err += e * e;
  }
  return err;
}

/**
 * Scales (and zero points) of a weight: from each group's range (RTN, r = 1), or with `mseClip` the per-group
 * clip ratio of the grid that minimises the group's squared quantization error (each group's elements are first
 * gathered into a contiguous float64 buffer, so the ratio search runs in cache).
 */
export function computeScales(w: Floats, layout: GroupLayout, spec: WeightQuantSpec): Scales {
  checkSpec(spec);
  if (w.length !== layout.size) throw new RangeError(`computeScales: weight has ${w.length} elements, layout ${layout.size}`);
  const G = layout.count;
  const { lo, hi } = groupRanges(w, layout);
  const scale = new Float32Array(G);
  const zeroPoint = new Int32Array(G);
  const degenerate = new Uint8Array(G);
  const { qmin, qmax } = quantRange(spec.dtype);
  const qm = spec.symmetric ? symmetricQmax(spec.dtype) : 0;
  const sz = new Float64Array(2);
  for (let g = 0; g < G; g++) {
    degenerate[g] = groupScale(lo[g]!, hi[g]!, 1, spec.symmetric, qm, qmin, qmax, sz) ? 0 : 1;
    scale[g] = sz[0]!;
    zeroPoint[g] = sz[1]!;
  }
  if (!spec.mseClip) return { scale, zeroPoint, clipRatio: undefined, degenerate };
  const ratios = [...(spec.clipRatios ?? DEFAULT_CLIP_RATIOS)].sort((a, b) => b - a);
  for (const r of ratios) if (!(r > 0 && r <= 1)) throw new QccError('E_UNSUPPORTED', `clip ratio ${r} is not in (0, 1]`);
  const clipRatio = new Float64Array(G).fill(1);
  const { offsets, data } = gatherGroups(w, layout);
  const fp8 = spec.dtype === 'fp8e4m3';
  for (let g = 0; g < G; g++) {
    if (degenerate[g]) continue;
    const a = offsets[g]!;
    const b = offsets[g + 1]!;
    let best = Infinity;
    for (const r of ratios) {
      groupScale(lo[g]!, hi[g]!, r, spec.symmetric, qm, qmin, qmax, sz);
      const s = sz[0]!;
      const z = sz[1]!;
      const err = fp8 ? fp8SquaredError(data, a, b, s) : intSquaredError(data, a, b, s, z, qmin, qmax);
      if (err < best) {
        best = err;
        clipRatio[g] = r;
        scale[g] = s;
        zeroPoint[g] = z;
      }
    }
  }
  return { scale, zeroPoint, clipRatio, degenerate };
}

// ---------------------------------------------------------------------------------------------------------------
// Quantization to storage

/** A quantized weight in ONNX raw layout, with its scales and quality. */
export interface QuantizedWeight {
  readonly dtype: WeightQDType;
  readonly dims: readonly number[];
  readonly granularity: Granularity;
  /** i8: Int8Array of values; u8: Uint8Array; i4/u4: packed bytes (ceil(N/2)); fp8e4m3: E4M3FN codes. */
  readonly data: Int8Array | Uint8Array;
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
  readonly scaleDims: readonly number[];
  readonly clipRatio: Float64Array | undefined;
  /** 1 for groups that were all zero (scale 1). */
  readonly degenerate: Uint8Array;
  /** 10·log10(Σ w² / Σ (w - dq)²) over the whole tensor, float64 (Infinity when exact). */
  readonly sqnrDb: number;
}

/** SQNR in dB from accumulated signal and noise energies (Infinity when the noise is 0). */
export function sqnrFromEnergies(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

/** SQNR of `approx` against `ref` in dB: 10·log10(Σ ref² / Σ (ref - approx)²), float64. */
export function sqnrDb(ref: ArrayLike<number>, approx: ArrayLike<number>): number {
  if (ref.length !== approx.length) throw new RangeError(`sqnrDb: lengths differ (${ref.length} vs ${approx.length})`);
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = r - approx[i]!;
    s += r * r;
    e += d * d;
  }
  return sqnrFromEnergies(s, e);
}

/** Integer quantization over runs into `out` (values, unpacked); returns [signal, noise]. */
function quantizeIntRuns(w: Floats, R: Int32Array, scale: Float32Array, zeroPoint: Int32Array, qmin: number, qmax: number, out: Int8Array | Uint8Array): [number, number] {
  let signal = 0;
  let noise = 0;
  for (let r = 0; r < R.length; r += 4) {
    const start = R[r]!;
    const end = start + R[r + 1]!;
    const g0 = R[r + 2]!;
    if (R[r + 3] === 0) {
      const s = scale[g0]!;
      const z = zeroPoint[g0]!;
      const tlo = qmin - z;
      const thi = qmax - z;
      for (let i = start; i < end; i++) {
        const v = w[i]!;
        let t = v / s;
        t = t < tlo ? tlo : t > thi ? thi : t;
        t = t + RNE_MAGIC - RNE_MAGIC;
        out[i] = t + z;
        const e = v - t * s;
        signal += v * v;
        noise += e * e;
      }
    } else {
      for (let i = start, g = g0; i < end; i++, g++) {
        const s = scale[g]!;
        const z = zeroPoint[g]!;
        const v = w[i]!;
        let t = v / s;
        t = t < qmin - z ? qmin - z : t > qmax - z ? qmax - z : t;
        t = t + RNE_MAGIC - RNE_MAGIC;
        out[i] = t + z;
        const e = v - t * s;
        signal += v * v;
        noise += e * e;
      }
    }
  }
  return [signal, noise];
}

/**
 * Quantizes `w` with given scales and zero points (one per group of `layout`) to ONNX storage. Returns the stored
 * data and the signal / noise energies (float64) of the reconstruction (q - zp) · scale.
 */
export function quantizeWithScales(
  w: Floats,
  layout: GroupLayout,
  dtype: WeightQDType,
  scale: Float32Array,
  zeroPoint: Int32Array,
): { data: Int8Array | Uint8Array; signal: number; noise: number } {
  const n = w.length;
  if (layout.size !== n) throw new RangeError(`quantizeWithScales: layout covers ${layout.size} elements, weight has ${n}`);
  if (scale.length !== layout.count || zeroPoint.length !== layout.count) throw new RangeError(`quantizeWithScales: ${scale.length} scales for ${layout.count} groups`);
  const R = layout.runs;
  if (dtype === 'fp8e4m3') {
    const out = new Uint8Array(n);
    let signal = 0;
    let noise = 0;
    for (let r = 0; r < R.length; r += 4) {
      const start = R[r]!;
      const end = start + R[r + 1]!;
      const g0 = R[r + 2]!;
      const step = R[r + 3]!;
      for (let i = start, g = g0; i < end; i++, g += step) {
        const s = scale[g]!;
        const v = w[i]!;
        const c = encodeFloat8E4M3FN(v / s, true);
        out[i] = c;
        const e = v - decodeFloat8E4M3FN(c) * s;
        signal += v * v;
        noise += e * e;
      }
    }
    return { data: out, signal, noise };
  }
  const { qmin, qmax } = quantRange(dtype);
  if (dtype === 'u8') {
    const out = new Uint8Array(n);
    const [signal, noise] = quantizeIntRuns(w, R, scale, zeroPoint, qmin, qmax, out);
    return { data: out, signal, noise };
  }
  const vals = new Int8Array(n);
  const [signal, noise] = quantizeIntRuns(w, R, scale, zeroPoint, qmin, qmax, vals);
  if (dtype === 'i8') return { data: vals, signal, noise };
  // i4 / u4: two per byte, element 2i in the low nibble (ONNX raw layout)
  const out = new Uint8Array((n + 1) >>> 1);
  const pairs = n >>> 1;
  for (let i = 0; i < pairs; i++) out[i] = (vals[2 * i]! & 0xf) | ((vals[2 * i + 1]! & 0xf) << 4);
  if (n & 1) out[pairs] = vals[n - 1]! & 0xf;
  return { data: out, signal, noise };
}

/** Quantizes a float weight of shape `dims`: scales (RTN or MSE-clipped), storage, SQNR. */
export function quantizeWeight(w: Floats, dims: readonly number[], spec: WeightQuantSpec): QuantizedWeight {
  checkSpec(spec);
  const layout = groupLayout(dims, spec.granularity);
  if (layout.size !== w.length) throw new QccError('E_MODEL_DATA_SIZE', `weight has ${w.length} elements, dims [${dims.join(',')}] need ${layout.size}`);
  const { scale, zeroPoint, clipRatio, degenerate } = computeScales(w, layout, spec);
  const { data, signal, noise } = quantizeWithScales(w, layout, spec.dtype, scale, zeroPoint);
  return { dtype: spec.dtype, dims, granularity: spec.granularity, data, scale, zeroPoint, scaleDims: layout.scaleDims, clipRatio, degenerate, sqnrDb: sqnrFromEnergies(signal, noise) };
}

/** Zero points in ONNX storage of `dtype` (packed for 4-bit; FP8 zero points are the code of +0, i.e. 0). */
export function zeroPointStorage(zp: Int32Array, dtype: WeightQDType): Int8Array | Uint8Array {
  switch (dtype) {
    case 'i8':
      return Int8Array.from(zp);
    case 'u8':
      return Uint8Array.from(zp);
    case 'fp8e4m3':
      for (const z of zp) if (z !== 0) throw new QccError('E_UNSUPPORTED', 'FP8 zero points must be 0');
      return new Uint8Array(zp.length);
    case 'i4':
    case 'u4': {
      const out = new Uint8Array((zp.length + 1) >>> 1);
      for (let i = 0; i < zp.length; i++) out[i >>> 1]! |= (zp[i]! & 0xf) << ((i & 1) << 2);
      return out;
    }
  }
}

/**
 * Reference dequantization in float64 of stored data: (q - zp) · scale per element, unpacking 4-bit and decoding
 * FP8 codes. `dims` and `granularity` give the scale of each element.
 */
export function dequantizeStored(
  data: Int8Array | Uint8Array,
  dtype: WeightQDType,
  dims: readonly number[],
  granularity: Granularity,
  scale: ArrayLike<number>,
  zeroPoint?: ArrayLike<number>,
): Float64Array {
  if ((dtype === 'i8' || dtype === 'u8') && (granularity.kind === 'per-tensor' || (granularity.kind === 'per-channel' && granularity.axis === 0))) {
    // the common case without the group-id table: group o is the o-th contiguous run
    const n = data.length;
    const out = new Float64Array(n);
    const groups = granularity.kind === 'per-tensor' ? 1 : dims[0]!;
    const per = n / groups;
    for (let o = 0; o < groups; o++) {
      const s = scale[o]!;
      const z = zeroPoint ? zeroPoint[o]! : 0;
      for (let i = o * per, end = i + per; i < end; i++) out[i] = (data[i]! - z) * s;
    }
    return out;
  }
  const layout = groupLayout(dims, granularity);
  const ids = groupIds(layout);
  const n = layout.size;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = ids[i]!;
    const z = zeroPoint ? zeroPoint[g]! : 0;
    let q: number;
    switch (dtype) {
      case 'i4':
        q = ((data[i >>> 1]! >>> ((i & 1) << 2)) << 28) >> 28;
        break;
      case 'u4':
        q = (data[i >>> 1]! >>> ((i & 1) << 2)) & 0xf;
        break;
      case 'fp8e4m3':
        q = decodeFloat8E4M3FN(data[i]!);
        break;
      default:
        q = data[i]!;
    }
    out[i] = (q - z) * scale[g]!;
  }
  return out;
}
