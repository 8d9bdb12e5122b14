// Activation calibration: streaming histograms against exact counts, calibrators against independent float64 references, collectStatistics against ORT.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { GraphBuilder } from '../../../ir/builder.js';
import { QccError } from '../../../ir/errors.js';
import type { Model } from '../../../ir/ir.js';
import { createSession, ort, run, type Feeds } from '../../../ir/ort.js';
import { decodeF16, decodeFloat8E4M3FN, encodeFloat8E4M3FN } from '../../../ir/numerics.js';
import { mulberry32 } from '../../../ir/random.js';
import { Rewriter } from '../../../ir/rewriter.js';
import { inferShapes } from '../../../ir/shape-inference.js';
import { buildZooModel } from '../../../models/index.js';
import {
  collectStatistics,
  computeRange,
  coprimeStride,
  gridOffset,
  gridStrides,
  klThreshold,
  MIN_SCALE,
  mseThreshold,
  qparamsFor,
  randomCalibration,
  type TensorStats,
} from '../../../passes/quant/calibration.js';
import { HIST_BINS, StreamingHistogram } from '../../../passes/quant/histogram.js';
import { knownNonNegative } from '../../../passes/quant/value-range.js';
import type { ActivationPlan, Calibrator, TensorQuant } from '../../../passes/quant/types.js';

const I8: TensorQuant = { dtype: 'i8', granularity: { kind: 'per-tensor' }, symmetric: true };
const U8: TensorQuant = { dtype: 'u8', granularity: { kind: 'per-tensor' }, symmetric: false };
const I4: TensorQuant = { dtype: 'i4', granularity: { kind: 'per-tensor' }, symmetric: true };

function plan(calibrator: Calibrator, quant: TensorQuant = I8, extra: Partial<ActivationPlan> = {}): ActivationPlan {
  return { tensor: 'x', quant, calibrator, consumers: [], ...extra };
}

function statsOf(h: StreamingHistogram): TensorStats {
  return { tensor: 'x', count: h.total, nonFinite: h.nonFinite, min: h.min, max: h.max, histogram: h };
}

function normals(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

function laplace(n: number, seed: number, b = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r() - 0.5;
    out[i] = -b * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  }
  return out;
}

/** Exact signed counts on the grid [-R, R) with `bins` per side, float64 floor((x + R) / w). */
function exactCounts(values: Iterable<number>, R: number, bins: number): Float64Array {
  const w = R / bins;
  const c = new Float64Array(2 * bins);
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const j = Math.min(2 * bins - 1, Math.floor((v + R) / w));
    c[j]++;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// Histogram

test('range growth merges bin pairs exactly: counts equal binning everything on the final grid', () => {
  const r = mulberry32(7);
  // the first batch's absmax is exactly 1, so every grid is dyadic and the float arithmetic is exact
  const batches: Float32Array[] = [];
  const first = Float32Array.from({ length: 5000 }, () => (r() * 2 - 1) * 0.999);
  first[17] = -1;
  batches.push(first);
  batches.push(Float32Array.from({ length: 5000 }, () => (r() * 2 - 1) * 3.7)); // grows to 4
  batches.push(Float32Array.from({ length: 5000 }, () => r() * 0.5)); // no growth
  batches.push(Float32Array.from({ length: 5000 }, () => -r() * 29)); // grows to 32
  const all = batches.flatMap((b) => Array.from(b));
  for (const path of ['add', 'addWithRange'] as const) {
    const h = new StreamingHistogram();
    for (const b of batches) {
      if (path === 'add') h.add(b);
      else h.addWithRange(b, Math.min(...b), Math.max(...b));
    }
    assert.equal(h.range, 32, path);
    assert.deepEqual(Array.from(h.counts), Array.from(exactCounts(all, 32, HIST_BINS)), path);
    assert.equal(h.total, all.length);
    assert.equal(h.min, Math.min(...all));
    assert.equal(h.max, Math.max(...all));
    // |x| fold and the two sides agree with direct counting
    const abs = h.absCounts();
    // |x| bins are the mirror of the signed ones: a negative value exactly on an edge, -k·w, sits in the signed
    // bin [-k·w, -(k-1)·w), that is |x| bin k-1
    const w = 32 / HIST_BINS;
    const exAbs = new Float64Array(HIST_BINS);
    for (const v of all) exAbs[v < 0 ? Math.ceil(-v / w) - 1 : Math.floor(v / w)]++;
    assert.deepEqual(Array.from(abs), Array.from(exAbs), `${path} abs`);
  }
});

test('growth in the middle of a batch (overflow buffer full) and a small histogram', () => {
  const r = mulberry32(3);
  const h = new StreamingHistogram(16);
  const a = Float32Array.from({ length: 100 }, () => r() - 0.5);
  a[0] = 0.5;
  // 10000 values beyond the first range: several flushes of the overflow buffer, range 0.5 -> 64
  const b = Float32Array.from({ length: 10000 }, () => (r() - 0.5) * 120);
  h.add(a);
  h.add(b);
  assert.equal(h.range, 64);
  assert.deepEqual(Array.from(h.counts), Array.from(exactCounts([...a, ...b], 64, 16)));
});

test('NaN and infinities are counted, not binned; all-zero data keeps the range unset until a value arrives', () => {
  const h = new StreamingHistogram();
  h.add(Float32Array.from([0, 0, NaN, 0]));
  assert.equal(h.range, 0);
  assert.equal(h.total, 3);
  assert.equal(h.nonFinite, 1);
  h.add(Float32Array.from([1, -2, Infinity, NaN, -Infinity, 0.5]));
  assert.equal(h.range, 2);
  assert.equal(h.total, 6);
  assert.equal(h.nonFinite, 4);
  assert.equal(h.min, -2);
  assert.equal(h.max, 1);
  assert.deepEqual(Array.from(h.counts), Array.from(exactCounts([0, 0, 0, 1, -2, 0.5], 2, HIST_BINS)));
  // the fast path traps NaN the same way
  const g = new StreamingHistogram();
  g.addWithRange(Float32Array.from([1, NaN, -0.25, NaN, 0]), -0.25, 1);
  assert.equal(g.nonFinite, 2);
  assert.equal(g.total, 3);
  assert.deepEqual(Array.from(g.counts), Array.from(exactCounts([1, -0.25, 0], 1, HIST_BINS)));
});

// ---------------------------------------------------------------------------------------------------------------
// Calibrators

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length - 1e-9) - 1)]!;
}

