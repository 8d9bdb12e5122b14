// Zoo CNNs (resnet18, resnet50, mobilenetv2): exact parameter counts, torchvision topology, onnxruntime at batch 1 and 8, and BN running statistics equal to the real statistics of the pre-BN activations.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { cloneModel } from '../../ir/clone.js';
import type { Model, Node } from '../../ir/ir.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { Rewriter } from '../../ir/rewriter.js';
import { assertValid } from '../../ir/verify.js';
import { buildZooModel, CALIBRATION_BATCH, countParams, imagenetNoise, zooEntry } from '../../models/index.js';

function histogram(m: Model): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of m.graph.nodes()) h[n.opType] = (h[n.opType] ?? 0) + 1;
  return h;
}

function node(m: Model, name: string): Node {
  const n = m.graph.findNode(name);
  assert.ok(n, `node ${name}`);
  return n;
}

function images(batch: number, seed: number): ort.Tensor {
  return new ort.Tensor('float32', imagenetNoise(batch, seed), [batch, 3, 224, 224]);
}

/** Runs at batch 8 and batch 1 (the first image): shapes, finiteness, scale, and no mixing across the batch. */
async function checkRuns(m: Model): Promise<void> {
  const s = await createSession(m);
  try {
    const x8 = images(8, 99);
    const y8 = (await run(s, { input: x8 })).logits!;
    assert.deepEqual(y8.dims, [8, 1000]);
    const d8 = y8.data as Float32Array;
    assert.ok(d8.every(Number.isFinite), 'finite logits at batch 8');
    let s2 = 0;
    for (const v of d8) s2 += v * v;
    const rms = Math.sqrt(s2 / d8.length);
    assert.ok(rms > 0.05 && rms < 20, `logit RMS ${rms}`);
    const x1 = new ort.Tensor('float32', (x8.data as Float32Array).slice(0, 3 * 224 * 224), [1, 3, 224, 224]);
    const y1 = (await run(s, { input: x1 })).logits!;
    assert.deepEqual(y1.dims, [1, 1000]);
    const d1 = y1.data as Float32Array;
    for (let i = 0; i < 1000; i++) assert.ok(Math.abs(d1[i]! - d8[i]!) <= 1e-4 * rms + 1e-6, `logit ${i}: batch 1 ${d1[i]} vs batch 8 ${d8[i]}`);
  } finally {
    await s.release();
  }
}

/**
 * BN self-consistency, computed independently of bn-stats.ts: expose every BatchNormalization input of the final
 * model, run it on the seeded calibration batch, and take float64 per-channel statistics in JS. "Within 1e-3
 * relative": |var - stored| <= 1e-3 var and |mean - stored| <= 1e-3 (|mean| + std); a mean near 0 can only be
 * reproduced to float32 rounding relative to the channel's spread, not to its own tiny magnitude.
 */
async function checkBnStats(m: Model, seed: number): Promise<number> {
  const c = cloneModel(m);
  const bns = c.graph.nodeArray().filter((n) => n.op === 'BatchNormalization');
  new Rewriter(c.graph).setGraphOutputs(c.graph, bns.map((n) => n.input(0)!));
  const s = await createSession(c);
  let worst = 0;
  try {
    const res = await run(s, { input: images(CALIBRATION_BATCH, seed) });
    for (const n of bns) {
      const o = res[n.input(0)!.name]!;
      const [B, C, H, W] = o.dims.map(Number) as [number, number, number, number];
      const d = o.data as Float32Array;
      const storedMean = n.input(3)!.initializer!.typed() as Float32Array;
      const storedVar = n.input(4)!.initializer!.typed() as Float32Array;
      assert.equal(storedMean.length, C, n.name);
      const hw = H * W;
      const count = B * hw;
      for (let ch = 0; ch < C; ch++) {
        let s1 = 0;
        for (let b = 0; b < B; b++) for (let i = (b * C + ch) * hw, e = i + hw; i < e; i++) s1 += d[i]!;
        const mean = s1 / count;
        let s2 = 0;
        for (let b = 0; b < B; b++) for (let i = (b * C + ch) * hw, e = i + hw; i < e; i++) s2 += (d[i]! - mean) ** 2;
        const v = s2 / count;
        assert.ok(v > 0, `${n.name} channel ${ch} is constant`);
        const em = Math.abs(storedMean[ch]! - mean) / (Math.abs(mean) + Math.sqrt(v));
        const ev = Math.abs(storedVar[ch]! - v) / v;
        assert.ok(em <= 1e-3, `${n.name} channel ${ch}: running_mean ${storedMean[ch]} vs batch mean ${mean}`);
        assert.ok(ev <= 1e-3, `${n.name} channel ${ch}: running_var ${storedVar[ch]} vs batch variance ${v}`);
        worst = Math.max(worst, em, ev);
      }
    }
  } finally {
    await s.release();
  }
  return worst;
}

