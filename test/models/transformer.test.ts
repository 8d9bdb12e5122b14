// Zoo transformers (vit-ti16, vit-b16, dit-s2): exact parameter counts, timm / DiT topology, onnxruntime runs, GELU decompositions below opset 20, and DiT's conditioning actually reaching the output.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { cloneModel } from '../../ir/clone.js';
import { tensorFromTyped, type Model, type Node } from '../../ir/ir.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { Rewriter } from '../../ir/rewriter.js';
import { assertValid } from '../../ir/verify.js';
import { Rng } from '../../models/init.js';
import { buildZooModel, countParams, imagenetNoise, zooEntry } from '../../models/index.js';

function histogram(m: Model): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of m.graph.nodes()) h[n.opType] = (h[n.opType] ?? 0) + 1;
  return h;
}

function ofType(m: Model, op: string): Node[] {
  return [...m.graph.nodes()].filter((n) => n.opType === op);
}

function rms(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s / a.length);
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(d / a.length) / rms(a);
}

async function runOnce(m: Model, feeds: Record<string, ort.Tensor>, output: string): Promise<ort.Tensor> {
  const s = await createSession(m);
  try {
    return (await run(s, feeds))[output]!;
  } finally {
    await s.release();
  }
}

function images(batch: number, seed: number): Record<string, ort.Tensor> {
  return { input: new ort.Tensor('float32', imagenetNoise(batch, seed), [batch, 3, 224, 224]) };
}

function checkVitStructure(m: Model, name: string, dim: number, heads: number, mlp: number): void {
  assertValid(m, name);
  assert.equal(countParams(m), zooEntry(name).params);
  assert.ok([...m.graph.nodes()].every((n) => n.domain === ''), 'standard ONNX ops only');
  const h = histogram(m);
  assert.deepEqual([h.Conv, h.LayerNormalization, h.MatMul, h.Softmax, h.Gelu, h.Gemm, h.Erf], [1, 25, 72, 12, 12, 1, undefined]);
  const conv = ofType(m, 'Conv')[0]!;
  assert.deepEqual([conv.attrInts('kernel_shape'), conv.attrInts('strides')], [[16, 16], [16, 16]]);
  for (const ln of ofType(m, 'LayerNormalization')) {
    assert.equal(ln.inputs.length, 3, `${ln.name} has scale and bias`);
    assert.equal(Math.fround(ln.attrFloat('epsilon', 0)), Math.fround(1e-6));
  }
  for (const g of ofType(m, 'Gelu')) assert.equal(g.attrString('approximate', 'none'), 'none');
  assert.deepEqual(m.graph.findValue('pos_embed')!.shape, [1, 197, dim]);
  assert.deepEqual(m.graph.findValue('cls_token')!.shape, [1, 1, dim]);
  assert.deepEqual(m.graph.findValue('blocks.11.attn.qkv.weight')!.shape, [dim, 3 * dim]);
  assert.deepEqual(m.graph.findValue('blocks.0.mlp.fc1.weight')!.shape, [dim, mlp]);
  assert.deepEqual(m.graph.findValue('head.weight')!.shape, [1000, dim]);
  const scale = m.graph.findNode('blocks.0.attn.scale')!.input(1)!.initializer!.typed()[0];
  assert.equal(scale, Math.fround((dim / heads) ** -0.5));
  // the head reads the class token (index 0 of the token axis) after the final norm
  const pool = m.graph.findNode('pool_cls')!;
  assert.deepEqual([pool.op, pool.attrInt('axis', 0), pool.input(0)!.producer!.name], ['Gather', 1, 'norm']);
}

