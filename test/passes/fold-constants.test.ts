// fold-constants: weight-only chains and static Shape fold (one ORT session); Q/DQ, randomness, overridable inputs stay.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { tensorFromTyped, tensorType, type Graph, type Model } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { ort } from '../../ir/ort.js';
import { verify } from '../../ir/verify.js';
import { DEFAULT_MAX_BYTES, foldConstants } from '../../passes/fold-constants.js';
import { PassManager, verifyInstrument, type PipelineResult } from '../../passes/manager.js';
import { diagnosticSink } from '../../passes/pass.js';
import { modelBytes, node, ONNX, vi } from '../util/onnx-msg.js';
import { graphText } from '../util/graph.js';
import { outputs } from '../util/ort.js';


async function fold(m: Model, options: Record<string, number> = {}): Promise<PipelineResult> {
  return new PassManager([foldConstants]).run(m, { options: { 'fold-constants': options }, instruments: [verifyInstrument()] });
}


function sameOutputs(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): void {
  assert.deepEqual(Object.keys(a), Object.keys(b));
  for (const k of Object.keys(a)) {
    assert.deepEqual(a[k]!.dims, b[k]!.dims);
    // folding evaluates the very same ops in ORT: results are bit-identical
    assert.deepEqual(Array.from(a[k]!.data as Float32Array), Array.from(b[k]!.data as Float32Array), `output ${k}`);
  }
}

test('a weight-only chain and a static Shape fold in one ORT session; results are those of the original graph', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [2, 3]);
  const w = b.f32('w', [4, 3], Array.from({ length: 12 }, (_, i) => i * 0.25 - 1));
  const s = b.f32('s', [], [0.5]);
  const wt = b.op('Transpose', [w], { name: 'wt' }); // [3, 4]
  const ws = b.op('Mul', [wt, s], { name: 'ws' });
  const y = b.op('MatMul', [x, ws], { name: 'mm' }); // [2, 4]
  // a shape computed from x's static annotation: Shape(x) -> Concat([-1], Shape(x)[1:]) -> Reshape target
  const shp = b.op('Shape', [x], { name: 'shape' });
  const tail = b.op('Slice', [shp, b.i64('one', [1]), b.i64('two', [2])], { name: 'tail' });
  const target = b.op('Concat', [b.i64('minus1', [-1]), tail], { name: 'target', attrs: { axis: 0 } });
  const z = b.op('Reshape', [b.op('Relu', [x], { name: 'relu' }), target], { name: 'reshape' });
  b.output(y, z);
  const m = b.build();
  const before = encodeModel(m);
  const r = await fold(m);
  assert.deepEqual(r.perPass[0]!.stats, { shapes: 1, folded: 2, erased: 2, tooBig: 0, failed: 0, sessions: 1 });
  // the whole graph: the weight chain is one initializer, the shape chain is one initializer
  assert.deepEqual(graphText(m.graph), ['mm_out = MatMul(x, ws_out)', 'relu_out = Relu(x)', 'reshape_out = Reshape(relu_out, target_out)']);
  const folded = m.graph.findValue('ws_out')!.initializer!;
  assert.deepEqual(folded.dims, [3, 4]);
  // independent reference: transpose and halve in JS (exact in f32)
  const want = Array.from({ length: 12 }, (_, k) => (Math.floor(k / 4) + 3 * (k % 4)) * 0.25 * 0.5 - 0.5);
  assert.deepEqual(Array.from(folded.typed() as Float32Array), want);
  assert.deepEqual(Array.from(m.graph.findValue('target_out')!.initializer!.typed() as BigInt64Array), [-1n, 3n]);
  const feeds = { x: new ort.Tensor('float32', Float32Array.from([1, -2, 3, -4, 5, -6]), [2, 3]) };
  sameOutputs(await outputs(before, feeds), await outputs(m, feeds));
  // nothing is left to fold: a second run changes nothing
  assert.equal((await fold(m)).changed, false);
});

