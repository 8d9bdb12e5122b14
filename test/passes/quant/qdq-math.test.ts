// qdq-math: SPEC §9 quantizer vectors, group layouts, |dq(q(w)) - w| <= scale/2 (fast-check), MSE clipping vs brute force, per-channel vs per-tensor.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeFp8, dequantizeInt, quantizeInt, unpackInt4, unpackUint4, type IntQuantDType } from '../../../ir/numerics.js';
import { mulberry32 } from '../../../ir/random.js';
import {
  computeScales,
  DEFAULT_CLIP_RATIOS,
  dequantizeStored,
  groupIds,
  groupLayout,
  quantizeWeight,
  quantizeWithScales,
  sqnrDb,
  type WeightQDType,
} from '../../../passes/quant/qdq-math.js';
import type { Granularity } from '../../../passes/quant/types.js';

// ------------------------------------------------------------------------------------------------
// Independent references (index math by unravelling, element quantizers from ir/numerics)

/** Scale index of element `flat` by unravelling the multi-index (no run tables). */
function refGroup(dims: readonly number[], g: Granularity, flat: number): number {
  if (g.kind === 'per-tensor') return 0;
  const idx: number[] = [];
  let r = flat;
  for (let d = dims.length - 1; d >= 0; d--) {
    idx[d] = r % dims[d]!;
    r = Math.floor(r / dims[d]!);
  }
  const axis = g.axis < 0 ? g.axis + dims.length : g.axis;
  if (g.kind === 'per-channel') return idx[axis]!;
  const sdims = dims.map((d, i) => (i === axis ? Math.ceil(d / g.size) : d));
  let s = 0;
  for (let d = 0; d < dims.length; d++) s = s * sdims[d]! + (d === axis ? Math.floor(idx[d]! / g.size) : idx[d]!);
  return s;
}

/** Stored element i as a number (unpacking int4 / decoding fp8 with ir/numerics). */
function storedValues(data: Int8Array | Uint8Array, dtype: WeightQDType, n: number): Float64Array {
  switch (dtype) {
    case 'i4':
      return Float64Array.from(unpackInt4(data as Uint8Array, n));
    case 'u4':
      return Float64Array.from(unpackUint4(data as Uint8Array, n));
    case 'fp8e4m3':
      return Float64Array.from(data as Uint8Array, (c) => decodeFp8('fp8e4m3', c));
    default:
      return Float64Array.from(data);
  }
}

/** (q - zp) · scale per element in float64, via refGroup and numerics. */
function refDequant(data: Int8Array | Uint8Array, dtype: WeightQDType, dims: readonly number[], g: Granularity, scale: ArrayLike<number>, zp: ArrayLike<number>): Float64Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const q = storedValues(data, dtype, n);
  return Float64Array.from(q, (v, i) => dequantizeInt(v, scale[refGroup(dims, g, i)]!, zp[refGroup(dims, g, i)]!));
}

/** The smallest float32 >= x (x > 0), by stepping Math.fround. */
function f32Up(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  const b = new Float32Array([f]);
  new Uint32Array(b.buffer)[0]! += 1;
  assert.ok(b[0]! > x);
  return b[0]!;
}