test('percentile: within one bin of the exact sorted quantile (|x| symmetric, two tails asymmetric)', () => {
  const data = new Float32Array([...normals(150_000, 1), ...laplace(50_000, 2, 3)]);
  const h = new StreamingHistogram();
  for (let i = 0; i < data.length; i += 20_000) h.add(data.subarray(i, i + 20_000));
  const s = statsOf(h);
  const w = h.width;
  const abs = Float64Array.from(data, Math.abs).sort();
  const signed = Float64Array.from(data).sort();
  for (const p of [99, 99.9, 99.99]) {
    const r = computeRange(s, plan('percentile', I8, { percentile: p }));
    const T = Math.max(-r.min, r.max);
    assert.ok(Math.abs(T - quantile(abs, p / 100)) <= w, `sym p${p}: ${T} vs ${quantile(abs, p / 100)}`);
    const a = computeRange(s, plan('percentile', U8, { percentile: p }));
    const cut = (100 - p) / 200;
    assert.ok(Math.abs(a.max - quantile(signed, 1 - cut)) <= w, `asym hi p${p}`);
    assert.ok(Math.abs(a.min - quantile(signed, cut)) <= w, `asym lo p${p}`);
  }
  // default is 99.99; 100 is the maximum
  assert.deepEqual(computeRange(s, plan('percentile')), computeRange(s, plan('percentile', I8, { percentile: 99.99 })));
  const all = computeRange(s, plan('percentile', I8, { percentile: 100 }));
  assert.deepEqual(all, { min: h.min, max: h.max }); // the whole range, cut to the data on each side
  assert.throws(() => computeRange(s, plan('percentile', I8, { percentile: 0 })), (e: unknown) => e instanceof QccError && e.code === 'E_USAGE');
});

/**
 * The KL search written from its definition in float64, O(n²), independently of calibration.ts: bin 0 := bin 1;
 * for i = 128..n: P = h[0..i) with the mass beyond added to P[i-1]; Q = h[0..i) summed over groups
 * floor(k·levels/i), spread over the bins where P != 0; smoothing eps = 1e-4 (zeros get eps, non-zeros lose
 * eps·zeros/nonzeros); KL(P/ΣP || Q/ΣQ). Returns the first argmin and the KL values.
 */
function bruteKl(hIn: Float64Array, levels: number): { best: number; kl: Map<number, number> } {
  const h = Array.from(hIn);
  h[0] = h[1]!;
  let n = h.length;
  while (n > 0 && h[n - 1] === 0) n--;
  const kl = new Map<number, number>();
  const smooth = (x: number[]): number[] | undefined => {
    const zeros = x.filter((v) => v === 0).length;
    const nonzeros = x.length - zeros;
    if (nonzeros === 0) return undefined;
    const e1 = (1e-4 * zeros) / nonzeros;
    return x.map((v) => (v === 0 ? 1e-4 : v - e1));
  };
  let best = n;
  let bestKl = Infinity;
  for (let i = 128; i <= n; i++) {
    const p = h.slice(0, i);
    p[i - 1]! += h.slice(i, n).reduce((a, b) => a + b, 0);
    const groupOf = (k: number): number => Math.floor((k * levels) / i);
    const G = new Array<number>(levels).fill(0);
    const norm = new Array<number>(levels).fill(0);
    for (let k = 0; k < i; k++) {
      G[groupOf(k)]! += h[k]!;
      if (p[k] !== 0) norm[groupOf(k)]!++;
    }
    const q = p.map((pk, k) => (pk !== 0 ? G[groupOf(k)]! / norm[groupOf(k)]! : 0));
    const ps = smooth(p);
    const qs = smooth(q);
    if (!ps || !qs || qs.some((v) => v <= 0)) continue;
    const sp = ps.reduce((a, b) => a + b, 0);
    const sq = qs.reduce((a, b) => a + b, 0);
    let d = 0;
    for (let k = 0; k < i; k++) {
      const pk = ps[k]! / sp;
      d += pk * Math.log(pk / (qs[k]! / sq));
    }
    kl.set(i, d);
    if (d < bestKl) {
      bestKl = d;
      best = i;
    }
  }
  return { best, kl };
}

test('entropy: the threshold clips the outliers of a Gaussian and equals a brute-force float64 KL search on the same bins', () => {
  const g = normals(200_000, 11);
  const data = new Float32Array(g.length + 40);
  data.set(g);
  const r = mulberry32(5);
  for (let k = 0; k < 40; k++) data[g.length + k] = (r() < 0.5 ? -1 : 1) * (40 + 40 * r()); // outliers at 40..80
  const h = new StreamingHistogram();
  h.add(data);
  const abs = h.absCounts();
  const ours = klThreshold(abs, 128);
  const ref = bruteKl(abs, 128);
  assert.equal(ours, ref.best, `KL argmin ${ours} vs brute force ${ref.best} (KL ${ref.kl.get(ours)} vs ${ref.kl.get(ref.best)})`);
  const range = computeRange(statsOf(h), plan('entropy'));
  assert.ok(range.max < 40, `threshold ${range.max} clips the outliers`);
  assert.ok(range.max > 3, `threshold ${range.max} keeps the Gaussian body`);
  assert.equal(range.min, -range.max);

  // a ReLU-like distribution (half exact zeros, exponential tail), one-sided with 256 levels as for uint8
  const relu = Float32Array.from(laplace(100_000, 9, 1), (v) => Math.max(0, v));
  const hr = new StreamingHistogram();
  hr.add(relu);
  const pos = hr.sideCounts('pos');
  for (const levels of [128, 256]) {
    assert.equal(klThreshold(pos, levels), bruteKl(pos, levels).best, `relu, ${levels} levels`);
  }
  const ar = computeRange(statsOf(hr), plan('entropy', U8));
  assert.equal(ar.min, 0);
  assert.ok(ar.max > 3 && ar.max < Math.max(...relu), `relu range ${ar.max}`);
});

