// quantize-weights: Conv / ConvTranspose / MatMul / Gemm weights behind DequantizeLinear, checked in ORT against float64 references.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../../ir/builder.js';
import { QccError } from '../../../ir/errors.js';
import { cloneModel } from '../../../ir/clone.js';
import { tensorFromTyped, type Model, type Node, type Tensor } from '../../../ir/ir.js';
import { Rewriter } from '../../../ir/rewriter.js';
import { decodeFp8, unpackInt4, unpackUint4 } from '../../../ir/numerics.js';
import { encodeModel } from '../../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../../ir/ort.js';
import { mulberry32 } from '../../../ir/random.js';
import { verify } from '../../../ir/verify.js';
import { buildZooModel } from '../../../models/index.js';
import { quantizeWeights, type WeightReport } from '../../../passes/quant/quantize-weights.js';
import type { Granularity, QDType, WeightPlan } from '../../../passes/quant/types.js';
import { graphText } from '../../util/graph.js';

/** ORT (float32 kernels reading our DequantizeLinear) vs the float64 computation with the same dequantized weights. */
const ORT_TOLERANCE = 1e-5;

const rnd = mulberry32(1234);
const randn = (n: number, sd = 1): Float32Array =>
  Float32Array.from({ length: n }, () => sd * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()));
const prod = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);

// ------------------------------------------------------------------------------------------------
// Float64 reference operators (NCHW, row-major)

interface ConvAttrs {
  strides?: [number, number];
  pads?: [number, number, number, number];
  group?: number;
}

function conv2d(x: ArrayLike<number>, xd: number[], w: ArrayLike<number>, wd: number[], bias: ArrayLike<number> | undefined, a: ConvAttrs): { y: Float64Array; dims: number[] } {
  const [N, C, H, W] = xd as [number, number, number, number];
  const [M, Cg, KH, KW] = wd as [number, number, number, number];
  const [sh, sw] = a.strides ?? [1, 1];
  const [pt, pl, pb, pr] = a.pads ?? [0, 0, 0, 0];
  const G = a.group ?? 1;
  assert.equal(Cg * G, C);
  const OH = Math.floor((H + pt + pb - KH) / sh) + 1;
  const OW = Math.floor((W + pl + pr - KW) / sw) + 1;
  const y = new Float64Array(N * M * OH * OW);
  const Mg = M / G;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      const g = Math.floor(m / Mg);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = bias ? bias[m]! : 0;
          for (let c = 0; c < Cg; c++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * sh - pt + kh;
                const iw = ow * sw - pl + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x[((n * C + g * Cg + c) * H + ih) * W + iw]! * w[((m * Cg + c) * KH + kh) * KW + kw]!;
              }
          y[((n * M + m) * OH + oh) * OW + ow] = acc;
        }
    }
  return { y, dims: [N, M, OH, OW] };
}

/** ConvTranspose: W [C, M/g, kH, kW]; output channel g·(M/g) + j gets x[c] · W[c, j] for c in group g. */
function convTranspose2d(x: ArrayLike<number>, xd: number[], w: ArrayLike<number>, wd: number[], bias: ArrayLike<number> | undefined, a: ConvAttrs): { y: Float64Array; dims: number[] } {
  const [N, C, H, W] = xd as [number, number, number, number];
  const [Cw, Mg, KH, KW] = wd as [number, number, number, number];
  assert.equal(Cw, C);
  const [sh, sw] = a.strides ?? [1, 1];
  const [pt, pl, pb, pr] = a.pads ?? [0, 0, 0, 0];
  const G = a.group ?? 1;
  const M = Mg * G;
  const Cg = C / G;
  const OH = (H - 1) * sh - pt - pb + KH;
  const OW = (W - 1) * sw - pl - pr + KW;
  const y = new Float64Array(N * M * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let m = 0; m < M; m++) if (bias) for (let p = 0; p < OH * OW; p++) y[(n * M + m) * OH * OW + p] = bias[m]!;
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / Cg);
      for (let j = 0; j < Mg; j++) {
        const m = g * Mg + j;
        for (let ih = 0; ih < H; ih++)
          for (let iw = 0; iw < W; iw++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const oh = ih * sh - pt + kh;
                const ow = iw * sw - pl + kw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[((n * M + m) * OH + oh) * OW + ow] += x[((n * C + c) * H + ih) * W + iw]! * w[((c * Mg + j) * KH + kh) * KW + kw]!;
              }
      }
    }
  }
  return { y, dims: [N, M, OH, OW] };
}

