// cloneModel(): edits to the copy never reach the original; tensor bytes are shared, not copied.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { cloneModel } from '../../ir/clone.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { Rewriter } from '../../ir/rewriter.js';
import { verify } from '../../ir/verify.js';

test('a clone is independent in structure and shares tensor bytes', () => {
  const b = new GraphBuilder('g', { opset: 21 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 4]);
  const w = b.f32('w', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const y = b.op('MatMul', [x, w], { name: 'mm' });
  b.output(b.op('Relu', [y], { name: 'relu' }));
  const m = b.build();
  const before = Buffer.from(encodeModel(m));
  const c = cloneModel(m);
  assert.deepEqual(Buffer.from(encodeModel(c)), before);
  assert.deepEqual(verify(c), []);
  // shared bytes
  assert.equal(c.graph.initializers[0]!.initializer!.bytes().buffer, m.graph.initializers[0]!.initializer!.bytes().buffer);
  // structural independence
  const rw = new Rewriter(c.graph);
  const relu = c.graph.findNode('relu')!;
  const neg = rw.insertOpBefore(relu, 'Neg', [relu.input(0)!], { name: 'neg' });
  rw.setInput(relu, 0, neg.outputs[0]!);
  assert.equal(c.graph.nodeCount, 3);
  assert.equal(m.graph.nodeCount, 2);
  assert.deepEqual(Buffer.from(encodeModel(m)), before);
  assert.notEqual(c.graph.findNode('mm'), m.graph.findNode('mm'));
  assert.deepEqual(c.graph.inputs[0]!.shape, [{ param: 'N' }, 4]);
});

test('an inferred type without an element type is not written as elem_type 0 (ORT refuses that)', async () => {
  const { createSession } = await import('../../ir/ort.js');
  const { decodeModel } = await import('../../ir/onnx/reader.js');
  const b = new GraphBuilder('g', { opset: 21 });
  const x = b.input('x', 'f32', [2]);
  const r = b.op('Relu', [x], { name: 'relu' });
  b.output(b.op('Neg', [r], { name: 'neg' }));
  const m = b.build();
  new Rewriter(m.graph).setType(r, { kind: 'tensor', dtype: undefined, shape: [2] });
  const bytes = encodeModel(m);
  assert.equal(decodeModel(bytes).graph.findValue(r.name)!.type, undefined);
  await createSession(bytes); // would throw E_ORT: Invalid tensor data type 0
});
