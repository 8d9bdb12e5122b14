// Weight quantization: replaces planned float weights by DequantizeLinear(q, scale, zero_point) over INT8 / INT4 / FP8 initializers.
//
//   Conv(x, W, b)   ->   Conv(x, DequantizeLinear(W_quantized, W_scale, W_zero_point, axis=0), b)
//
// Axes (SPEC §8, §10.4): scales are per *output* channel, the reduction (K) axis is the one blocks run along.
//   op / input                  layout           per-channel axis      blocked along
//   Conv W (1)                  [M, C/g, kH, kW]  0                     1 (input channels)
//   ConvTranspose W (1)         [C, M/g, kH, kW]  1                     0 (input channels)
//   MatMul B (1)                [.., K, N]        rank-1 (N)            rank-2 (K)
//   MatMul A (0, constant)      [.., M, K]        rank-2 (M)            rank-1 (K)
//   Gemm B (1), transB=0 / 1    [K, N] / [N, K]   1 / 0                 0 / 1
//   Gemm A (0), transA=0 / 1    [M, K] / [K, M]   0 / 1                 1 / 0
// A plan whose axis is not the one above is refused (E_UNSUPPORTED): a per-channel scale on the K axis is legal
// ONNX but is per-*input*-channel quantization, which no backend fuses. ConvTranspose with group > 1 falls back to
// per-tensor (reported in `fallback`): per-axis scales on axis 1 would have M/g entries, each shared by the g
// output channels j, M/g + j, ... — not per output channel, and TensorRT expects one scale per output channel.
// Rank-1 MatMul operands have no output-channel axis and fall back to per-tensor likewise. Blocked convolution
// weights are legal ONNX (opset 21) and run in onnxruntime; TensorRT has no INT4 convolutions, which its target's
// legality table handles, not this pass.
//
// Emitted DequantizeLinear: `axis` always explicit (TensorRT reads a missing axis as 0, ONNX as 1; SPEC §10.5), also
// for per-tensor weights (scalar scale; the axis is then ignored by both); `block_size` only for blocked. Zero
// points are explicit initializers of the quantized dtype and the scale's shape (all zeros when symmetric: TensorRT
// needs them present, SPEC §10.5). Scales are float32. Bias inputs stay float.
//
// Shared weights: a weight read by several planned inputs is quantized once when the plans agree (dtype,
// granularity after axis resolution, symmetry, clipping) and each planned input gets its own DequantizeLinear over
// the shared q / scale / zero-point initializers; plans that disagree are refused. Inputs without a plan keep
// reading the float initializer, which is never mutated; it is removed once nothing reads it.
//
// Opset: DequantizeLinear with `axis` needs 13, FP8 19, INT4 / blocked 21. A model below what the plans need is
// converted with the upgrade-opset pass first (after every plan has been validated, so a refusal leaves the model
// untouched).

import { QccError, type Loc } from '../../ir/errors.js';
import { attr, tensorFromTyped, tensorType, type Graph, type Model, type Node, type Value } from '../../ir/ir.js';
import { nameTable, Rewriter } from '../../ir/rewriter.js';
import { diagnosticSink } from '../pass.js';
import { upgradeOpset } from '../upgrade-opset.js';
import { isWeightQDType, quantizeWeight, zeroPointStorage, type QuantizedWeight, type WeightQDType } from './qdq-math.js';
import type { Granularity, QDType, WeightPlan } from './types.js';

/** What quantizeWeights did to one planned weight input. */
export interface WeightReport {
  readonly node: string;
  readonly input: number;
  /** Name of the float weight that was replaced. */
  readonly tensor: string;
  readonly dtype: QDType;
  /** As applied: `per-tensor`, `per-channel(axis=0)`, `blocked(axis=0,size=128)`. */
  readonly granularity: string;
  /** Smallest / largest scale (all-zero channels, which get scale 1, are left out; 0 when every channel is zero). */
  readonly scaleMin: number;
  readonly scaleMax: number;
  /** Weight SQNR in dB: 10·log10(Σ w² / Σ (w - dq(q(w)))²), float64 (Infinity when exact). */
  readonly sqnrDb: number;
  /** Mean chosen clip ratio over channels / blocks (MSE clipping only). */
  readonly clipRatioMean?: number;
  /** Why the applied granularity differs from the plan's (e.g. ConvTranspose with group > 1 -> per-tensor). */
  readonly fallback?: string;
}

