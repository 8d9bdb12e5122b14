// constant-to-initializer: every Constant form becomes an initializer with its name (subgraph ones in their subgraph).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Graph, Model } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { ort } from '../../ir/ort.js';
import { verify } from '../../ir/verify.js';
import { constantToInitializer } from '../../passes/constant-to-initializer.js';
import { PassManager, verifyInstrument, type PipelineResult } from '../../passes/manager.js';
import { ATTR, modelBytes, node, ONNX, utf8, vi } from '../util/onnx-msg.js';
import { graphText } from '../util/graph.js';
import { outputs } from '../util/ort.js';


async function convert(m: Model): Promise<PipelineResult> {
  return new PassManager([constantToInitializer]).run(m, { instruments: [verifyInstrument()] });
}


const constNode = (out: string, attrName: string, type: number, value: Record<string, unknown>): ReturnType<typeof node> =>
  node('Constant', [], [out], { name: `make_${out}`, attribute: [{ name: attrName, type, ...value }] });

/** x:[2,3] -> ((x + w) * a + b) reshaped by `shape`, + a sparse constant; Gather(b, k); an If whose branches hold Constants. */
function model(): Uint8Array {
  const branch = (name: string, v: number): Record<string, unknown> => ({
    name,
    node: [constNode(`${name}_c`, 'value_float', ATTR.FLOAT, { f: v }), node('Add', ['r', `${name}_c`], [`${name}_out`], { name: `${name}_add` })],
    output: [vi(`${name}_out`, ONNX.FLOAT, [3, 2])],
  });
  return modelBytes(
    {
      input: [vi('x', ONNX.FLOAT, [2, 3]), vi('cond', ONNX.BOOL, [])],
      node: [
        constNode('w', 'value', ATTR.TENSOR, { t: { name: 'w_tensor', dims: [2, 3], data_type: ONNX.FLOAT, float_data: [1, 2, 3, 4, 5, 6] } }),
        constNode('a', 'value_float', ATTR.FLOAT, { f: 2.5 }),
        constNode('b', 'value_floats', ATTR.FLOATS, { floats: [0.5, -0.5, 1] }),
        constNode('shape', 'value_ints', ATTR.INTS, { ints: [3, 2] }),
        constNode('k', 'value_int', ATTR.INT, { i: 2 }),
        constNode('sparse', 'sparse_value', ATTR.SPARSE_TENSOR, {
          sparse_tensor: { dims: [3, 2], values: { name: 'sv', dims: [2], data_type: ONNX.FLOAT, float_data: [7, 9] }, indices: { name: 'si', dims: [2], data_type: ONNX.INT64, int64_data: [1, 4] } },
        }),
        node('Add', ['x', 'w'], ['y0'], { name: 'add0' }),
        node('Mul', ['y0', 'a'], ['y1'], { name: 'mul' }),
        node('Add', ['y1', 'b'], ['y2'], { name: 'add1' }),
        node('Reshape', ['y2', 'shape'], ['r'], { name: 'reshape' }),
        node('Add', ['r', 'sparse'], ['out'], { name: 'add2' }),
        node('Gather', ['b', 'k'], ['g'], { name: 'gather' }),
        node('If', ['cond'], ['branch'], { name: 'if', attribute: [{ name: 'then_branch', type: ATTR.GRAPH, g: branch('then', 1) }, { name: 'else_branch', type: ATTR.GRAPH, g: branch('else', -1) }] }),
      ],
      output: [vi('out', ONNX.FLOAT, [3, 2]), vi('g', ONNX.FLOAT, []), vi('branch', ONNX.FLOAT, [3, 2])],
    },
    { opset_import: [{ domain: '', version: 13 }], ir_version: 7 },
  );
}