/** Exact MSE of symmetric quantization with levels [-top, top] and threshold T over raw samples, float64. */
function rawMse(data: Float32Array, T: number, top: number): number {
  const s = T / top;
  let e = 0;
  for (let k = 0; k < data.length; k++) {
    const x = data[k]!;
    const q = Math.max(-top, Math.min(top, Math.round(x / s))) * s;
    e += (x - q) * (x - q);
  }
  return e / data.length;
}

/** Brute-force argmin over thresholds (0, amax]: 200 steps, then 400 steps around the best (resolution amax/40000). */
function argminFine(amax: number, f: (t: number) => number): { t: number; e: number } {
  let t = amax;
  let e = Infinity;
  for (let k = 1; k <= 200; k++) {
    const v = f((amax * k) / 200);
    if (v < e) [t, e] = [(amax * k) / 200, v];
  }
  const c = t;
  for (let k = -200; k <= 200; k++) {
    const x = c + (amax * k) / 40_000;
    if (x <= 0 || x > amax) continue;
    const v = f(x);
    if (v < e) [t, e] = [x, v];
  }
  return { t, e };
}

test('mse: the threshold agrees within a bin with a brute-force float64 search over raw samples (int8, int4)', () => {
  const cases = [
    ['laplace i4', I4, 7, laplace(60_000, 21, 1), true],
    ['laplace i8', I8, 127, laplace(60_000, 22, 1), true],
    ['normal i8', I8, 127, normals(60_000, 3), true],
    // a few far outliers: the optimum is flat (many thresholds within 0.01 % of the best MSE), so only the MSE is compared
    ['laplace + outliers i8', I8, 127, new Float32Array([...laplace(60_000, 22, 1), ...normals(100, 23).map((v) => v * 30)]), false],
  ] as const;
  for (const [name, quant, top, data, sharp] of cases) {
    const h = new StreamingHistogram();
    h.add(data);
    const w = h.width;
    const r = computeRange(statsOf(h), plan('mse', quant));
    const T = Math.max(-r.min, r.max); // ±T cut to the data on each side
    const amax = Math.max(-h.min, h.max);
    const { t: bestT, e: best } = argminFine(amax, (t) => rawMse(data, t, top));
    if (sharp) assert.ok(Math.abs(T - bestT) <= 1.5 * w, `${name}: mse threshold ${T} vs brute force ${bestT} (bin ${w})`);
    assert.ok(rawMse(data, T, top) <= best * 1.0005, `${name}: its MSE ${rawMse(data, T, top)} vs optimum ${best}`);
    assert.ok(T < amax * 0.95, `${name}: clips the tail`);
    assert.deepEqual(r, { min: Math.max(-T, h.min), max: Math.min(T, h.max) });
  }
  // fp8 (E4M3 grid, scale T/448): against a brute-force search with the real E4M3 codec
  const h8 = new StreamingHistogram();
  const g = laplace(20_000, 5, 1);
  h8.add(g);
  const r8 = computeRange(statsOf(h8), plan('mse', { dtype: 'fp8e4m3', granularity: { kind: 'per-tensor' }, symmetric: true }));
  const fp8Mse = (T: number): number => {
    const s = T / 448;
    let e = 0;
    for (const x of g) e += (x - decodeFloat8E4M3FN(encodeFloat8E4M3FN(x / s)) * s) ** 2;
    return e / g.length;
  };
  const amax8 = Math.max(-h8.min, h8.max);
  const best8 = argminFine(amax8, fp8Mse).e;
  const T8 = Math.max(-r8.min, r8.max);
  assert.ok(fp8Mse(T8) <= best8 * 1.01, `fp8: MSE ${fp8Mse(T8)} at ${T8} vs best ${best8}`);
  // a histogram with nothing but one bin: the threshold covers it
  const one = new Float64Array(2048);
  one[100] = 1000;
  assert.ok(mseThreshold(one, { top: 127, G: (y: number) => (y * y * y) / 3 }) >= 101);
});

test('mse asymmetric (uint8): shrinking [min, max] lowers the raw-sample MSE below minmax and near the best shrink', () => {
  const data = Float32Array.from(laplace(80_000, 31, 1), (v) => (v > 0 ? v * 2 : v * 0.5));
  const h = new StreamingHistogram();
  h.add(data);
  const quantErr = (lo: number, hi: number): number => {
    const s = (hi - lo) / 255;
    const z = Math.round(-lo / s);
    let e = 0;
    for (const x of data) {
      const q = (Math.max(0, Math.min(255, Math.round(x / s) + z)) - z) * s;
      e += (x - q) ** 2;
    }
    return e / data.length;
  };
  const r = computeRange(statsOf(h), plan('mse', U8));
  const mm = computeRange(statsOf(h), plan('minmax', U8));
  let best = Infinity;
  for (let k = 20; k <= 400; k++) best = Math.min(best, quantErr((mm.min * k) / 400, (mm.max * k) / 400));
  const ours = quantErr(r.min, r.max);
  assert.ok(ours < quantErr(mm.min, mm.max), 'better than minmax');
  assert.ok(ours <= best * 1.01, `mse ${ours} vs best shrink ${best}`);
  assert.ok(r.min < 0 && r.max > 0);
});

