// Layer helpers for the zoo builders: PyTorch-like modules (Conv2d, BatchNorm2d, Linear, LayerNorm, GELU, ...) emitted as standard ONNX ops through GraphBuilder, with parameters from a ParamSink (memory or a streamed external-data file).

import * as fs from 'node:fs';
import { GraphBuilder, type AttrInit } from '../ir/builder.js';
import type { DType } from '../ir/dtype.js';
import { QccError } from '../ir/errors.js';
import { attr, sym, Tensor, tensorFromTyped, tensorType, type Dim, type Shape, type Value } from '../ir/ir.js';
import { fillParam, init, type Init } from './init.js';

// ---------------------------------------------------------------------------------------------------------------
// Where parameter data goes

/** Creates f32 parameter tensors; `fill` writes the values into the buffer it is given. */
export interface ParamSink {
  tensor(name: string, dims: readonly number[], fill: (out: Float32Array) => void): Tensor;
}

function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Every tensor in memory (a fresh Float32Array each). */
export const memorySink: ParamSink = {
  tensor(name, dims, fill) {
    const a = new Float32Array(sizeOf(dims));
    fill(a);
    return tensorFromTyped(name, 'f32', dims, a);
  },
};

/**
 * Streams tensors of at least `threshold` bytes into an open data file as they are generated and returns Tensors
 * whose data is an external reference into it: only one tensor's values are in memory at any time (one scratch
 * buffer, reused). Smaller tensors stay inline. The file layout is the one saveModel writes (64-byte aligned offsets).
 */
export class ExternalSink implements ParamSink {
  /** bytes written so far (the data file's size) */
  size = 0;
  private scratch = new Float32Array(0);
  private readonly zeros: Uint8Array;

  constructor(
    private readonly fd: number,
    /** the data file's name, relative to the model file */
    readonly location: string,
    /** absolute folder of the model file */
    readonly baseDir: string,
    readonly threshold = 1024,
    readonly align = 64,
  ) {
    this.zeros = new Uint8Array(align);
  }

  tensor(name: string, dims: readonly number[], fill: (out: Float32Array) => void): Tensor {
    const n = sizeOf(dims);
    if (4 * n < this.threshold) return memorySink.tensor(name, dims, fill);
    if (this.scratch.length < n) this.scratch = new Float32Array(Math.max(n, 2 * this.scratch.length));
    const buf = this.scratch.subarray(0, n);
    fill(buf);
    const offset = Math.ceil(this.size / this.align) * this.align;
    if (offset > this.size) this.write(this.zeros.subarray(0, offset - this.size), this.size);
    const length = 4 * n;
    this.write(new Uint8Array(buf.buffer, buf.byteOffset, length), offset);
    this.size = offset + length;
    return new Tensor(name, 'f32', dims, {
      kind: 'external',
      location: this.location,
      offset,
      length,
      baseDir: this.baseDir,
      entries: [
        ['location', this.location],
        ['offset', String(offset)],
        ['length', String(length)],
      ],
    });
  }

