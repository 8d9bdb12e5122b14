// Pass fold-batchnorm: inference-mode BatchNormalization folded into the Conv, ConvTranspose or Gemm before it.
//
//   %y = Conv(%x, %W, %b);  %z = BatchNormalization(%y, %gamma, %beta, %mean, %var)
//     ->  %z = Conv(%x, %W', %b')
//
//   s[c] = gamma[c] / sqrt(var[c] + eps)                      (per output channel c)
//   W'   = W * s[c]      on the weight's output-channel slices
//   b'   = (b[c] - mean[c]) * s[c] + beta[c]                  (b = 0 when the producer has no bias)
//
// Output channel of each weight layout:
//   Conv           W [M, C/g, k...]   channel = axis 0
//   ConvTranspose  W [C, M/g, k...]   channel of W[ci, j] = (ci div (C/g)) * (M/g) + j  (axis 1 within each group)
//   Gemm           B [K, N] (transB=0) channel = column n;  B [N, K] (transB=1) channel = row n.
//                  Y = alpha*A*B + beta*C, so C' = beta*C*s + (beta_bn - mean*s) and the Gemm's beta becomes 1.
//
// Math is float64; results are stored as float32. Refusals (with the reason explainRule prints): the producer's
// output has another use or is a graph output; a weight or bias is shared, a graph input, or not an initializer
// (shared initializers are never mutated); BN parameters are not constant; training mode; shapes disagree.
// A BatchNormalization with no foldable producer stays as it is.
//
// The rule set also folds a per-channel constant Add into the Conv/ConvTranspose bias (foldBiasAddIntoConv), so a
// BN behind `ConvTranspose -> Add(bias)` (as PaddleOCR exports it) reaches its Conv.

import type { DType } from '../ir/dtype.js';
import { attr, bytesToTyped, tensorFromTyped, type Node, type Tensor, type Value } from '../ir/ir.js';
import { definePass } from './pass.js';
import { applyRules, commute, defineRule, isFail, type Fail, type MatchCtx } from './rules.js';

/** Elements of a float tensor as float64 (f32/f64 only: other dtypes are refused by the matcher). */
function f64Of(t: Tensor): Float64Array {
  const a = bytesToTyped(t.dtype, t.bytes());
  return Float64Array.from(a as Float32Array | Float64Array);
}

const FOLDABLE_DTYPES: ReadonlySet<DType> = new Set(['f32', 'f64']);

/** The initializer behind `v` when this node is its only reader (safe to replace), else a failure. */
function ownedInitializer(v: Value | undefined, reader: Node, what: string, m: MatchCtx): Tensor | Fail | undefined {
  if (!v) return undefined;
  if (!v.initializer) return m.fail(`${what} is not an initializer`, v);
  if (v.uses.length !== 1 || v.uses[0]!.node !== reader) return m.fail(`${what} is shared with another node: refusing to mutate a shared initializer`, v);
  if (v.isGraphInput || v.isGraphOutput) return m.fail(`${what} is a graph input or output`, v);
  return v.initializer;
}

interface BnBindings {
  bn: Node;
  producer: Node;
  kind: 'Conv' | 'ConvTranspose' | 'Gemm';
  weight: Value;
  bias: Value | undefined;
  /** per-channel scale s and shift t: BN(y) = y*s + t */
  s: Float64Array;
  t: Float64Array;
}

