// Running a model in segments (ir/segments.ts): where the cuts go, what each segment reads and hands on, and that
// samples streamed through the segments give what the whole model gives (onnxruntime as the reference), in
// calibration and in compile's validation.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../ir/builder.js';
import { collectGarbage } from '../../ir/gc.js';
import type { Model } from '../../ir/ir.js';
import { createSession, run, type Feeds } from '../../ir/ort.js';
import { planCuts, runSegmented, splitModel, type Segment } from '../../ir/segments.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { assertValid } from '../../ir/verify.js';
import { collectStatistics, randomCalibration } from '../../passes/quant/calibration.js';
import type { ActivationPlan } from '../../passes/quant/types.js';
import { compile } from '../../targets/compile.js';
import { presetConfig } from '../../targets/config.js';
import { tinyCnn } from '../util/tiny-cnn.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-segments-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function shaped(m: Model): Model {
  inferShapes(m);
  return m;
}

function out(m: Model, node: string): string {
  return m.graph.findNode(node)!.outputs[0]!.name;
}

function batches(n: number, rows: number, seed: number): Feeds[] {
  let s = seed;
  return Array.from({ length: n }, () => ({
    input: new ort.Tensor('float32', Float32Array.from({ length: rows * 3 * 16 * 16 }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1), [rows, 3, 16, 16]),
  }));
}

// tinyCnn's weights (float32 with biases): stem 1792 B, b1.conv1 9280, b1.conv2 9280, head 18560, fc 1280 + 40
describe('planCuts / splitModel', () => {
  test('a model within the limit is not cut', () => {
    const m = shaped(tinyCnn());
    assert.deepEqual(planCuts(m, 1 << 20), []);
    assert.equal(splitModel(m, 1 << 20), undefined);
  });

  test('the cut goes after the residual block, where one tensor crosses, not inside it where two do', () => {
    const m = shaped(tinyCnn());
    const nodes = m.graph.nodeArray().map((n) => n.name);
    // 21000 B: the first segment can reach b1.relu2 (20352 B); past half of that, the cheapest cut is after the
    // block (inside it, the skip connection crosses too); the rest (19880 B) fits
    assert.deepEqual(planCuts(m, 21000), [nodes.indexOf('b1.relu2')]);
    const segs = splitModel(m, 21000)!;
    assert.equal(segs.length, 2);
    const [a, b] = segs as [Segment, Segment];
    assert.deepEqual(a.inputs, ['input']);
    assert.deepEqual(a.outputs, [out(m, 'b1.relu2')]);
    assert.deepEqual(b.inputs, [out(m, 'b1.relu2')]);
    assert.deepEqual(b.outputs, m.graph.outputs.map((v) => v.name));
    assert.equal(a.weightBytes, 1792 + 9280 + 9280);
    assert.equal(b.weightBytes, 18560 + 1280 + 40);
    // each segment is a valid model of its own nodes; together they hold every node once
    assert.deepEqual([...a.model.graph.nodes(), ...b.model.graph.nodes()].map((n) => n.name), nodes);
    for (const s of segs) assertValid(s.model, `segment ${s.index}`);
    assert.deepEqual(a.model.graph.inputs.map((v) => v.name), ['input']);
    assert.deepEqual(b.model.graph.inputs.map((v) => v.name), [out(m, 'b1.relu2')]);
    assert.deepEqual(b.model.graph.inputs[0]!.shape, m.graph.findValue(out(m, 'b1.relu2'))!.shape);
    assert.deepEqual(a.model.graph.initializers.map((v) => v.name).sort(), ['b1.conv1.bias', 'b1.conv1.weight', 'b1.conv2.bias', 'b1.conv2.weight', 'stem.bias', 'stem.weight']);
  });

  test('a node above the limit gets a segment of its own; requested values are outputs of the segment computing them', () => {
    const m = shaped(tinyCnn());
    const segs = splitModel(m, 10000, [out(m, 'stem.relu'), ...m.graph.outputs.map((v) => v.name)])!;
    assert.ok(segs.length >= 3, `${segs.length} segments`);
    for (const s of segs) assert.ok(s.weightBytes <= 10000 || s.model.graph.nodeArray().filter((n) => n.inputs.some((v) => v?.initializer && v.initializer.byteLength > 1000)).length === 1, `segment ${s.index}: ${s.weightBytes} B`);
    const withStem = segs.find((s) => s.computes.has(out(m, 'stem.relu')))!;
    assert.ok(withStem.outputs.includes(out(m, 'stem.relu')));
    // every segment's inputs are graph inputs or computed by an earlier segment
    for (const s of segs) for (const i of s.inputs) assert.ok(i === 'input' || segs.slice(0, s.index).some((p) => p.computes.has(i) && p.outputs.includes(i)), `${i} of segment ${s.index}`);
  });

  test('graphs with subgraphs are not cut', () => {
    const b = new GraphBuilder('ifm', { opset: 17 });
    const x = b.input('x', 'f32', [4, 4]);
    const c = b.input('c', 'bool', []);
    const w = b.f32('w', [4, 4], Array.from({ length: 16 }, (_, i) => i));
    const y = b.op('MatMul', [x, w], { name: 'mm' });
    const branch = (name: string): Model['graph'] => {
      const g = new GraphBuilder(name, { opset: 17 });
      const z = g.op('Identity', [g.f32(`${name}_k`, [1], [1])], { name: `${name}_id` });
      g.output(z);
      return g.build().graph;
    };
    const iff = b.op('If', [c], { name: 'if', attrs: { then_branch: { type: 'graph', value: branch('then') }, else_branch: { type: 'graph', value: branch('else') } } });
    b.output(b.op('Mul', [y, iff], { name: 'mul' }));
    const m = shaped(b.build());
    assert.deepEqual(planCuts(m, 8), []);
  });
});