describe('vit-ti16 (DeiT-Tiny)', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('vit-ti16');
  });

  test('5,717,416 parameters; patch 16 conv, class token, 197 learned positions, pre-norm blocks', () => {
    checkVitStructure(m, 'vit-ti16', 192, 3, 768);
  });

  test('runs at batch 1 and 8: finite logits, no mixing across the batch', async () => {
    const s = await createSession(m);
    try {
      const f8 = images(8, 5);
      const y8 = (await run(s, f8)).logits!;
      assert.deepEqual(y8.dims, [8, 1000]);
      const d8 = y8.data as Float32Array;
      assert.ok(d8.every(Number.isFinite));
      const r = rms(d8);
      assert.ok(r > 0.05 && r < 20, `logit RMS ${r}`);
      const x1 = new ort.Tensor('float32', (f8.input!.data as Float32Array).slice(0, 3 * 224 * 224), [1, 3, 224, 224]);
      const d1 = (await run(s, { input: x1 })).logits!.data as Float32Array;
      for (let i = 0; i < 1000; i++) assert.ok(Math.abs(d1[i]! - d8[i]!) <= 1e-4 * r, `logit ${i}`);
    } finally {
      await s.release();
    }
  });

  test('opset 17 (Erf-form GELU) computes the same function as opset 21 (Gelu op)', async () => {
    const m17 = await buildZooModel('vit-ti16', { opset: 17 });
    assert.equal(ofType(m17, 'Gelu').length, 0);
    assert.equal(ofType(m17, 'Erf').length, 12);
    const f = images(2, 6);
    const a = (await runOnce(m, f, 'logits')).data as Float32Array;
    const b = (await runOnce(m17, f, 'logits')).data as Float32Array;
    assert.ok(relDiff(a, b) < 1e-5, `relative difference ${relDiff(a, b)}`);
  });
});

describe('vit-b16', () => {
  test('86,567,656 parameters, ViT-B/16 shapes; runs at batch 1', async () => {
    const m = await buildZooModel('vit-b16');
    checkVitStructure(m, 'vit-b16', 768, 12, 3072);
    const y = await runOnce(m, images(1, 7), 'logits');
    assert.deepEqual(y.dims, [1, 1000]);
    const d = y.data as Float32Array;
    assert.ok(d.every(Number.isFinite) && rms(d) > 0.05 && rms(d) < 20, `logit RMS ${rms(d)}`);
  });
});