/** (batch of) [M, K] · [K, N]; `a` may have leading batch dims, `b` is 2-D. */
function matmul(a: ArrayLike<number>, ad: number[], b: ArrayLike<number>, bd: number[]): { y: Float64Array; dims: number[] } {
  const K = ad[ad.length - 1]!;
  const M = ad[ad.length - 2]!;
  const batch = prod(ad.slice(0, -2));
  const [K2, N] = bd as [number, number];
  assert.equal(K, K2);
  const y = new Float64Array(batch * M * N);
  for (let bi = 0; bi < batch; bi++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += a[(bi * M + i) * K + k]! * b[k * N + j]!;
        y[(bi * M + i) * N + j] = acc;
      }
  return { y, dims: [...ad.slice(0, -1), N] };
}

function transpose2(a: ArrayLike<number>, d: number[]): Float64Array {
  const [R, C] = d as [number, number];
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = a[r * C + c]!;
  return out;
}

/** Gemm with alpha = beta = 1 and a [N] bias. */
function gemm(a: ArrayLike<number>, ad: number[], b: ArrayLike<number>, bd: number[], c: ArrayLike<number>, transB: boolean): { y: Float64Array; dims: number[] } {
  const bm = transB ? transpose2(b, bd) : b;
  const r = matmul(a, ad, bm, transB ? [bd[1]!, bd[0]!] : bd);
  const N = r.dims[1]!;
  for (let i = 0; i < r.y.length; i++) r.y[i]! += c[i % N]!;
  return r;
}

// ------------------------------------------------------------------------------------------------
// Reading back what quantizeWeights stored (independently of qdq-math)

function initOf(m: Model, name: string | undefined): Tensor {
  const v = name === undefined ? undefined : m.graph.initializers.find((i) => i.name === name);
  assert.ok(v?.initializer, `initializer ${name}`);
  return v.initializer;
}

/** Float64 (q - zp) · scale of a DequantizeLinear over initializers, from its axis / block_size attributes. */
function dequantNode(m: Model, dq: Node): Float64Array {
  const q = initOf(m, dq.input(0)?.name);
  const s = initOf(m, dq.input(1)?.name).typed() as Float32Array;
  const zt = initOf(m, dq.input(2)?.name);
  const dims = q.dims;
  const n = prod(dims);
  const values = (t: Tensor, count: number): Float64Array => {
    const b = t.bytes();
    switch (t.dtype) {
      case 'i8':
        return Float64Array.from(new Int8Array(b.buffer, b.byteOffset, count));
      case 'u8':
        return Float64Array.from(b.subarray(0, count));
      case 'i4':
        return Float64Array.from(unpackInt4(b, count));
      case 'u4':
        return Float64Array.from(unpackUint4(b, count));
      case 'fp8e4m3':
        return Float64Array.from(b.subarray(0, count), (c) => decodeFp8('fp8e4m3', c));
      default:
        throw new Error(`unexpected dtype ${t.dtype}`);
    }
  };
  const qv = values(q, n);
  const zv = values(zt, prod(zt.dims));
  const axisAttr = dq.attrInt('axis');
  assert.notEqual(axisAttr, undefined, 'axis is explicit');
  const axis = axisAttr!;
  const block = dq.attrInt('block_size', 0);
  const sd = initOf(m, dq.input(1)?.name).dims;
  const out = new Float64Array(n);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = dims.length - 1; d >= 0; d--) {
      idx[d] = r % dims[d]!;
      r = Math.floor(r / dims[d]!);
    }
    let g = 0;
    if (sd.length === 0) g = 0;
    else if (block === 0) g = idx[axis]!;
    else for (let d = 0; d < dims.length; d++) g = g * sd[d]! + (d === axis ? Math.floor(idx[d]! / block) : idx[d]!);
    out[i] = (qv[i]! - zv[g]!) * s[g]!;
  }
  return out;
}

function dqNodes(m: Model): Node[] {
  return m.graph.nodeArray().filter((n) => n.op === 'DequantizeLinear');
}

async function runOrt(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    const out = await run(s, feeds);
    return out[m.graph.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0;
  let mag = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    mag = Math.max(mag, Math.abs(want[i]!));
  }
  assert.ok(mag > 0.1, 'outputs are not trivially small');
  return d / mag;
}

function sqnr(ref: ArrayLike<number>, x: ArrayLike<number>): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i]! ** 2;
    e += (ref[i]! - x[i]!) ** 2;
  }
  return 10 * Math.log10(s / e);
}

const plan = (node: string, input: number, dtype: QDType, granularity: Granularity, extra: Partial<WeightPlan> = {}): WeightPlan => ({
  node,
  input,
  quant: { dtype, granularity, symmetric: true },
  ...extra,
});
const PC = (axis: number): Granularity => ({ kind: 'per-channel', axis });
const BLK = (axis: number, size: number): Granularity => ({ kind: 'blocked', axis, size });