describe('runSegmented', () => {
  test('outputs equal the whole model on onnxruntime; the crossing files are removed', async () => {
    const m = shaped(tinyCnn());
    const xs = batches(3, 2, 11);
    const whole = await createSession(m);
    const want: Float32Array[] = [];
    for (const f of xs) want.push((await run(whole, f))[m.graph.outputs[0]!.name]!.data as Float32Array);
    await whole.release();
    const segs = splitModel(m, 10000)!;
    const dir = fs.mkdtempSync(path.join(root, 'cross-'));
    const got: Float32Array[] = [];
    let sessions = 0;
    const n = await runSegmented(segs, async function* () {
      yield* xs;
    }, {
      dir,
      session: async (s) => (sessions++, { session: await createSession(s.model) }),
      onBatch: (s, i, o) => {
        const y = o[m.graph.outputs[0]!.name];
        if (y) got[i] = y.data as Float32Array;
        assert.ok(fs.readdirSync(dir).length <= segs.length, 'one crossing file per segment at most');
      },
    });
    assert.equal(n, 3);
    assert.equal(sessions, segs.length);
    assert.deepEqual(fs.readdirSync(dir), []);
    for (let i = 0; i < 3; i++) {
      assert.equal(got[i]!.length, want[i]!.length);
      for (let k = 0; k < want[i]!.length; k++) assert.ok(Math.abs(got[i]![k]! - want[i]![k]!) <= 1e-5 * (1 + Math.abs(want[i]![k]!)), `batch ${i}[${k}]: ${got[i]![k]} vs ${want[i]![k]}`);
    }
  });

  test('admit leaves batches out of every segment; after() sees each segment\'s own feeds', async () => {
    const m = shaped(tinyCnn());
    const segs = splitModel(m, 21000)!;
    const ran = new Map<number, number[]>();
    const seen: string[][] = [];
    await runSegmented(segs, async function* () {
      yield* batches(4, 1, 3);
    }, {
      session: async (s) => ({ session: await createSession(s.model) }),
      admit: (_f, i) => i !== 1,
      onBatch: (s, i) => void ran.set(s.index, [...(ran.get(s.index) ?? []), i]),
      after: async (s, _session, feedsOf) => void seen.push(Object.keys(feedsOf(3)).concat(String(feedsOf(3)[s.inputs[0]!]!.dims))),
    });
    assert.deepEqual([...ran.entries()], [[0, [0, 2, 3]], [1, [0, 2, 3]]]);
    assert.deepEqual(seen, [['input', '1,3,16,16'], [out(m, 'b1.relu2'), '1,16,16,16']]);
  });
});

