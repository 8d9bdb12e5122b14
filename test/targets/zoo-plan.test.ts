// Plans on the zoo models (resnet18, mobilenetv2, vit-ti16, dit-s2) for both targets: every weighted layer quantized, every plan names real tensors and consumers.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Model, Node } from '../../ir/ir.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { buildZooModel } from '../../models/index.js';
import { canonicalize } from '../../passes/canonicalize.js';
import type { QuantPlan } from '../../passes/quant/types.js';
import { getTarget } from '../../targets/target.js';
import { config } from './helpers.js';

const WEIGHTED = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);
const ZOO = ['resnet18', 'mobilenetv2', 'vit-ti16', 'dit-s2'] as const;
const models = new Map<string, Model>();

before(async () => {
  for (const name of ZOO) {
    const m = await buildZooModel(name);
    await canonicalize(m);
    inferShapes(m);
    models.set(name, m);
  }
});

/** Checks the plan's internal consistency against the model; returns the names of the quantized weighted layers. */
function checkPlan(m: Model, p: QuantPlan): Set<string> {
  const g = m.graph;
  const values = new Map([...g.values()].map((v) => [v.name, v]));
  const nodes = new Map(g.nodeArray().map((n) => [n.name, n]));
  const planned = new Set<string>();
  for (const a of p.activations) {
    const v = values.get(a.tensor);
    assert.ok(v, `ActivationPlan names a missing tensor '${a.tensor}'`);
    assert.ok(!v.isInitializer, `ActivationPlan on a constant '${a.tensor}'`);
    assert.ok(!planned.has(a.tensor), `two ActivationPlans for '${a.tensor}'`);
    planned.add(a.tensor);
    for (const c of a.consumers) assert.equal(nodes.get(c.node)?.inputs[c.input], v, `'${c.node}' input ${c.input} does not read '${a.tensor}'`);
  }
  for (const a of p.activations) if (a.sameAs !== undefined) assert.ok(planned.has(a.sameAs), `sameAs '${a.sameAs}' is not planned`);
  const reads = (n: Node, i: number): boolean => {
    const a = p.activations.find((x) => x.tensor === n.inputs[i]?.name);
    return a !== undefined && (a.consumers.length === 0 || a.consumers.some((c) => c.node === n.name && c.input === i));
  };
  const quantized = new Set<string>();
  for (const w of p.weights) {
    const n = nodes.get(w.node);
    assert.ok(n && WEIGHTED.has(n.opType), `WeightPlan on '${w.node}'`);
    assert.ok(n.inputs[w.input]?.isInitializer, `WeightPlan on a non-constant input of '${w.node}'`);
    quantized.add(w.node);
  }
  for (const n of g.nodes()) {
    if (!WEIGHTED.has(n.opType)) continue;
    const acts = [0, 1].filter((i) => n.inputs[i] && !n.inputs[i]!.isInitializer && (n.opType === 'MatMul' || n.opType === 'Gemm' || i === 0));
    if (!quantized.has(n.name) && acts.length === 2 && acts.every((i) => reads(n, i))) quantized.add(n.name);
  }
  return quantized;
}

const weightedLayers = (m: Model): string[] => m.graph.nodeArray().filter((n) => WEIGHTED.has(n.opType)).map((n) => n.name);