/** Output-channel and reduction axes of a node's weight input (see the table in the file header). */
export interface WeightAxes {
  /** Per-channel axis; undefined when the operand has none (rank-1 MatMul operand). */
  readonly channel: number | undefined;
  /** Axis blocks run along (K: the reduced input channels). */
  readonly reduce: number;
  /** Per-channel is replaced by per-tensor, for this reason. */
  readonly perTensorReason?: string;
}

/** The weight axes of input `input` of `n` (a weight of rank `rank`), or a reason why it cannot be quantized. */
export function weightAxes(n: Node, input: number, rank: number): WeightAxes | string {
  switch (n.op) {
    case 'Conv':
      if (input !== 1) return `Conv input ${input} is not its weight (input 1)`;
      if (rank < 3) return `Conv weight has rank ${rank}, expected >= 3`;
      return { channel: 0, reduce: 1 };
    case 'ConvTranspose': {
      if (input !== 1) return `ConvTranspose input ${input} is not its weight (input 1)`;
      if (rank < 3) return `ConvTranspose weight has rank ${rank}, expected >= 3`;
      const group = n.attrInt('group', 1);
      if (group > 1) {
        return {
          channel: 1,
          reduce: 0,
          perTensorReason: `ConvTranspose group=${group}: per-axis scales on axis 1 would be shared by the ${group} output channels j, M/g+j, ...; per-tensor instead`,
        };
      }
      return { channel: 1, reduce: 0 };
    }
    case 'MatMul':
      if (input !== 0 && input !== 1) return `MatMul has no input ${input}`;
      if (rank === 1) return { channel: undefined, reduce: 0, perTensorReason: 'rank-1 MatMul operand has no output-channel axis; per-tensor instead' };
      return input === 1 ? { channel: rank - 1, reduce: rank - 2 } : { channel: rank - 2, reduce: rank - 1 };
    case 'Gemm': {
      if (input === 2) return 'Gemm bias (input 2) stays float';
      if (input !== 0 && input !== 1) return `Gemm has no input ${input}`;
      if (rank !== 2) return `Gemm operand has rank ${rank}, expected 2`;
      const t = n.attrInt(input === 0 ? 'transA' : 'transB', 0) !== 0;
      // A [M,K] (transA=0): channel 0, K 1. B [K,N] (transB=0): channel 1, K 0. Transposes swap them.
      const channel = input === 0 ? (t ? 1 : 0) : t ? 0 : 1;
      return { channel, reduce: 1 - channel };
    }
    default:
      return `${n.opType} weights are not quantized (Conv, ConvTranspose, MatMul and Gemm are)`;
  }
}

/** `per-tensor`, `per-channel(axis=0)`, `blocked(axis=0,size=128)`: how reports write a granularity. */
export function granularityText(g: Granularity): string {
  switch (g.kind) {
    case 'per-tensor':
      return 'per-tensor';
    case 'per-channel':
      return `per-channel(axis=${g.axis})`;
    case 'blocked':
      return `blocked(axis=${g.axis},size=${g.size})`;
  }
}

interface Resolved {
  readonly plan: WeightPlan;
  readonly node: Node;
  readonly weight: Value;
  readonly dtype: WeightQDType;
  /** The granularity applied, with a normalized axis. */
  readonly granularity: Granularity;
  /** The DequantizeLinear `axis` (per-tensor: the channel axis, or 0). */
  readonly axis: number;
  readonly fallback: string | undefined;
  readonly key: string;
}

function refuse(message: string, loc: Loc): never {
  throw new QccError('E_UNSUPPORTED', message, loc);
}

