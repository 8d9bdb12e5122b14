// `qcc inspect`: exact interface, op histogram and parameter numbers for a built model, external data, and PaddleOCR
// numbers recomputed independently from the raw protobuf.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { Graph, attr, sym, tensorFromTyped, type Model } from '../../ir/ir.js';
import { saveModel } from '../../ir/onnx/writer.js';
import { decodeMessage, type Msg } from '../../ir/onnx/wire.js';
import { cleanup, OCR, qcc, tempDir } from './helpers.js';

after(cleanup);

/** Conv -> Relu -> Reshape -> com.microsoft.Gelu, an If whose then-branch holds a Constant, a second Relu. */
function built(): Model {
  const b = new GraphBuilder('net', { opset: 17, opsets: { 'com.microsoft': 1 } });
  const x = b.input('x', 'f32', [sym('N'), 3, 4, 4]);
  const c = b.input('c', 'bool', []);
  const w = b.f32('w', [8, 3, 3, 3], Array.from({ length: 216 }, (_, i) => i / 216));
  const bias = b.f32('b', [8], [1, 2, 3, 4, 5, 6, 7, 8]);
  const shape = b.i64('shape', [0, -1]);
  const y = b.op('Conv', [x, w, bias], { name: 'conv', attrs: { pads: [1, 1, 1, 1] } });
  const r = b.op('Relu', [y], { name: 'relu' });
  const flat = b.op('Reshape', [r, shape], { name: 'reshape' });
  const g = b.op('Gelu', [flat], { name: 'gelu', domain: 'com.microsoft' });
  const tg = new Graph('then_branch');
  const eg = new Graph('else_branch');
  const k = b.rw.createNode('Constant', [], { name: 'k', attrs: { value: attr.tensor(tensorFromTyped('', 'f32', [2], Float32Array.of(0.5, 2))) } });
  b.rw.append(tg, k);
  const add = b.rw.createNode('Add', [g, k.outputs[0]!], { name: 'add' });
  b.rw.append(tg, add);
  b.rw.setGraphOutputs(tg, [add.outputs[0]!]);
  const id = b.rw.createNode('Identity', [g], { name: 'id' });
  b.rw.append(eg, id);
  b.rw.setGraphOutputs(eg, [id.outputs[0]!]);
  const out = b.op('If', [c], { name: 'if', attrs: { then_branch: tg, else_branch: eg } });
  b.output(b.op('Relu', [out], { name: 'relu2' }));
  return b.build();
}