function randn(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

// ------------------------------------------------------------------------------------------------

describe('SPEC §9 vectors', () => {
  const perTensor: Granularity = { kind: 'per-tensor' };
  test('int8: Q(2.5)=2, Q(3.5)=4, Q(-2.5)=-2, Q(300)=127, Q(-300)=-128 (scale 1, zp 0)', () => {
    const w = Float64Array.of(2.5, 3.5, -2.5, 300, -300, 0.5, 1.5);
    const r = quantizeWithScales(w, groupLayout([7], perTensor), 'i8', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r.data], [2, 4, -2, 127, -128, 0, 2]);
  });
  test('uint8 with zero point 128: Q(2.5)=130, Q(-300)=0', () => {
    const w = Float64Array.of(2.5, -300, 300);
    const r = quantizeWithScales(w, groupLayout([3], perTensor), 'u8', Float32Array.of(1), Int32Array.of(128));
    assert.deepEqual([...r.data], [130, 0, 255]);
  });
  test('int4 pack(1, -1) = 0xF1; odd count pads a zero high nibble; saturation to [-8, 7]', () => {
    const r = quantizeWithScales(Float64Array.of(1, -1), groupLayout([2], perTensor), 'i4', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r.data], [0xf1]);
    const r3 = quantizeWithScales(Float64Array.of(100, -100, 3), groupLayout([3], perTensor), 'i4', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r3.data], [0x87, 0x03]);
  });
  test('fp8e4m3 saturates to ±448 (codes 0x7E / 0xFE) and rounds half to even', () => {
    // 17 lies between 16 and 18 (spacing 2 in [16, 32)): tie to even mantissa -> 16; 19 -> 20
    const r = quantizeWithScales(Float64Array.of(1e6, -1e6, 17, 19), groupLayout([4], perTensor), 'fp8e4m3', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r.data].map((c) => decodeFp8('fp8e4m3', c)), [448, -448, 16, 20]);
    assert.equal(r.data[0], 0x7e);
    assert.equal(r.data[1], 0xfe);
  });
  test('quantizeWithScales agrees with ir/numerics quantizeInt element-wise, ties included (fast-check)', () => {
    const dtypes: { d: WeightQDType; n: IntQuantDType }[] = [
      { d: 'i8', n: 'i8' },
      { d: 'u8', n: 'u8' },
      { d: 'i4', n: 'i4' },
      { d: 'u4', n: 'u4' },
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...dtypes),
        fc.array(fc.oneof(fc.double({ min: -400, max: 400, noNaN: true }), fc.integer({ min: -300, max: 300 }).map((k) => k + 0.5)), { minLength: 1, maxLength: 40 }),
        fc.constantFrom(1, 0.5, 0.25, 2, 0.1, 3),
        fc.integer({ min: 0, max: 255 }),
        ({ d, n }, xs, s, zpRaw) => {
          const unsigned = d === 'u8' || d === 'u4';
          const zp = unsigned ? zpRaw % (d === 'u8' ? 256 : 16) : 0;
          const scale = Math.fround(s);
          const r = quantizeWithScales(Float64Array.from(xs), groupLayout([xs.length], { kind: 'per-tensor' }), d, Float32Array.of(scale), Int32Array.of(zp));
          const got = storedValues(r.data, d, xs.length);
          xs.forEach((x, i) => assert.equal(got[i], quantizeInt(x, scale, zp, n), `x=${x} scale=${scale} zp=${zp}`));
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});

describe('group layouts', () => {
  const cases: { dims: number[]; g: Granularity; scaleDims: number[] }[] = [
    { dims: [4, 3, 2, 2], g: { kind: 'per-tensor' }, scaleDims: [] },
    { dims: [4, 3, 2, 2], g: { kind: 'per-channel', axis: 0 }, scaleDims: [4] },
    { dims: [3, 5, 2, 2], g: { kind: 'per-channel', axis: 1 }, scaleDims: [5] },
    { dims: [6, 5], g: { kind: 'per-channel', axis: 1 }, scaleDims: [5] },
    { dims: [6, 5], g: { kind: 'per-channel', axis: -1 }, scaleDims: [5] },
    { dims: [10, 3], g: { kind: 'blocked', axis: 0, size: 4 }, scaleDims: [3, 3] },
    { dims: [3, 10], g: { kind: 'blocked', axis: 1, size: 4 }, scaleDims: [3, 3] },
    { dims: [2, 9, 3], g: { kind: 'blocked', axis: 1, size: 2 }, scaleDims: [2, 5, 3] },
    { dims: [8, 4], g: { kind: 'blocked', axis: 0, size: 16 }, scaleDims: [1, 4] },
  ];
  for (const c of cases) {
    test(`[${c.dims}] ${JSON.stringify(c.g)} -> scale [${c.scaleDims}], element groups by unravelled index`, () => {
      const L = groupLayout(c.dims, c.g);
      assert.deepEqual(L.scaleDims, c.scaleDims);
      assert.equal(L.count, c.scaleDims.reduce((a, b) => a * b, 1));
      const ids = groupIds(L);
      const want = Array.from({ length: L.size }, (_, i) => refGroup(c.dims, c.g, i));
      assert.deepEqual([...ids], want);
    });
  }
});

describe('|dq(q(w)) - w| <= scale / 2 inside the range (fast-check)', () => {
  const shapes = fc.oneof(
    fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })).map((d) => [...d]),
    fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 8 })).map((d) => [...d]),
  );
  const gran = (dims: number[]): fc.Arbitrary<Granularity> =>
    fc.oneof(
      fc.constant<Granularity>({ kind: 'per-tensor' }),
      fc.integer({ min: 0, max: dims.length - 1 }).map((axis): Granularity => ({ kind: 'per-channel', axis })),
      fc.tuple(fc.integer({ min: 0, max: dims.length - 1 }), fc.integer({ min: 1, max: 5 })).map(([axis, size]): Granularity => ({ kind: 'blocked', axis, size })),
    );
  const spec = fc.constantFrom(
    { dtype: 'i8' as const, symmetric: true },
    { dtype: 'i4' as const, symmetric: true },
    { dtype: 'u8' as const, symmetric: false },
    { dtype: 'i8' as const, symmetric: false },
    { dtype: 'u4' as const, symmetric: false },
  );
  test('integer types, all granularities, symmetric and asymmetric', () => {
    fc.assert(
      fc.property(
        shapes.chain((dims) => fc.tuple(fc.constant(dims), gran(dims), fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: dims.reduce((a, b) => a * b), maxLength: dims.reduce((a, b) => a * b) }))),
        spec,
        ([dims, g, ws], sp) => {
          const w = Float32Array.from(ws);
          const q = quantizeWeight(w, dims, { ...sp, granularity: g });
          const dq = refDequant(q.data, sp.dtype, dims, g, q.scale, q.zeroPoint);
          for (let i = 0; i < w.length; i++) {
            const s = q.scale[refGroup(dims, g, i)]!;
            assert.ok(s > 0);
            assert.ok(Math.abs(dq[i]! - w[i]!) <= s / 2 + 1e-12 * Math.abs(w[i]!), `element ${i}: w=${w[i]} dq=${dq[i]} scale=${s}`);
          }
          // the library's float64 dequantization and SQNR agree with the reference
          assert.deepEqual(dequantizeStored(q.data, sp.dtype, dims, g, q.scale, q.zeroPoint), dq);
          const want = sqnrDb(w, dq);
          if (Number.isFinite(want)) assert.ok(Math.abs(q.sqnrDb - want) < 1e-9, `sqnr ${q.sqnrDb} vs ${want}`);
          else assert.equal(q.sqnrDb, want);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
  test('symmetric scales are amax / qmax rounded up to float32, per channel, zero points 0; all-zero channels get scale 1', () => {
    const dims = [5, 7];
    const rnd = mulberry32(3);
    const w = Float32Array.from({ length: 35 }, (_, i) => (Math.floor(i / 7) === 2 ? 0 : randn(rnd)));
    for (const [dtype, qmax] of [['i8', 127], ['i4', 7], ['fp8e4m3', 448]] as const) {
      const q = quantizeWeight(w, dims, { dtype, symmetric: true, granularity: { kind: 'per-channel', axis: 0 } });
      for (let c = 0; c < 5; c++) {
        let amax = 0;
        for (let j = 0; j < 7; j++) amax = Math.max(amax, Math.abs(w[c * 7 + j]!));
        assert.equal(q.scale[c], c === 2 ? 1 : f32Up(amax / qmax), `${dtype} channel ${c}`);
        assert.equal(q.degenerate[c], c === 2 ? 1 : 0);
      }
      assert.deepEqual([...q.zeroPoint], [0, 0, 0, 0, 0]);
    }
  });
  test('fp8e4m3: |dq - w| <= |w|/16 + scale·2^-10 (3 mantissa bits, subnormal spacing 2^-9)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 12, maxLength: 12 }), (ws) => {
        const w = Float32Array.from(ws);
        const g: Granularity = { kind: 'per-channel', axis: 0 };
        const q = quantizeWeight(w, [3, 4], { dtype: 'fp8e4m3', symmetric: true, granularity: g });
        const dq = refDequant(q.data, 'fp8e4m3', [3, 4], g, q.scale, q.zeroPoint);
        for (let i = 0; i < 12; i++) {
          const s = q.scale[Math.floor(i / 4)]!;
          assert.ok(Math.abs(dq[i]! - w[i]!) <= Math.abs(w[i]!) / 16 + s * 2 ** -10 + 1e-12, `w=${w[i]} dq=${dq[i]}`);
        }
      }),
      { numRuns: 200, seed: 5 },
    );
  });
});