test('clamp and zero: a Relu-absorbed range starts at 0, asymmetric ranges include 0, histogram calibrators need a histogram', () => {
  const data = normals(50_000, 41);
  const h = new StreamingHistogram();
  h.add(data);
  const s = statsOf(h);
  const relu = { clamp: { min: 0 } };
  assert.deepEqual(computeRange(s, plan('minmax', U8, relu)), { min: 0, max: h.max });
  assert.deepEqual(computeRange(s, plan('minmax', I8, relu)), { min: 0, max: h.max });
  const six = computeRange(s, plan('minmax', U8, { clamp: { min: 0, max: 1.5 } }));
  assert.deepEqual(six, { min: 0, max: 1.5 });
  // percentile of the clamped distribution: the negatives collapse onto 0 and stop counting in |x|
  const pos = Float64Array.from(data, (v) => Math.max(0, v)).sort();
  const pr = computeRange(s, plan('percentile', I8, { clamp: { min: 0 }, percentile: 99.9 }));
  assert.equal(pr.min, 0);
  assert.ok(Math.abs(pr.max - quantile(pos, 0.999)) <= h.width);
  // all-positive data, asymmetric: 0 is included
  const hp = new StreamingHistogram();
  hp.add(Float32Array.from([2, 3, 5]));
  assert.deepEqual(computeRange(statsOf(hp), plan('minmax', U8)), { min: 0, max: 5 });
  // statistics without histogram
  const mm: TensorStats = { tensor: 'x', count: 3, nonFinite: 0, min: -1, max: 2 };
  assert.deepEqual(computeRange(mm, plan('minmax')), { min: -1, max: 2 });
  assert.throws(() => computeRange(mm, plan('entropy')), (e: unknown) => e instanceof QccError && e.code === 'E_USAGE' && /histogram/.test(e.message));
  // no data at all: a degenerate range
  assert.deepEqual(computeRange({ tensor: 'x', count: 0, nonFinite: 5, min: Infinity, max: -Infinity }, plan('minmax')), { min: 0, max: 0 });
});

test('qparamsFor: int8 / int16 / fp8 symmetric, uint8 asymmetric with exact zero, degenerate ranges', () => {
  const pt = { kind: 'per-tensor' } as const;
  const f = Math.fround;
  assert.deepEqual(qparamsFor({ min: -2.54, max: 1 }, I8), { scale: f(2.54 / 127), zeroPoint: 0 });
  assert.deepEqual(qparamsFor({ min: -1, max: 3 }, { dtype: 'i16', granularity: pt, symmetric: true }), { scale: f(3 / 32767), zeroPoint: 0 });
  assert.deepEqual(qparamsFor({ min: -1, max: 896 }, { dtype: 'fp8e4m3', granularity: pt, symmetric: true }), { scale: 2, zeroPoint: 0 });
  assert.deepEqual(qparamsFor({ min: -0.5, max: 0.25 }, I4), { scale: f(0.5 / 7), zeroPoint: 0 });
  // uint8: scale 4/255, zp = round(0 - (-1)/scale) = round(63.75) = 64
  const q = qparamsFor({ min: -1, max: 3 }, U8);
  assert.equal(q.scale, f(4 / 255));
  assert.equal(q.zeroPoint, 64);
  // the real value of q = zp is exactly 0, and the covered range is [min, max] nudged by at most scale/2
  assert.equal((q.zeroPoint - q.zeroPoint) * q.scale, 0);
  assert.ok(Math.abs((0 - q.zeroPoint) * q.scale - -1) <= q.scale / 2);
  assert.ok(Math.abs((255 - q.zeroPoint) * q.scale - 3) <= q.scale / 2);
  // half-even zero point: range [-1, 1.5]: -(-1)/(2.5/255) = 102 exactly; [-0.5, 2]: 51
  assert.equal(qparamsFor({ min: -0.5, max: 2 }, U8).zeroPoint, 51);
  assert.deepEqual(qparamsFor({ min: 2, max: 5.1 }, U8), { scale: f(5.1 / 255), zeroPoint: 0 });
  assert.deepEqual(qparamsFor({ min: -3, max: -1 }, U8), { scale: f(3 / 255), zeroPoint: 255 });
  // int8 asymmetric
  assert.deepEqual(qparamsFor({ min: 0, max: 2.55 }, { dtype: 'i8', granularity: pt, symmetric: false }), { scale: f(2.55 / 255), zeroPoint: -128 });
  // degenerate: never zero or non-finite
  for (const r of [{ min: 0, max: 0 }, { min: NaN, max: NaN }, { min: 0, max: 1e-300 }]) {
    for (const t of [I8, U8]) {
      const p = qparamsFor(r, t);
      assert.ok(p.scale >= MIN_SCALE && Number.isFinite(p.scale) && Math.fround(p.scale) === p.scale, JSON.stringify([r, p]));
      assert.ok(Number.isInteger(p.zeroPoint));
    }
  }
  const inf = qparamsFor({ min: -Infinity, max: Infinity }, I8);
  assert.ok(Number.isFinite(inf.scale) && inf.scale > 0);
  assert.throws(() => qparamsFor({ min: -1, max: 1 }, { dtype: 'i8', granularity: { kind: 'per-channel', axis: 0 }, symmetric: true }), QccError);
});

// ---------------------------------------------------------------------------------------------------------------
// collectStatistics

/** x [N,6] -> MatMul -> Relu -> Add -> Tanh -> Mul; `probe` also outputs the intermediates (the reference). */
function smallModel(probe: boolean): Model {
  const b = new GraphBuilder('calib', { opset: 17 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 6]);
  const r = mulberry32(99);
  const w = b.f32('w', [6, 5], Array.from({ length: 30 }, () => r() * 2 - 1));
  const c = b.f32('c', [5], [0.5, -1, 2, 0, 3]);
  const mm = b.op('MatMul', [x, w], { name: 'mm' });
  const relu = b.op('Relu', [mm], { name: 'relu' });
  const add = b.op('Add', [relu, c], { name: 'add' });
  const th = b.op('Tanh', [add], { name: 'tanh' });
  const y = b.op('Mul', [th, mm], { name: 'mul' });
  b.output(y);
  if (probe) b.output(mm, relu, add, th);
  return b.build();
}