test('Constant nodes of every dense form become initializers named as their outputs; sparse ones stay; ORT agrees', async () => {
  const bytes = model();
  const m = decodeModel(bytes);
  const r = await convert(m);
  assert.deepEqual(r.perPass[0]!.stats, { constants: 7, sparseKept: 1 });
  assert.deepEqual(graphText(m.graph), [
    'sparse = Constant()',
    'y0 = Add(x, w)',
    'y1 = Mul(y0, a)',
    'y2 = Add(y1, b)',
    'r = Reshape(y2, shape)',
    'out = Add(r, sparse)',
    'g = Gather(b, k)',
    'branch = If(cond)',
  ]);
  const init = (g: Graph, name: string) => g.initializers.find((v) => v.name === name)?.initializer;
  const vals = (t: { typed(): unknown } | undefined): (number | bigint)[] => Array.from(t!.typed() as ArrayLike<number | bigint>);
  assert.deepEqual(m.graph.initializers.map((v) => v.name), ['w', 'a', 'b', 'shape', 'k']);
  assert.deepEqual([init(m.graph, 'w')!.dtype, init(m.graph, 'w')!.dims], ['f32', [2, 3]]);
  assert.deepEqual(Array.from(init(m.graph, 'w')!.typed() as Float32Array), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([init(m.graph, 'a')!.dtype, init(m.graph, 'a')!.dims, vals(init(m.graph, 'a')!)], ['f32', [], [2.5]]);
  assert.deepEqual([init(m.graph, 'b')!.dims, vals(init(m.graph, 'b')!)], [[3], [0.5, -0.5, 1]]);
  assert.deepEqual([init(m.graph, 'shape')!.dtype, vals(init(m.graph, 'shape')!)], ['i64', [3n, 2n]]);
  assert.deepEqual([init(m.graph, 'k')!.dtype, init(m.graph, 'k')!.dims, vals(init(m.graph, 'k')!)], ['i64', [], [2n]]);
  // the branch constants moved into their branches, not the main graph
  const [thenG, elseG] = m.graph.findNode('if')!.subgraphs();
  assert.deepEqual(graphText(thenG!), ['then_out = Add(r, then_c)']);
  assert.deepEqual(thenG!.initializers.map((v) => v.name), ['then_c']);
  assert.deepEqual(vals(init(elseG!, 'else_c')!), [-1]);
  assert.deepEqual(verify(m), []);
  for (const c of [1, 0]) {
    const feeds = { x: new ort.Tensor('float32', Float32Array.from([0.1, 0.2, 0.3, -1, -2, -3]), [2, 3]), cond: new ort.Tensor('bool', Uint8Array.of(c), []) };
    const want = await outputs(bytes, feeds);
    const got = await outputs(m, feeds);
    for (const k of ['out', 'g', 'branch']) assert.deepEqual(Array.from(got[k]!.data as Float32Array), Array.from(want[k]!.data as Float32Array), k);
  }
  // idempotent: nothing left to do
  assert.equal((await convert(m)).changed, false);
});

test('value_string(s) Constants become string initializers', async () => {
  const bytes = modelBytes(
    {
      node: [
        constNode('s', 'value_string', ATTR.STRING, { s: utf8('hi') }),
        constNode('ss', 'value_strings', ATTR.STRINGS, { strings: [utf8('a'), utf8('bc')] }),
        node('Identity', ['s'], ['o1'], { name: 'id1' }),
        node('Identity', ['ss'], ['o2'], { name: 'id2' }),
      ],
      output: [vi('o1', ONNX.STRING, []), vi('o2', ONNX.STRING, [2])],
    },
    { opset_import: [{ domain: '', version: 13 }], ir_version: 7 },
  );
  const m = decodeModel(bytes);
  await convert(m);
  assert.deepEqual(graphText(m.graph), ['o1 = Identity(s)', 'o2 = Identity(ss)']);
  const td = new TextDecoder();
  assert.deepEqual(m.graph.initializers.map((v) => [v.name, v.initializer!.dtype, v.initializer!.dims, v.initializer!.strings().map((b) => td.decode(b))]), [
    ['s', 'string', [], ['hi']],
    ['ss', 'string', [2], ['a', 'bc']],
  ]);
  const got = await outputs(encodeModel(m), {});
  assert.deepEqual(got.o2!.data, ['a', 'bc']);
  assert.deepEqual(got.o1!.data, ['hi']);
});

test('negative twin: a model without Constant nodes is unchanged (byte-identical)', async () => {
  const bytes = modelBytes({ input: [vi('x', ONNX.FLOAT, [1])], node: [node('Relu', ['x'], ['y'], { name: 'relu' })], output: [vi('y', ONNX.FLOAT, [1])] });
  const m = decodeModel(bytes);
  const r = await convert(m);
  assert.equal(r.changed, false);
  assert.ok(Buffer.from(encodeModel(m)).equals(Buffer.from(bytes)));
});