interface Case {
  readonly title: string;
  readonly opset?: number;
  /** Builds the model; returns the input dims and a float64 reference y = f(x, weight). */
  build(b: GraphBuilder): { xDims: number[]; weight: string; ref: (x: Float32Array, w: ArrayLike<number>) => Float64Array };
  readonly plans: WeightPlan[];
  readonly graph: string[];
  /** DequantizeLinear attributes and the q / scale / zero-point initializers as `name dtype [dims]`. */
  readonly attrs: Record<string, number>;
  readonly inits: string[];
  readonly granularity: string;
  readonly fallback?: RegExp;
  /** Minimum output SQNR (dB) of the quantized layer vs the FP32 weights. */
  readonly minSqnr: number;
}

const CASES: Case[] = [
  {
    title: 'Conv int8 per-channel (axis 0)',
    build(b) {
      const x = b.input('x', 'f32', [2, 8, 9, 9]);
      const w = b.f32('w', [16, 8, 3, 3], randn(16 * 72, 0.2));
      const bias = randn(16);
      b.output(b.op('Conv', [x, w, b.f32('b', [16], bias)], { name: 'conv', attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } }));
      return { xDims: [2, 8, 9, 9], weight: 'w', ref: (xv, wv) => conv2d(xv, [2, 8, 9, 9], wv, [16, 8, 3, 3], bias, { pads: [1, 1, 1, 1], strides: [2, 2] }).y };
    },
    plans: [plan('conv', 1, 'i8', PC(0))],
    graph: ['w_dequantized = DequantizeLinear(w_quantized, w_scale, w_zero_point)', 'conv_out = Conv(x, w_dequantized, b)'],
    attrs: { axis: 0 },
    inits: ['w_quantized i8 [16,8,3,3]', 'w_scale f32 [16]', 'w_zero_point i8 [16]'],
    granularity: 'per-channel(axis=0)',
    minSqnr: 35,
  },
  {
    title: 'depthwise Conv (group 8) FP8 E4M3 per-channel',
    build(b) {
      const x = b.input('x', 'f32', [1, 8, 7, 7]);
      const w = b.f32('dw', [8, 1, 3, 3], randn(72, 0.3));
      b.output(b.op('Conv', [x, w], { name: 'dwconv', attrs: { pads: [1, 1, 1, 1], group: 8 } }));
      return { xDims: [1, 8, 7, 7], weight: 'dw', ref: (xv, wv) => conv2d(xv, [1, 8, 7, 7], wv, [8, 1, 3, 3], undefined, { pads: [1, 1, 1, 1], group: 8 }).y };
    },
    plans: [plan('dwconv', 1, 'fp8e4m3', PC(0))],
    graph: ['dw_dequantized = DequantizeLinear(dw_quantized, dw_scale, dw_zero_point)', 'dwconv_out = Conv(x, dw_dequantized)'],
    attrs: { axis: 0 },
    inits: ['dw_quantized fp8e4m3 [8,1,3,3]', 'dw_scale f32 [8]', 'dw_zero_point fp8e4m3 [8]'],
    granularity: 'per-channel(axis=0)',
    minSqnr: 25,
  },
  {
    title: 'Conv INT4 blocked along input channels (axis 1, block 16, C=40)',
    build(b) {
      const x = b.input('x', 'f32', [1, 40, 5, 5]);
      const w = b.f32('w4', [6, 40, 3, 3], randn(6 * 360, 0.2));
      b.output(b.op('Conv', [x, w], { name: 'conv4', attrs: { pads: [1, 1, 1, 1] } }));
      return { xDims: [1, 40, 5, 5], weight: 'w4', ref: (xv, wv) => conv2d(xv, [1, 40, 5, 5], wv, [6, 40, 3, 3], undefined, { pads: [1, 1, 1, 1] }).y };
    },
    plans: [plan('conv4', 1, 'i4', BLK(1, 16))],
    graph: ['w4_dequantized = DequantizeLinear(w4_quantized, w4_scale, w4_zero_point)', 'conv4_out = Conv(x, w4_dequantized)'],
    attrs: { axis: 1, block_size: 16 },
    inits: ['w4_quantized i4 [6,40,3,3]', 'w4_scale f32 [6,3,3,3]', 'w4_zero_point i4 [6,3,3,3]'],
    granularity: 'blocked(axis=1,size=16)',
    minSqnr: 15,
  },
  {
    title: 'ConvTranspose int8 per-channel (axis 1, [C, M, kH, kW])',
    build(b) {
      const x = b.input('x', 'f32', [1, 6, 5, 5]);
      const w = b.f32('wt', [6, 4, 3, 3], randn(216, 0.2));
      const bias = randn(4);
      b.output(b.op('ConvTranspose', [x, w, b.f32('bt', [4], bias)], { name: 'deconv', attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } }));
      return { xDims: [1, 6, 5, 5], weight: 'wt', ref: (xv, wv) => convTranspose2d(xv, [1, 6, 5, 5], wv, [6, 4, 3, 3], bias, { strides: [2, 2], pads: [1, 1, 1, 1] }).y };
    },
    plans: [plan('deconv', 1, 'i8', PC(1))],
    graph: ['wt_dequantized = DequantizeLinear(wt_quantized, wt_scale, wt_zero_point)', 'deconv_out = ConvTranspose(x, wt_dequantized, bt)'],
    attrs: { axis: 1 },
    inits: ['wt_quantized i8 [6,4,3,3]', 'wt_scale f32 [4]', 'wt_zero_point i8 [4]'],
    granularity: 'per-channel(axis=1)',
    minSqnr: 35,
  },
  {
    title: 'ConvTranspose group 2: per-channel falls back to per-tensor (reported)',
    build(b) {
      const x = b.input('x', 'f32', [1, 6, 5, 5]);
      const w = b.f32('wg', [6, 2, 3, 3], randn(108, 0.2));
      b.output(b.op('ConvTranspose', [x, w], { name: 'gdeconv', attrs: { strides: [2, 2], group: 2 } }));
      return { xDims: [1, 6, 5, 5], weight: 'wg', ref: (xv, wv) => convTranspose2d(xv, [1, 6, 5, 5], wv, [6, 2, 3, 3], undefined, { strides: [2, 2], group: 2 }).y };
    },
    plans: [plan('gdeconv', 1, 'i8', PC(1))],
    graph: ['wg_dequantized = DequantizeLinear(wg_quantized, wg_scale, wg_zero_point)', 'gdeconv_out = ConvTranspose(x, wg_dequantized)'],
    attrs: { axis: 1 },
    inits: ['wg_quantized i8 [6,2,3,3]', 'wg_scale f32 []', 'wg_zero_point i8 []'],
    granularity: 'per-tensor',
    fallback: /ConvTranspose group=2.*per-tensor/,
    minSqnr: 30,
  },
  {
    title: 'MatMul B [K,N] int8 per-channel (axis 1), batched activation',
    build(b) {
      const x = b.input('x', 'f32', [3, 5, 40]);
      const w = b.f32('B', [40, 24], randn(960, 0.2));
      b.output(b.op('MatMul', [x, w], { name: 'mm' }));
      return { xDims: [3, 5, 40], weight: 'B', ref: (xv, wv) => matmul(xv, [3, 5, 40], wv, [40, 24]).y };
    },
    plans: [plan('mm', 1, 'i8', PC(1))],
    graph: ['B_dequantized = DequantizeLinear(B_quantized, B_scale, B_zero_point)', 'mm_out = MatMul(x, B_dequantized)'],
    attrs: { axis: 1 },
    inits: ['B_quantized i8 [40,24]', 'B_scale f32 [24]', 'B_zero_point i8 [24]'],
    granularity: 'per-channel(axis=1)',
    minSqnr: 35,
  },
  {
    title: 'MatMul B [K,N] INT4 blocked along K (block 16, K=40: partial last block)',
    build(b) {
      const x = b.input('x', 'f32', [3, 5, 40]);
      const w = b.f32('B4', [40, 24], randn(960, 0.2));
      b.output(b.op('MatMul', [x, w], { name: 'mm4' }));
      return { xDims: [3, 5, 40], weight: 'B4', ref: (xv, wv) => matmul(xv, [3, 5, 40], wv, [40, 24]).y };
    },
    plans: [plan('mm4', 1, 'i4', BLK(0, 16))],
    graph: ['B4_dequantized = DequantizeLinear(B4_quantized, B4_scale, B4_zero_point)', 'mm4_out = MatMul(x, B4_dequantized)'],
    attrs: { axis: 0, block_size: 16 },
    inits: ['B4_quantized i4 [40,24]', 'B4_scale f32 [3,24]', 'B4_zero_point i4 [3,24]'],
    granularity: 'blocked(axis=0,size=16)',
    minSqnr: 15,
  },
  {
    title: 'MatMul constant A [M,K] int8 per-channel (axis 0 = rows)',
    build(b) {
      const x = b.input('x', 'f32', [40, 5]);
      const a = b.f32('A', [6, 40], randn(240, 0.2));
      b.output(b.op('MatMul', [a, x], { name: 'amm' }));
      return { xDims: [40, 5], weight: 'A', ref: (xv, wv) => matmul(wv, [6, 40], xv, [40, 5]).y };
    },
    plans: [plan('amm', 0, 'i8', PC(0))],
    graph: ['A_dequantized = DequantizeLinear(A_quantized, A_scale, A_zero_point)', 'amm_out = MatMul(A_dequantized, x)'],
    attrs: { axis: 0 },
    inits: ['A_quantized i8 [6,40]', 'A_scale f32 [6]', 'A_zero_point i8 [6]'],
    granularity: 'per-channel(axis=0)',
    minSqnr: 35,
  },
  {
    title: 'MatMul constant A [M,K] INT4 blocked along K (axis 1)',
    build(b) {
      const x = b.input('x', 'f32', [32, 5]);
      const a = b.f32('A4', [6, 32], randn(192, 0.2));
      b.output(b.op('MatMul', [a, x], { name: 'amm4' }));
      return { xDims: [32, 5], weight: 'A4', ref: (xv, wv) => matmul(wv, [6, 32], xv, [32, 5]).y };
    },
    plans: [plan('amm4', 0, 'i4', BLK(-1, 16))],
    graph: ['A4_dequantized = DequantizeLinear(A4_quantized, A4_scale, A4_zero_point)', 'amm4_out = MatMul(A4_dequantized, x)'],
    attrs: { axis: 1, block_size: 16 },
    inits: ['A4_quantized i4 [6,32]', 'A4_scale f32 [6,2]', 'A4_zero_point i4 [6,2]'],
    granularity: 'blocked(axis=1,size=16)',
    minSqnr: 15,
  },
  {
    title: 'MatMul B FP8 E4M3 per-channel',
    build(b) {
      const x = b.input('x', 'f32', [4, 32]);
      const w = b.f32('B8', [32, 12], randn(384, 0.2));
      b.output(b.op('MatMul', [x, w], { name: 'mm8' }));
      return { xDims: [4, 32], weight: 'B8', ref: (xv, wv) => matmul(xv, [4, 32], wv, [32, 12]).y };
    },
    plans: [plan('mm8', 1, 'fp8e4m3', PC(1))],
    graph: ['B8_dequantized = DequantizeLinear(B8_quantized, B8_scale, B8_zero_point)', 'mm8_out = MatMul(x, B8_dequantized)'],
    attrs: { axis: 1 },
    inits: ['B8_quantized fp8e4m3 [32,12]', 'B8_scale f32 [12]', 'B8_zero_point fp8e4m3 [12]'],
    granularity: 'per-channel(axis=1)',
    minSqnr: 25,
  },
];