test('collectStatistics on a small model: min/max equal the float64 reduction of ORT-computed tensors; progress and exclude', async () => {
  const m = smallModel(false);
  const ref = smallModel(true);
  const names = ['x', 'mm', 'relu', 'add', 'tanh', 'c'];
  const output = (n: string): string => (n === 'x' || n === 'c' ? n : `${n}_out`);
  const data = randomCalibration(m, { samples: 10, batchSize: 3, seed: 4 });
  const plans = names.map((n, i) => ({ ...plan(i % 2 ? 'minmax' : 'percentile'), tensor: output(n) }));
  const progress: [number, number][] = [];
  const stats = await collectStatistics(m, plans, data, { onProgress: (d, t) => progress.push([d, t]) });
  assert.deepEqual(progress, [[3, 10], [6, 10], [9, 10], [10, 10]]);
  // reference: run the model with the intermediates as outputs, reduce in float64
  const s = await createSession(ref, { optimization: 'disabled' });
  const acc = new Map<string, { min: number; max: number; n: number; values: number[] }>();
  for await (const feeds of data.batches()) {
    const out = await run(s, feeds);
    for (const n of names) {
      if (n === 'c' && acc.has('c')) continue; // an initializer is measured once
      const d = n === 'x' ? feeds.x!.data : n === 'c' ? [0.5, -1, 2, 0, 3] : out[output(n)]!.data;
      const a = acc.get(n) ?? { min: Infinity, max: -Infinity, n: 0, values: [] };
      for (const v of Array.from(d as ArrayLike<number>)) {
        a.min = Math.min(a.min, v);
        a.max = Math.max(a.max, v);
        a.n++;
        a.values.push(v);
      }
      acc.set(n, a);
    }
  }
  await s.release();
  for (const [i, n] of names.entries()) {
    const st = stats.get(output(n))!;
    const a = acc.get(n)!;
    assert.equal(st.min, a.min, `${n} min`);
    assert.equal(st.max, a.max, `${n} max`);
    assert.equal(st.count, a.n, `${n} count`);
    assert.equal(st.nonFinite, 0);
    assert.equal(st.histogram !== undefined, i % 2 === 0, `${n}: histogram only for histogram calibrators`);
    if (st.histogram) {
      const sorted = Float64Array.from(a.values.map(Math.abs)).sort();
      const r = computeRange(st, plans[i]!);
      assert.ok(Math.abs(r.max - quantile(sorted, 0.9999)) <= st.histogram.width, `${n} percentile`);
    }
  }
  // exclude batch 1: three samples fewer, progress still reaches the total
  const progress2: number[] = [];
  const ex = await collectStatistics(m, plans, data, { exclude: (_f, i) => i === 1, onProgress: (d) => progress2.push(d) });
  assert.equal(ex.get(output('mm'))!.count, acc.get('mm')!.n - 3 * 5);
  assert.deepEqual(progress2, [3, 6, 9, 10]);
  // errors
  await assert.rejects(collectStatistics(m, [{ ...plan('minmax'), tensor: 'nope' }], data), (e: unknown) => e instanceof QccError && e.code === 'E_USAGE' && e.loc.tensor === 'nope');
});

test('collectStatistics refuses integer tensors', async () => {
  const b = new GraphBuilder('ints', { opset: 17 });
  const x = b.input('ids', 'i64', [{ param: 'N' }, 4]);
  const y = b.op('Add', [x, b.i64('one', [1])], { name: 'add' });
  b.output(y);
  const m = b.build();
  await assert.rejects(
    collectStatistics(m, [{ ...plan('minmax'), tensor: y.name }], randomCalibration(m, { samples: 1 })),
    (e: unknown) => e instanceof QccError && e.code === 'E_UNSUPPORTED',
  );
});

/** Full collections until ArrayBuffers freed by finalizers are gone too. */
async function gc(): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const run = vm.runInNewContext('gc') as () => void;
  for (let k = 0; k < 4; k++) {
    run();
    await new Promise((r) => setImmediate(r));
  }
}

test('zoo resnet18: memory does not grow with the samples and the statistics are deterministic', async () => {
  const m = await buildZooModel('resnet18', { batch: 2 });
  const names = [...new Set(m.graph.nodeArray().filter((n) => n.op === 'Conv' || n.op === 'Add' || n.op === 'Gemm').flatMap((n) => n.inputs))]
    .filter((v) => v !== null && !v.isInitializer && !v.isGraphInput)
    .map((v) => v!.name);
  assert.ok(names.length > 20);
  const plans = names.map((t) => ({ ...plan('percentile'), tensor: t }));
  const memAfter = async (samples: number): Promise<{ mem: number; stats: Map<string, TensorStats> }> => {
    const stats = await collectStatistics(m, plans, randomCalibration(m, { samples, seed: 1 }));
    await gc();
    const u = process.memoryUsage();
    return { mem: u.heapUsed + u.arrayBuffers, stats };
  };
  const a = await memAfter(4);
  const b = await memAfter(16);
  const c = await memAfter(4);
  // bytes of the activations one batch (2 samples) hands to JS; keeping the batches would add 6 of them
  let perSample = 0;
  for (const t of names) perSample += (a.stats.get(t)!.count / 4) * 4;
  const batch = 2 * perSample;
  const grown = b.mem - a.mem;
  assert.ok(batch > 10e6, `one batch is ${(batch / 1e6).toFixed(1)} MB`);
  assert.ok(grown < 1.5 * batch, `memory grew by ${(grown / 1e6).toFixed(1)} MB from 4 to 16 samples (one batch: ${(batch / 1e6).toFixed(1)} MB)`);
  for (const t of names) {
    const x = a.stats.get(t)!;
    const y = c.stats.get(t)!;
    assert.equal(x.min, y.min);
    assert.equal(x.max, y.max);
    assert.deepEqual(Array.from(x.histogram!.counts), Array.from(y.histogram!.counts), t);
    assert.deepEqual(computeRange(x, plans[0]!), computeRange(y, plans[0]!));
    assert.ok(b.stats.get(t)!.count === 4 * x.count);
  }
});

