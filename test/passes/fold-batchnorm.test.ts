// fold-batchnorm: Conv / depthwise Conv / grouped ConvTranspose / Gemm (transB 0 and 1) + BN folded, checked in ORT.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Model, Value } from '../../ir/ir.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { verify } from '../../ir/verify.js';
import { foldBatchnorm, foldBatchNormIntoProducer, foldBiasAddIntoConv } from '../../passes/fold-batchnorm.js';
import { PassManager, verifyInstrument } from '../../passes/manager.js';
import { explainRule } from '../../passes/rules.js';
import { mulberry32 as prng } from '../../ir/random.js';
import { graphText } from '../util/graph.js';

/** Max relative error of a folded rewrite vs the unfolded graph in ORT: |a-b| / max|a|. */
const FOLD_TOLERANCE = 1e-5;

const rnd = prng(42);
const randn = (n: number, lo = -1, hi = 1): number[] => Array.from({ length: n }, () => lo + (hi - lo) * rnd());


/** BN(y) with random statistics (positive variance) over `c` channels. */
function bn(b: GraphBuilder, y: Value, c: number, name = 'bn', eps = 1e-3): Value {
  const gamma = b.f32(`${name}_gamma`, [c], randn(c, 0.5, 1.5));
  const beta = b.f32(`${name}_beta`, [c], randn(c));
  const mean = b.f32(`${name}_mean`, [c], randn(c));
  const varr = b.f32(`${name}_var`, [c], randn(c, 0.1, 2));
  return b.op('BatchNormalization', [y, gamma, beta, mean, varr], { name, attrs: { epsilon: eps } });
}

async function runAll(m: Model | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    return await run(s, feeds);
  } finally {
    await s.release();
  }
}

function relErr(a: ort.Tensor, b: ort.Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let d = 0;
  let mag = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i]! - y[i]!));
    mag = Math.max(mag, Math.abs(x[i]!));
  }
  assert.ok(mag > 0.1, 'outputs are not trivially zero');
  return d / mag;
}

/** Runs fold-batchnorm with verification; returns the max relative error vs the model before. */
async function foldAndCompare(m: Model, inputDims: number[]): Promise<{ err: number; stats: Readonly<Record<string, number>> }> {
  const before = encodeModel(m);
  const x = new ort.Tensor('float32', Float32Array.from(randn(inputDims.reduce((a, b) => a * b))), inputDims);
  const r = await new PassManager([foldBatchnorm]).run(m, { instruments: [verifyInstrument()] });
  assert.deepEqual(verify(m), []);
  const out = m.graph.outputs[0]!.name;
  const want = (await runAll(before, { x }))[out]!;
  const got = (await runAll(m, { x }))[out]!;
  return { err: relErr(want, got), stats: r.perPass[0]!.stats };
}

test('Conv (groups=1, with bias) + BN folds into the Conv', async (t) => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [2, 3, 8, 8]);
  const w = b.f32('w', [4, 3, 3, 3], randn(108));
  const bias = b.f32('b', [4], randn(4));
  const y = b.op('Conv', [x, w, bias], { name: 'conv', attrs: { pads: [1, 1, 1, 1] } });
  b.output(b.op('Relu', [bn(b, y, 4)], { name: 'relu' }));
  const { err, stats } = await foldAndCompare(b.build(), [2, 3, 8, 8]);
  t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
  assert.equal(stats.folded, 1);
  assert.deepEqual(graphText(b.graph), ['conv_out = Conv(x, w, b)', 'relu_out = Relu(conv_out)']);
});

test('depthwise Conv (groups=C, no bias) + BN folds and gains a bias', async (t) => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 6, 7, 7]);
  const w = b.f32('w', [6, 1, 3, 3], randn(54));
  const y = b.op('Conv', [x, w], { name: 'dw', attrs: { group: 6, pads: [1, 1, 1, 1] } });
  b.output(bn(b, y, 6));
  const { err } = await foldAndCompare(b.build(), [1, 6, 7, 7]);
  t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
  // the BN output was the graph output: the Conv's output takes over its name
  assert.deepEqual(graphText(b.graph), ['bn_out = Conv(x, w, dw_bias)']);
  assert.deepEqual(b.graph.findValue('dw_bias')!.initializer!.dims, [6]);
});