for (const transB of [0, 1]) {
  const bd = transB ? [10, 32] : [32, 10];
  for (const [dtype, g, attrs, sdims, gtext, minSqnr] of [
    ['i8', PC(transB ? 0 : 1), { axis: transB ? 0 : 1 }, [10], `per-channel(axis=${transB ? 0 : 1})`, 35],
    ['i4', BLK(transB ? 1 : 0, 16), { axis: transB ? 1 : 0, block_size: 16 }, transB ? [10, 2] : [2, 10], `blocked(axis=${transB ? 1 : 0},size=16)`, 15],
  ] as const) {
    CASES.push({
      title: `Gemm transB=${transB} ${dtype} ${gtext}`,
      build(b) {
        const x = b.input('x', 'f32', [4, 32]);
        const w = b.f32('G', bd, randn(320, 0.2));
        const c = randn(10);
        b.output(b.op('Gemm', [x, w, b.f32('C', [10], c)], { name: 'gemm', attrs: { transB } }));
        return { xDims: [4, 32], weight: 'G', ref: (xv, wv) => gemm(xv, [4, 32], wv, bd, c, transB === 1).y };
      },
      plans: [plan('gemm', 1, dtype, g)],
      graph: ['G_dequantized = DequantizeLinear(G_quantized, G_scale, G_zero_point)', 'gemm_out = Gemm(x, G_dequantized, C)'],
      attrs,
      inits: [`G_quantized ${dtype} [${bd}]`, `G_scale f32 [${sdims}]`, `G_zero_point ${dtype} [${sdims}]`],
      granularity: gtext,
      minSqnr,
    });
  }
}