describe('qcc inspect', () => {
  test('--json: exact interface, histogram and parameter statistics of a GraphBuilder model', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'net.onnx');
    saveModel(built(), file);
    const r = await qcc(['inspect', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.file, file);
    assert.equal(j.format, 'onnx');
    assert.equal(j.irVersion, 10);
    assert.deepEqual(j.opsetImports, { 'ai.onnx': 17, 'com.microsoft': 1 });
    assert.deepEqual(j.producer, { name: 'qcc', version: null });
    assert.equal(j.graph, 'net');
    assert.deepEqual(j.inputs, [
      { name: 'x', dtype: 'f32', shape: ['N', 3, 4, 4] },
      { name: 'c', dtype: 'bool', shape: [] },
    ]);
    assert.deepEqual(j.outputs, [{ name: 'relu2_out', dtype: null, shape: null }]);
    assert.equal(j.nodeCount, 9);
    assert.equal(j.subgraphCount, 2);
    assert.deepEqual(j.ops, [
      { op: 'Relu', count: 2 },
      { op: 'Add', count: 1 },
      { op: 'Constant', count: 1 },
      { op: 'Conv', count: 1 },
      { op: 'Identity', count: 1 },
      { op: 'If', count: 1 },
      { op: 'Reshape', count: 1 },
      { op: 'com.microsoft.Gelu', count: 1 },
    ]);
    // w 216 + b 8 + shape 2 (i64) + the Constant's 2: 228 elements, 216*4 + 8*4 + 2*8 + 2*4 = 920 bytes
    // learnable: w 216 + b 8; the i64 shape and the Constant's tensor are not parameters
    assert.deepEqual(j.parameters, {
      learnable: 224,
      tensors: 4,
      count: 228,
      bytes: 920,
      externalBytes: 0,
      byDtype: [
        { dtype: 'f32', tensors: 3, count: 226, bytes: 904 },
        { dtype: 'i64', tensors: 1, count: 2, bytes: 16 },
      ],
      initializers: { tensors: 3, count: 226, bytes: 912 },
      constants: { tensors: 1, count: 2, bytes: 8 },
    });
  });

  test('the table shows the same numbers, aligned', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'net.onnx');
    saveModel(built(), file);
    const r = await qcc(['inspect', file]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('opsets      ai.onnx 17, com.microsoft 1'), r.stdout);
    assert.ok(lines.includes('nodes       9 (2 subgraphs)'), r.stdout);
    assert.ok(lines.includes('parameters  224 learnable (excludes BN running statistics, Q/DQ scales, shape constants)'), r.stdout);
    assert.ok(lines.includes('constants   228 elements, 920 B in 4 tensors'), r.stdout);
    assert.ok(lines.includes('  x  f32[N,3,4,4]'), r.stdout);
    assert.ok(lines.includes('  f32                    226  904 B  3'), r.stdout);
    assert.ok(lines.includes('  Relu                2'), r.stdout);
    assert.ok(lines.includes('  com.microsoft.Gelu  1'), r.stdout);
  });

  test('external data is counted from the declared lengths', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'net.onnx');
    saveModel(built(), file, { externalData: { threshold: 100 } });
    assert.ok(fs.existsSync(`${file}.data`));
    const j = JSON.parse((await qcc(['inspect', file, '--json'])).stdout);
    assert.equal(j.parameters.externalBytes, 864); // only w (216 f32) reaches the 100-byte threshold
    assert.equal(j.parameters.bytes, 920);
  });

  test('PaddleOCR classifier: counts equal the sums over the raw protobuf', { skip: !fs.existsSync(OCR) }, async () => {
    const file = path.join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
    const msg = decodeMessage(fs.readFileSync(file), 'ModelProto');
    const g = msg.graph as Msg;
    const size: Record<number, number> = { 1: 4, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8 }; // FLOAT, INT32, INT64, BOOL, FLOAT16, DOUBLE
    let count = 0;
    let bytes = 0;
    let tensors = 0;
    const add = (t: Msg): void => {
      const n = ((t.dims as number[] | undefined) ?? []).reduce((a, d) => a * Number(d), 1);
      count += n;
      bytes += n * size[t.data_type as number]!;
      tensors++;
    };
    const hist = new Map<string, number>();
    for (const t of (g.initializer as Msg[] | undefined) ?? []) add(t);
    for (const n of g.node as Msg[]) {
      hist.set(n.op_type as string, (hist.get(n.op_type as string) ?? 0) + 1);
      if (n.op_type === 'Constant') for (const a of n.attribute as Msg[]) if (a.name === 'value') add(a.t as Msg);
    }
    const r = await qcc(['inspect', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.parameters.count, count);
    assert.equal(j.parameters.bytes, bytes);
    assert.equal(j.parameters.tensors, tensors);
    assert.equal(j.nodeCount, (g.node as Msg[]).length);
    assert.equal(j.subgraphCount, 0);
    assert.deepEqual(new Map(j.ops.map((o: { op: string; count: number }) => [o.op, o.count])), hist);
    assert.deepEqual(j.opsetImports, { 'ai.onnx': Number((msg.opset_import as Msg[])[0]!.version) });
    // pinned: a change here means the model package changed (133,665 constant elements, 471 nodes, 250 Constant, opset 9)
    assert.deepEqual([count, j.nodeCount, hist.get('Constant'), j.opsetImports['ai.onnx']], [133665, 471, 250, 9]);
  });
});