test('feeds with NaN and Inf: histogram tensors count them exactly, minmax tensors drop the batch', async () => {
  const b = new GraphBuilder('nan', { opset: 17 });
  const x = b.input('x', 'f32', [1, 4]);
  const y = b.op('Mul', [x, b.f32('two', [], [2])], { name: 'mul' });
  const z = b.op('Neg', [y], { name: 'neg' });
  b.output(z);
  const m = b.build();
  const batches: Feeds[] = [[1, NaN, -3, 2], [0.5, Infinity, 1, 1], [4, 4, 4, 4]].map((v) => ({ x: new ort.Tensor('float32', Float32Array.from(v), [1, 4]) }));
  const data = { source: 'npy' as const, samples: 3, async *batches(): AsyncIterable<Feeds> { yield* batches; } };
  const st = await collectStatistics(m, [{ ...plan('percentile'), tensor: y.name }, { ...plan('minmax'), tensor: z.name }], data);
  const hy = st.get(y.name)!;
  assert.equal(hy.nonFinite, 2);
  assert.equal(hy.count, 10);
  assert.equal(hy.min, -6);
  assert.equal(hy.max, 8);
  // z = -2x: batch 2 holds -Infinity and is dropped whole; batch 1 holds a NaN, which onnxruntime's
  // ReduceMin/ReduceMax skip (max 6) unless it comes first (then the batch is dropped too)
  const mz = st.get(z.name)!;
  assert.equal(mz.min, -8);
  assert.equal(mz.count + mz.nonFinite, 12);
  assert.ok(mz.nonFinite === 4 ? mz.max === 6 : mz.nonFinite === 8 && mz.max === -8, JSON.stringify(mz));
});

test('float16 tensors: reduced in float32, histogram data decoded', async () => {
  const b = new GraphBuilder('half', { opset: 17 });
  const x = b.input('x', 'f16', [{ param: 'N' }, 8]);
  const relu = b.op('Relu', [x], { name: 'relu' });
  const neg = b.op('Neg', [relu], { name: 'neg' });
  b.output(neg);
  const m = b.build();
  const data = randomCalibration(m, { samples: 3, seed: 2 });
  const st = await collectStatistics(m, [{ ...plan('percentile'), tensor: relu.name }, { ...plan('minmax'), tensor: neg.name }], data);
  const xs: number[] = [];
  for await (const f of data.batches()) xs.push(...decodeF16(f.x!.data as Uint16Array));
  const relus = xs.map((v) => Math.max(0, v));
  assert.equal(st.get(relu.name)!.max, Math.max(...relus));
  assert.equal(st.get(relu.name)!.min, 0);
  assert.equal(st.get(relu.name)!.count, 24);
  assert.equal(st.get(neg.name)!.min, -Math.max(...relus));
  assert.equal(st.get(neg.name)!.count, 24);
});

test('collectStatistics subsamples large histogram tensors: exact min/max, every 11th element binned (the same bins as JS binning that subsample)', async () => {
  // (rank 2: the flat path; image tensors of static size take the pooled probe, tested below)
  const b = new GraphBuilder('sub', { opset: 17 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 4800]);
  const y = b.op('Tanh', [x], { name: 'th' });
  b.output(b.op('Neg', [y], { name: 'neg' }));
  const m = b.build();
  inferShapes(m); // the stride comes from the tensor's inferred shape
  const ref = (() => {
    const b2 = new GraphBuilder('sub', { opset: 17 });
    b2.output(b2.op('Tanh', [b2.input('x', 'f32', [{ param: 'N' }, 4800])], { name: 'th' }));
    return b2.build();
  })();
  const data = randomCalibration(m, { samples: 5, batchSize: 2, seed: 7 });
  const p = { ...plan('percentile'), tensor: 'th_out' };
  // 4800 elements per sample, at most 500 -> stride ceil(4800 / 500) = 10, made odd: 11
  const sub = (await collectStatistics(m, [p], data, { histogramElements: 500 })).get('th_out')!;
  const full = (await collectStatistics(m, [p], data, { histogramElements: Infinity })).get('th_out')!;
  const s = await createSession(ref);
  const h = new StreamingHistogram(HIST_BINS);
  let mn = Infinity;
  let mx = -Infinity;
  let n = 0;
  for await (const feeds of data.batches()) {
    const all = (await run(s, feeds)).th_out!.data as Float32Array;
    const picked = all.filter((_, k) => k % 11 === 0);
    let bmn = Infinity;
    let bmx = -Infinity;
    for (const v of all) (bmn = Math.min(bmn, v)), (bmx = Math.max(bmx, v));
    h.addWithRange(picked, bmn, bmx);
    mn = Math.min(mn, bmn);
    mx = Math.max(mx, bmx);
    n += all.length;
  }
  await s.release();
  assert.equal(full.count, n);
  assert.equal(sub.count, Math.ceil(9600 / 11) * 2 + Math.ceil(4800 / 11));
  assert.deepEqual([sub.min, sub.max], [mn, mx], 'min and max come from every element');
  assert.deepEqual([full.min, full.max], [mn, mx]);
  assert.deepEqual([...sub.histogram!.counts], [...h.counts], 'the binned subsample is every 11th element in memory order');
  // the percentile of the subsample stays near the full one (tanh of N(0,1) noise: smooth tail)
  const a = computeRange(sub, p).max;
  const f = computeRange(full, p).max;
  assert.ok(Math.abs(a - f) < 0.02, `percentile ${a} vs ${f}`);
});