test('negative twins: Q/DQ on weights, random ops, Dropout and a dynamic Shape stay', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [{ param: 'n' }, 4]);
  const w = b.f32('w', [4], [0.1, -0.2, 0.3, -0.4]);
  const q = b.op('QuantizeLinear', [w, b.f32('scale', [], [0.01]), b.init('zp', 'i8', [], Int8Array.of(0))], { name: 'q' });
  const dq = b.op('DequantizeLinear', [q, b.f32('scale2', [], [0.01]), b.init('zp2', 'i8', [], Int8Array.of(0))], { name: 'dq' });
  const rnd = b.op('RandomUniform', [], { name: 'rand', attrs: { shape: [4], dtype: 1 } });
  const drop = b.op('Dropout', [w], { name: 'drop' });
  const sum = b.op('Add', [b.op('Add', [dq, rnd], { name: 'a1' }), drop], { name: 'sum' });
  b.output(b.op('Add', [x, sum], { name: 'out' }), b.op('Shape', [x], { name: 'dyn_shape' }));
  const m = b.build();
  const text = graphText(m.graph);
  const r = await fold(m);
  assert.equal(r.changed, false, JSON.stringify(r.perPass[0]!.stats));
  assert.deepEqual(graphText(m.graph), text);
});

test('negative twin: an initializer that is also a graph input (an overridable default) is not a constant', async () => {
  const w = { name: 'w', data_type: ONNX.FLOAT, dims: [2], float_data: [1, 2] };
  const bytes = modelBytes({
    input: [vi('x', ONNX.FLOAT, [2]), vi('w', ONNX.FLOAT, [2])],
    initializer: [w, { ...w, name: 'k' }],
    node: [node('Neg', ['w'], ['nw'], { name: 'neg_w' }), node('Neg', ['k'], ['nk'], { name: 'neg_k' }), node('Sum', ['x', 'nw', 'nk'], ['y'], { name: 'sum' })],
    output: [vi('y', ONNX.FLOAT, [2])],
  });
  const m = decodeModel(bytes);
  await fold(m);
  assert.deepEqual(graphText(m.graph), ['nw = Neg(w)', 'y = Sum(x, nw, nk)']);
  assert.ok(m.graph.findValue('w')!.isGraphInput && m.graph.findValue('w')!.isInitializer, 'w is still an overridable input');
  const feeds = { x: new ort.Tensor('float32', Float32Array.of(10, 20), [2]) };
  sameOutputs(await outputs(bytes, feeds), await outputs(m, feeds));
  assert.deepEqual(Array.from((await outputs(m, feeds)).y!.data as Float32Array), [8, 16]);
});

test('results over max-bytes are not folded; under the default limit they are', async () => {
  const mk = (): Model => {
    const b = new GraphBuilder('g', { opset: 17 });
    const x = b.input('x', 'f32', [256, 256]);
    const big = b.op('ConstantOfShape', [b.i64('dims', [256, 256])], { name: 'big', attrs: { value: tensorFromTyped('v', 'f32', [1], Float32Array.of(2)) } });
    b.output(b.op('Mul', [x, big], { name: 'mul' }));
    return b.build();
  };
  const small = mk();
  const r1 = await fold(small, { 'max-bytes': 65536 });
  assert.equal(r1.perPass[0]!.stats.tooBig, 1);
  assert.deepEqual(graphText(small.graph), ['big_out = ConstantOfShape(dims)', 'mul_out = Mul(x, big_out)']);
  const dflt = mk();
  const r2 = await fold(dflt);
  assert.ok(256 * 256 * 4 < DEFAULT_MAX_BYTES);
  assert.equal(r2.perPass[0]!.stats.folded, 1);
  assert.deepEqual(graphText(dflt.graph), ['mul_out = Mul(x, big_out)']);
  assert.equal(dflt.graph.findValue('big_out')!.initializer!.byteLength, 256 * 256 * 4);
});

