// Test helpers for targets: the placement patterns as .qir models, a canonical text form of a QuantPlan, QDQ graph builders.

import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import type { Model, Value } from '../../ir/ir.js';
import { parseModel } from '../../ir/parse.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { canonicalize } from '../../passes/canonicalize.js';
import type { Granularity, QuantConfig, QuantPlan, TensorQuant } from '../../passes/quant/types.js';
import { presetConfig } from '../../targets/config.js';

/** Parses a .qir model, canonicalizes it and infers shapes (what plan() expects). */
export async function prepare(text: string): Promise<Model> {
  const m = parseModel(text);
  await canonicalize(m);
  inferShapes(m);
  return m;
}

export function config(preset: QuantConfig['preset'] = 'w8a8', o: Partial<QuantConfig> = {}): QuantConfig {
  return presetConfig(preset, o);
}

function gran(g: Granularity): string {
  switch (g.kind) {
    case 'per-tensor':
      return '';
    case 'per-channel':
      return ` ch${g.axis}`;
    case 'blocked':
      return ` blk${g.axis}x${g.size}`;
  }
}

export function quantText(q: TensorQuant): string {
  return `${q.dtype}${gran(q.granularity)}${q.symmetric ? '' : ' asym'}`;
}

/**
 * A plan as lines, the whole structure in one comparable value:
 *   `act %t u8 asym -> conv#0 add#1 clamp[0,6] =%src` (`*` = every consumer; `=%src`: sameAs)
 *   `w conv#1 i8 ch0` · `fallback conv: <requested> => <applied>` · `float conv: <reason>` · `opset 13`
 */
export function planText(p: QuantPlan): string[] {
  const lines: string[] = [];
  for (const a of p.activations) {
    const cons = a.consumers.length ? a.consumers.map((c) => `${c.node}#${c.input}`).join(' ') : '*';
    const clamp = a.clamp ? ` clamp[${a.clamp.min ?? ''},${a.clamp.max ?? ''}]` : '';
    lines.push(`act %${a.tensor} ${quantText(a.quant)} -> ${cons}${clamp}${a.sameAs !== undefined ? ` =%${a.sameAs}` : ''}`);
  }
  for (const w of p.weights) lines.push(`w ${w.node}#${w.input} ${quantText(w.quant)}`);
  for (const f of p.fallbacks) lines.push(`fallback ${f.node}: ${f.requested} => ${f.applied}`);
  for (const k of p.keptFloat) lines.push(`float ${k.node}: ${k.reason}`);
  lines.push(`opset ${p.opset}`);
  return lines;
}

/** Lines of `planText` that start with `prefix`. */
export function linesOf(p: QuantPlan, prefix: string): string[] {
  return planText(p).filter((l) => l.startsWith(prefix));
}

// ---------------------------------------------------------------------------------------------------------------
// The placement patterns (issue 4): each with the twist its negative twin uses

const W = (n: number): string => `{sha=0x${n.toString(16).padStart(16, '0')}, first=[0.1, -0.2, 0.3, -0.05]}`;

/** Conv -> Relu -> Conv. Negative twin: the second Conv's weight is a graph input (not constant). */
export function convRelu(o: { dynamicWeight?: boolean } = {}): string {
  return `
graph main(%x: f32[1,8,16,16]${o.dynamicWeight ? ', %w2: f32[8,8,3,3]' : ''}) -> (%y: f32[1,8,16,16]) {
  %w1 = const f32[8,8,3,3] ${W(1)}
  %b1 = const f32[8] [0.1, -0.2, 0.3, 0, 0.5, -0.1, 0.2, 0.05]
  ${o.dynamicWeight ? '' : `%w2 = const f32[8,8,3,3] ${W(2)}`}
  %h = Conv(%x, %w1, %b1) {kernel_shape=[3,3], pads=[1,1,1,1]} @conv1
  %r = Relu(%h) @relu1
  %y = Conv(%r, %w2) {kernel_shape=[3,3], pads=[1,1,1,1]} @conv2
}`;
}