test('collectStatistics channelMeans: per-channel means over every sample equal the float64 reference, also for a tensor typed without element type', async () => {
  const m = smallModel(false);
  inferShapes(m);
  // an annotation with a shape but no element type (seen in exported models): the probe copy drops it for
  // onnxruntime, the rank must come from the input model
  const mm = m.graph.findValue('mm_out')!;
  new Rewriter(m.graph).setType(mm, { kind: 'tensor', dtype: undefined, shape: mm.shape } as never);
  const ref = smallModel(true);
  const data = randomCalibration(m, { samples: 7, batchSize: 3, seed: 9 });
  const plans = ['x', 'mm_out', 'relu_out'].map((t) => ({ ...plan('minmax'), tensor: t }));
  const stats = await collectStatistics(m, plans, data, { channelMeans: new Map([['x', -1], ['mm_out', -1], ['relu_out', 1]]) });
  const s = await createSession(ref, { optimization: 'disabled' });
  const sums = new Map<string, Float64Array>();
  let rows = 0;
  for await (const feeds of data.batches()) {
    const out = await run(s, feeds);
    const n = Number(feeds.x!.dims[0]);
    rows += n;
    for (const [name, d, c] of [['x', feeds.x!.data, 6], ['mm_out', out.mm_out!.data, 5], ['relu_out', out.relu_out!.data, 5]] as const) {
      const acc = sums.get(name) ?? new Float64Array(c);
      for (let r = 0; r < n; r++) for (let k = 0; k < c; k++) acc[k]! += (d as Float32Array)[r * c + k]!;
      sums.set(name, acc);
    }
  }
  await s.release();
  for (const [name, acc] of sums) {
    const got = stats.get(name)!.channelMean!;
    assert.equal(got.length, acc.length, name);
    // ReduceMean in float32 per batch, weighted in float64: agreement to float32 rounding
    for (let k = 0; k < acc.length; k++) assert.ok(Math.abs(got[k]! - acc[k]! / rows) < 1e-5, `${name}[${k}]: ${got[k]} vs ${acc[k]! / rows}`);
  }
  // relu_out [N,5] with channel axis 1 is the same as -1 here; an axis outside the rank is refused
  await assert.rejects(collectStatistics(m, plans, data, { channelMeans: new Map([['mm_out', 2]]) }), /axis 2/);
});

test('pooled probe: an image tensor of static size is read by pooling and depthwise Conv only; exact max (and min, 0 for a Relu output), channel means, and a per-channel-offset grid sample (the same bins as JS binning those elements)', async () => {
  // x [N,4,12,10] -> Relu: non-negative with static dims, so calibration reads it with GlobalMaxPool, a one-hot
  // depthwise Conv (the grid sample) and GlobalAveragePool, never as an NCHW tensor
  const b = new GraphBuilder('pooled', { opset: 17 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 4, 12, 10]);
  const r = b.op('Relu', [x], { name: 'relu' });
  const ng = b.op('Sub', [r, b.f32('half', [], [0.5])], { name: 'sub' });
  b.output(b.op('Tanh', [ng], { name: 'th' }));
  const m = b.build();
  inferShapes(m);
  const data = randomCalibration(m, { samples: 5, batchSize: 2, seed: 3 });
  const p = { ...plan('percentile'), tensor: 'relu_out' };
  const q = { ...plan('percentile'), tensor: 'sub_out' };
  // 480 elements per sample, at most 250: cells of 1x2 (2 <= 4 channels; 2x1 would give as many): 240 per sample
  assert.deepEqual(gridStrides([4, 12, 10], 250), [1, 2]);
  const stats = await collectStatistics(m, [p, q], data, { histogramElements: 250, channelMeans: new Map([['relu_out', 1]]) });
  const refModel = (() => {
    const b2 = new GraphBuilder('pooled', { opset: 17 });
    const r2 = b2.op('Relu', [b2.input('x', 'f32', [{ param: 'N' }, 4, 12, 10])], { name: 'relu' });
    b2.output(r2);
    b2.output(b2.op('Sub', [r2, b2.f32('half', [], [0.5])], { name: 'sub' }));
    return b2.build();
  })();
  const s = await createSession(refModel, { optimization: 'disabled' });
  const ref = { relu_out: { h: new StreamingHistogram(HIST_BINS), mn: Infinity, mx: -Infinity }, sub_out: { h: new StreamingHistogram(HIST_BINS), mn: Infinity, mx: -Infinity } };
  const sums = new Float64Array(4);
  let rows = 0;
  for await (const feeds of data.batches()) {
    const out = await run(s, feeds);
    for (const name of ['relu_out', 'sub_out'] as const) {
      const all = out[name]!.data as Float32Array;
      const n = all.length / 480;
      let bmn = Infinity;
      let bmx = -Infinity;
      for (const v of all) (bmn = Math.min(bmn, v)), (bmx = Math.max(bmx, v));
      // channel c takes column offset c mod 2 in every 1x2 cell: all 12 rows, columns c%2, c%2+2, ...
      const picked: number[] = [];
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < 4; c++) {
          if (name === 'relu_out') {
            let sum = 0;
            for (let k = 0; k < 120; k++) sum += all[i * 480 + c * 120 + k]!;
            sums[c]! += sum / 120;
          }
          for (let row = 0; row < 12; row++) for (let col = c % 2; col < 10; col += 2) picked.push(all[i * 480 + c * 120 + row * 10 + col]!);
        }
      }
      const R = ref[name];
      // the pooled probe bins each batch row by row with the batch's range (0 as the minimum of the Relu output)
      for (let i = 0; i < n; i++) R.h.addWithRange(Float32Array.from(picked.slice(i * 240, (i + 1) * 240)), name === 'relu_out' ? 0 : bmn, bmx);
      R.mn = Math.min(R.mn, bmn);
      R.mx = Math.max(R.mx, bmx);
      if (name === 'relu_out') rows += n;
    }
  }
  await s.release();
  const st = stats.get('relu_out')!;
  assert.equal(st.max, ref.relu_out.mx, 'the maximum of every element');
  assert.equal(st.min, 0, 'a Relu output is bounded below by 0');
  assert.equal(st.count, 5 * 240);
  assert.deepEqual([...st.histogram!.counts], [...ref.relu_out.h.counts], 'the grid sample: channel c at offset c mod cells in every cell');
  for (let c = 0; c < 4; c++) assert.ok(Math.abs(st.channelMean![c]! - sums[c]! / rows) < 1e-6, `mean[${c}]`);
  assert.deepEqual(st.observedShape, [1, 4, 12, 10], 'the static shape (last batch of 1 row)');
  // a signed tensor: the exact minimum too (-max of its negation)
  const sg = stats.get('sub_out')!;
  assert.ok(ref.sub_out.mn < 0);
  assert.deepEqual([sg.min, sg.max], [ref.sub_out.mn, ref.sub_out.mx], 'exact minimum and maximum');
  assert.deepEqual([...sg.histogram!.counts], [...ref.sub_out.h.counts]);
});