test('an op ORT cannot run is bisected out: the rest still folds, the failure is a warning', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [3]);
  const w = b.f32('w', [3], [1, 4, 9]);
  const good = b.op('Sqrt', [w], { name: 'good' });
  const good2 = b.op('Neg', [good], { name: 'good2' });
  // Sin has no int64 kernel in onnxruntime (and the type constraint forbids it): ORT rejects the batch
  const bad = b.op('Sin', [b.i64('k', [1, 2, 3])], { name: 'bad' });
  b.output(b.op('Add', [x, good2], { name: 'add' }), bad);
  const m = b.build();
  const diag = diagnosticSink();
  const r = await new PassManager([foldConstants]).run(m, { diag, instruments: [verifyInstrument()] });
  const st = r.perPass[0]!.stats;
  assert.equal(st.failed, 1);
  assert.equal(st.folded, 1);
  assert.ok(st.sessions! >= 3 && st.sessions! <= 4, `bisection used ${st.sessions} sessions`);
  assert.deepEqual(graphText(m.graph), ['bad_out = Sin(k)', 'add_out = Add(x, good2_out)']);
  assert.deepEqual(Array.from(m.graph.findValue('good2_out')!.initializer!.typed() as Float32Array), [-1, -2, -3]);
  assert.equal(diag.items.length, 1);
  assert.equal(diag.items[0]!.code, 'W_FOLD_ORT');
  assert.equal(diag.items[0]!.loc.node, 'bad');
});

test('constant nodes inside an If branch fold into that branch, reading outer initializers', async () => {
  const outer = new GraphBuilder('g', { opset: 17 });
  const w = outer.f32('w', [2], [3, 4]);
  const branch = (name: string, k: number): Graph => {
    const g = new GraphBuilder(name, { opset: 17 });
    const c = g.f32(`${name}_k`, [2], [k, k]);
    g.output(g.op('Mul', [w, c], { name: `${name}_mul` }));
    return g.graph;
  };
  const cond = outer.input('cond', 'bool', []);
  outer.output(outer.op('If', [cond], { name: 'if', attrs: { then_branch: branch('then', 2), else_branch: branch('else', -1) } }));
  const m = outer.build();
  const before = encodeModel(m);
  const r = await fold(m);
  assert.equal(r.perPass[0]!.stats.folded, 2);
  assert.equal(r.perPass[0]!.stats.sessions, 1);
  const [thenG, elseG] = m.graph.findNode('if')!.subgraphs();
  assert.deepEqual(thenG!.nodeArray(), []);
  assert.deepEqual(Array.from(thenG!.findValue('then_mul_out')!.initializer!.typed() as Float32Array), [6, 8]);
  assert.ok(thenG!.initializers.some((v) => v.name === 'then_mul_out'), 'the folded value lives in its branch');
  assert.deepEqual(Array.from(elseG!.outputs[0]!.initializer!.typed() as Float32Array), [-3, -4]);
  assert.deepEqual(verify(m), []);
  for (const c of [1, 0]) {
    const feeds = { cond: new ort.Tensor('bool', Uint8Array.of(c), []) };
    sameOutputs(await outputs(before, feeds), await outputs(m, feeds));
  }
});

test('Shape-15 start/end and Size fold from a static annotation', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [2, 3, 5, 7]);
  const sh = b.op('Shape', [x], { name: 'sh', attrs: { start: 1, end: -1 } });
  const sz = b.op('Size', [x], { name: 'sz' });
  b.output(sh, sz);
  const m = b.build();
  b.rw.setType(m.graph.findValue('sh_out')!, tensorType('i64', [2]));
  const r = await fold(m);
  assert.equal(r.perPass[0]!.stats.shapes, 2);
  assert.deepEqual(graphText(m.graph), []);
  assert.deepEqual(Array.from(m.graph.outputs[0]!.initializer!.typed() as BigInt64Array), [3n, 5n]);
  assert.deepEqual(Array.from(m.graph.outputs[1]!.initializer!.typed() as BigInt64Array), [210n]);
  // ORT agrees: the graph outputs are the constants (initializers as outputs)
  const s = await outputs(m, { x: new ort.Tensor('float32', new Float32Array(210), [2, 3, 5, 7]) });
  assert.deepEqual(Array.from(s.sh_out!.data as BigInt64Array), [3n, 5n]);
});