describe('quantizeWeights: ORT reads our DequantizeLinear like our float64 math', () => {
  for (const c of CASES) {
    test(c.title, async (t) => {
      const b = new GraphBuilder('g', { opset: c.opset ?? 21 });
      const { xDims, weight, ref } = c.build(b);
      const m = b.build();
      const w0 = Float64Array.from(m.graph.initializers.find((v) => v.name === weight)!.initializer!.typed() as Float32Array);
      const reports = quantizeWeights(m, c.plans);
      // structure: the whole graph, the DequantizeLinear attributes, the new initializers; the float weight is gone
      assert.deepEqual(graphText(m.graph), c.graph);
      assert.deepEqual(verify(m), []);
      const [dq] = dqNodes(m);
      assert.deepEqual(Object.fromEntries([...dq!.attrs].map(([k, a]) => [k, a.type === 'int' ? Number(a.value) : NaN])), c.attrs);
      assert.deepEqual(
        dq!.inputs.map((v) => `${v!.name} ${v!.initializer!.dtype} [${v!.initializer!.dims}]`),
        c.inits,
      );
      assert.equal(m.graph.initializers.some((v) => v.name === weight), false, 'the float weight is removed');
      assert.equal(reports.length, 1);
      const r = reports[0]!;
      assert.equal(r.granularity, c.granularity);
      assert.equal(r.tensor, weight);
      if (c.fallback) assert.match(r.fallback ?? '', c.fallback);
      else assert.equal(r.fallback, undefined);
      // numerics: ORT vs float64 with the stored weights; and the layer vs FP32 weights
      const wq = dequantNode(m, dq!);
      const x = randn(prod(xDims));
      const got = await runOrt(m, { x: new ort.Tensor('float32', x, xDims) });
      const want = ref(x, wq);
      const err = relErr(got, want);
      const layerSqnr = sqnr(ref(x, w0), got);
      const wSqnr = sqnr(w0, wq);
      t.diagnostic(`ORT vs float64 fake-quant: ${err.toExponential(2)}; output SQNR vs FP32 ${layerSqnr.toFixed(1)} dB; weight SQNR ${wSqnr.toFixed(1)} dB (reported ${r.sqnrDb.toFixed(1)})`);
      assert.ok(err <= ORT_TOLERANCE, `relative error ${err}`);
      assert.ok(layerSqnr > c.minSqnr, `layer SQNR ${layerSqnr} dB`);
      assert.ok(Math.abs(wSqnr - r.sqnrDb) < 1e-6, 'reported weight SQNR');
      const scales = initOf(m, dq!.input(1)!.name).typed() as Float32Array;
      assert.equal(r.scaleMin, Math.min(...scales));
      assert.equal(r.scaleMax, Math.max(...scales));
    });
  }
});