function checkCommon(m: Model, name: string): void {
  assertValid(m, name);
  assert.equal(countParams(m), zooEntry(name).params, 'parameter count');
  assert.ok([...m.graph.nodes()].every((n) => n.domain === ''), 'standard ONNX ops only');
  assert.equal(m.opset, 21);
  const x = m.graph.inputs[0]!;
  assert.deepEqual([x.name, x.dtype, x.shape], ['input', 'f32', [{ param: 'N' }, 3, 224, 224]]);
  assert.deepEqual(m.graph.outputs.map((o) => [o.name, o.shape]), [['logits', [{ param: 'N' }, 1000]]]);
  // BN: gamma/beta are small random (1 + 0.1 z, 0.1 z), eps 1e-5; the last BN of a residual branch (its output goes
  // straight into the skip Add) has gamma 0.25 (1 + 0.1 z)
  let residual = 0;
  for (const n of m.graph.nodes()) {
    if (n.op !== 'BatchNormalization') continue;
    assert.equal(Math.fround(n.attrFloat('epsilon', 0)), Math.fround(1e-5));
    const g = n.input(1)!.initializer!.typed() as Float32Array;
    const uses = n.outputs[0]!.uses;
    const intoAdd = uses.length === 1 && uses[0]!.node.op === 'Add';
    const isShortcut = n.name.includes('downsample');
    const [lo, hi] = intoAdd && !isShortcut ? (residual++, [0.25 * 0.79, 0.25 * 1.21]) : [0.79, 1.21];
    assert.ok(g.every((v) => v >= lo && v <= hi) && g.some((v) => v !== 1), `${n.name} gamma`);
  }
  assert.equal(residual, RESIDUAL_BLOCKS[name], 'residual branches');
}

/** Residual Adds per network: ResNet-18 8 BasicBlocks, ResNet-50 16 Bottlenecks, MobileNetV2 10 stride-1 inverted residuals with equal channels. */
const RESIDUAL_BLOCKS: Record<string, number> = { resnet18: 8, resnet50: 16, mobilenetv2: 10 };

describe('resnet18', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('resnet18');
  });

  test('11,689,512 parameters; torchvision topology (BasicBlock, 1x1 downsample with BN)', () => {
    checkCommon(m, 'resnet18');
    assert.deepEqual(histogram(m), { Conv: 20, BatchNormalization: 20, Relu: 17, MaxPool: 1, Add: 8, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });
    const c1 = node(m, 'conv1');
    assert.deepEqual([c1.attrInts('kernel_shape'), c1.attrInts('strides'), c1.attrInts('pads'), c1.inputs.length], [[7, 7], [2, 2], [3, 3, 3, 3], 2]);
    const mp = node(m, 'maxpool');
    assert.deepEqual([mp.attrInts('kernel_shape'), mp.attrInts('strides'), mp.attrInts('pads')], [[3, 3], [2, 2], [1, 1, 1, 1]]);
    assert.deepEqual(node(m, 'layer2.0.conv1').attrInts('strides'), [2, 2]);
    assert.deepEqual(node(m, 'layer2.0.downsample.0').attrInts('kernel_shape'), [1, 1]);
    assert.equal(m.graph.findNode('layer1.0.downsample.0'), undefined);
    assert.deepEqual(m.graph.findValue('fc.weight')!.shape, [1000, 512]);
  });

  test('runs at batch 1 and 8 with finite, well-scaled logits', async () => {
    await checkRuns(m);
  });

  test('BN running statistics are the pre-BN batch statistics (all 20 layers)', async () => {
    const worst = await checkBnStats(m, 0);
    assert.ok(worst < 1e-3);
  });
});