describe('per-channel vs per-tensor', () => {
  test('one large channel: per-channel SQNR is much higher (whole tensor and worst channel)', (t) => {
    const rnd = mulberry32(9);
    const C = 32;
    const K = 3 * 3 * 16;
    const w = new Float32Array(C * K);
    for (let c = 0; c < C; c++) for (let j = 0; j < K; j++) w[c * K + j] = randn(rnd) * 0.05 * (c === 5 ? 50 : 1);
    const dims = [C, 16, 3, 3];
    const pc = quantizeWeight(w, dims, { dtype: 'i8', symmetric: true, granularity: { kind: 'per-channel', axis: 0 } });
    const pt = quantizeWeight(w, dims, { dtype: 'i8', symmetric: true, granularity: { kind: 'per-tensor' } });
    const dqc = refDequant(pc.data, 'i8', dims, pc.granularity, pc.scale, pc.zeroPoint);
    const dqt = refDequant(pt.data, 'i8', dims, pt.granularity, pt.scale, pt.zeroPoint);
    const worst = (dq: Float64Array): number => {
      let m = Infinity;
      for (let c = 0; c < C; c++) m = Math.min(m, sqnrDb(w.subarray(c * K, (c + 1) * K), dq.subarray(c * K, (c + 1) * K)));
      return m;
    };
    const tensorGain = sqnrDb(w, dqc) - sqnrDb(w, dqt);
    const worstC = worst(dqc);
    const worstT = worst(dqt);
    t.diagnostic(`whole-tensor SQNR per-channel ${sqnrDb(w, dqc).toFixed(1)} dB vs per-tensor ${sqnrDb(w, dqt).toFixed(1)} dB; worst channel ${worstC.toFixed(1)} vs ${worstT.toFixed(1)} dB`);
    assert.ok(Math.abs(pc.sqnrDb - sqnrDb(w, dqc)) < 1e-9);
    assert.ok(tensorGain > 10, `whole-tensor gain ${tensorGain} dB`);
    assert.ok(worstC - worstT > 25, `worst-channel gain ${worstC - worstT} dB`);
    assert.ok(worstC > 40);
  });
});

