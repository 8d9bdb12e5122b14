// ORT fusion prediction checked against onnxruntime-node itself: the kernels its optimized graph contains, per hand-built QDQ pattern.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Model } from '../../ir/ir.js';
import { sym } from '../../ir/ir.js';
import { loadModel } from '../../ir/onnx/reader.js';
import { createSession } from '../../ir/ort.js';
import { getTarget, type FusionReport } from '../../targets/target.js';
import { QdqBuilder } from './helpers.js';

const ort = getTarget('ort');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-ort-fusion-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const KERNELS = new Set(['QLinearConv', 'QGemm', 'QLinearMatMul', 'MatMulIntegerToFloat', 'MatMulNBits']);
const FLOAT = new Set(['Conv', 'FusedConv', 'NchwcConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul', 'ConvTranspose']);

/** ORT's optimized graph: weighted-op kernels by type ('float' for float ones) and the Q/DQ nodes left. */
async function actual(m: Model, name: string): Promise<{ kernels: Record<string, number>; qdq: number }> {
  const file = path.join(tmp, `${name}.onnx`);
  await createSession(m, { optimization: 'all', optimizedModelFilePath: file });
  const kernels: Record<string, number> = {};
  let qdq = 0;
  for (const n of loadModel(file).graph.nodes()) {
    const k = KERNELS.has(n.opType) ? n.opType : FLOAT.has(n.opType) ? 'float' : undefined;
    if (k) kernels[k] = (kernels[k] ?? 0) + 1;
    if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') qdq++;
  }
  return { kernels, qdq };
}