for (const withBias of [true, false]) {
  test(`ConvTranspose with groups=2 (${withBias ? 'with' : 'no'} bias) + BN folds per group (weight axis 1)`, async (t) => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 4, 5, 5]);
    // C_in = 4, group = 2, M/g = 3 -> M = 6 output channels
    const w = b.f32('w', [4, 3, 3, 3], randn(108));
    const ins = [x, w, ...(withBias ? [b.f32('b', [6], randn(6))] : [])];
    const y = b.op('ConvTranspose', ins, { name: 'deconv', attrs: { group: 2, strides: [2, 2] } });
    b.output(bn(b, y, 6));
    const { err } = await foldAndCompare(b.build(), [1, 4, 5, 5]);
    t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
    assert.deepEqual(graphText(b.graph), [`bn_out = ConvTranspose(x, w, ${withBias ? 'b' : 'deconv_bias'})`]);
  });
}

for (const transB of [0, 1]) {
  test(`Gemm transB=${transB} (alpha, beta != 1) + BN folds into B and C`, async (t) => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [3, 5]);
    const w = b.f32('w', transB ? [4, 5] : [5, 4], randn(20));
    const c = b.f32('c', [4], randn(4));
    const y = b.op('Gemm', [x, w, c], { name: 'gemm', attrs: { transB, alpha: 0.75, beta: 1.25 } });
    b.output(bn(b, y, 4));
    const { err } = await foldAndCompare(b.build(), [3, 5]);
    t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
    assert.deepEqual(graphText(b.graph), ['bn_out = Gemm(x, w, c)']);
    assert.equal(b.graph.findNode('gemm')!.attrFloat('beta', 0), 1);
  });
}

test('Gemm without C gets one', async (t) => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [2, 3]);
  const y = b.op('Gemm', [x, b.f32('w', [3, 4], randn(12))], { name: 'gemm', attrs: { transB: 0 } });
  b.output(b.op('Relu', [bn(b, y, 4)], { name: 'relu' }));
  const { err } = await foldAndCompare(b.build(), [2, 3]);
  t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
  assert.deepEqual(graphText(b.graph), ['gemm_out = Gemm(x, w, gemm_bias)', 'relu_out = Relu(gemm_out)']);
});

test('a per-channel bias Add between ConvTranspose and BN folds too (the PaddleOCR detector pattern)', async (t) => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 4, 5, 5]);
  const y = b.op('ConvTranspose', [x, b.f32('w', [4, 2, 2, 2], randn(32))], { name: 'deconv', attrs: { strides: [2, 2] } });
  const biased = b.op('Add', [b.f32('c', [2, 1, 1], randn(2)), y], { name: 'add' }); // constant first: the commuted rule
  b.output(bn(b, biased, 2));
  const { err, stats } = await foldAndCompare(b.build(), [1, 4, 5, 5]);
  t.diagnostic(`max relative error vs unfolded (ORT): ${err.toExponential(2)}`);
  assert.ok(err <= FOLD_TOLERANCE, `relative error ${err}`);
  assert.equal(stats.biasAdds, 1);
  assert.deepEqual(graphText(b.graph), ['bn_out = ConvTranspose(x, w, deconv_bias)']);
});