describe('MSE clipping', () => {
  /** Brute force per channel over the default grid: the minimum squared error, quantizing with ir/numerics. */
  function bruteForce(w: Float32Array, C: number, K: number, dtype: 'i8' | 'i4', qmax: number): { err: number[]; ratio: number[] } {
    const err: number[] = [];
    const ratio: number[] = [];
    for (let c = 0; c < C; c++) {
      let amax = 0;
      for (let j = 0; j < K; j++) amax = Math.max(amax, Math.abs(w[c * K + j]!));
      let best = Infinity;
      let bestR = NaN;
      for (let i = 0; i <= 50; i++) {
        const r = (50 + i) / 100;
        const s = f32Up((amax * r) / qmax);
        let e = 0;
        for (let j = 0; j < K; j++) {
          const v = w[c * K + j]!;
          const d = v - dequantizeInt(quantizeInt(v, s, 0, dtype), s);
          e += d * d;
        }
        if (e < best || (e === best && r > bestR)) {
          best = e;
          bestR = r;
        }
      }
      err.push(best);
      ratio.push(bestR);
    }
    return { err, ratio };
  }

  for (const [dtype, qmax] of [['i4', 7], ['i8', 127]] as const) {
    test(`${dtype}: heavy-tailed weights: searched clip = brute-force optimum, lower MSE than max calibration`, (t) => {
      const rnd = mulberry32(dtype === 'i4' ? 21 : 22);
      const C = 16;
      const K = 256;
      // Student-t with 2 degrees of freedom: heavy tails, a few large outliers per channel
      const w = Float32Array.from({ length: C * K }, () => randn(rnd) / Math.sqrt((randn(rnd) ** 2 + randn(rnd) ** 2) / 2));
      const dims = [C, K];
      const g: Granularity = { kind: 'per-channel', axis: 0 };
      const rtn = quantizeWeight(w, dims, { dtype, symmetric: true, granularity: g });
      const mse = quantizeWeight(w, dims, { dtype, symmetric: true, granularity: g, mseClip: true });
      assert.equal(mse.clipRatio?.length, C);
      const bf = bruteForce(w, C, K, dtype, qmax);
      const dqM = refDequant(mse.data, dtype, dims, g, mse.scale, mse.zeroPoint);
      const dqR = refDequant(rtn.data, dtype, dims, g, rtn.scale, rtn.zeroPoint);
      let totM = 0;
      let totR = 0;
      let totB = 0;
      for (let c = 0; c < C; c++) {
        let eM = 0;
        let eR = 0;
        for (let j = 0; j < K; j++) {
          eM += (w[c * K + j]! - dqM[c * K + j]!) ** 2;
          eR += (w[c * K + j]! - dqR[c * K + j]!) ** 2;
        }
        assert.ok(Math.abs(eM - bf.err[c]!) <= 1e-12 * bf.err[c]!, `channel ${c}: searched ${eM} vs brute force ${bf.err[c]}`);
        assert.equal(mse.clipRatio![c], bf.ratio[c], `channel ${c} ratio`);
        assert.ok(eM <= eR);
        totM += eM;
        totR += eR;
        totB += bf.err[c]!;
      }
      const mean = mse.clipRatio!.reduce((a, b) => a + b, 0) / C;
      t.diagnostic(`${dtype}: MSE max-calibrated ${(totR / w.length).toExponential(3)}, searched ${(totM / w.length).toExponential(3)} (brute force ${(totB / w.length).toExponential(3)}), mean clip ratio ${mean.toFixed(3)}, SQNR ${rtn.sqnrDb.toFixed(2)} -> ${mse.sqnrDb.toFixed(2)} dB`);
      assert.ok(totM < (dtype === 'i4' ? 0.9 : 0.995) * totR, `searched MSE ${totM} is not clearly below max calibration ${totR}`);
      assert.ok(mse.sqnrDb > rtn.sqnrDb);
    });
  }

  test('blocked and asymmetric clipping keep the searched error <= RTN per group; ratios come from the grid', () => {
    const rnd = mulberry32(33);
    const w = Float32Array.from({ length: 40 * 6 }, () => randn(rnd) ** 3);
    const dims = [40, 6];
    for (const spec of [
      { dtype: 'i4' as const, symmetric: true, granularity: { kind: 'blocked', axis: 0, size: 16 } as Granularity },
      { dtype: 'u8' as const, symmetric: false, granularity: { kind: 'per-channel', axis: 1 } as Granularity },
    ]) {
      const L = groupLayout(dims, spec.granularity);
      const rtn = computeScales(w, L, spec);
      const mse = computeScales(w, L, { ...spec, mseClip: true });
      const ids = groupIds(L);
      const errOf = (s: Float32Array, z: Int32Array): number[] => {
        const e = new Array<number>(L.count).fill(0);
        const r = quantizeWithScales(w, L, spec.dtype, s, z);
        const dq = refDequant(r.data, spec.dtype, dims, spec.granularity, s, z);
        for (let i = 0; i < w.length; i++) e[ids[i]!]! += (w[i]! - dq[i]!) ** 2;
        return e;
      };
      const eR = errOf(rtn.scale, rtn.zeroPoint);
      const eM = errOf(mse.scale, mse.zeroPoint);
      for (let gi = 0; gi < L.count; gi++) {
        assert.ok(eM[gi]! <= eR[gi]!, `group ${gi}`);
        assert.ok(DEFAULT_CLIP_RATIOS.includes(mse.clipRatio![gi]!));
      }
    }
  });
});