function predicted(r: FusionReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of r.layers) {
    const k = l.quantized ? l.kernel! : 'float';
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

const conv3 = { kernel_shape: [3, 3], pads: [1, 1, 1, 1] };

interface Case {
  readonly name: string;
  readonly build: (g: QdqBuilder) => void;
  /** The layer the case is about: kernel when fused, else a reason pattern. */
  readonly expect: { node: string; kernel?: string; reason?: RegExp; fusedWith?: string[] };
  /** Compare the standalone count with the Q/DQ nodes ORT keeps (off when ORT's QDQ propagation adds nodes). */
  readonly countQdq?: boolean;
}

/** x [1,8,8,8] -> Q/DQ (u8) -> Conv(+bias) -> `tail`. */
function conv(g: QdqBuilder, o: { relu?: boolean; zp?: number } = {}) {
  const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
  let h = g.b.op('Conv', [g.qdq(x, g.params('u8'), 'x'), g.weight([8, 8, 3, 3], { axis: 0 }), g.f32([8])], { name: 'conv', attrs: conv3 });
  if (o.relu) h = g.b.op('Relu', [h], { name: 'relu' });
  return { x, h, out: (zp = o.zp ?? 128) => g.qdq(h, g.params('u8', { zp }), 'y') };
}

const CASES: Case[] = [
  {
    name: 'conv-relu-q',
    build: (g) => void g.b.output(conv(g, { relu: true, zp: 0 }).out()),
    expect: { node: 'conv', kernel: 'QLinearConv', fusedWith: ["Relu 'relu'", "QuantizeLinear 'y_q'"] },
    countQdq: true,
  },
  {
    name: 'conv-relu-zp128',
    build: (g) => void g.b.output(conv(g, { relu: true, zp: 128 }).out()),
    expect: { node: 'conv', reason: /Relu 'relu' before QuantizeLinear 'y_q' is not absorbed: the zero point 128 is not the type minimum/ },
    countQdq: true,
  },
  {
    name: 'conv-no-q',
    build: (g) => void g.b.output(conv(g, { relu: true }).h),
    expect: { node: 'conv', reason: /^output not quantized: QLinearConv needs a QuantizeLinear/ },
    countQdq: true,
  },
  {
    name: 'conv-graph-output',
    build: (g) => {
      const c = conv(g);
      g.b.output(c.out(), c.h);
    },
    expect: { node: 'conv', reason: /output is also a graph output/ },
    countQdq: true,
  },
  {
    name: 'conv-float-consumer',
    build: (g) => {
      const c = conv(g);
      g.b.output(c.out(), g.b.op('Sigmoid', [c.h], { name: 'sig' }));
    },
    expect: { node: 'conv', reason: /feeds 2 consumers, not only QuantizeLinear/ },
    countQdq: true,
  },
  {
    name: 'depthwise-clip6',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
      const d = g.b.op('Conv', [g.qdq(x, g.params('u8'), 'x'), g.weight([8, 1, 3, 3], { axis: 0 }), g.f32([8])], { name: 'dw', attrs: { ...conv3, group: 8 } });
      const r = g.b.op('Clip', [d, g.f32([], 0), g.f32([], 6)], { name: 'relu6' });
      g.b.output(g.qdq(r, g.params('u8', { scale: 5.5 / 255, zp: 0 }), 'y'));
    },
    expect: { node: 'dw', kernel: 'QLinearConv', fusedWith: ["Clip 'relu6'", "QuantizeLinear 'y_q'"] },
    countQdq: true,
  },
  {
    name: 'matmul-q',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 16]);
      g.b.output(g.qdq(g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' }), g.params('u8'), 'y'));
    },
    expect: { node: 'mm', kernel: 'QLinearMatMul' },
    countQdq: true,
  },
  {
    name: 'matmul-no-q',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 16]);
      g.b.output(g.b.op('Softmax', [g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' })], { name: 'sm' }));
    },
    expect: { node: 'mm', kernel: 'MatMulIntegerToFloat' },
    countQdq: true,
  },
  {
    name: 'matmul-relu-float',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 16]);
      const r = g.b.op('Relu', [g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' })], { name: 'relu' });
      g.b.output(g.b.op('Sigmoid', [r], { name: 'sig' }));
    },
    expect: { node: 'mm', reason: /Relu 'relu' after the layer does not feed a QuantizeLinear/ },
    countQdq: true,
  },
  {
    name: 'matmul-bias-q-static',
    build: (g) => {
      const x = g.b.input('x', 'f32', [4, 16]);
      const mm = g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' });
      g.b.output(g.qdq(g.b.op('Add', [mm, g.f32([32])], { name: 'bias' }), g.params('u8'), 'y'));
    },
    expect: { node: 'mm', kernel: 'QGemm', fusedWith: ["Add(bias) 'bias' (MatMulAddFusion)", "QuantizeLinear 'y_q'"] },
    countQdq: true,
  },
  {
    name: 'matmul-bias-no-q-static',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 16]);
      const mm = g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' });
      g.b.output(g.b.op('Relu', [g.b.op('Add', [mm, g.f32([32])], { name: 'bias' })], { name: 'act' }));
    },
    expect: { node: 'mm', reason: /^float bias and no QuantizeLinear on the output/ },
  },
  {
    name: 'matmul-bias-no-q-dynamic',
    build: (g) => {
      const x = g.b.input('x', 'f32', [sym('N'), 4, 16]);
      const mm = g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([16, 32], { axis: 1 })], { name: 'mm' });
      g.b.output(g.b.op('Relu', [g.b.op('Add', [mm, g.f32([32])], { name: 'bias' })], { name: 'act' }));
    },
    expect: { node: 'mm', kernel: 'MatMulIntegerToFloat' },
    countQdq: true,
  },
  {
    name: 'gemm-transB-bias-q',
    build: (g) => {
      const x = g.b.input('x', 'f32', [4, 16]);
      const y = g.b.op('Gemm', [g.qdq(x, g.params('u8'), 'x'), g.weight([32, 16], { axis: 0 }), g.f32([32])], { name: 'gemm', attrs: { transB: 1 } });
      g.b.output(g.qdq(y, g.params('u8'), 'y'));
    },
    expect: { node: 'gemm', kernel: 'QGemm' },
    countQdq: true,
  },
  {
    name: 'gemm-bias-no-q',
    build: (g) => {
      const x = g.b.input('x', 'f32', [4, 16]);
      g.b.output(g.b.op('Gemm', [g.qdq(x, g.params('u8'), 'x'), g.weight([32, 16], { axis: 0 }), g.f32([32])], { name: 'gemm', attrs: { transB: 1 } }));
    },
    expect: { node: 'gemm', reason: /^float bias and no QuantizeLinear on the output/ },
    countQdq: true,
  },
  {
    name: 'gemm-no-bias-no-q',
    build: (g) => {
      const x = g.b.input('x', 'f32', [4, 16]);
      g.b.output(g.b.op('Gemm', [g.qdq(x, g.params('u8'), 'x'), g.weight([32, 16], { axis: 0 })], { name: 'gemm', attrs: { transB: 1 } }));
    },
    expect: { node: 'gemm', kernel: 'QGemm' },
    countQdq: true,
  },
  {
    name: 'int4-matmul-weight-only',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 64]);
      g.b.output(g.b.op('MatMul', [x, g.weight([64, 32], { dtype: 'i4', axis: 0, block: 32 })], { name: 'mm' }));
    },
    expect: { node: 'mm', kernel: 'MatMulNBits' },
    countQdq: true,
  },
  {
    name: 'int8-matmul-weight-only',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 64]);
      g.b.output(g.b.op('MatMul', [x, g.weight([64, 32], { axis: 1 })], { name: 'mm' }));
    },
    expect: { node: 'mm', kernel: 'MatMulNBits' },
    countQdq: true,
  },
  {
    name: 'int4-matmul-quantized-activation',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 4, 64]);
      g.b.output(g.b.op('MatMul', [g.qdq(x, g.params('u8'), 'x'), g.weight([64, 32], { dtype: 'i4', axis: 0, block: 32 })], { name: 'mm' }));
    },
    expect: { node: 'mm', reason: /INT4 weights with a quantized activation/ },
    countQdq: true,
  },
  {
    name: 'conv-transpose',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 8, 4, 4]);
      const y = g.b.op('ConvTranspose', [g.qdq(x, g.params('u8'), 'x'), g.weight([8, 4, 2, 2], { axis: 1 }), g.f32([4])], { name: 'convT', attrs: { kernel_shape: [2, 2], strides: [2, 2] } });
      g.b.output(g.qdq(y, g.params('u8'), 'y'));
    },
    expect: { node: 'convT', reason: /no quantized ConvTranspose kernel/ },
    countQdq: true,
  },
  {
    name: 'maxpool-propagation',
    build: (g) => {
      const { h } = conv(g, { relu: true });
      const p = g.b.op('MaxPool', [g.qdq(h, g.params('u8', { zp: 0 }), 'r')], { name: 'pool', attrs: { kernel_shape: [2, 2], strides: [2, 2] } });
      const y = g.b.op('Conv', [p, g.weight([8, 8, 3, 3], { axis: 0 }), g.f32([8])], { name: 'conv2', attrs: conv3 });
      g.b.output(g.qdq(y, g.params('u8'), 'y'));
    },
    expect: { node: 'conv2', kernel: 'QLinearConv' },
  },
  {
    name: 'attention-matmuls',
    build: (g) => {
      const a = g.b.input('a', 'f32', [1, 2, 4, 8]);
      const b = g.b.input('b', 'f32', [1, 2, 8, 4]);
      const s = g.b.op('MatMul', [g.qdq(a, g.params('u8'), 'a'), g.qdq(b, g.params('u8'), 'b')], { name: 'qk' });
      const p = g.b.op('Softmax', [s], { name: 'sm', attrs: { axis: -1 } });
      const o = g.b.op('MatMul', [g.qdq(p, g.params('u8', { zp: 0, scale: 1 / 255 }), 'p'), g.qdq(a, g.params('u8'), 'v')], { name: 'av' });
      g.b.output(g.qdq(o, g.params('u8'), 'o'));
    },
    expect: { node: 'qk', kernel: 'MatMulIntegerToFloat' },
    countQdq: true,
  },
  {
    name: 'fp8-weight-only-conv',
    build: (g) => {
      const x = g.b.input('x', 'f32', [1, 8, 8, 8]);
      g.b.output(g.b.op('Relu', [g.b.op('Conv', [x, g.weight([8, 8, 3, 3], { dtype: 'fp8e4m3', axis: 0 }), g.f32([8])], { name: 'conv', attrs: conv3 })], { name: 'relu' }));
    },
    expect: { node: 'conv', reason: /FP8 weight-only Conv: ORT CPU has no FP8 kernels/ },
    countQdq: true,
  },
];

describe('ort predictFusion agrees with onnxruntime-node', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const g = new QdqBuilder();
      c.build(g);
      const m = g.build();
      const r = ort.predictFusion(m);
      const l = r.layers.find((x) => x.node === c.expect.node)!;
      if (c.expect.kernel) {
        assert.equal(l.kernel, c.expect.kernel, l.reason);
        assert.equal(l.quantized, true);
      } else {
        assert.equal(l.quantized, false);
        assert.match(l.reason!, c.expect.reason!);
      }
      if (c.expect.fusedWith) assert.deepEqual(l.fusedWith, c.expect.fusedWith);
      const a = await actual(m, c.name);
      assert.deepEqual(predicted(r), a.kernels, 'predicted kernels differ from ORT');
      if (c.countQdq) assert.equal(r.standaloneQdq.length, a.qdq, `standalone Q/DQ: ${JSON.stringify(r.standaloneQdq)}`);
    });
  }
});
