// End to end on zoo models: plan -> quantizeWeights -> insertQdq (fixed QParams) -> predictFusion, checked against onnxruntime-node's optimized graph.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cloneModel } from '../../ir/clone.js';
import { tensorFromTyped, type Model } from '../../ir/ir.js';
import { loadModel } from '../../ir/onnx/reader.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { Rewriter } from '../../ir/rewriter.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { assertValid } from '../../ir/verify.js';
import { buildZooModel } from '../../models/index.js';
import { canonicalize } from '../../passes/canonicalize.js';
import { insertQdq } from '../../passes/quant/insert-qdq.js';
import { quantizeWeights } from '../../passes/quant/quantize-weights.js';
import type { QParams, QuantPlan } from '../../passes/quant/types.js';
import { getTarget, type FusionReport, type TargetName } from '../../targets/target.js';
import { resolveChoices } from '../../targets/shared-plan.js';
import { config } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-e2e-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Fixed parameters: uint8 [0, clamp max or 8] for ranges known to start at 0, [-6.4, 6.35] otherwise; int8 scale 0.05. */
function fixedParams(p: QuantPlan): Map<string, QParams> {
  const out = new Map<string, QParams>();
  for (const a of [...p.activations, ...(p.choices ?? []).flatMap((c) => c.candidates)]) {
    if (a.sameAs !== undefined) continue;
    if (a.quant.dtype !== 'u8') out.set(a.tensor, { scale: 0.05, zeroPoint: 0 });
    else if (a.clamp?.min === 0) out.set(a.tensor, { scale: (a.clamp.max ?? 8) / 255, zeroPoint: 0 });
    else out.set(a.tensor, { scale: 0.05, zeroPoint: 128 });
  }
  return out;
}

async function quantize(m: Model, t: TargetName, preset: 'w8a8' | 'w4a8' = 'w8a8'): Promise<{ q: Model; plan: QuantPlan; report: FusionReport }> {
  const q = cloneModel(m);
  const target = getTarget(t);
  const planned = target.plan(q, config(preset));
  const params = fixedParams(planned);
  // equal scales: each downsample block's choice keeps its first candidate (the projection shortcut's output)
  const plan = resolveChoices(planned, params).plan;
  quantizeWeights(q, plan.weights);
  insertQdq(q, plan.activations, params);
  assertValid(q);
  return { q, plan, report: target.predictFusion(q) };
}

const KERNELS = new Set(['QLinearConv', 'QGemm', 'QLinearMatMul', 'MatMulIntegerToFloat', 'MatMulNBits']);
const FLOAT = new Set(['Conv', 'FusedConv', 'NchwcConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul', 'ConvTranspose']);

/** Weighted-layer kernels in ORT's optimized graph ('float' for float ones), and the session for running. */
async function ortKernels(m: Model, name: string): Promise<{ kernels: Record<string, number>; session: ort.InferenceSession }> {
  const file = path.join(tmp, `${name}.onnx`);
  const session = await createSession(m, { optimization: 'all', optimizedModelFilePath: file });
  const kernels: Record<string, number> = {};
  for (const n of loadModel(file).graph.nodes()) {
    const k = KERNELS.has(n.opType) ? n.opType : FLOAT.has(n.opType) ? 'float' : undefined;
    if (k) kernels[k] = (kernels[k] ?? 0) + 1;
  }
  return { kernels, session };
}

function predictedKernels(r: FusionReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of r.layers) out[l.quantized ? l.kernel! : 'float'] = (out[l.quantized ? l.kernel! : 'float'] ?? 0) + 1;
  return out;
}

function image(): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37) * 1.5), [1, 3, 224, 224]);
}

describe('resnet18 end to end', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('resnet18');
    await canonicalize(m);
    inferShapes(m);
  });

  test('tensorrt: full coverage, every residual Add and ReLU fused, no standalone Q/DQ', async () => {
    const { q, report } = await quantize(m, 'tensorrt');
    assert.equal(report.coverage, 1);
    assert.deepEqual(report.standaloneQdq, []);
    const fused = (n: string): readonly string[] => report.layers.find((l) => l.node === n)!.fusedWith;
    assert.deepEqual(fused('layer1.0.conv2'), ["Add(residual) 'layer1.0.add'", "Relu 'layer1.0.relu_1'", "QuantizeLinear 'layer1.0.relu_1_out_q' (quantized output)"]);
    assert.deepEqual(fused('conv1'), ["Relu 'relu'", "QuantizeLinear 'maxpool_out_q' (quantized output, across MaxPool 'maxpool')"]);
    assert.deepEqual(fused('layer4.1.conv2'), ["Add(residual) 'layer4.1.add'", "Relu 'layer4.1.relu_1'"]);
    assert.deepEqual(fused('layer2.0.downsample.0'), ["QuantizeLinear 'layer2.0.downsample.0_out_q' (quantized output)"]);
    // the TensorRT-style model is valid ONNX that onnxruntime runs
    const { session } = await ortKernels(q, 'resnet18-trt');
    const out = (await run(session, { input: image() })).logits!;
    assert.deepEqual(out.dims, [1, 1000]);
    assert.ok((out.data as Float32Array).every(Number.isFinite));
  });

  test('ort: the prediction matches the kernels onnxruntime builds; every Conv becomes QLinearConv', async () => {
    const { q, report } = await quantize(m, 'ort');
    const { kernels, session } = await ortKernels(q, 'resnet18-ort');
    assert.deepEqual(predictedKernels(report), kernels);
    assert.equal(kernels.QLinearConv, 20);
    assert.equal(kernels.QGemm, 1, 'the classifier Gemm fuses: its graph output is read through Q/DQ');
    assert.equal(report.coverage, 1);
    assert.ok(report.layers.every((l) => l.quantized));
    const out = (await run(session, { input: image() })).logits!;
    assert.ok((out.data as Float32Array).every(Number.isFinite));
  });

  test('ort: the logits keep their name, read a DequantizeLinear, and the float tensor fc writes is logits_float', async () => {
    const { q, plan } = await quantize(m, 'ort');
    const a = plan.activations.find((x) => x.tensor === 'logits');
    assert.deepEqual(a?.consumers, []);
    assert.equal(a?.graphOutput, true);
    const g = q.graph;
    assert.deepEqual(g.outputs.map((v) => v.name), ['logits']);
    const dq = g.outputs[0]!.producer!;
    assert.equal(dq.opType, 'DequantizeLinear');
    const qn = dq.inputs[0]!.producer!;
    assert.equal(qn.opType, 'QuantizeLinear');
    assert.equal(qn.inputs[0]!.name, 'logits_float');
    assert.equal(qn.inputs[0]!.producer!.name, 'fc');
    assertValid(q);
  });
});

describe('transformers end to end', () => {
  for (const name of ['vit-ti16', 'dit-s2'] as const) {
    test(`${name} ort w8a8 and w4a8: predicted kernels match onnxruntime (QGemm, QLinearMatMul, MatMulIntegerToFloat, MatMulNBits)`, async () => {
      const m = await buildZooModel(name);
      await canonicalize(m);
      inferShapes(m);
      for (const preset of ['w8a8', 'w4a8'] as const) {
        const { q, report } = await quantize(m, 'ort', preset);
        const { kernels } = await ortKernels(q, `${name}-${preset}`);
        assert.deepEqual(predictedKernels(report), kernels, preset);
        // vit's classifier Gemm writes the graph output, which is read through Q/DQ: it fuses like every other layer
        const unfused = report.layers.filter((l) => !l.quantized).map((l) => l.node);
        assert.deepEqual(unfused, [], preset);
      }
    });
  }
});