/** A ResNet basic block: Conv -> Relu -> Conv -> Add(identity) -> Relu. */
export function residual(): string {
  return `
graph main(%x: f32[1,8,8,8]) -> (%y: f32[1,8,8,8]) {
  %w1 = const f32[8,8,3,3] ${W(3)}
  %w2 = const f32[8,8,3,3] ${W(4)}
  %h = Conv(%x, %w1) {kernel_shape=[3,3], pads=[1,1,1,1]} @conv1
  %r = Relu(%h) @relu1
  %h2 = Conv(%r, %w2) {kernel_shape=[3,3], pads=[1,1,1,1]} @conv2
  %s = Add(%h2, %x) @add
  %y = Relu(%s) @relu2
}`;
}

/** MobileNet's depthwise Conv -> Clip(0, 6) -> pointwise Conv. Negative twin: the Clip's max is not constant. */
export function depthwise(o: { dynamicMax?: boolean } = {}): string {
  return `
graph main(%x: f32[1,8,8,8]${o.dynamicMax ? ', %hi: f32[]' : ''}) -> (%y: f32[1,16,8,8]) {
  %wd = const f32[8,1,3,3] {sha=0x0000000000000005, first=[0.5, -0.25]}
  %bd = const f32[8] [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
  %lo = const f32[] [0]
  ${o.dynamicMax ? '' : '%hi = const f32[] [6]'}
  %wp = const f32[16,8,1,1] ${W(6)}
  %d = Conv(%x, %wd, %bd) {group=8, kernel_shape=[3,3], pads=[1,1,1,1]} @dw
  %r = Clip(%d, %lo, %hi) @relu6
  %y = Conv(%r, %wp) {kernel_shape=[1,1]} @pw
}`;
}

/** Single-head attention: q/k/v projections, softmax(q k^T) v. */
export function attention(): string {
  return `
graph main(%x: f32[1,4,8]) -> (%o: f32[1,4,8]) {
  %wq = const f32[8,8] ${W(7)}
  %wk = const f32[8,8] ${W(8)}
  %wv = const f32[8,8] ${W(9)}
  %q = MatMul(%x, %wq) @q_proj
  %k = MatMul(%x, %wk) @k_proj
  %v = MatMul(%x, %wv) @v_proj
  %kt = Transpose(%k) {perm=[0,2,1]} @k_t
  %s = MatMul(%q, %kt) @qk
  %p = Softmax(%s) {axis=-1} @softmax
  %o = MatMul(%p, %v) @av
}`;
}

/** DiT adaLN: SiLU(c) -> Gemm modulation -> (shift, scale) chunks modulating LayerNorm(h) -> qkv MatMul. */
export function adaLN(): string {
  return `
graph main(%c: f32[2,16], %h: f32[2,4,16]) -> (%o: f32[2,4,48]) {
  %wm = const f32[32,16] ${W(10)}
  %bm = const f32[32] ${W(11)}
  %g = const f32[16] ${W(12)}
  %axes = const i64[1] [1]
  %s0 = const i64[1] [0]
  %s1 = const i64[1] [16]
  %s2 = const i64[1] [32]
  %ax2 = const i64[1] [2]
  %one = const f32[] [1]
  %wq = const f32[16,48] ${W(13)}
  %sig = Sigmoid(%c) @silu.sigmoid
  %silu = Mul(%c, %sig) @silu
  %m = Gemm(%silu, %wm, %bm) {transB=1} @ada
  %m3 = Unsqueeze(%m, %axes) @ada.unsqueeze
  %shift = Slice(%m3, %s0, %s1, %ax2) @chunk0
  %scale = Slice(%m3, %s1, %s2, %ax2) @chunk1
  %n = LayerNormalization(%h, %g) {axis=-1, epsilon=1e-6} @norm
  %sp1 = Add(%scale, %one) @one_plus_scale
  %xs = Mul(%n, %sp1) @modulate.scale
  %xm = Add(%xs, %shift) @modulate.shift
  %o = MatMul(%xm, %wq) @qkv
}`;
}