describe('plans on the zoo', () => {
  for (const name of ZOO) {
    for (const t of ['tensorrt', 'ort'] as const) {
      test(`${name} ${t} w8a8: every Conv/Gemm/MatMul quantized, plans consistent`, () => {
        const m = models.get(name)!;
        const p = getTarget(t).plan(m, config('w8a8'));
        const q = checkPlan(m, p);
        assert.deepEqual([...q].sort(), weightedLayers(m).sort());
        assert.deepEqual(p.keptFloat, []);
        assert.deepEqual(p.fallbacks, []);
        assert.equal(p.opset, 13);
        // every activation operand of a quantized layer is read through a DQ
        for (const n of m.graph.nodes()) {
          if (!WEIGHTED.has(n.opType)) continue;
          const x = n.inputs[0]!;
          if (x.isInitializer) continue;
          const a = p.activations.find((y) => y.tensor === x.name);
          assert.ok(a && (a.consumers.length === 0 || a.consumers.some((c) => c.node === n.name && c.input === 0)), `${n.name} input 0 not quantized`);
        }
      });
    }
  }

  test('keep-fp excludes layers and their input Q/DQ; counts = all weighted layers minus the kept ones', () => {
    const m = models.get('resnet18')!;
    for (const t of ['tensorrt', 'ort'] as const) {
      const p = getTarget(t).plan(m, config('w8a8', { keepFp: ['layer4.*', 'fc'] }));
      const q = checkPlan(m, p);
      const kept = weightedLayers(m).filter((n) => n.startsWith('layer4.') || n === 'fc');
      assert.equal(kept.length, 6);
      assert.deepEqual([...q].sort(), weightedLayers(m).filter((n) => !kept.includes(n)).sort());
      assert.deepEqual(p.keptFloat.map((k) => k.node).sort(), kept.sort());
      for (const a of p.activations) for (const c of a.consumers) assert.ok(!kept.includes(c.node), `${c.node} is kept float but reads a DQ`);
    }
    // TensorRT quantizes no tensor whose only readers are kept float
    const p = getTarget('tensorrt').plan(m, config('w8a8', { keepFp: ['layer4.*', 'fc'] }));
    assert.equal(p.activations.find((a) => a.tensor === 'flatten_out'), undefined);
  });

  test('w4a8 under tensorrt: every convolution falls back to INT8 weights, the classifier runs INT4 weight-only', () => {
    const m = models.get('resnet18')!;
    const p = getTarget('tensorrt').plan(m, config('w4a8'));
    const convs = weightedLayers(m).filter((n) => n !== 'fc');
    assert.deepEqual(p.fallbacks.map((f) => f.node), [...convs, 'fc']);
    for (const f of p.fallbacks.slice(0, -1)) assert.match(f.reason, /INT4 is weight-only on Gemm\/MatMul; convolutions take INT8 weights/);
    assert.match(p.fallbacks.at(-1)!.reason, /INT4 weights are weight-only/);
    assert.deepEqual(p.weights.at(-1), { node: 'fc', input: 1, quant: { dtype: 'i4', granularity: { kind: 'blocked', axis: 1, size: 128 }, symmetric: true } });
    assert.equal(p.activations.find((a) => a.consumers.some((c) => c.node === 'fc')), undefined);
    assert.equal(p.opset, 21);
  });

  test('vit-ti16 (static batch) under ort: value-preserving ops behind the qkv output share its parameters', async () => {
    const m = await buildZooModel('vit-ti16', { batch: 1 });
    await canonicalize(m);
    inferShapes(m);
    const p = getTarget('ort').plan(m, config('w8a8'));
    checkPlan(m, p);
    const shared = p.activations.filter((a) => a.tensor.startsWith('blocks.0.') && a.sameAs !== undefined).map((a) => `${a.tensor}=${a.sameAs}`);
    assert.deepEqual(shared, [
      'blocks.0.attn.reshape_qkv_out=blocks.0.attn.qkv_out',
      'blocks.0.attn.permute_qkv_out=blocks.0.attn.qkv_out',
      'blocks.0.attn.k_out=blocks.0.attn.qkv_out',
      'blocks.0.attn.v_out=blocks.0.attn.qkv_out',
      'blocks.0.attn.k_t_out=blocks.0.attn.qkv_out',
    ]);
    // with a symbolic batch the qkv MatMul+Add stays MatMulIntegerToFloat + Add (no Gemm): its output is not quantized
    const d = getTarget('ort').plan(models.get('vit-ti16')!, config('w8a8'));
    assert.equal(d.activations.find((a) => a.tensor === 'blocks.0.attn.qkv_out'), undefined);
    assert.ok(d.activations.every((a) => a.sameAs === undefined));
  });
});