export const foldBatchNormIntoProducer = defineRule<BnBindings>({
  name: 'foldBatchNormIntoProducer',
  root: 'BatchNormalization',
  match(bn, m) {
    if (bn.attrInt('training_mode', 0) !== 0) return m.fail('training mode', bn);
    if (bn.attrInt('spatial', 1) !== 1) return m.fail('spatial=0 (per-activation statistics)', bn);
    if (bn.attrInt('is_test', 1) === 0 && bn.opsetVersion < 7) return m.fail('is_test=0 (training mode)', bn);
    // opset 7..13: declaring the statistics outputs is what selects training mode (14+: training_mode, above)
    if (bn.outputs.filter((o) => o).length > 1) return m.fail('training mode (statistics outputs are declared)', bn);
    const x = bn.input(0);
    const params = [1, 2, 3, 4].map((i) => bn.input(i));
    if (!x || params.some((p) => !p)) return m.fail('missing inputs', bn);
    for (const p of params) {
      if (!p!.initializer) return m.fail('scale, bias, mean and variance must be initializers', p);
      if (!FOLDABLE_DTYPES.has(p!.initializer.dtype)) return m.fail(`BN parameter dtype ${p!.initializer.dtype} is not f32/f64`, p);
    }
    const producer = x.producer;
    if (!producer) return m.fail('input is not produced by a node', x);
    if (producer.op !== 'Conv' && producer.op !== 'ConvTranspose' && producer.op !== 'Gemm') return m.fail(`producer is ${producer.opType}, not Conv/ConvTranspose/Gemm`, producer);
    if (producer.graph !== bn.graph) return m.fail('producer is in another graph', producer);
    if (x.uses.length !== 1 || x.isGraphOutput) return m.fail("producer's output has other uses", x);
    if (producer.outputs.length !== 1) return m.fail('producer has several outputs', producer);
    const kind = producer.op;
    const wIdx = 1;
    const bIdx = 2;
    const w = ownedInitializer(producer.input(wIdx), producer, 'weight', m);
    if (w === undefined) return m.fail('producer has no weight', producer);
    if (isFail(w)) return w;
    if (w.dtype !== 'f32') return m.fail(`weight dtype ${w.dtype} is not f32`, producer.input(wIdx));
    const b = ownedInitializer(producer.input(bIdx), producer, 'bias', m);
    if (isFail(b)) return b;
    if (b !== undefined && !FOLDABLE_DTYPES.has(b.dtype)) return m.fail(`bias dtype ${b.dtype} is not f32/f64`, producer.input(bIdx));
    // output channels
    let channels: number;
    if (kind === 'Conv') {
      if (w.dims.length < 3) return m.fail(`Conv weight rank ${w.dims.length} < 3`, producer.input(wIdx));
      channels = w.dims[0]!;
    } else if (kind === 'ConvTranspose') {
      if (w.dims.length < 3) return m.fail(`ConvTranspose weight rank ${w.dims.length} < 3`, producer.input(wIdx));
      const g = producer.attrInt('group', 1);
      if (w.dims[0]! % g !== 0) return m.fail(`ConvTranspose weight dim 0 (${w.dims[0]}) is not divisible by group ${g}`, producer);
      channels = w.dims[1]! * g;
    } else {
      if (w.dims.length !== 2) return m.fail('Gemm B is not 2-D', producer.input(wIdx));
      channels = producer.attrInt('transB', 0) ? w.dims[0]! : w.dims[1]!;
    }
    const eps = bn.attrFloat('epsilon', 1e-5);
    const [gamma, beta, mean, variance] = params.map((p) => p!.initializer!);
    for (const p of [gamma!, beta!, mean!, variance!]) {
      if (p.size !== channels || p.dims.length !== 1) {
        return m.fail(`BN parameter ${p.name} has dims [${p.dims.join(',')}], expected [${channels}]`, bn);
      }
    }
    if (b !== undefined && kind !== 'Gemm' && b.size !== channels) return m.fail(`bias has ${b.size} elements, expected ${channels}`, producer.input(bIdx));
    if (b !== undefined && kind === 'Gemm') {
      const last = b.dims.length ? b.dims[b.dims.length - 1]! : 1;
      if (b.dims.length > 2 || (last !== 1 && last !== channels)) return m.fail(`Gemm C dims [${b.dims.join(',')}] do not broadcast to [M, ${channels}]`, producer.input(bIdx));
    }
    const g64 = f64Of(gamma!);
    const b64 = f64Of(beta!);
    const m64 = f64Of(mean!);
    const v64 = f64Of(variance!);
    const s = new Float64Array(channels);
    const t = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      s[c] = g64[c]! / Math.sqrt(v64[c]! + eps);
      t[c] = b64[c]! - m64[c]! * s[c]!;
    }
    return { bn, producer, kind, weight: producer.input(wIdx)!, bias: producer.input(bIdx), s, t };
  },
  rewrite(b, rw) {
    const { producer, s, t } = b;
    const W = b.weight.initializer!;
    // read in place (float32 or float64): each product is formed in float64 and rounded once to float32
    const w = bytesToTyped(W.dtype, W.bytes()) as Float32Array | Float64Array;
    const out = new Float32Array(w.length);
    const dims = W.dims;
    const channels = s.length;
    let newBias: Tensor;
    if (b.kind === 'Conv') {
      const per = w.length / dims[0]!;
      for (let c = 0, i = 0; c < channels; c++) {
        const sc = s[c]!;
        for (const end = i + per; i < end; i++) out[i] = w[i]! * sc;
      }
      newBias = channelBias(b.bias?.initializer, s, t);
    } else if (b.kind === 'ConvTranspose') {
      const g = producer.attrInt('group', 1);
      const cin = dims[0]!;
      const mPerG = dims[1]!;
      const k = w.length / (cin * mPerG);
      const cinPerG = cin / g;
      for (let ci = 0; ci < cin; ci++) {
        const grp = Math.floor(ci / cinPerG);
        for (let j = 0; j < mPerG; j++) {
          const sc = s[grp * mPerG + j]!;
          const base = (ci * mPerG + j) * k;
          for (let q = 0; q < k; q++) out[base + q] = w[base + q]! * sc;
        }
      }
      newBias = channelBias(b.bias?.initializer, s, t);
    } else {
      const transB = producer.attrInt('transB', 0) !== 0;
      const [r, c] = dims as [number, number];
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i * c + j] = w[i * c + j]! * s[transB ? i : j]!;
      newBias = gemmBias(b.bias?.initializer, producer.attrFloat('beta', 1), s, t, channels);
      rw.setAttr(producer, 'beta', attr.float(1));
    }
    rw.setInitializer(b.weight, tensorFromTyped(W.name, 'f32', dims, out));
    if (b.bias) rw.setInitializer(b.bias, newBias);
    else rw.setInput(producer, 2, rw.addInitializer(newBias.withName(`${producer.name}_bias`), producer.graph!));
    rw.replaceAllUsesWith(b.bn.outputs[0]!, producer.outputs[0]!);
    rw.erase(b.bn);
  },
});