describe('resnet50', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('resnet50');
  });

  test('25,557,032 parameters; Bottleneck v1.5 (stride on the 3x3 conv)', () => {
    checkCommon(m, 'resnet50');
    assert.deepEqual(histogram(m), { Conv: 53, BatchNormalization: 53, Relu: 49, MaxPool: 1, Add: 16, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });
    for (const l of [2, 3, 4]) {
      assert.deepEqual(node(m, `layer${l}.0.conv1`).attrInts('strides'), [1, 1]);
      assert.deepEqual(node(m, `layer${l}.0.conv2`).attrInts('strides'), [2, 2]);
      assert.deepEqual(node(m, `layer${l}.0.downsample.0`).attrInts('strides'), [2, 2]);
    }
    // layer1.0 needs a downsample for the channel change 64 -> 256 (stride 1)
    assert.deepEqual(node(m, 'layer1.0.downsample.0').attrInts('strides'), [1, 1]);
    assert.deepEqual(m.graph.findValue('layer4.2.conv3.weight')!.shape, [2048, 512, 1, 1]);
    assert.deepEqual(m.graph.findValue('fc.weight')!.shape, [1000, 2048]);
  });

  test('runs at batch 1 and 8 with finite, well-scaled logits', async () => {
    await checkRuns(m);
  });

  test('BN running statistics are the pre-BN batch statistics (all 53 layers)', async () => {
    await checkBnStats(m, 0);
  });
});

describe('mobilenetv2', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('mobilenetv2');
  });

  test('3,504,872 parameters; inverted residuals, depthwise 3x3, ReLU6 as Clip(0, 6), no dropout', () => {
    checkCommon(m, 'mobilenetv2');
    assert.deepEqual(histogram(m), { Conv: 52, BatchNormalization: 52, Clip: 35, Add: 10, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });
    const dw = [...m.graph.nodes()].filter((n) => n.op === 'Conv' && n.attrInt('group', 1) > 1);
    assert.equal(dw.length, 17);
    for (const n of dw) assert.equal(n.attrInt('group', 1), n.input(1)!.shape![0]);
    const clip = [...m.graph.nodes()].find((n) => n.op === 'Clip')!;
    assert.deepEqual([clip.input(1)!.initializer!.typed()[0], clip.input(2)!.initializer!.typed()[0]], [0, 6]);
    assert.deepEqual(m.graph.findValue('features.18.0.weight')!.shape, [1280, 320, 1, 1]);
    assert.deepEqual(m.graph.findValue('classifier.1.weight')!.shape, [1000, 1280]);
  });

  test('runs at batch 1 and 8 with finite, well-scaled logits', async () => {
    await checkRuns(m);
  });

  test('BN running statistics are the pre-BN batch statistics (all 52 layers)', async () => {
    await checkBnStats(m, 0);
  });

  test('opset 13, a static batch and the seed: same graph and weights at any opset, other weights for another seed', async () => {
    const m13 = await buildZooModel('mobilenetv2', { opset: 13, batch: 1 });
    assert.equal(m13.opset, 13);
    assert.deepEqual(m13.graph.inputs[0]!.shape, [1, 3, 224, 224]);
    assert.deepEqual(m13.graph.outputs[0]!.shape, [1, 1000]);
    const w = (x: Model, name: string): Float32Array => x.graph.findValue(name)!.initializer!.typed() as Float32Array;
    for (const name of ['features.0.0.weight', 'features.5.conv.1.1.running_var', 'classifier.1.weight']) assert.deepEqual(w(m13, name), w(m, name), name);
    const s = await createSession(m13);
    const y = (await run(s, { input: images(1, 3) })).logits!;
    await s.release();
    const s21 = await createSession(m);
    const y21 = (await run(s21, { input: images(1, 3) })).logits!;
    await s21.release();
    assert.deepEqual(y.data, y21.data);
    const other = await buildZooModel('mobilenetv2', { seed: 1 });
    assert.notDeepEqual(w(other, 'features.0.0.weight'), w(m, 'features.0.0.weight'));
  });
});