test('gridStrides and knownNonNegative', () => {
  // ResNet-50 shapes at 16K elements per sample: divisors of the spatial dims, at most C cells, at least 4K elements
  const cells = (s: number[]) => s.reduce((a, b) => a * b, 1);
  for (const [C, H, W] of [[64, 112, 112], [256, 56, 56], [512, 28, 28], [1024, 14, 14], [2048, 7, 7]] as const) {
    const s = gridStrides([C, H, W], 16384)!;
    const count = (C * H * W) / cells(s);
    assert.ok(H % s[0]! === 0 && W % s[1]! === 0, `${C}x${H}x${W}: strides ${s} divide the dims`);
    assert.ok(cells(s) <= C && count <= 16384 && count >= 16384 / 4, `${C}x${H}x${W}: ${count} elements in ${cells(s)} cells`);
  }
  assert.deepEqual(gridStrides([8, 5, 5], 1000), [1, 1], 'small enough: every element');
  assert.equal(gridStrides([8, 5, 5], 10), undefined, 'nothing fits');
  assert.equal(gridStrides([3, 224, 224], 16384), undefined, 'an image: 3 channels cannot cover the cells of a 16K grid');
  assert.equal(gridStrides([3, 197, 197], 16384), undefined, 'attention scores: prime dims, no grid');
  assert.deepEqual([0, 1, 2, 3].map((c) => gridOffset(c, 2)), [0, 1, 0, 1]);
  const b = new GraphBuilder('nn', { opset: 17 });
  const x = b.input('x', 'f32', [1, 2, 4, 4]);
  const relu = b.op('Relu', [x], { name: 'relu' });
  const pool = b.op('MaxPool', [relu], { name: 'pool', attrs: { kernel_shape: [2, 2] } });
  const clip06 = b.op('Clip', [x, b.f32('lo', [], [0]), b.f32('hi', [], [6])], { name: 'clip06' });
  const clipm = b.op('Clip', [x, b.f32('lo2', [], [-1]), b.f32('hi2', [], [1])], { name: 'clipm' });
  const th = b.op('Tanh', [relu], { name: 'tanh' });
  const sig = b.op('Sigmoid', [x], { name: 'sig' });
  b.output(b.op('Add', [b.op('Add', [pool, b.op('Add', [clip06, clipm], { name: 'a1' })], { name: 'a2' }), b.op('Add', [th, sig], { name: 'a3' })], { name: 'a4' }));
  const g = b.build().graph;
  const nn = (t: string) => knownNonNegative(g.findValue(t)!);
  assert.deepEqual(['relu_out', 'pool_out', 'clip06_out', 'sig_out'].map(nn), [true, true, true, true]);
  assert.deepEqual(['x', 'clipm_out', 'tanh_out', 'a1_out'].map(nn), [false, false, false, false]);
});

test('coprimeStride: the smallest stride at or above the budget ratio that is coprime with every trailing product of the dims', () => {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  // ViT-Ti tokens [197, 192]: 3 would sample the same 64 of 192 features in every token; 4 is even; 5 reaches all
  assert.equal(coprimeStride([197, 192], 16384), 5);
  const seen = new Set<number>();
  for (let i = 0; i * 5 < 197 * 192; i++) seen.add((i * 5) % 192);
  assert.equal(seen.size, 192, 'every feature is sampled');
  // a ResNet-50 layer1 map [256, 56, 56]: 49 divides 56 * 56 (the same positions in every channel); 51 does not
  assert.equal(coprimeStride([256, 56, 56], 16384), 51);
  assert.equal(coprimeStride([4800], 500), 11);
  assert.equal(coprimeStride([10, 10], 1000), 1, 'within the budget: every element');
  const r = mulberry32(5);
  for (let k = 0; k < 200; k++) {
    const dims = Array.from({ length: 1 + Math.floor(r() * 3) }, () => 1 + Math.floor(r() * 300));
    const limit = 1 + Math.floor(r() * 5000);
    const per = dims.reduce((a, d) => a * d, 1);
    const s = coprimeStride(dims, limit);
    if (per <= limit) {
      assert.equal(s, 1);
      continue;
    }
    const trailing = dims.map((_, i) => dims.slice(i).reduce((a, d) => a * d, 1)).filter((t) => t > 1);
    assert.ok(s >= Math.ceil(per / limit) && trailing.every((t) => gcd(s, t) === 1), `${dims} / ${limit}: ${s}`);
    for (let x = Math.ceil(per / limit); x < s; x++) assert.ok(trailing.some((t) => gcd(x, t) !== 1), `${dims} / ${limit}: ${x} < ${s} is coprime too`);
  }
});