describe('quantizeWeights: shared weights, float users, refusals, opset', () => {
  function twoConvs(shared: boolean): Model {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 4, 6, 6]);
    const w = b.f32('w', [4, 4, 3, 3], randn(144, 0.3));
    const w2 = shared ? w : b.f32('w2', [4, 4, 3, 3], randn(144, 0.3));
    const y = b.op('Conv', [x, w], { name: 'c1', attrs: { pads: [1, 1, 1, 1] } });
    b.output(b.op('Conv', [y, w2], { name: 'c2', attrs: { pads: [1, 1, 1, 1] } }));
    return b.build();
  }

  test('a weight shared by two Convs with the same plan is quantized once, with one DQ per reader', async () => {
    const m = twoConvs(true);
    const x = randn(144);
    const before = await runOrt(m, { x: new ort.Tensor('float32', x, [1, 4, 6, 6]) });
    const reports = quantizeWeights(m, [plan('c1', 1, 'i8', PC(0)), plan('c2', 1, 'i8', PC(0))]);
    assert.deepEqual(graphText(m.graph), [
      'w_dequantized = DequantizeLinear(w_quantized, w_scale, w_zero_point)',
      'c1_out = Conv(x, w_dequantized)',
      'w_dequantized_1 = DequantizeLinear(w_quantized, w_scale, w_zero_point)',
      'c2_out = Conv(c1_out, w_dequantized_1)',
    ]);
    assert.deepEqual(m.graph.initializers.map((v) => v.name), ['w_quantized', 'w_scale', 'w_zero_point']);
    assert.deepEqual(verify(m), []);
    assert.deepEqual(reports.map((r) => [r.node, r.tensor, r.sqnrDb]), [['c1', 'w', reports[0]!.sqnrDb], ['c2', 'w', reports[0]!.sqnrDb]]);
    assert.equal(m.opset, 13, 'int8 per-channel needs no more than opset 13');
    const after = await runOrt(m, { x: new ort.Tensor('float32', x, [1, 4, 6, 6]) });
    assert.ok(sqnr(before, after) > 30);
  });

  test('a weight shared with different plans is refused and the model is left untouched', () => {
    const m = twoConvs(true);
    const bytes = encodeModel(m);
    assert.throws(
      () => quantizeWeights(m, [plan('c1', 1, 'i8', PC(0)), plan('c2', 1, 'i8', { kind: 'per-tensor' })]),
      (e: unknown) => e instanceof QccError && e.code === 'E_UNSUPPORTED' && /shared by 'c1'.*'c2'/.test(e.message) && e.loc.tensor === 'w',
    );
    assert.deepEqual(encodeModel(m), bytes);
  });

  test('a float reader of a quantized weight keeps the original initializer, unchanged', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [2, 16]);
    const wv = randn(128, 0.3);
    const w = b.f32('W', [16, 8], wv);
    const y = b.op('MatMul', [x, w], { name: 'mm' });
    const z = b.op('Mul', [w, b.f32('two', [], [2])], { name: 'scale2' });
    b.output(y, z);
    const m = b.build();
    const wTensor = m.graph.initializers.find((v) => v.name === 'W')!.initializer;
    quantizeWeights(m, [plan('mm', 1, 'i8', PC(1))]);
    assert.deepEqual(graphText(m.graph), [
      'W_dequantized = DequantizeLinear(W_quantized, W_scale, W_zero_point)',
      'mm_out = MatMul(x, W_dequantized)',
      'scale2_out = Mul(W, two)',
    ]);
    assert.equal(m.graph.initializers.find((v) => v.name === 'W')!.initializer, wTensor, 'the float initializer object is untouched');
    assert.deepEqual(verify(m), []);
    const s = await createSession(m, { optimization: 'disabled' });
    const out = await run(s, { x: new ort.Tensor('float32', randn(32), [2, 16]) });
    await s.release();
    assert.deepEqual([...(out['scale2_out']!.data as Float32Array)], [...wv].map((v) => Math.fround(2 * v)));
  });

  const refusals: { title: string; plans: WeightPlan[]; msg: RegExp }[] = [
    { title: 'an activation input (Conv input 0)', plans: [plan('conv', 0, 'i8', PC(0))], msg: /not a constant initializer/ },
    { title: 'a bias (Gemm input 2)', plans: [plan('gemm', 2, 'i8', { kind: 'per-tensor' })], msg: /bias.*stays float/ },
    { title: 'a per-channel axis that is not the output channel (Conv axis 1)', plans: [plan('conv', 1, 'i8', PC(1))], msg: /not its output-channel axis 0/ },
    { title: 'a per-channel axis that is not the output channel (Gemm transB=1 axis 1)', plans: [plan('gemm', 1, 'i8', PC(1))], msg: /not its output-channel axis 0/ },
    { title: 'blocks across N instead of K', plans: [plan('gemm', 1, 'i4', BLK(0, 4))], msg: /not its reduction \(K\) axis 1/ },
    { title: 'Conv blocks across output channels', plans: [plan('conv', 1, 'i4', BLK(0, 2))], msg: /not its reduction \(K\) axis 1/ },
    { title: 'an unknown node', plans: [plan('nope', 1, 'i8', PC(0))], msg: /'nope'.*not in the graph/ },
    { title: 'symmetric unsigned weights', plans: [plan('conv', 1, 'u8', PC(0))], msg: /unsigned/ },
    { title: 'asymmetric FP8', plans: [{ node: 'conv', input: 1, quant: { dtype: 'fp8e4m3', symmetric: false, granularity: PC(0) } }], msg: /FP8.*symmetric/ },
    { title: '16-bit weights', plans: [plan('conv', 1, 'i16', PC(0))], msg: /cannot be quantized to i16/ },
  ];
  for (const r of refusals) {
    test(`refuses ${r.title} with E_UNSUPPORTED, leaving the model untouched`, () => {
      const b = new GraphBuilder('g', { opset: 13 });
      const x = b.input('x', 'f32', [1, 4, 6, 6]);
      const y = b.op('Conv', [x, b.f32('w', [4, 4, 3, 3], randn(144))], { name: 'conv' });
      const f = b.op('Flatten', [y], { name: 'flat' });
      b.output(b.op('Gemm', [f, b.f32('G', [10, 64], randn(640)), b.f32('C', [10], randn(10))], { name: 'gemm', attrs: { transB: 1 } }));
      const m = b.build();
      const bytes = encodeModel(m);
      assert.throws(
        () => quantizeWeights(m, r.plans),
        (e: unknown) => e instanceof QccError && e.code === 'E_UNSUPPORTED' && r.msg.test(e.message) && e.loc.node !== undefined,
      );
      assert.deepEqual(encodeModel(m), bytes);
    });
  }

  test('opset: INT4 blocks raise an opset-13 model to 21 (upgrade-opset), FP8 to 19, INT8 per-channel keeps 13; opset 11 goes to 13', () => {
    const mk = (opset: number): Model => {
      const b = new GraphBuilder('g', { opset, irVersion: 7 });
      const x = b.input('x', 'f32', [2, 32]);
      b.output(b.op('MatMul', [x, b.f32('B', [32, 8], randn(256))], { name: 'mm' }));
      return b.build();
    };
    const cases: [number, QDType, Granularity, number][] = [
      [13, 'i4', BLK(0, 16), 21],
      [13, 'fp8e4m3', PC(1), 19],
      [13, 'i8', PC(1), 13],
      [11, 'i8', { kind: 'per-tensor' }, 13],
      [21, 'i8', PC(1), 21],
    ];
    for (const [from, dtype, g, to] of cases) {
      const m = mk(from);
      quantizeWeights(m, [plan('mm', 1, dtype, g)]);
      assert.equal(m.opset, to, `${dtype} ${g.kind} from opset ${from}`);
      if (from < 21 && to === 21) assert.ok(Number(m.irVersion) >= 10, 'IR version follows the opset');
      assert.deepEqual(verify(m), []);
    }
  });

  test('MSE clipping is reported (clipRatioMean) and never worsens the weight SQNR', () => {
    const mk = (): Model => {
      const b = new GraphBuilder('g', { opset: 21 });
      const x = b.input('x', 'f32', [2, 64]);
      const heavy = randn(64 * 16).map((v) => v ** 3);
      b.output(b.op('MatMul', [x, b.f32('B', [64, 16], heavy)], { name: 'mm' }));
      return b.build();
    };
    const [rtn] = quantizeWeights(mk(), [plan('mm', 1, 'i4', BLK(0, 32))]);
    const [mse] = quantizeWeights(mk(), [plan('mm', 1, 'i4', BLK(0, 32), { mseClip: true })]);
    assert.equal(rtn!.clipRatioMean, undefined);
    assert.ok(mse!.clipRatioMean! > 0.5 && mse!.clipRatioMean! < 1, `clip ratio mean ${mse!.clipRatioMean}`);
    assert.ok(mse!.sqnrDb > rtn!.sqnrDb, `${mse!.sqnrDb} vs ${rtn!.sqnrDb}`);
  });
});