function resolvePlan(plan: WeightPlan, nodes: ReadonlyMap<string, Node>): Resolved {
  const node = nodes.get(plan.node);
  if (!node) refuse(`weight plan names node '${plan.node}', which is not in the graph`, { node: plan.node });
  const loc: Loc = { node: node.name };
  const weight = node.input(plan.input);
  if (!weight) refuse(`${node.opType} '${node.name}' has no input ${plan.input} to quantize`, loc);
  const wl: Loc = { node: node.name, tensor: weight.name };
  const t = weight.initializer;
  if (!t) refuse(`input ${plan.input} of ${node.opType} '${node.name}' ('${weight.name}') is not a constant initializer`, wl);
  if (t.dtype !== 'f32') refuse(`weight '${weight.name}' is ${t.dtype}; only float32 weights are quantized`, wl);
  const q = plan.quant;
  if (!isWeightQDType(q.dtype)) refuse(`weights cannot be quantized to ${q.dtype} (supported: i8, u8, i4, u4, fp8e4m3)`, wl);
  if (q.dtype === 'fp8e4m3' && !q.symmetric) refuse('FP8 weight quantization is symmetric only', wl);
  if (q.symmetric && (q.dtype === 'u8' || q.dtype === 'u4')) refuse(`symmetric quantization to unsigned ${q.dtype} is not defined`, wl);
  const rank = t.dims.length;
  const axes = weightAxes(node, plan.input, rank);
  if (typeof axes === 'string') refuse(axes, wl);
  const norm = (a: number): number => (a < 0 ? a + rank : a);
  let granularity: Granularity = q.granularity;
  let fallback: string | undefined;
  switch (q.granularity.kind) {
    case 'per-tensor':
      break;
    case 'per-channel': {
      if (axes.perTensorReason !== undefined) {
        granularity = { kind: 'per-tensor' };
        fallback = axes.perTensorReason;
        break;
      }
      const a = norm(q.granularity.axis);
      if (a !== axes.channel) {
        refuse(`per-channel axis ${q.granularity.axis} of ${node.opType} input ${plan.input} ('${weight.name}' [${t.dims.join(',')}]) is not its output-channel axis ${axes.channel}`, wl);
      }
      granularity = { kind: 'per-channel', axis: a };
      break;
    }
    case 'blocked': {
      const a = norm(q.granularity.axis);
      if (a !== axes.reduce) {
        refuse(`blocked axis ${q.granularity.axis} of ${node.opType} input ${plan.input} ('${weight.name}' [${t.dims.join(',')}]) is not its reduction (K) axis ${axes.reduce}`, wl);
      }
      const size = q.granularity.size;
      if (!Number.isInteger(size) || size < 1) refuse(`block size must be a positive integer, not ${size}`, wl);
      granularity = { kind: 'blocked', axis: a, size };
      break;
    }
  }
  const axis = granularity.kind === 'per-tensor' ? (axes.channel ?? 0) : granularity.axis;
  const dtype = q.dtype;
  const key = JSON.stringify([dtype, q.symmetric, plan.mseClip === true, granularity, axis]);
  return { plan, node, weight, dtype, granularity, axis, fallback, key };
}

function requiredOpset(r: Resolved): number {
  if (r.dtype === 'i4' || r.dtype === 'u4' || r.granularity.kind === 'blocked') return 21;
  if (r.dtype === 'fp8e4m3') return 19;
  return 13; // DequantizeLinear `axis`
}

/** `base`, or `base_1`, `base_2`, ... : the first name not used in the model (not reserved: createNode claims it). */
export function unusedName(g: Graph, base: string): string {
  const t = nameTable(g);
  if (!t.has(base)) return base;
  let i = 1;
  while (t.has(`${base}_${i}`)) i++;
  return `${base}_${i}`;
}

function nodeMap(m: Model): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const n of m.graph.allNodes()) if (!out.has(n.name)) out.set(n.name, n);
  return out;
}

function resolveAll(m: Model, plans: readonly WeightPlan[]): Map<Value, Resolved[]> {
  const nodes = nodeMap(m);
  const byWeight = new Map<Value, Resolved[]>();
  const seen = new Set<string>();
  for (const p of plans) {
    const r = resolvePlan(p, nodes);
    const useKey = `${r.node.name}#${p.input}`;
    if (seen.has(useKey)) refuse(`two weight plans for input ${p.input} of '${r.node.name}'`, { node: r.node.name });
    seen.add(useKey);
    const list = byWeight.get(r.weight);
    if (!list) byWeight.set(r.weight, [r]);
    else {
      if (list[0]!.key !== r.key) {
        const a = list[0]!;
        refuse(
          `weight '${r.weight.name}' is shared by '${a.node.name}' (${a.dtype} ${granularityText(a.granularity)}) and '${r.node.name}' (${r.dtype} ${granularityText(r.granularity)}) with different quantization plans`,
          { node: r.node.name, tensor: r.weight.name },
        );
      }
      list.push(r);
    }
  }
  return byWeight;
}