describe('speed', () => {
  test('RTN int8 per-channel on ResNet-50-sized weights (25.5M elements) takes well under a second', (t) => {
    // the 3x3 and 1x1 convolutions of ResNet-50's four stages (and the stem), as [M, C, kH, kW]
    const shapes: number[][] = [[64, 3, 7, 7]];
    const stage = (n: number, mid: number, out: number, inC: number): void => {
      for (let b = 0; b < n; b++) {
        shapes.push([mid, b === 0 ? inC : out, 1, 1], [mid, mid, 3, 3], [out, mid, 1, 1]);
        if (b === 0) shapes.push([out, inC, 1, 1]);
      }
    };
    stage(3, 64, 256, 64);
    stage(4, 128, 512, 256);
    stage(6, 256, 1024, 512);
    stage(3, 512, 2048, 1024);
    shapes.push([1000, 2048]);
    const weights = shapes.map((d) => {
      const n = d.reduce((a, b) => a * b);
      const w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = Math.sin(i * 0.7071) * 0.05;
      return w;
    });
    const total = weights.reduce((a, w) => a + w.length, 0);
    const t0 = performance.now();
    for (let i = 0; i < shapes.length; i++) quantizeWeight(weights[i]!, shapes[i]!, { dtype: 'i8', symmetric: true, granularity: { kind: 'per-channel', axis: 0 } });
    const ms = performance.now() - t0;
    t.diagnostic(`${shapes.length} weights, ${(total / 1e6).toFixed(1)}M elements: ${ms.toFixed(0)} ms`);
    assert.ok(total > 25e6);
    assert.ok(ms < 1000, `${ms} ms`);
  });
});
