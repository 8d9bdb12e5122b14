// Rewriter and verify(): use lists stay exact under every edit; verify() catches each broken invariant.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { Node, Value } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { Rewriter, freshName } from '../../ir/rewriter.js';
import { verify } from '../../ir/verify.js';

function chain() {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [2, 3]);
  const a = b.op('Relu', [x], { name: 'relu' });
  const s = b.op('Sigmoid', [a], { name: 'sig' });
  const t = b.op('Add', [a, s], { name: 'add' });
  b.output(t);
  return { b, x, a, s, t, m: b.build() };
}

function useList(v: Value): string[] {
  return v.uses.map((u) => `${u.node.name}#${u.index}`).sort();
}

test('use lists follow setInput, replaceAllUsesWith and erase', () => {
  const { b, x, a, s, m } = chain();
  assert.deepEqual(useList(a), ['add#0', 'sig#0']);
  const rw = new Rewriter(m.graph);
  const add = m.graph.findNode('add')!;
  rw.setInput(add, 1, x);
  assert.deepEqual(useList(s), []);
  assert.deepEqual(useList(x), ['add#1', 'relu#0']);
  rw.erase(m.graph.findNode('sig')!);
  assert.equal(m.graph.nodeCount, 2);
  rw.replaceAllUsesWith(a, x);
  assert.deepEqual(useList(x), ['add#0', 'add#1', 'relu#0']);
  assert.deepEqual(verify(m), []);
  assert.equal(rw.stats.erased, 1);
  void b;
});

test('setting the same input again is not a change', () => {
  const { m, a } = chain();
  const rw = new Rewriter(m.graph);
  rw.setInput(m.graph.findNode('add')!, 0, a);
  assert.equal(rw.changed, false);
});

test('erase refuses a node whose output is still used, and a graph output producer', () => {
  const { m } = chain();
  const rw = new Rewriter(m.graph);
  assert.throws(() => rw.erase(m.graph.findNode('relu')!), (e: { code?: string }) => e.code === 'E_IR_MUTATION');
  assert.throws(() => rw.erase(m.graph.findNode('add')!), (e: { code?: string }) => e.code === 'E_IR_MUTATION');
});

test('replacing a graph output keeps the output name and the model computes the same', async () => {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [4]);
  const r = b.op('Relu', [x], { name: 'r' });
  const id = b.op('Identity', [r], { name: 'id' });
  b.output(id);
  const m = b.build();
  const outName = id.name;
  const rw = new Rewriter(m.graph);
  const idNode = m.graph.findNode('id')!;
  rw.replaceOp(idNode, [r]);
  assert.equal(m.graph.outputs[0]!.name, outName);
  assert.equal(m.graph.nodeCount, 1);
  assert.deepEqual(verify(m), []);
  const sess = await createSession(m);
  const out = await run(sess, { x: new ort.Tensor('float32', Float32Array.from([-1, 2, -3, 4]), [4]) });
  assert.deepEqual([...(out[outName]!.data as Float32Array)], [0, 2, 0, 4]);
});

test('fresh names are deterministic and never collide', () => {
  const { m } = chain();
  const n1 = freshName(m.graph, 'relu');
  const n2 = freshName(m.graph, 'relu');
  assert.equal(n1, 'relu_1');
  assert.equal(n2, 'relu_2');
  const { m: m2 } = chain();
  assert.equal(freshName(m2.graph, 'relu'), 'relu_1');
});

test('insertBefore keeps topological order; a misplaced node is reported by verify', () => {
  const { m, x } = chain();
  const rw = new Rewriter(m.graph);
  const relu = m.graph.findNode('relu')!;
  const neg = rw.insertOpBefore(relu, 'Neg', [x], { name: 'neg' });
  rw.setInput(relu, 0, neg.outputs[0]!);
  assert.deepEqual(verify(m), []);
  // now move neg after its user: verify must say use-before-def
  rw.moveBefore(neg, m.graph.findNode('add')!);
  const d = verify(m);
  assert.equal(d.length, 1);
  assert.equal(d[0]!.code, 'use-before-def');
  assert.equal(d[0]!.loc.node, 'relu');
});

test('verify checks Q/DQ scale shapes against axis and block size', () => {
  const b = new GraphBuilder('g');
  const w = b.f32('w', [4, 8], new Array(32).fill(0.5));
  const s = b.f32('s', [3], [1, 1, 1]); // wrong: axis 0 has 4
  const q = b.op('QuantizeLinear', [w, s], { name: 'q', attrs: { axis: 0 } });
  b.output(q);
  const d = verify(b.build());
  assert.equal(d.length, 1);
  assert.equal(d[0]!.code, 'qdq-axis');

  const b2 = new GraphBuilder('g');
  const w2 = b2.f32('w', [4, 8], new Array(32).fill(0.5));
  const s2 = b2.f32('s', [4, 2], new Array(8).fill(1)); // block 4 along axis 1: 8/4 = 2 blocks: ok
  b2.output(b2.op('QuantizeLinear', [w2, s2], { name: 'q', attrs: { axis: 1, block_size: 4 } }));
  assert.deepEqual(verify(b2.build()), []);
  const b3 = new GraphBuilder('g');
  const w3 = b3.f32('w', [4, 8], new Array(32).fill(0.5));
  const s3 = b3.f32('s', [4, 3], new Array(12).fill(1));
  b3.output(b3.op('QuantizeLinear', [w3, s3], { name: 'q', attrs: { axis: 1, block_size: 4 } }));
  assert.equal(verify(b3.build())[0]!.code, 'qdq-block');
});

test('subgraph reading an outer value: use recorded on the inner node, model round-trips', async () => {
  const b = new GraphBuilder('g', { opset: 13 });
  const x = b.input('x', 'f32', [3]);
  const c = b.input('c', 'bool', []);
  const r = b.op('Relu', [x], { name: 'outer_relu' });
  const thenB = new GraphBuilder('then');
  // build subgraphs through the outer rewriter so that the inner node reads the outer value
  const rw = b.rw;
  const { Graph } = await import('../../ir/ir.js');
  const tg = new Graph('then_branch');
  const eg = new Graph('else_branch');
  const neg = rw.createNode('Neg', [r], { name: 'inner_neg' });
  rw.append(tg, neg);
  rw.setGraphOutputs(tg, [neg.outputs[0]!]);
  const id = rw.createNode('Identity', [r], { name: 'inner_id' });
  rw.append(eg, id);
  rw.setGraphOutputs(eg, [id.outputs[0]!]);
  const ifOut = b.op('If', [c], { name: 'if', attrs: { then_branch: tg, else_branch: eg } });
  b.output(ifOut);
  const m = b.build();
  void thenB;
  assert.deepEqual(useList(r), ['inner_id#0', 'inner_neg#0']);
  assert.deepEqual(verify(m), []);
  const bytes = encodeModel(m);
  const m2 = decodeModel(bytes);
  assert.deepEqual(verify(m2), []);
  const r2 = m2.graph.findValue(r.name)!;
  assert.deepEqual(useList(r2), ['inner_id#0', 'inner_neg#0']);
  const sess = await createSession(bytes);
  const feeds = { x: new ort.Tensor('float32', Float32Array.from([-1, 2, 3]), [3]), c: new ort.Tensor('bool', Uint8Array.from([1]), []) };
  const out = await run(sess, feeds);
  assert.deepEqual([...(out[ifOut.name]!.data as Float32Array)], [-0, -2, -3]);
  assert.ok(Node);
});
