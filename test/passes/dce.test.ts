// dce: dead chains, dead values read only inside subgraphs, dead If with bodies, unused initializers; live graphs untouched.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Model } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { ort } from '../../ir/ort.js';
import { dce } from '../../passes/dce.js';
import { PassManager, verifyInstrument, type PipelineResult } from '../../passes/manager.js';
import { modelBytes, node, ONNX, vi } from '../util/onnx-msg.js';
import { graphText } from '../util/graph.js';
import { outputs } from '../util/ort.js';


async function runDce(m: Model): Promise<PipelineResult> {
  return new PassManager([dce]).run(m, { instruments: [verifyInstrument()] });
}


/** A branch graph for If that reads outer value `outer` (dead work inside when `dead` is set). */
function branch(name: string, outer: ReturnType<GraphBuilder['input']>, dead: boolean): Graph {
  const g = new GraphBuilder(name, { opset: 17 });
  if (dead) g.op('Exp', [outer], { name: `${name}_dead` }); // reads the outer value, result unused
  g.output(g.op('Identity', [g.f32(`${name}_c`, [1], [name === 'then' ? 1 : -1])], { name: `${name}_id` }));
  return g.graph;
}

test('dead chains, dead subgraph work and a dead If go; outer values they alone read go too; outputs unchanged', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [3]);
  const cond = b.input('cond', 'bool', []);
  b.input('unused_input', 'f32', [1]); // graph inputs are the interface: never removed
  b.f32('unused_w', [2], [1, 2]);
  const live = b.op('Relu', [x], { name: 'relu' });
  b.op('Exp', [b.op('Neg', [x], { name: 'dead_neg' })], { name: 'dead_exp' }); // dead chain
  const sig = b.op('Sigmoid', [x], { name: 'sig' }); // read only by dead work inside the live If's branch
  const tanh = b.op('Tanh', [x], { name: 'tanh' }); // read only inside a dead If
  const liveIf = b.op('If', [cond], { name: 'live_if', attrs: { then_branch: branch('then', sig, true), else_branch: branch('else', sig, false) } });
  b.op('If', [cond], { name: 'dead_if', attrs: { then_branch: branch('t2', tanh, true), else_branch: branch('e2', tanh, true) } });
  const [s0] = b.opN('Split', [x], { name: 'split', outputs: 3, attrs: { axis: 0 } }); // one live output of three: stays
  b.output(b.op('Add', [live, liveIf], { name: 'add' }), s0!);
  const m = b.build();
  const before = encodeModel(m);
  const r = await runDce(m);
  assert.deepEqual(r.perPass[0]!.stats, { nodes: 6, initializers: 1 }); // dead_neg, dead_exp, then_dead, sig, dead_if (with its bodies), tanh
  assert.deepEqual(graphText(m.graph), ['relu_out = Relu(x)', 'live_if_out = If(cond)', 'split_out0,split_out1,split_out2 = Split(x)', 'add_out = Add(relu_out, live_if_out)']);
  const [thenG, elseG] = m.graph.findNode('live_if')!.subgraphs();
  assert.deepEqual(graphText(thenG!), ['then_id_out = Identity(then_c)']);
  assert.deepEqual(graphText(elseG!), ['else_id_out = Identity(else_c)']);
  assert.deepEqual(m.graph.initializers.map((v) => v.name), []);
  assert.deepEqual(m.graph.inputs.map((v) => v.name), ['x', 'cond', 'unused_input']);
  for (const c of [0, 1]) {
    const feeds = { x: new ort.Tensor('float32', Float32Array.of(-1, 0.5, 2), [3]), cond: new ort.Tensor('bool', Uint8Array.of(c), []), unused_input: new ort.Tensor('float32', Float32Array.of(0), [1]) };
    const want = await outputs(before, feeds);
    const got = await outputs(m, feeds);
    for (const k of Object.keys(want)) assert.deepEqual(Array.from(got[k]!.data as Float32Array), Array.from(want[k]!.data as Float32Array));
  }
});

test('negative twin: a fully live graph is left as it is', async () => {
  const b = new GraphBuilder('g', { opset: 17 });
  const x = b.input('x', 'f32', [3]);
  const w = b.f32('w', [3], [1, 2, 3]);
  b.output(b.op('Mul', [b.op('Relu', [x], { name: 'relu' }), w], { name: 'mul' }));
  const m = b.build();
  const before = encodeModel(m);
  const r = await runDce(m);
  assert.equal(r.changed, false);
  assert.ok(Buffer.from(encodeModel(m)).equals(Buffer.from(before)));
});

test('an unused initializer that is also a graph input stays; a node with no outputs stays', async () => {
  const w = { name: 'w', data_type: ONNX.FLOAT, dims: [1], float_data: [1] };
  const m = decodeModel(
    modelBytes(
      {
        input: [vi('x', ONNX.FLOAT, [1]), vi('w', ONNX.FLOAT, [1])],
        initializer: [w, { ...w, name: 'gone' }],
        node: [node('Print', ['x'], [], { name: 'effect', domain: 'com.example' }), node('Relu', ['x'], ['y'], { name: 'relu' })],
        output: [vi('y', ONNX.FLOAT, [1])],
      },
      { opset_import: [{ domain: '', version: 17 }, { domain: 'com.example', version: 1 }] },
    ),
  );
  const r = await runDce(m);
  assert.deepEqual(r.perPass[0]!.stats, { nodes: 0, initializers: 1 });
  assert.deepEqual(m.graph.initializers.map((v) => v.name), ['w']);
  assert.deepEqual(graphText(m.graph), [' = Print(x)', 'y = Relu(x)']);
});
