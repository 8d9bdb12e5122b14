// bias-correction: on inputs equal to their channel means the corrected quantized layer reproduces the float layer (ORT), for Conv, grouped Conv, Gemm and MatMul+Add.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../../ir/builder.js';
import { cloneModel } from '../../../ir/clone.js';
import { attr, type Model } from '../../../ir/ir.js';
import { createSession, ort, run } from '../../../ir/ort.js';
import { mulberry32 } from '../../../ir/random.js';
import { verify } from '../../../ir/verify.js';
import { correctBias, meanAxisFor, tapCoverage } from '../../../passes/quant/bias-correction.js';
import { quantizeWeights } from '../../../passes/quant/quantize-weights.js';
import type { TensorQuant, WeightPlan } from '../../../passes/quant/types.js';

const rnd = mulberry32(77);
const randn = (n: number): number[] => Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()));

const I8_CH = (axis: number): TensorQuant => ({ dtype: 'i8', granularity: { kind: 'per-channel', axis }, symmetric: true });
const I4_BLOCK: TensorQuant = { dtype: 'i4', granularity: { kind: 'blocked', axis: 0, size: 16 }, symmetric: true };

async function outputs(m: Model, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    const out = await run(s, { x: new ort.Tensor('float32', x, dims) });
    return out[m.graph.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Quantizes `plans` on a copy of `fp`, corrects it with the channel means `mu` of the input x, and feeds x = mu
 * (constant per channel): the float and the corrected outputs must agree to float32 rounding, the uncorrected ones
 * must not.
 */
async function check(fp: Model, plans: WeightPlan[], mu: number[], xDims: number[], channelAxis: number): Promise<{ corrected: number; uncorrected: number; reports: number }> {
  const q0 = cloneModel(fp);
  quantizeWeights(q0, plans);
  const q = cloneModel(q0);
  const reports = correctBias(q, fp, new Map([['x', { channelMean: Float64Array.from(mu) }]]));
  assert.deepEqual(verify(q), []);
  const n = xDims.reduce((a, b) => a * b, 1);
  const C = xDims[channelAxis < 0 ? xDims.length + channelAxis : channelAxis]!;
  let inner = 1;
  for (let i = (channelAxis < 0 ? xDims.length + channelAxis : channelAxis) + 1; i < xDims.length; i++) inner *= xDims[i]!;
  const x = Float32Array.from({ length: n }, (_, k) => mu[Math.floor(k / inner) % C]!);
  const yf = await outputs(fp, x, xDims);
  const yq = await outputs(q, x, xDims);
  const y0 = await outputs(q0, x, xDims);
  return { corrected: maxAbsDiff(yf, yq), uncorrected: maxAbsDiff(yf, y0), reports: reports.length };
}

function mean(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}

describe('tapCoverage (the fraction of output positions where a kernel tap reads input, not padding)', () => {
  // reference: onnxruntime's Conv of an all-ones input with a one-hot kernel at tap k; its output mean is f_k
  const cases: { name: string; L: number[]; K: number[]; attrs: Record<string, ReturnType<typeof attr.ints> | ReturnType<typeof attr.string>> }[] = [
    { name: '3x3 pads 1 on 3x5', L: [3, 5], K: [3, 3], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
    { name: '3x3 stride 2 pads 1 on 7x6', L: [7, 6], K: [3, 3], attrs: { pads: attr.ints([1, 1, 1, 1]), strides: attr.ints([2, 2]) } },
    { name: '3x3 dilation 2 asymmetric pads on 6x6', L: [6, 6], K: [3, 3], attrs: { pads: attr.ints([2, 0, 1, 2]), dilations: attr.ints([2, 2]) } },
    { name: '5-tap 1-D SAME_UPPER stride 2 on 8', L: [8], K: [5], attrs: { auto_pad: attr.string('SAME_UPPER'), strides: attr.ints([2]) } },
    { name: '4-tap 1-D SAME_LOWER on 5', L: [5], K: [4], attrs: { auto_pad: attr.string('SAME_LOWER') } },
    { name: '3x3 VALID on 4x4 (no padding: all 1)', L: [4, 4], K: [3, 3], attrs: { auto_pad: attr.string('VALID') } },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const taps = c.K.reduce((a, b) => a * b, 1);
      const dims = [1, 1, ...c.L];
      const b = new GraphBuilder('g', { opset: 13 });
      const x = b.input('x', 'f32', dims);
      const outs = [];
      for (let k = 0; k < taps; k++) {
        const w = b.f32(`w${k}`, [1, 1, ...c.K], Array.from({ length: taps }, (_, j) => (j === k ? 1 : 0)));
        outs.push(b.op('Conv', [x, w], { name: `conv${k}`, attrs: { kernel_shape: attr.ints(c.K), ...c.attrs } }));
      }
      b.output(...outs);
      const m = b.build();
      const s = await createSession(m, { optimization: 'disabled' });
      let got: Record<string, ort.Tensor>;
      try {
        got = await run(s, { x: new ort.Tensor('float32', new Float32Array(dims.reduce((a, v) => a * v, 1)).fill(1), dims) });
      } finally {
        await s.release();
      }
      const f = tapCoverage(m.graph.findNode('conv0')!, c.K, dims);
      assert.equal(f.length, taps);
      for (let k = 0; k < taps; k++) {
        const ref = mean(got[outs[k]!.name]!.data as Float32Array);
        assert.ok(Math.abs(f[k]! - ref) < 1e-6, `tap ${k}: ${f[k]} vs onnxruntime ${ref}`);
      }
      // a symbolic spatial dim counts as unpadded
      assert.ok(tapCoverage(m.graph.findNode('conv0')!, c.K, undefined).every((v) => v === 1));
    });
  }
});

describe('correctBias', () => {
  test('padded 3x3 Conv on a 3x4 map: the mean over output positions is exact on constant-per-channel inputs', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 16, 3, 4]);
    const w = b.f32('w', [8, 16, 3, 3], randn(8 * 16 * 9));
    const bias = b.f32('b', [8], randn(8));
    b.output(b.op('Conv', [x, w, bias], { name: 'conv', attrs: { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) } }));
    const fp = b.build();
    const mu = randn(16).map((v) => Math.abs(v) + 0.5);
    const q0 = cloneModel(fp);
    quantizeWeights(q0, [{ node: 'conv', input: 1, quant: I8_CH(0) }]);
    const corrected = cloneModel(q0);
    correctBias(corrected, fp, new Map([['x', { channelMean: Float64Array.from(mu), observedShape: [1, 16, 3, 4] }]]));
    const paddingAsMean = cloneModel(q0);
    correctBias(paddingAsMean, fp, new Map([['x', { channelMean: Float64Array.from(mu), observedShape: [1, 16, Number.NaN, Number.NaN] }]]));
    const x0 = Float32Array.from({ length: 16 * 12 }, (_, k) => mu[Math.floor(k / 12)]!);
    const dims = [1, 16, 3, 4];
    const channelMeans = (y: Float32Array) => Array.from({ length: 8 }, (_, o) => mean(y.subarray(o * 12, (o + 1) * 12)));
    const yf = channelMeans(await outputs(fp, x0, dims));
    const err = async (m: Model) => Math.max(...channelMeans(await outputs(m, x0, dims)).map((v, o) => Math.abs(v - yf[o]!)));
    const exact = await err(corrected);
    const asMean = await err(paddingAsMean);
    const none = await err(q0);
    assert.ok(exact < 1e-4, `padding-aware: ${exact}`);
    assert.ok(asMean > 20 * exact && none > 20 * exact, `padding as mean ${asMean}, uncorrected ${none}, padding-aware ${exact}`);
  });


  test('Conv 3x3 without padding: exact on constant-per-channel inputs; the bias initializer is replaced, not mutated', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 16, 5, 5]);
    const w = b.f32('w', [8, 16, 3, 3], randn(8 * 16 * 9));
    const bias = b.f32('b', [8], randn(8));
    b.output(b.op('Conv', [x, w, bias], { name: 'conv', attrs: { kernel_shape: [3, 3] } }));
    const m = b.build();
    const mu = randn(16).map((v) => Math.abs(v) + 0.5);
    const r = await check(m, [{ node: 'conv', input: 1, quant: I8_CH(0) }], mu, [1, 16, 5, 5], 1);
    assert.equal(r.reports, 1);
    assert.ok(r.corrected < 1e-4, `corrected ${r.corrected}`);
    assert.ok(r.uncorrected > 100 * r.corrected, `uncorrected ${r.uncorrected} vs corrected ${r.corrected}`);
    assert.deepEqual([...(m.graph.findValue('b')!.initializer!.typed() as Float32Array)].length, 8);
  });

  test('depthwise / grouped Conv without bias: a bias input is added; exact per group', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 8, 4, 4]);
    const w = b.f32('w', [8, 2, 3, 3], randn(8 * 2 * 9));
    b.output(b.op('Conv', [x, w], { name: 'gconv', attrs: { kernel_shape: [3, 3], group: 4 } }));
    const m = b.build();
    const mu = randn(8).map((v) => v + 1);
    const q = cloneModel(m);
    quantizeWeights(q, [{ node: 'gconv', input: 1, quant: I8_CH(0) }]);
    correctBias(q, m, new Map([['x', { channelMean: Float64Array.from(mu) }]]));
    assert.equal(q.graph.findNode('gconv')!.inputs.length, 3, 'a bias was added');
    const r = await check(m, [{ node: 'gconv', input: 1, quant: I8_CH(0) }], mu, [1, 8, 4, 4], 1);
    assert.ok(r.corrected < 1e-4 && r.uncorrected > 100 * r.corrected, JSON.stringify(r));
  });

  test('Gemm transB=1 with alpha/beta, and INT4 blocked MatMul + bias Add: exact on x = mean rows', async () => {
    {
      const b = new GraphBuilder('g', { opset: 13 });
      const x = b.input('x', 'f32', [3, 32]);
      const w = b.f32('w', [12, 32], randn(12 * 32));
      const c = b.f32('c', [12], randn(12));
      b.output(b.op('Gemm', [x, w, c], { name: 'fc', attrs: { transB: 1, alpha: attr.float(0.5), beta: attr.float(2) } }));
      const m = b.build();
      const mu = randn(32);
      const r = await check(m, [{ node: 'fc', input: 1, quant: I8_CH(0) }], mu, [3, 32], -1);
      assert.ok(r.reports === 1 && r.corrected < 1e-4 && r.uncorrected > 100 * r.corrected, JSON.stringify(r));
    }
    {
      const b = new GraphBuilder('g', { opset: 21 });
      const x = b.input('x', 'f32', [2, 3, 32]);
      const w = b.f32('w', [32, 10], randn(32 * 10));
      const c = b.f32('c', [10], randn(10));
      const mm = b.op('MatMul', [x, w], { name: 'mm' });
      b.output(b.op('Add', [mm, c], { name: 'bias_add' }));
      const m = b.build();
      const mu = randn(32);
      const r = await check(m, [{ node: 'mm', input: 1, quant: I4_BLOCK }], mu, [2, 3, 32], -1);
      assert.ok(r.reports === 1 && r.corrected < 1e-4 && r.uncorrected > 100 * r.corrected, JSON.stringify(r));
    }
  });

  test('left alone: a MatMul without a constant bias Add, a layer without means, a float weight', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [2, 8]);
    const w = b.f32('w', [8, 4], randn(32));
    const w2 = b.f32('w2', [4, 4], randn(16));
    const mm = b.op('MatMul', [x, w], { name: 'mm' });
    b.output(b.op('MatMul', [mm, w2], { name: 'mm2' }));
    const m = b.build();
    const q = cloneModel(m);
    quantizeWeights(q, [{ node: 'mm', input: 1, quant: I8_CH(1) }]);
    const before = q.graph.nodeCount;
    assert.deepEqual(correctBias(q, m, new Map([['x', { channelMean: Float64Array.from(randn(8)) }]])), []);
    assert.equal(q.graph.nodeCount, before);
    assert.equal(meanAxisFor(m.graph.findNode('mm')!), -1);
  });
});