test('negative twin: an Add that is not per channel stays, and so does the BN behind it', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 4, 5, 5]);
  const y = b.op('ConvTranspose', [x, b.f32('w', [4, 2, 2, 2], randn(32))], { name: 'deconv', attrs: { strides: [2, 2] } });
  const biased = b.op('Add', [y, b.f32('c', [1, 10, 10], randn(100))], { name: 'add' });
  b.output(bn(b, biased, 2));
  const { stats } = await foldAndCompare(b.build(), [1, 4, 5, 5]);
  assert.equal(stats.folded, 0);
  assert.deepEqual(graphText(b.graph), ['deconv_out = ConvTranspose(x, w)', 'add_out = Add(deconv_out, c)', 'bn_out = BatchNormalization(add_out, bn_gamma, bn_beta, bn_mean, bn_var)']);
  const why = explainRule(b.graph, foldBiasAddIntoConv);
  assert.deepEqual(why, [{ node: 'add', matched: false, reason: 'rhs dims [1,10,10] are not per output channel', at: 'c' }]);
});

test('negative twin: BN after a Conv whose output has two users is not folded', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 3, 6, 6]);
  const y = b.op('Conv', [x, b.f32('w', [4, 3, 1, 1], randn(12))], { name: 'conv' });
  const z = bn(b, y, 4);
  b.output(b.op('Add', [z, b.op('Relu', [y], { name: 'relu' })], { name: 'sum' }));
  const m = b.build();
  const text = graphText(b.graph);
  const r = await new PassManager([foldBatchnorm]).run(m, { instruments: [verifyInstrument()] });
  assert.equal(r.changed, false);
  assert.deepEqual(graphText(b.graph), text);
  assert.deepEqual(explainRule(b.graph, foldBatchNormIntoProducer), [{ node: 'bn', matched: false, reason: "producer's output has other uses", at: 'conv_out' }]);
});

test('negative twin: a weight shared by two Convs is refused, never mutated', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 3, 6, 6]);
  const w = b.f32('w', [3, 3, 1, 1], randn(9));
  const y1 = b.op('Conv', [x, w], { name: 'conv1' });
  const y2 = b.op('Conv', [bn(b, y1, 3), w], { name: 'conv2' });
  b.output(y2);
  const m = b.build();
  const wBefore = m.graph.findValue('w')!.initializer!;
  const r = await new PassManager([foldBatchnorm]).run(m, { instruments: [verifyInstrument()] });
  assert.equal(r.changed, false);
  assert.equal(m.graph.findValue('w')!.initializer, wBefore);
  assert.deepEqual(explainRule(b.graph, foldBatchNormIntoProducer), [
    { node: 'bn', matched: false, reason: 'weight is shared with another node: refusing to mutate a shared initializer', at: 'w' },
  ]);
});

test('negative twin: a standalone BN (graph input, or after Relu) stays as it is', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 3, 4, 4]);
  const z = bn(b, x, 3, 'bn1');
  b.output(bn(b, b.op('Relu', [z], { name: 'relu' }), 3, 'bn2'));
  const m = b.build();
  const text = graphText(b.graph);
  const r = await new PassManager([foldBatchnorm]).run(m, { instruments: [verifyInstrument()] });
  assert.equal(r.changed, false);
  assert.deepEqual(graphText(b.graph), text);
  assert.deepEqual(
    explainRule(b.graph, foldBatchNormIntoProducer).map((e) => e.reason),
    ['input is not produced by a node', 'producer is Relu, not Conv/ConvTranspose/Gemm'],
  );
});

test('negative twin: a BatchNormalization declaring its statistics outputs (training mode before opset 14) stays', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [1, 2, 3, 3]);
  const y = b.op('Conv', [x, b.f32('w', [2, 2, 1, 1], randn(4))], { name: 'conv' });
  const ps = ['gamma', 'beta', 'mean', 'var'].map((p) => b.f32(p, [2], p === 'var' ? [1, 2] : randn(2)));
  const [z] = b.opN('BatchNormalization', [y, ...ps], { name: 'bn', outputs: 5 });
  b.output(z!);
  const m = b.build();
  const r = await new PassManager([foldBatchnorm]).run(m, { instruments: [verifyInstrument()] });
  assert.equal(r.changed, false);
  assert.deepEqual(explainRule(b.graph, foldBatchNormIntoProducer).map((e) => e.reason), ['training mode (statistics outputs are declared)']);
});