  private write(b: Uint8Array, pos: number): void {
    let done = 0;
    try {
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done, pos + done);
    } catch (e) {
      throw new QccError('E_IO', `cannot write external data '${this.location}': ${(e as Error).message}`, { file: this.location });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Network builder

export interface NetOptions {
  opset: number;
  seed: number;
  sink?: ParamSink;
}

/** BN / LN affine parameters: gamma = 1 + 0.1 z, beta = 0.1 z (z standard normal truncated to +-2): see README. */
export const NORM_GAMMA = init.truncNormal(0.1, 1);
export const NORM_BETA = init.truncNormal(0.1);
/**
 * gamma of the last BN of a residual branch (ResNet bn2/bn3, MobileNetV2's projection BN before the skip Add):
 * 0.25 (1 + 0.1 z). With BN statistics calibrated on a random batch, gamma = 1 there makes every block as loud as
 * its shortcut and deep random ResNet-50/MobileNetV2 become chaotic (FP32 output SQNR 18 dB under 40 dB input
 * noise, which no 8-bit scheme can beat); torchvision's zero_init_residual sets these gammas to 0 for the same
 * reason, and trained networks end up with small residual-branch scales. With 0.25: ResNet-50 39 dB (as ResNet-18's
 * 39 dB), MobileNetV2 29 dB (bench/RESULTS.md, "FP32 with 40 dB input noise").
 */
export const RESIDUAL_GAMMA = init.truncNormal(0.025, 0.25);

/** The symbolic batch dimension. */
export const N: Dim = sym('N');

/** A network under construction: the GraphBuilder plus seeded parameters, shared constants and opset-aware layers. */
export class Net {
  readonly b: GraphBuilder;
  readonly opset: number;
  readonly seed: number;
  readonly sink: ParamSink;
  /** element count of every parameter created through `param` (excludes constants and BN running statistics) */
  paramCount = 0;
  private readonly consts = new Map<string, Value>();

  constructor(name: string, o: NetOptions) {
    this.opset = o.opset;
    this.seed = o.seed;
    this.sink = o.sink ?? memorySink;
    this.b = new GraphBuilder(name, { opset: o.opset, irVersion: irVersionFor(o.opset) });
  }

  /** A learned parameter (counted) or fixed buffer (`counted: false`), f32. */
  param(name: string, dims: readonly number[], how: Init, counted = true): Value {
    const t = this.sink.tensor(name, dims, (out) => fillParam(out, dims, how, this.seed, name));
    if (counted) this.paramCount += t.size;
    return this.b.rw.addInitializer(t);
  }

  /** A shared f32 scalar (rank 0) constant. */
  scalar(v: number): Value {
    const key = `f32:${v}`;
    let c = this.consts.get(key);
    if (!c) {
      c = this.b.init(`const_${constName(v)}`, 'f32', [], Float32Array.of(v));
      this.consts.set(key, c);
    }
    return c;
  }

  /** A shared int64 constant (shapes, axes, indices); `dims` [] makes a scalar. */
  i64(values: readonly number[], dims: readonly number[] = [values.length]): Value {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let c = this.consts.get(key);
    if (!c) {
      c = this.b.i64(dims.length === 0 ? `const_i64_${constName(values[0]!)}` : `const_i64_${values.map(constName).join('_')}`, values, dims);
      this.consts.set(key, c);
    }
    return c;
  }

  /** A shared f32 constant of ones (the Scale of an affine-free LayerNormalization). */
  ones(dim: number): Value {
    const key = `ones:${dim}`;
    let c = this.consts.get(key);
    if (!c) {
      c = this.b.init(`const_ones_${dim}`, 'f32', [dim], new Float32Array(dim).fill(1));
      this.consts.set(key, c);
    }
    return c;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    return this.b.input(name, dtype, shape);
  }

  /** Marks `v` as a graph output named `name` with a declared type. */
  output(v: Value, name: string, shape: Shape, dtype: DType = 'f32'): void {
    this.b.rw.rename(v, name);
    this.b.rw.setType(v, tensorType(dtype, shape));
    this.b.output(v);
  }

  op(opType: string, inputs: readonly (Value | null | undefined)[], name: string, attrs: Record<string, AttrInit | undefined> = {}): Value {
    return this.b.op(opType, inputs, { name, attrs });
  }

  // --- layers ---------------------------------------------------------------------------------------------------

  /** nn.Conv2d(cin, cout, k, stride, padding, groups, bias): weight [cout, cin/groups, k, k]. */
  conv(x: Value, name: string, o: { cin: number; cout: number; k: number; stride?: number; pad?: number; groups?: number; bias?: boolean; wInit?: Init; bInit?: Init }): Value {
    const g = o.groups ?? 1;
    const s = o.stride ?? 1;
    const p = o.pad ?? 0;
    const w = this.param(`${name}.weight`, [o.cout, o.cin / g, o.k, o.k], o.wInit ?? init.he);
    const bias = o.bias ? this.param(`${name}.bias`, [o.cout], o.bInit ?? init.zeros) : undefined;
    return this.op('Conv', bias ? [x, w, bias] : [x, w], name, {
      kernel_shape: [o.k, o.k],
      strides: [s, s],
      pads: [p, p, p, p],
      dilations: [1, 1],
      group: g,
    });
  }

  /**
   * nn.BatchNorm2d(c), eps 1e-5, inference mode. Running mean / variance start as 0 / 1 placeholders (not counted as
   * parameters) and are replaced by the real batch statistics in bn-stats.ts.
   */
  bn(x: Value, name: string, c: number, gammaInit: Init = NORM_GAMMA): Value {
    const gamma = this.param(`${name}.weight`, [c], gammaInit);
    const beta = this.param(`${name}.bias`, [c], NORM_BETA);
    const mean = this.param(`${name}.running_mean`, [c], init.zeros, false);
    const v = this.param(`${name}.running_var`, [c], init.ones, false);
    return this.b.op('BatchNormalization', [x, gamma, beta, mean, v], { name, attrs: { epsilon: attr.float(1e-5) } });
  }

  relu(x: Value, name: string): Value {
    return this.op('Relu', [x], name);
  }

  /** nn.ReLU6 as Clip(x, 0, 6). */
  relu6(x: Value, name: string): Value {
    return this.op('Clip', [x, this.scalar(0), this.scalar(6)], name);
  }

  /** nn.SiLU as x * Sigmoid(x) (ONNX has no SiLU before opset 24's Swish). */
  silu(x: Value, name: string): Value {
    const s = this.op('Sigmoid', [x], `${name}.sigmoid`);
    return this.op('Mul', [x, s], name);
  }

  /** nn.GELU: the Gelu op from opset 20, else its decomposition (Erf form, or the tanh approximation). */
  gelu(x: Value, name: string, approximate: 'none' | 'tanh' = 'none'): Value {
    if (this.opset >= 20) return this.b.op('Gelu', [x], { name, attrs: approximate === 'tanh' ? { approximate: 'tanh' } : {} });
    if (approximate === 'none') {
      // 0.5 * x * (1 + erf(x / sqrt(2)))
      const d = this.op('Div', [x, this.scalar(Math.SQRT2)], `${name}.div`);
      const e = this.op('Erf', [d], `${name}.erf`);
      const a = this.op('Add', [e, this.scalar(1)], `${name}.add`);
      const m = this.op('Mul', [x, a], `${name}.mul`);
      return this.op('Mul', [m, this.scalar(0.5)], name);
    }
    // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    const c = this.op('Pow', [x, this.scalar(3)], `${name}.pow`);
    const c2 = this.op('Mul', [c, this.scalar(0.044715)], `${name}.mul_c`);
    const s = this.op('Add', [x, c2], `${name}.add_x`);
    const s2 = this.op('Mul', [s, this.scalar(Math.sqrt(2 / Math.PI))], `${name}.mul_k`);
    const t = this.op('Tanh', [s2], `${name}.tanh`);
    const a = this.op('Add', [t, this.scalar(1)], `${name}.add`);
    const m = this.op('Mul', [x, a], `${name}.mul`);
    return this.op('Mul', [m, this.scalar(0.5)], name);
  }

  /** nn.Linear on a 2-D input [N, in]: Gemm(x, W[out, in], b, transB=1), as torch.onnx exports it. */
  gemm(x: Value, name: string, fin: number, fout: number, wInit: Init, bInit: Init = init.zeros): Value {
    const w = this.param(`${name}.weight`, [fout, fin], wInit);
    const b = this.param(`${name}.bias`, [fout], bInit);
    return this.b.op('Gemm', [x, w, b], { name, attrs: { transB: 1 } });
  }

  /** nn.Linear on an N-D input [..., in]: MatMul(x, W^T stored as [in, out]) + b, as torch.onnx exports it. */
  linear(x: Value, name: string, fin: number, fout: number, wInit: Init, bInit: Init = init.zeros): Value {
    const w = this.param(`${name}.weight`, [fin, fout], wInit);
    const b = this.param(`${name}.bias`, [fout], bInit);
    const m = this.op('MatMul', [x, w], `${name}.matmul`);
    return this.op('Add', [m, b], name);
  }

  /** nn.LayerNorm(dim, eps) over the last axis; affine-free LN gets a shared constant Scale of ones and no B. */
  layerNorm(x: Value, name: string, dim: number, eps: number, affine = true): Value {
    if (this.opset < 17) throw new QccError('E_MODEL_OPSET', `LayerNormalization needs opset 17 or later (asked for ${this.opset})`, { node: name });
    const ins = affine ? [x, this.param(`${name}.weight`, [dim], NORM_GAMMA), this.param(`${name}.bias`, [dim], NORM_BETA)] : [x, this.ones(dim)];
    return this.b.op('LayerNormalization', ins, { name, attrs: { axis: -1, epsilon: attr.float(eps) } });
  }

  reshape(x: Value, shape: readonly number[], name: string): Value {
    return this.op('Reshape', [x, this.i64(shape)], name);
  }

  transpose(x: Value, perm: readonly number[], name: string): Value {
    return this.op('Transpose', [x], name, { perm });
  }

  unsqueeze(x: Value, axes: readonly number[], name: string): Value {
    return this.op('Unsqueeze', [x, this.i64(axes)], name);
  }

  /** x[start:end] along `axis`. */
  slice(x: Value, start: number, end: number, axis: number, name: string): Value {
    return this.op('Slice', [x, this.i64([start]), this.i64([end]), this.i64([axis])], name);
  }

  /** x.select(axis, index): Gather with a scalar index (drops the axis). */
  select(x: Value, index: number, axis: number, name: string): Value {
    return this.op('Gather', [x, this.i64([index], [])], name, { axis });
  }
}

/** IR version matching an opset (onnx/docs/Versioning.md), so that older runtimes and checkers accept the file. */
export function irVersionFor(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

function constName(v: number): string {
  return String(v).replace('-', 'm').replace('.', 'p').replace(/[^0-9a-zA-Z]/g, '_');
}