function stats(q: QuantizedWeight): { scaleMin: number; scaleMax: number; clipRatioMean?: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let g = 0; g < q.scale.length; g++) {
    if (q.degenerate[g]) continue;
    const s = q.scale[g]!;
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  }
  const out: { scaleMin: number; scaleMax: number; clipRatioMean?: number } = { scaleMin: lo === Infinity ? 0 : lo, scaleMax: hi === -Infinity ? 0 : hi };
  if (q.clipRatio) {
    let s = 0;
    for (const r of q.clipRatio) s += r;
    out.clipRatioMean = s / q.clipRatio.length;
  }
  return out;
}

/**
 * Quantizes the planned weights in place (see the file header). Returns one report per plan, in plan order.
 * Refuses (E_UNSUPPORTED, with the node and tensor) anything it cannot do, before changing the model.
 */
export function quantizeWeights(model: Model, plans: readonly WeightPlan[]): WeightReport[] {
  if (plans.length === 0) return [];
  let byWeight = resolveAll(model, plans);
  let need = 13;
  for (const list of byWeight.values()) need = Math.max(need, requiredOpset(list[0]!));
  if (model.opset < need) {
    try {
      upgradeOpset.run(model, { options: { to: need }, diag: diagnosticSink(), instruments: [] });
    } catch (e) {
      if (e instanceof QccError) throw new QccError(e.code, `weight quantization needs opset ${need}: ${e.message}`, e.loc, { cause: e });
      throw e;
    }
    byWeight = resolveAll(model, plans); // node objects may have been rewritten by the conversion
  }
  const rw = new Rewriter(model.graph);
  const reports = new Map<WeightPlan, WeightReport>();
  for (const [w, list] of byWeight) {
    const r0 = list[0]!;
    const t = w.initializer!;
    let q: QuantizedWeight;
    try {
      q = quantizeWeight(t.typed() as Float32Array, t.dims, {
        dtype: r0.dtype,
        granularity: r0.granularity,
        symmetric: r0.plan.quant.symmetric,
        mseClip: r0.plan.mseClip === true,
      });
    } catch (e) {
      if (e instanceof QccError) throw new QccError(e.code, `weight '${w.name}': ${e.message}`, { node: r0.node.name, tensor: w.name }, { cause: e });
      throw e;
    }
    const g = w.graph;
    const qv = rw.addInitializer(tensorFromTyped(`${w.name}_quantized`, r0.dtype, t.dims, q.data), g);
    const sv = rw.addInitializer(tensorFromTyped(`${w.name}_scale`, 'f32', q.scaleDims, q.scale), g);
    const zv = rw.addInitializer(tensorFromTyped(`${w.name}_zero_point`, r0.dtype, q.scaleDims, zeroPointStorage(q.zeroPoint, r0.dtype)), g);
    const attrs = { axis: attr.int(r0.axis), block_size: r0.granularity.kind === 'blocked' ? attr.int(r0.granularity.size) : undefined };
    for (const r of list) {
      const dq = rw.createNode('DequantizeLinear', [qv, sv, zv], {
        name: `${w.name}_dq`,
        attrs,
        outputs: [unusedName(g, `${w.name}_dequantized`)],
        outputTypes: [tensorType('f32', t.dims)],
      });
      rw.insertBefore(r.node, dq);
      rw.setInput(r.node, r.plan.input, dq.outputs[0]!);
    }
    if (w.uses.length === 0 && !w.isGraphOutput) rw.removeInitializer(w);
    const s = stats(q);
    for (const r of list) {
      reports.set(r.plan, {
        node: r.node.name,
        input: r.plan.input,
        tensor: w.name,
        dtype: r.dtype,
        granularity: granularityText(r.granularity),
        scaleMin: s.scaleMin,
        scaleMax: s.scaleMax,
        sqnrDb: q.sqnrDb,
        ...(s.clipRatioMean !== undefined ? { clipRatioMean: s.clipRatioMean } : {}),
        ...(r.fallback !== undefined ? { fallback: r.fallback } : {}),
      });
    }
  }
  return plans.map((p) => reports.get(p)!);
}