/** b' = b*s + t per channel (b = 0 when absent). */
function channelBias(bias: Tensor | undefined, s: Float64Array, t: Float64Array): Tensor {
  const b = bias ? f64Of(bias) : new Float64Array(s.length);
  const out = new Float32Array(s.length);
  for (let c = 0; c < s.length; c++) out[c] = b[c]! * s[c]! + t[c]!;
  return tensorFromTyped(bias?.name ?? 'bias', 'f32', [s.length], out);
}

/**
 * Gemm C' = beta*C*s + t, broadcast like ONNX (C is unidirectionally broadcastable to [M, N]). Result [N] when C
 * has one row (or is absent / scalar), else [rows, N].
 */
function gemmBias(C: Tensor | undefined, beta: number, s: Float64Array, t: Float64Array, n: number): Tensor {
  const c = C ? f64Of(C) : new Float64Array(1);
  const cd = C ? [...C.dims] : [];
  while (cd.length < 2) cd.unshift(1);
  const [rows, cols] = cd as [number, number];
  const out = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) out[i * n + j] = beta * c[i * cols + (cols === 1 ? 0 : j)]! * s[j]! + t[j]!;
  return tensorFromTyped(C?.name ?? 'bias', 'f32', rows === 1 ? [n] : [rows, n], out);
}