describe('segmented calibration and validation', () => {
  test('collectStatistics gives the same statistics in segments as in one session', async () => {
    const m = shaped(tinyCnn());
    const tensors = m.graph.nodeArray().flatMap((n) => n.outputs.filter((v) => v && v.dtype === 'f32').map((v) => v!.name));
    const plans: ActivationPlan[] = tensors.map((tensor) => ({ tensor, calibrator: 'percentile', consumers: [], quant: { dtype: 'i8', symmetric: true, granularity: { kind: 'per-tensor' } } }));
    const data = randomCalibration(m, { samples: 6, seed: 5, batchSize: 2, dims: { N: 2 } });
    const one = await collectStatistics(m, plans, data);
    let told: readonly Segment[] = [];
    const seg = await collectStatistics(m, plans, data, { segmentBytes: 10000, onSegments: (s) => (told = s) });
    assert.ok(told.length >= 3, `${told.length} segments`);
    for (const t of tensors) {
      const a = one.get(t)!;
      const b = seg.get(t)!;
      assert.equal(b.count, a.count, t);
      assert.ok(Math.abs(b.min - a.min) <= 1e-6 * (1 + Math.abs(a.min)) && Math.abs(b.max - a.max) <= 1e-6 * (1 + Math.abs(a.max)), `${t}: [${b.min}, ${b.max}] vs [${a.min}, ${a.max}]`);
    }
  });

  test('compile in segments: same quantized model, same validation, notes say so; the ORT latency is the segments\' sum', async () => {
    const base = { target: 'ort' as const, config: presetConfig('w8a8'), calibSamples: 8, validationSamples: 4, latencyRuns: 2 };
    const whole = await compile(tinyCnn(), { ...base, segmentBytes: 0 });
    const cut = await compile(tinyCnn(), { ...base, segmentBytes: 10000 });
    assert.ok(!whole.report.notes.some((n) => n.includes('segments')));
    assert.ok(cut.report.notes.some((n) => /^calibration ran in \d+ segments/.test(n)), cut.report.notes.join('\n'));
    assert.ok(cut.report.notes.some((n) => /^the FP32 reference ran in \d+ segments.*latency is the sum/.test(n)), cut.report.notes.join('\n'));
    assert.ok((cut.report.ort?.latencyMs?.fp32 ?? 0) > 0);
    const inits = (q: Model) => new Map(q.graph.initializers.map((v) => [v.name, v.initializer!] as const));
    const a = inits(whole.model);
    const b = inits(cut.model);
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [name, t] of a) {
      const u = b.get(name)!;
      assert.equal(u.dtype, t.dtype, name);
      const x = Array.from(t.typed() as ArrayLike<number>, Number);
      const y = Array.from(u.typed() as ArrayLike<number>, Number);
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-5 * (1 + Math.abs(x[i]!)) || (t.dtype !== 'f32' && Math.abs(x[i]! - y[i]!) <= 1), `${name}[${i}]: ${y[i]} vs ${x[i]}`);
    }
    for (let i = 0; i < whole.report.validation.outputs.length; i++) {
      assert.ok(Math.abs(cut.report.validation.outputs[i]!.sqnrDb - whole.report.validation.outputs[i]!.sqnrDb) < 0.05);
    }
  });

  test('collectGarbage returns dropped ArrayBuffers', async () => {
    let big: Float32Array | undefined = new Float32Array(16 << 20).fill(1);
    assert.equal(big[5], 1);
    big = undefined;
    const freed = await collectGarbage(64 << 20);
    assert.ok(freed >= 32 << 20, `freed ${freed} bytes`);
  });
});
