// TensorRT fusion prediction on hand-built QDQ graphs: fused layers and epilogues, each negative twin with the reason, standalone Q/DQ.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Value } from '../../ir/ir.js';
import { getTarget, type FusionReport } from '../../targets/target.js';
import { QdqBuilder } from './helpers.js';

const trt = getTarget('tensorrt');
const layer = (r: FusionReport, node: string) => r.layers.find((l) => l.node === node)!;
const conv3 = { kernel_shape: [3, 3], pads: [1, 1, 1, 1] };

/** x -> QDQ -> conv1(+bias) -> [mid] -> Relu -> QDQ -> conv2; `mid` inserts a Q/DQ between conv1 and the Relu. */
function convChain(o: { floatW2?: boolean; qdqBeforeRelu?: boolean; asym?: boolean } = {}) {
  const g = new QdqBuilder();
  const p = g.params('i8');
  const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
  const xa = g.params(o.asym ? 'u8' : 'i8');
  let h = g.b.op('Conv', [g.qdq(x, xa, 'x'), g.weight([8, 8, 3, 3], { axis: 0 }), g.f32([8])], { name: 'conv1', attrs: conv3 });
  if (o.qdqBeforeRelu) h = g.qdq(h, g.params('i8'), 'mid');
  const r = g.b.op('Relu', [h], { name: 'relu' });
  const w2: Value = o.floatW2 ? g.f32([8, 8, 3, 3]) : g.weight([8, 8, 3, 3], { axis: 0 });
  g.b.output(g.b.op('Conv', [g.qdq(r, p, 'r'), w2], { name: 'conv2', attrs: conv3 }));
  return g.build();
}

describe('tensorrt predictFusion: conv chains', () => {
  test('DQ->Conv(+bias)->Relu->Q fuses into one INT8-in/INT8-out layer; nothing standalone', () => {
    const r = trt.predictFusion(convChain());
    assert.deepEqual(r.layers, [
      { node: 'conv1', op: 'Conv', quantized: true, fusedWith: ["Relu 'relu'", "QuantizeLinear 'r_q' (quantized output)"], kernel: 'i8 Conv' },
      { node: 'conv2', op: 'Conv', quantized: true, fusedWith: [], kernel: 'i8 Conv' },
    ]);
    assert.equal(r.coverage, 1);
    assert.deepEqual(r.standaloneQdq, []);
  });

  test('negative twin: a float weight leaves the layer float and its input DQ standalone', () => {
    const r = trt.predictFusion(convChain({ floatW2: true }));
    assert.equal(layer(r, 'conv2').quantized, false);
    assert.match(layer(r, 'conv2').reason!, /^weight not quantized: 'c\d+' is a float initializer without DequantizeLinear$/);
    assert.equal(r.coverage, 0.5);
    assert.deepEqual(r.standaloneQdq, [{ node: 'r_dq', reason: "DequantizeLinear feeds Conv 'conv2', not a quantized layer input: runs as a standalone scale layer" }]);
  });

  test('negative twin: a Q/DQ pair between Conv and Relu blocks the Relu fusion', () => {
    const r = trt.predictFusion(convChain({ qdqBeforeRelu: true }));
    assert.deepEqual(layer(r, 'conv1'), {
      node: 'conv1',
      op: 'Conv',
      quantized: true,
      fusedWith: ["QuantizeLinear 'mid_q' (quantized output)"],
      reason: "Q/DQ between Conv and Relu 'relu' blocks fusion: the Relu runs as a separate layer",
      kernel: 'i8 Conv',
    });
    assert.deepEqual(r.standaloneQdq.map((s) => s.node), ['mid_dq']);
  });

  test('asymmetric (ORT-style uint8) activations are not fused: zero points must be 0', () => {
    const r = trt.predictFusion(convChain({ asym: true }));
    assert.equal(layer(r, 'conv1').quantized, false);
    assert.equal(layer(r, 'conv1').reason, 'activation zero point on input 0 is not 0: TensorRT requires symmetric Q/DQ (SPEC §8)');
    assert.deepEqual(r.standaloneQdq.map((s) => s.node), ['x_q', 'x_dq']);
  });

  test('input DQ missing, INT4 convolution weights, DQ propagated through MaxPool', () => {
    const g = new QdqBuilder();
    const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
    const a = g.b.op('Conv', [x, g.weight([8, 8, 3, 3], { axis: 0 })], { name: 'nodq', attrs: conv3 });
    const b = g.b.op('Conv', [g.qdq(a, g.params('i8'), 'a'), g.weight([8, 8, 3, 3], { dtype: 'i4', axis: 1, block: 8 })], { name: 'int4', attrs: conv3 });
    const pool = g.b.op('MaxPool', [g.qdq(b, g.params('i8'), 'b')], { name: 'pool', attrs: { kernel_shape: [2, 2], strides: [2, 2] } });
    g.b.output(g.b.op('Conv', [pool, g.weight([8, 8, 3, 3], { axis: 0 })], { name: 'pooled', attrs: conv3 }));
    const r = trt.predictFusion(g.build());
    assert.equal(layer(r, 'nodq').reason, "input DQ missing: input 0 ('x') is not dequantized, so the layer runs in float");
    assert.equal(layer(r, 'int4').reason, 'INT4 convolution weights: TensorRT has no INT4 convolutions (SPEC §8)');
    assert.equal(layer(r, 'pooled').quantized, true);
    assert.deepEqual(r.standaloneQdq.map((s) => s.node), ['a_q', 'a_dq']);
  });
});