interface BiasBindings {
  add: Node;
  conv: Node;
  c: Float64Array;
}

/**
 * Add(Conv(x, W, b), c) -> Conv(x, W, b + c) when c is a per-output-channel constant ([C,1,..,1] right-aligned to
 * the output, or one element). Exporters that keep a ConvTranspose's bias as a separate Add (PaddleOCR's detector)
 * otherwise hide the Conv from a following BatchNormalization.
 */
export const foldBiasAddIntoConv = defineRule<BiasBindings>({
  name: 'foldBiasAddIntoConv',
  root: 'Add',
  match(add, m) {
    const y = add.input(0);
    const cv = add.input(1);
    const conv = y?.producer;
    if (!y || !cv || !conv) return m.fail('lhs is not produced by a node', y);
    if (conv.op !== 'Conv' && conv.op !== 'ConvTranspose') return m.fail(`lhs producer is ${conv.opType}, not Conv/ConvTranspose`, conv);
    if (conv.graph !== add.graph || conv.outputs.length !== 1) return m.fail('producer is in another graph or has several outputs', conv);
    if (y.uses.length !== 1 || y.isGraphOutput) return m.fail("producer's output has other uses", y);
    const c = cv.initializer;
    if (!c || cv.isGraphInput) return m.fail('rhs is not an initializer', cv);
    if (!FOLDABLE_DTYPES.has(c.dtype)) return m.fail(`rhs dtype ${c.dtype} is not f32/f64`, cv);
    const w = conv.input(1)?.initializer;
    if (!w || w.dtype !== 'f32' || w.dims.length < 3) return m.fail('weight is not an f32 initializer of rank >= 3', conv.input(1));
    const channels = conv.op === 'Conv' ? w.dims[0]! : w.dims[1]! * conv.attrInt('group', 1);
    const rank = w.dims.length; // output rank = weight rank
    const cd = c.dims;
    const at = cd.length - (rank - 1); // index in c's dims of the output's channel axis (axis 1)
    const perChannel = c.size === 1 || (at >= 0 && cd.every((d, i) => (i === at ? d === channels : d === 1)));
    if (!perChannel || cd.length > rank) return m.fail(`rhs dims [${cd.join(',')}] are not per output channel`, cv);
    const b = ownedInitializer(conv.input(2), conv, 'bias', m);
    if (isFail(b)) return b;
    const c64 = f64Of(c);
    return { add, conv, c: c.size === 1 ? new Float64Array(channels).fill(c64[0]!) : c64 };
  },
  rewrite(b, rw) {
    const ones = new Float64Array(b.c.length).fill(1);
    const bias = b.conv.input(2);
    const nb = channelBias(bias?.initializer, ones, b.c);
    if (bias) rw.setInitializer(bias, nb);
    else rw.setInput(b.conv, 2, rw.addInitializer(nb.withName(`${b.conv.name}_bias`), b.conv.graph!));
    rw.replaceAllUsesWith(b.add.outputs[0]!, b.conv.outputs[0]!);
    rw.erase(b.add);
  },
});

export const FOLD_BATCHNORM_RULES = [foldBatchNormIntoProducer, foldBiasAddIntoConv, commute(foldBiasAddIntoConv)] as const;

export const foldBatchnorm = definePass({
  name: 'fold-batchnorm',
  summary: 'Fold inference BatchNormalization into the preceding Conv, ConvTranspose or Gemm',
  mode: 'in-place',
  run(m) {
    const r = applyRules(m.graph, FOLD_BATCHNORM_RULES);
    const biasAdds = (r.applied.get(foldBiasAddIntoConv.name) ?? 0) + (r.applied.get(`${foldBiasAddIntoConv.name}(commuted)`) ?? 0);
    return { model: m, changed: r.changed, stats: { folded: r.applied.get(foldBatchNormIntoProducer.name) ?? 0, biasAdds, sweeps: r.sweeps } };
  },
});