describe('quantizeWeights on the zoo ResNet-50', () => {
  test('all 54 Conv/Gemm weights, int8 per-channel: fast, verify-clean; in ORT as close to FP32 as Gaussian weight noise of the same SQNR', async (t) => {
    const m = await buildZooModel('resnet50', { batch: 1 });
    const noisy = cloneModel(m);
    const x = new ort.Tensor('float32', randn(3 * 224 * 224), [1, 3, 224, 224]);
    const feeds = { [m.graph.inputs[0]!.name]: x };
    const fp32 = await runOrt(m, feeds);
    const plans: WeightPlan[] = [];
    for (const n of m.graph.nodes()) {
      if (n.op === 'Conv') plans.push(plan(n.name, 1, 'i8', PC(0)));
      else if (n.op === 'Gemm') plans.push(plan(n.name, 1, 'i8', PC(n.attrInt('transB', 0) ? 0 : 1)));
    }
    const t0 = performance.now();
    const reports: WeightReport[] = quantizeWeights(m, plans);
    const ms = performance.now() - t0;
    assert.equal(reports.length, 54);
    assert.deepEqual(verify(m), []);
    assert.equal(dqNodes(m).length, 54);
    assert.equal(m.graph.initializers.filter((v) => v.initializer!.dtype === 'i8').length, 2 * 54);
    const q = await runOrt(m, feeds);
    // reference: the same model with Gaussian noise on every weight at that weight's reported SQNR (the seeded,
    // untrained zoo network amplifies weight noise a lot: ~44 dB of weight noise leaves ~17 dB at the logits)
    const rw = new Rewriter(noisy.graph);
    const noiseRnd = mulberry32(77);
    for (const r of reports) {
      const v = noisy.graph.initializers.find((i) => i.name === r.tensor)!;
      const w = v.initializer!.typed() as Float32Array;
      let p = 0;
      for (const a of w) p += a * a;
      const sd = Math.sqrt((p / w.length) * 10 ** (-r.sqnrDb / 10));
      const wn = Float32Array.from(w, (a) => a + sd * Math.sqrt(-2 * Math.log(1 - noiseRnd())) * Math.cos(2 * Math.PI * noiseRnd()));
      rw.setInitializer(v, tensorFromTyped(v.name, 'f32', v.initializer!.dims, wn));
    }
    const sNoise = sqnr(fp32, await runOrt(noisy, feeds));
    const s = sqnr(fp32, q);
    const minW = Math.min(...reports.map((r) => r.sqnrDb));
    t.diagnostic(`quantizeWeights: ${ms.toFixed(0)} ms; weight SQNR min ${minW.toFixed(1)} dB; logits SQNR vs FP32: int8 weights ${s.toFixed(1)} dB, Gaussian weight noise at the same SQNR ${sNoise.toFixed(1)} dB`);
    assert.ok(ms < 1000, `${ms} ms`);
    assert.ok(minW > 35);
    assert.ok(s > sNoise - 2, `logits SQNR ${s} dB vs ${sNoise} dB with equivalent Gaussian noise`);
  });
});