describe('tensorrt predictFusion: residual, GEMMs', () => {
  function block(floatShortcut: boolean) {
    const g = new QdqBuilder();
    const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
    const p = g.params('i8');
    const q = g.q(x, p, 'x_q');
    const h = g.b.op('Conv', [g.dq(q, p, 'x_dq'), g.weight([8, 8, 3, 3], { axis: 0 })], { name: 'conv', attrs: conv3 });
    const s = g.b.op('Add', [h, floatShortcut ? x : g.dq(q, p, 'x_dq_1')], { name: 'add' });
    const r = g.b.op('Relu', [s], { name: 'relu' });
    g.b.output(g.b.op('Conv', [g.qdq(r, g.params('i8'), 'r'), g.weight([8, 8, 3, 3], { axis: 0 })], { name: 'next', attrs: conv3 }));
    return g.build();
  }

  test('Conv + Add(DQ shortcut) + Relu + Q fuse', () => {
    const r = trt.predictFusion(block(false));
    assert.deepEqual(layer(r, 'conv').fusedWith, ["Add(residual) 'add'", "Relu 'relu'", "QuantizeLinear 'r_q' (quantized output)"]);
    assert.deepEqual(r.standaloneQdq, []);
  });

  test('negative twin: a float shortcut keeps the Add out of the Conv', () => {
    const r = trt.predictFusion(block(true));
    assert.deepEqual(layer(r, 'conv').fusedWith, []);
    assert.equal(layer(r, 'conv').reason, "residual Add 'add' has a float shortcut ('x'): it runs as a separate layer");
  });

  test('INT4 blocked MatMul weights run weight-only with their bias; quantized activations on them stay standalone', () => {
    const g = new QdqBuilder();
    const a = g.b.input('a', 'f32', [4, 64]);
    const y1 = g.b.op('Add', [g.b.op('MatMul', [a, g.weight([64, 32], { dtype: 'i4', axis: 0, block: 32 })], { name: 'wo' }), g.f32([32])], { name: 'bias' });
    g.b.output(y1, g.b.op('MatMul', [g.qdq(a, g.params('i8'), 'a'), g.weight([64, 32], { dtype: 'i4', axis: 0, block: 32 })], { name: 'w4a8' }));
    const r = trt.predictFusion(g.build());
    assert.deepEqual(layer(r, 'wo'), { node: 'wo', op: 'MatMul', quantized: true, fusedWith: ["Add(bias) 'bias'"], kernel: 'weight-only i4' });
    assert.equal(layer(r, 'w4a8').quantized, true);
    assert.match(layer(r, 'w4a8').reason!, /INT4 weights are weight-only: the activation Q\/DQ on input 0 runs standalone/);
    assert.deepEqual(r.standaloneQdq.map((s) => s.node), ['a_q', 'a_dq']);
  });

  test('activation x activation MatMul needs both operands dequantized', () => {
    const g = new QdqBuilder();
    const a = g.b.input('a', 'f32', [1, 4, 8]);
    const b = g.b.input('b', 'f32', [1, 8, 4]);
    const p = g.params('i8');
    g.b.output(g.b.op('MatMul', [g.qdq(a, p, 'a'), g.qdq(b, p, 'b')], { name: 'both' }), g.b.op('MatMul', [g.qdq(a, p, 'a2'), b], { name: 'one' }));
    const r = trt.predictFusion(g.build());
    assert.equal(layer(r, 'both').quantized, true);
    assert.equal(layer(r, 'one').reason, "input DQ missing: input 1 ('b') is not dequantized, so the layer runs in float");
  });
});