/** Throws unless `f` throws a QccError with `code`. */
export function expectCode(f: () => unknown, code: string): void {
  try {
    f();
  } catch (e) {
    if (e instanceof QccError && e.code === code) return;
    throw e;
  }
  throw new Error(`expected ${code}`);
}

// ---------------------------------------------------------------------------------------------------------------
// QDQ graphs by hand (fusion prediction tests)

export interface ActParams {
  readonly scale: Value;
  readonly zp: Value;
}

/** GraphBuilder with shorthands for activation Q/DQ pairs and dequantized constant weights. */
export class QdqBuilder {
  readonly b: GraphBuilder;
  private k = 0;
  constructor(opset = 21) {
    this.b = new GraphBuilder('main', { opset });
  }
  private fresh(p: string): string {
    return `${p}${this.k++}`;
  }
  /** Scale and zero point initializers for activations (u8 default zero point 128, i8/fp8 0). */
  params(dtype: 'u8' | 'i8' | 'fp8e4m3' = 'u8', o: { scale?: number; zp?: number } = {}): ActParams {
    const scale = this.b.f32(this.fresh('s'), [], [o.scale ?? 0.05]);
    const zpv = o.zp ?? (dtype === 'u8' ? 128 : 0);
    const arr = dtype === 'i8' ? Int8Array.of(zpv) : Uint8Array.of(zpv);
    return { scale, zp: this.b.init(this.fresh('z'), dtype, [], arr) };
  }
  q(v: Value, p: ActParams, name?: string): Value {
    return this.b.op('QuantizeLinear', [v, p.scale, p.zp], { name: name ?? this.fresh('q') });
  }
  dq(v: Value, p: ActParams, name?: string): Value {
    return this.b.op('DequantizeLinear', [v, p.scale, p.zp], { name: name ?? this.fresh('dq') });
  }
  /** Q then one DQ. */
  qdq(v: Value, p: ActParams, name?: string): Value {
    return this.dq(this.q(v, p, name ? `${name}_q` : undefined), p, name ? `${name}_dq` : undefined);
  }
  /** DequantizeLinear(constant): per-channel along `axis`, or blocks of `block` along `axis`. */
  weight(dims: readonly number[], o: { dtype?: 'i8' | 'u8' | 'i4' | 'fp8e4m3'; axis?: number; block?: number; zp?: number; name?: string } = {}): Value {
    const dtype = o.dtype ?? 'i8';
    const n = dims.reduce((a, c) => a * c, 1);
    const name = o.name ?? this.fresh('w');
    const data = dtype === 'i4' ? new Uint8Array(Math.ceil(n / 2)).fill(0x21) : dtype === 'i8' ? Int8Array.from({ length: n }, (_, i) => (i % 13) - 6) : new Uint8Array(n).fill(dtype === 'u8' ? 130 : 0x38);
    const w = this.b.init(name, dtype, dims, data);
    const axis = o.axis;
    let sdims: number[] = [];
    if (axis !== undefined && o.block !== undefined) sdims = dims.map((d, i) => (i === axis ? Math.ceil(d / o.block!) : d));
    else if (axis !== undefined) sdims = [dims[axis]!];
    const sn = sdims.reduce((a, c) => a * c, 1);
    const scale = this.b.f32(`${name}_scale`, sdims, new Array(sn).fill(0.01));
    const zpData = dtype === 'i4' ? new Uint8Array(Math.ceil(sn / 2)).fill(o.zp ?? 0) : dtype === 'i8' ? new Int8Array(sn).fill(o.zp ?? 0) : new Uint8Array(sn).fill(o.zp ?? 0);
    const zp = this.b.init(`${name}_zp`, dtype, sdims, zpData);
    const attrs: Record<string, number> = {};
    if (axis !== undefined) attrs.axis = axis;
    if (o.block !== undefined) attrs.block_size = o.block;
    return this.b.op('DequantizeLinear', [w, scale, zp], { name: `${name}_dq`, attrs });
  }
  f32(dims: readonly number[], v = 0.1): Value {
    const n = dims.reduce((a, c) => a * c, 1);
    return this.b.f32(this.fresh('c'), dims, new Array(n).fill(v));
  }
  build(): Model {
    return this.b.build();
  }
}