describe('dit-s2', () => {
  let m: Model;
  const feeds = (batch: number, t: number | number[], y: number | number[]): Record<string, ort.Tensor> => {
    const r = new Rng(11);
    const x = new Float32Array(batch * 4 * 32 * 32);
    for (let i = 0; i < x.length; i++) x[i] = r.normal();
    const tv = Array.isArray(t) ? t : new Array(batch).fill(t);
    const yv = Array.isArray(y) ? y : new Array(batch).fill(y);
    return {
      latent: new ort.Tensor('float32', x, [batch, 4, 32, 32]),
      timestep: new ort.Tensor('float32', Float32Array.from(tv), [batch]),
      class_label: new ort.Tensor('int64', BigInt64Array.from(yv.map(BigInt)), [batch]),
    };
  };
  before(async () => {
    m = await buildZooModel('dit-s2');
  });

  test('32,963,360 parameters (32,865,056 trainable + the fixed 256x384 pos_embed); DiT topology', () => {
    assertValid(m, 'dit-s2');
    assert.equal(countParams(m), 32_963_360);
    assert.ok([...m.graph.nodes()].every((n) => n.domain === ''), 'standard ONNX ops only');
    assert.deepEqual(m.graph.inputs.map((v) => [v.name, v.dtype, v.shape]), [
      ['latent', 'f32', [{ param: 'N' }, 4, 32, 32]],
      ['timestep', 'f32', [{ param: 'N' }]],
      ['class_label', 'i64', [{ param: 'N' }]],
    ]);
    assert.deepEqual(m.graph.outputs.map((v) => [v.name, v.shape]), [['output', [{ param: 'N' }, 8, 32, 32]]]);
    const h = histogram(m);
    // Gemm: 2 timestep MLP + 12 block adaLN + 1 final adaLN; Gather: label table + q/k/v per block
    assert.deepEqual([h.Conv, h.LayerNormalization, h.Gemm, h.Softmax, h.Gelu, h.Gather, h.Cos, h.Sin, h.Range], [1, 25, 15, 12, 12, 37, 1, 1, 1]);
    for (const ln of ofType(m, 'LayerNormalization')) {
      // affine-free LayerNorm: a constant Scale of ones and no bias
      assert.equal(ln.inputs.length, 2);
      assert.ok((ln.input(1)!.initializer!.typed() as Float32Array).every((v) => v === 1));
    }
    for (const g of ofType(m, 'Gelu')) assert.equal(g.attrString('approximate'), 'tanh');
    assert.deepEqual(m.graph.findValue('y_embedder.embedding_table.weight')!.shape, [1001, 384]);
    assert.deepEqual(m.graph.findValue('blocks.0.adaLN_modulation.1.weight')!.shape, [6 * 384, 384]);
    assert.deepEqual(m.graph.findValue('final_layer.linear.weight')!.shape, [384, 32]);
    const conv = ofType(m, 'Conv')[0]!;
    assert.deepEqual([conv.attrInts('kernel_shape'), conv.attrInts('strides')], [[2, 2], [2, 2]]);
    // the zero-initialized parts of DiT are small random here
    for (const name of ['blocks.3.adaLN_modulation.1.weight', 'blocks.3.adaLN_modulation.1.bias', 'final_layer.adaLN_modulation.1.weight', 'final_layer.linear.weight', 'final_layer.linear.bias']) {
      const a = m.graph.findValue(name)!.initializer!.typed() as Float32Array;
      const r = rms(a);
      assert.ok(r > 0.01 && r < 0.03, `${name}: RMS ${r}`);
    }
  });

  test('runs at batch 1 and 8: output [N,8,32,32], finite, no mixing across the batch', async () => {
    const s = await createSession(m);
    try {
      const t = [1, 50, 100, 250, 400, 600, 800, 999];
      const y = [0, 1, 207, 360, 387, 974, 999, 1000];
      const o8 = (await run(s, feeds(8, t, y))).output!;
      assert.deepEqual(o8.dims, [8, 8, 32, 32]);
      const d8 = o8.data as Float32Array;
      assert.ok(d8.every(Number.isFinite));
      const r = rms(d8);
      assert.ok(r > 0.05 && r < 20, `output RMS ${r}`);
      const f1 = feeds(1, t[0]!, y[0]!);
      const d1 = (await run(s, f1)).output!.data as Float32Array;
      assert.equal(d1.length, 8 * 32 * 32);
      for (let i = 0; i < d1.length; i++) assert.ok(Math.abs(d1[i]! - d8[i]!) <= 1e-4 * r, `element ${i}`);
    } finally {
      await s.release();
    }
  });

  test('not collapsed: the class label, the timestep and the blocks all change the output (> 5% RMS)', async () => {
    const s = await createSession(m);
    try {
      const out = async (t: number, y: number): Promise<Float32Array> => (await run(s, feeds(2, t, y))).output!.data as Float32Array;
      const base = await out(500, 3);
      const other = [relDiff(base, await out(500, 700)), relDiff(base, await out(500, 1000)), relDiff(base, await out(20, 3))];
      for (const d of other) assert.ok(d > 0.05, `relative change ${d}`);
      // every block's modulation zeroed (DiT's adaLN-Zero init): the blocks become identities
      const z = cloneModel(m);
      const rw = new Rewriter(z.graph);
      for (const v of z.graph.initializers) {
        if (/^blocks\.\d+\.adaLN_modulation\.1\./.test(v.name)) rw.setInitializer(v, tensorFromTyped(v.name, 'f32', v.initializer!.dims, new Float32Array(v.initializer!.size)));
      }
      const zeroed = (await runOnce(z, feeds(2, 500, 3), 'output')).data as Float32Array;
      assert.ok(relDiff(base, zeroed) > 0.05, `blocks change the output by ${relDiff(base, zeroed)}`);
    } finally {
      await s.release();
    }
  });

  test('opset 17 (tanh-form GELU decomposition) computes the same function as opset 21 (Gelu tanh)', async () => {
    const m17 = await buildZooModel('dit-s2', { opset: 17 });
    assert.equal(ofType(m17, 'Gelu').length, 0);
    assert.equal(ofType(m17, 'Tanh').length, 12);
    const f = feeds(1, 321, 42);
    const a = (await runOnce(m, f, 'output')).data as Float32Array;
    const b = (await runOnce(m17, f, 'output')).data as Float32Array;
    assert.ok(relDiff(a, b) < 1e-5, `relative difference ${relDiff(a, b)}`);
  });
});
