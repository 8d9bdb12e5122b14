// Target-neutral placement engine and graph queries: turns a target's placement data (PlacementSpec) and its legality into a QuantPlan.
//
// The engine walks the canonicalized graph once; everything that differs between backends arrives as data in the
// PlacementSpec (targets/<t>/patterns.ts) and through the target's legality function (targets/<t>/legality.ts):
//
//   1. Layers. Every node whose op is in `spec.weightedOps` is a candidate. Its operands are split into weights
//      (constant initializers) and activations; keep-fp globs and `precision: fp` overrides keep it in float.
//   2. Request and legalization. The config's preset and the layer's override give a request (weight dtype and
//      granularity, activation quantization); `spec.legality` accepts it or answers with the backend limit and a
//      legal fallback, recorded as a Fallback (no silent downgrade); a refusal without fallback keeps the layer float.
//   3. Activations. Each activation operand of a quantized layer gets its tensor quantized with a DequantizeLinear for
//      that consumer (one QuantizeLinear per tensor, one DQ per consumer).
//   4. Residual Adds (`spec.residual`): an Add fed by the single-use output of a quantized Conv gets Q/DQ on its
//      shortcut input (TensorRT: Conv+Add fuse) or on both inputs and its output (ORT: QLinearAdd). When both inputs
//      are such Conv outputs (a downsample block), TensorRT can fuse either: the plan leaves a choice, and the input
//      with the smaller calibrated scale is quantized (resolveChoices). On the zoo ResNet-50 that is the residual
//      branch (last BN gamma 0.25), not the projection shortcut: held-out SQNR 29.5 -> 29.9 dB.
//   5. Outputs (`spec.outputs`): where the backend fuses only DQ->op->Q units (ORT), the output of a quantized layer
//      is quantized after its epilogue (the bias Add of a MatMul, then Relu/Clip, whose range becomes the clamp),
//      for every consumer, and for the graph output when it is one (`graphOutput`: the logits of a classifier).
//   6. Shared parameters (`spec.commuting`): a quantized tensor reached from a quantized output through
//      value-preserving ops (MaxPool, Reshape, Transpose, ...) reuses that output's QParams (`sameAs`), and so does
//      every tensor of the chain, so that the backend can drop the DQ->op->Q around each of them.

import type { DType } from '../ir/dtype.js';
import { isFloat, isSubByte } from '../ir/dtype.js';
import { QccError } from '../ir/errors.js';
import type { Model, Node, Value } from '../ir/ir.js';
import type { ActivationChoice, ActivationPlan, Calibrator, Fallback, Granularity, Preset, QDType, QParams, QuantConfig, QuantPlan, TensorQuant, WeightPlan } from '../passes/quant/types.js';
import { clampOf, constScalar, constValues } from '../passes/quant/value-range.js';
import { keptFpBy, layerOverride } from './config.js';
import type { LayerRequest, OperandRequest, Reason } from './target.js';

// ---------------------------------------------------------------------------------------------------------------
// Placement data a target provides

/** Precision families a layer can be asked for (the config's `precision` values other than 'fp'). */
export type Precision = 'int8' | 'int4' | 'fp8';

/**
 * When a quantized layer's output (after its epilogue) is quantized too:
 * - 'always': the backend fuses the layer only with a QuantizeLinear on its output (ORT Conv, Add);
 * - 'with-bias': when the layer has a bias (Gemm input 2, or a bias Add in the epilogue), else as 'if-consumer';
 * - 'with-static-bias': when a bias Add follows and the layer's activation input is 2-D or has a static shape (ORT
 *   then folds MatMul+Add into a Gemm, which needs the Q), else as 'if-consumer';
 * - 'if-consumer': when a consumer of the output is itself a quantized layer.
 */
export type OutputRule = 'always' | 'with-bias' | 'with-static-bias' | 'if-consumer';

export interface PlacementSpec {
  /** Backend name for messages, e.g. "TensorRT". */
  readonly backend: string;
  /** Ops whose inputs are quantized (weighted layers). */
  readonly weightedOps: readonly string[];
  /** Activation quantization for a layer of each precision family (int4 layers take int8 activations). */
  readonly activation: Readonly<Record<Precision, TensorQuant>>;
  /** Output quantization (absent: outputs stay float, TensorRT's default). Applies to activation dtypes in `dtypes`. */
  readonly outputs?: { readonly rules: Readonly<Record<string, OutputRule>>; readonly dtypes: readonly QDType[] };
  /** What fuses into a layer with no Q/DQ between: bias Adds after `biasAddAfter` ops, then one of `activations`. */
  readonly epilogue: { readonly biasAddAfter: readonly string[]; readonly activations: readonly string[] };
  /**
   * Residual Adds: an Add with one input the single-use output of a quantized layer whose op is in `fusers`.
   * 'shortcut': Q/DQ on the other (shortcut) input only; 'inputs-and-output': both inputs and the output (the Add is a
   * quantized op itself, its output rule is `outputs.rules.Add`). Only for activation dtypes in `dtypes`.
   */
  readonly residual?: { readonly fusers: readonly string[]; readonly quantize: 'shortcut' | 'inputs-and-output'; readonly dtypes: readonly QDType[] };
  /** Value-preserving ops (data input 0) across which a quantized tensor shares its producer's QParams. */
  readonly commuting?: { readonly ops: readonly string[] };
  readonly legality: (n: Node, q: LayerRequest) => true | Reason;
}

// ---------------------------------------------------------------------------------------------------------------
// Presets and precisions

/** Weight precision and activation precision (undefined: float activations, weight-only) of each preset. */
export const PRESET_PRECISION: Readonly<Record<Preset, { readonly weight: Precision; readonly activation: Precision | undefined }>> = {
  w8a8: { weight: 'int8', activation: 'int8' },
  w4a8: { weight: 'int4', activation: 'int8' },
  w4a16: { weight: 'int4', activation: undefined },
  w8a16: { weight: 'int8', activation: undefined },
  fp8: { weight: 'fp8', activation: 'fp8' },
};

/**
 * A layer's precision under the preset and its override: `int8`/`int4` weights keep the preset's activations (int8
 * when the preset's are FP8), `fp8` weights take FP8 activations unless the preset is weight-only.
 */
function layerPrecision(preset: Preset, override: string | undefined): { weight: Precision; activation: Precision | undefined } {
  const p = PRESET_PRECISION[preset];
  switch (override) {
    case undefined:
      return p;
    case 'int8':
    case 'int4':
      return { weight: override, activation: p.activation === undefined ? undefined : 'int8' };
    case 'fp8':
      return { weight: 'fp8', activation: p.activation === undefined ? undefined : 'fp8' };
    default:
      throw new QccError('E_USAGE', `unknown precision '${override}' (known: fp, int8, int4, fp8)`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Weight axes

/** The output-channel axis (per-channel scales) and the reduction axis K (INT4 blocks) of a constant operand. */
export function weightAxes(n: Node, input: number): { readonly channel: number | undefined; readonly k: number | undefined } {
  const rank = n.inputs[input]?.shape?.length ?? 0;
  switch (n.opType) {
    case 'Conv':
      return { channel: 0, k: 1 };
    case 'ConvTranspose':
      return { channel: 1, k: 0 };
    case 'Gemm': {
      const trans = n.attrInt(input === 0 ? 'transA' : 'transB', 0) !== 0;
      // A [M,K] (transA: [K,M]): rows are output rows; B [K,N] (transB: [N,K]): columns are output channels
      if (input === 0) return trans ? { channel: 1, k: 0 } : { channel: 0, k: 1 };
      return trans ? { channel: 0, k: 1 } : { channel: 1, k: 0 };
    }
    case 'MatMul':
      if (rank < 2) return { channel: undefined, k: rank === 1 ? 0 : undefined };
      // B [..., K, N]: channel N (last), K second-to-last; A [..., M, K]: channel M, K last
      return input === 1 ? { channel: rank - 1, k: rank - 2 } : { channel: rank - 2, k: rank - 1 };
    default:
      return { channel: undefined, k: undefined };
  }
}

function weightQuant(n: Node, input: number, precision: Precision, granularity: string | undefined, config: QuantConfig): TensorQuant {
  const { channel, k } = weightAxes(n, input);
  const dtype: QDType = precision === 'int8' ? 'i8' : precision === 'int4' ? 'i4' : 'fp8e4m3';
  const kind = granularity ?? (precision === 'int4' ? 'blocked' : config.perChannel ? 'per-channel' : 'per-tensor');
  let g: Granularity;
  if (kind === 'blocked' && k !== undefined) g = { kind: 'blocked', axis: k, size: config.blockSize };
  else if ((kind === 'per-channel' || kind === 'blocked') && channel !== undefined) g = { kind: 'per-channel', axis: channel };
  else g = { kind: 'per-tensor' };
  return { dtype, granularity: g, symmetric: true };
}

// ---------------------------------------------------------------------------------------------------------------
// Descriptions (Fallback.requested / applied)

export function describeGranularity(g: Granularity): string {
  switch (g.kind) {
    case 'per-tensor':
      return 'per-tensor';
    case 'per-channel':
      return `per-channel axis ${g.axis}`;
    case 'blocked':
      return `blocks of ${g.size} along axis ${g.axis}`;
  }
}

export function describeQuant(q: TensorQuant): string {
  return `${q.dtype} ${describeGranularity(q.granularity)}${q.symmetric ? '' : ' asymmetric'}`;
}

/** e.g. "weights i4 blocks of 128 along axis 0; activations i8 per-tensor" or "...; activations float". */
export function describeRequest(r: LayerRequest): string {
  const w = r.weights.map((o) => `input ${o.input} ${describeQuant(o.quant)}`).join(', ');
  const a = r.activations.map((o) => `input ${o.input} ${describeQuant(o.quant)}`).join(', ');
  return `${r.weights.length ? `weights ${w}` : 'no weights'}; activations ${r.activations.length ? a : 'float'}`;
}

export function sameQuant(a: TensorQuant, b: TensorQuant): boolean {
  if (a.dtype !== b.dtype || a.symmetric !== b.symmetric || a.granularity.kind !== b.granularity.kind) return false;
  const ga = a.granularity;
  const gb = b.granularity;
  if (ga.kind === 'per-channel' && gb.kind === 'per-channel') return ga.axis === gb.axis;
  if (ga.kind === 'blocked' && gb.kind === 'blocked') return ga.axis === gb.axis && ga.size === gb.size;
  return true;
}

/** A Reason from the limits a check hit (message and citation joined). */
export function reasonOf(hits: readonly { readonly text: string; readonly cite: string }[], fallback?: LayerRequest): Reason {
  const uniq = [...new Map(hits.map((h) => [h.text, h])).values()];
  return { message: uniq.map((h) => h.text).join('; '), limit: [...new Set(uniq.map((h) => h.cite))].join('; '), ...(fallback ? { fallback } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Graph queries shared by the planners and the fusion predictors

/** The node's op in the default domain ('' for other domains, which no table names). */
export function opOfNode(n: Node): string {
  return n.domain === '' || n.domain === 'ai.onnx' ? n.opType : '';
}

/** The only consumer of `v` when it has exactly one use and is not a graph output. */
export function soleConsumer(v: Value | null | undefined): Node | undefined {
  if (!v || v.uses.length !== 1 || v.isGraphOutput) return undefined;
  return v.uses[0]!.node;
}

// constant values and the ranges Relu/Clip fix are target-neutral graph facts (calibration reads them too)
export { clampOf, constScalar, constValues };

// ---------------------------------------------------------------------------------------------------------------
// Q/DQ queries (fusion predictors)

/** The element type of the quantized data a DequantizeLinear reads. */
export function dqDtype(dq: Node): DType | undefined {
  const x = dq.inputs[0];
  if (x?.dtype) return x.dtype;
  const q = x?.producer;
  if (q && opOfNode(q) === 'QuantizeLinear') return qDtype(q);
  return dq.inputs[2]?.dtype;
}

/** The element type a QuantizeLinear produces (zero point type, output_dtype, default UINT8). */
export function qDtype(q: Node): DType | undefined {
  const z = q.inputs[2];
  if (z?.dtype) return z.dtype;
  if (q.outputs[0]?.dtype) return q.outputs[0].dtype;
  return q.attr('output_dtype') ? undefined : 'u8';
}

/** Whether a Q/DQ's zero point is absent or all zeros (packed 4-bit: every nibble 0; FP8: +0 or -0). */
export function zeroPointIsZero(n: Node): boolean {
  const z = n.inputs[2];
  if (!z) return true;
  const t = z.initializer;
  if (!t) return false;
  if (isSubByte(t.dtype)) return t.bytes().every((b) => b === 0);
  if (t.dtype.startsWith('fp8')) return t.bytes().every((b) => (b & 0x7f) === 0);
  const vals = constValues(z, 1 << 20);
  return vals !== undefined && vals.every((x) => x === 0);
}

export function scaleIsScalar(n: Node): boolean {
  const s = n.inputs[1]?.shape;
  return s !== undefined && s.every((d) => d === 1);
}

/** The constant a weight operand is quantized from: DQ(initializer) or DQ(Q(initializer)). */
export function weightDq(v: Value | null | undefined): { dq: Node; q?: Node } | undefined {
  const dq = v?.producer;
  if (!dq || opOfNode(dq) !== 'DequantizeLinear') return undefined;
  const x = dq.inputs[0];
  if (x?.isInitializer) return { dq };
  const q = x?.producer;
  if (q && opOfNode(q) === 'QuantizeLinear' && q.inputs[0]?.isInitializer) return { dq, q };
  return undefined;
}

/** A tensor that can carry quantized activations: not a constant, float (or of unknown dtype). */
function isActivation(v: Value | null | undefined): boolean {
  if (!v || v.isInitializer) return false;
  const d: DType | undefined = v.dtype;
  return d === undefined || isFloat(d);
}

// ---------------------------------------------------------------------------------------------------------------
// The engine

interface Layer {
  readonly node: Node;
  readonly request: LayerRequest;
  readonly calibrator: Calibrator;
}

interface ActEntry {
  readonly value: Value;
  quant: TensorQuant;
  calibrator: Calibrator;
  /** The layer that first asked for this tensor (for conflict messages). */
  readonly owner: string;
  readonly consumers: Map<string, { readonly node: Node; readonly input: number }>;
  /** Every consumer (and a graph output) reads the dequantized value. */
  all: boolean;
  clamp?: { min?: number; max?: number };
  sameAs?: string;
  /** A graph output that is this tensor reads the dequantized value too (output rules only). */
  graphOutput?: boolean;
}

/** Which operands of a weighted node are weights (constant) and which are activations; a string says why neither works. */
function operandsOf(n: Node): { weights: number[]; activations: number[] } | string {
  const op = opOfNode(n);
  const weights: number[] = [];
  const activations: number[] = [];
  if (op === 'Conv' || op === 'ConvTranspose') {
    const x = n.inputs[0];
    const w = n.inputs[1];
    if (!w?.isInitializer) return `weight input '${w?.name ?? '?'}' is not a constant initializer`;
    if (!isActivation(x)) return `input '${x?.name ?? '?'}' is not a float activation`;
    return { weights: [1], activations: [0] };
  }
  for (const i of [0, 1]) {
    const v = n.inputs[i];
    if (!v) return `input ${i} is missing`;
    if (v.isInitializer) {
      const d = v.initializer!.dtype;
      if (!isFloat(d)) return `constant input '${v.name}' is ${d}, not float`;
      weights.push(i);
    } else if (isActivation(v)) activations.push(i);
    else return `input '${v.name}' is ${v.dtype}, not float`;
  }
  if (activations.length === 0) return 'both operands are constants (fold them first)';
  return { weights, activations };
}

/**
 * Plans quantization for a canonicalized model with inferred shapes under `config`, placing Q/DQ by `spec`.
 * Deterministic: plans come out in graph order (graph inputs first), consumers in node order.
 */
export function planQuantization(model: Model, config: QuantConfig, spec: PlacementSpec): QuantPlan {
  const g = model.graph;
  const order = new Map<Node, number>();
  let k = 0;
  for (const n of g.nodes()) order.set(n, k++);
  const weighted = new Set(spec.weightedOps);

  const layers = new Map<Node, Layer>();
  const keptFloat: { node: string; op: string; reason: string }[] = [];
  const fallbacks: Fallback[] = [];

  // 1-2. layers, requests, legalization
  for (const n of g.nodes()) {
    const op = opOfNode(n);
    if (!weighted.has(op)) continue;
    const glob = keptFpBy(config, n.name);
    if (glob !== undefined) {
      keptFloat.push({ node: n.name, op, reason: `keep-fp '${glob}'` });
      continue;
    }
    const ov = layerOverride(config, n.name, op);
    if (ov?.precision === 'fp') {
      keptFloat.push({ node: n.name, op, reason: 'config override: precision fp' });
      continue;
    }
    const operands = operandsOf(n);
    if (typeof operands === 'string') {
      keptFloat.push({ node: n.name, op, reason: operands });
      continue;
    }
    const prec = layerPrecision(config.preset, ov?.precision);
    const actQuant = (p: Precision | undefined): TensorQuant | undefined => (p === undefined ? undefined : spec.activation[p === 'int4' ? 'int8' : p]);
    const aq = actQuant(prec.activation);
    if (aq === undefined && operands.weights.length === 0) {
      keptFloat.push({ node: n.name, op, reason: `preset ${config.preset} quantizes weights only and both operands are activations` });
      continue;
    }
    let request: LayerRequest = {
      weights: operands.weights.map((i): OperandRequest => ({ input: i, quant: weightQuant(n, i, prec.weight, ov?.granularity, config) })),
      activations: aq === undefined ? [] : operands.activations.map((i): OperandRequest => ({ input: i, quant: aq })),
    };
    const r = legalize(n, request, spec);
    if (r.kind === 'refused') {
      keptFloat.push({ node: n.name, op, reason: r.reason });
      continue;
    }
    if (r.kind === 'fallback') {
      fallbacks.push({ node: n.name, op, requested: describeRequest(request), applied: describeRequest(r.request), reason: r.reason });
      request = r.request;
    }
    layers.set(n, { node: n, request, calibrator: ov?.calibrator ?? config.calibrator });
  }

  // 3. activation operands
  const acts = new Map<Value, ActEntry>();
  const entry = (v: Value, quant: TensorQuant, calibrator: Calibrator, owner: Node): ActEntry => {
    let e = acts.get(v);
    if (!e) {
      e = { value: v, quant, calibrator, owner: owner.name, consumers: new Map(), all: false };
      const c = clampOf(v.producer);
      if (c) e.clamp = c;
      acts.set(v, e);
    } else if (!sameQuant(e.quant, quant)) {
      fallbacks.push({
        node: owner.name,
        op: opOfNode(owner),
        requested: `activation '${v.name}' ${describeQuant(quant)}`,
        applied: `activation '${v.name}' ${describeQuant(e.quant)}`,
        reason: `the tensor is already quantized as ${describeQuant(e.quant)} for '${e.owner}' (one QuantizeLinear per tensor)`,
      });
    }
    return e;
  };
  const addConsumer = (v: Value, node: Node, input: number, quant: TensorQuant, calibrator: Calibrator): void => {
    entry(v, quant, calibrator, node).consumers.set(`${node.name}#${input}`, { node, input });
  };
  for (const L of layers.values()) {
    for (const a of L.request.activations) addConsumer(L.node.inputs[a.input]!, L.node, a.input, a.quant, L.calibrator);
  }

  // 4. residual Adds
  const quantizedOps = new Map<Node, { quant: TensorQuant; calibrator: Calibrator }>();
  const choiceOf = new Map<Value, Node>(); // candidate input -> its Add
  for (const L of layers.values()) if (L.request.activations.length) quantizedOps.set(L.node, { quant: L.request.activations[0]!.quant, calibrator: L.calibrator });
  if (spec.residual) {
    const res = spec.residual;
    for (const n of g.nodes()) {
      if (opOfNode(n) !== 'Add' || n.inputs.length !== 2 || !n.inputs.every(isActivation)) continue;
      if (keptFpBy(config, n.name) !== undefined) continue;
      const fusable = [0, 1].filter((i) => {
        const v = n.inputs[i]!;
        const p = v.producer;
        const q = p ? quantizedOps.get(p) : undefined;
        return p && q && res.fusers.includes(opOfNode(p)) && res.dtypes.includes(q.quant.dtype) && soleConsumer(v) === n;
      });
      if (fusable.length === 0) continue;
      if (res.quantize === 'shortcut' && fusable.length === 2) {
        // either Conv can fuse the Add (TensorRT orders layers itself): both outputs are candidates, and the one
        // with the smaller scale is quantized once calibration knows them (resolveChoices)
        for (const i of [0, 1]) {
          const other = quantizedOps.get(n.inputs[1 - i]!.producer!)!;
          addConsumer(n.inputs[i]!, n, i, other.quant, other.calibrator);
          choiceOf.set(n.inputs[i]!, n);
        }
        continue;
      }
      // the Add fuses into the Conv that runs last (its other input is ready by then)
      const fused = fusable.reduce((a, b) => (order.get(n.inputs[b]!.producer!)! > order.get(n.inputs[a]!.producer!)! ? b : a));
      const q = quantizedOps.get(n.inputs[fused]!.producer!)!;
      if (res.quantize === 'shortcut') {
        addConsumer(n.inputs[1 - fused]!, n, 1 - fused, q.quant, q.calibrator);
      } else {
        addConsumer(n.inputs[0]!, n, 0, q.quant, q.calibrator);
        addConsumer(n.inputs[1]!, n, 1, q.quant, q.calibrator);
        quantizedOps.set(n, q);
      }
    }
  }

  // 5. outputs of quantized ops, after their epilogue
  if (spec.outputs) {
    const out = spec.outputs;
    for (const [n, q] of [...quantizedOps].sort((a, b) => order.get(a[0])! - order.get(b[0])!)) {
      const rule = out.rules[opOfNode(n)];
      if (!rule || !out.dtypes.includes(q.quant.dtype)) continue;
      const ep = epilogueOf(n, spec);
      const hasBias = ep.bias !== undefined || (opOfNode(n) === 'Gemm' && n.inputs[2] != null);
      const consumerQuantized = (acts.get(ep.end)?.consumers.size ?? 0) > 0;
      const a = n.inputs[0]?.shape;
      const staticInput = a !== undefined && a.length === 2 ? true : likelyStatic(a, g);
      if (rule === 'always' || (rule === 'with-bias' && hasBias) || (rule === 'with-static-bias' && ep.bias !== undefined && staticInput) || consumerQuantized) {
        const e = entry(ep.end, q.quant, q.calibrator, n);
        e.all = true;
        if (g.outputs.includes(ep.end)) e.graphOutput = true;
      }
    }
  }

  // 6. shared parameters across value-preserving ops
  if (spec.commuting) {
    const ops = new Set(spec.commuting.ops);
    for (const e of [...acts.values()]) {
      const chain: Node[] = [];
      let v = e.value;
      let src: ActEntry | undefined;
      for (;;) {
        const p = v.producer;
        if (!p || !ops.has(opOfNode(p)) || !isActivation(p.inputs[0])) break;
        chain.push(p);
        v = p.inputs[0]!;
        const s = acts.get(v);
        if (s?.all) {
          src = s;
          break;
        }
      }
      if (!src || !sameQuant(src.quant, e.quant)) continue;
      const root = src.sameAs ?? src.value.name;
      e.sameAs = root;
      // every tensor between the source and e (chain[i].inputs[0] for i < last) is quantized with the same params
      for (let i = 0; i < chain.length - 1; i++) {
        const mid = entry(chain[i]!.inputs[0]!, src.quant, src.calibrator, chain[i]!);
        mid.all = true;
        mid.sameAs = root;
      }
    }
  }

  // assemble
  const pos = (v: Value): number => {
    if (v.producer) return g.inputs.length + order.get(v.producer)!;
    const i = g.inputs.indexOf(v);
    return i >= 0 ? i : -1;
  };
  const all: [ActEntry, ActivationPlan][] = [...acts.values()]
    .sort((a, b) => pos(a.value) - pos(b.value) || (a.value.name < b.value.name ? -1 : 1))
    .map((e) => [e, {
      tensor: e.value.name,
      quant: e.quant,
      calibrator: e.calibrator,
      ...(e.calibrator === 'percentile' ? { percentile: config.percentile } : {}),
      consumers: e.all
        ? []
        : [...e.consumers.values()].sort((a, b) => order.get(a.node)! - order.get(b.node)! || a.input - b.input).map((c) => ({ node: c.node.name, input: c.input })),
      ...(e.clamp ? { clamp: e.clamp } : {}),
      ...(e.sameAs !== undefined && e.sameAs !== e.value.name ? { sameAs: e.sameAs } : {}),
      ...(e.graphOutput ? { graphOutput: true } : {}),
    }]);
  const activations = all.filter(([e]) => !choiceOf.has(e.value)).map(([, a]) => a);
  // candidates grouped by their Add, in producer order (`all` is sorted by position)
  const byAdd = new Map<string, ActivationPlan[]>();
  for (const [e, a] of all) {
    const add = choiceOf.get(e.value);
    if (add) byAdd.set(add.name, [...(byAdd.get(add.name) ?? []), a]);
  }
  const choices: ActivationChoice[] = [...byAdd].map(([node, candidates]) => ({ node, candidates }));
  const weights: WeightPlan[] = [];
  for (const L of [...layers.values()].sort((a, b) => order.get(a.node)! - order.get(b.node)!)) {
    for (const w of L.request.weights) weights.push({ node: L.node.name, input: w.input, quant: w.quant, ...(config.mseClip ? { mseClip: true } : {}) });
  }
  const byName = new Map<string, number>();
  for (const [n, i] of order) byName.set(n.name, i);
  const byOrder = (a: { node: string }, b: { node: string }): number => byName.get(a.node)! - byName.get(b.node)!;
  return {
    activations,
    ...(choices.length ? { choices } : {}),
    weights,
    fallbacks: fallbacks.sort(byOrder),
    keptFloat: keptFloat.sort(byOrder),
    opset: opsetFor([...all.map(([, a]) => a.quant), ...weights.map((w) => w.quant)]),
  };
}

/** What resolveChoices kept for one choice. */
export interface ResolvedChoice {
  readonly node: string;
  /** The candidate tensor that is quantized, and its scale. */
  readonly quantized: string;
  readonly scale: number;
  /** The candidates left in float, with their scales. */
  readonly others: readonly { readonly tensor: string; readonly scale: number }[];
}

/**
 * Resolves a plan's choices with calibrated parameters (every candidate needs its own): per choice the candidate
 * with the smallest scale is quantized (ties: the first, whose producer runs first). Returns the plan with those
 * candidates among its activations and no choices left.
 */
export function resolveChoices(plan: QuantPlan, params: ReadonlyMap<string, QParams>): { plan: QuantPlan; resolved: ResolvedChoice[] } {
  const resolved: ResolvedChoice[] = [];
  const chosen: ActivationPlan[] = [];
  for (const c of plan.choices ?? []) {
    const scaled = c.candidates.map((a) => {
      const p = params.get(a.tensor);
      if (!p) throw new QccError('E_PASS_FAILED', `the choice at '${c.node}' needs the parameters of '${a.tensor}', which was not calibrated`, { tensor: a.tensor });
      return { a, scale: p.scale };
    });
    const best = scaled.reduce((x, y) => (y.scale < x.scale ? y : x));
    chosen.push(best.a);
    resolved.push({ node: c.node, quantized: best.a.tensor, scale: best.scale, others: scaled.filter((x) => x !== best).map((x) => ({ tensor: x.a.tensor, scale: x.scale })) });
  }
  const { choices: _, ...rest } = plan;
  return { plan: { ...rest, activations: [...plan.activations, ...chosen] }, resolved };
}

/** Applies the target's legality to a request until it is legal (a fallback must itself be legal). */
function legalize(n: Node, request: LayerRequest, spec: PlacementSpec): { kind: 'ok' } | { kind: 'fallback'; request: LayerRequest; reason: string } | { kind: 'refused'; reason: string } {
  const r = spec.legality(n, request);
  if (r === true) return { kind: 'ok' };
  const why = `${spec.backend}: ${r.message} [${r.limit}]`;
  if (!r.fallback) return { kind: 'refused', reason: why };
  const again = spec.legality(n, r.fallback);
  if (again !== true) {
    if (again.fallback) throw new QccError('E_UNSUPPORTED', `${spec.backend} legality gave a fallback that is not legal for ${n.opType} '${n.name}': ${again.message}`, { node: n.name });
    return { kind: 'refused', reason: `${why}; ${again.message} [${again.limit}]` };
  }
  return { kind: 'fallback', request: r.fallback, reason: why };
}

/** The end of a layer's epilogue: its bias Add (for `biasAddAfter` ops), then one activation op, each single-use. */
export function epilogueOf(n: Node, spec: Pick<PlacementSpec, 'epilogue'>): { end: Value; bias?: Node; act?: Node } {
  let end = n.outputs[0]!;
  let bias: Node | undefined;
  let act: Node | undefined;
  const c = soleConsumer(end);
  if (c && spec.epilogue.biasAddAfter.includes(opOfNode(n)) && isBiasAdd(c, end)) {
    bias = c;
    end = c.outputs[0]!;
  }
  const a = soleConsumer(end);
  if (a && spec.epilogue.activations.includes(opOfNode(a)) && a.inputs[0] === end && (opOfNode(a) !== 'Clip' || clampOf(a) !== undefined)) {
    act = a;
    end = a.outputs[0]!;
  }
  return { end, ...(bias ? { bias } : {}), ...(act ? { act } : {}) };
}

/**
 * Whether a tensor of shape `s` has a static shape at run time: every dim a number, or unknown dims (shape inference
 * gave up, e.g. after an op it has no rule for) in a graph whose inputs are all static (the backend's own shape
 * inference then knows them). A named symbolic dim is dynamic.
 */
export function likelyStatic(s: readonly (number | { readonly param: string | null })[] | undefined, g: { readonly inputs: readonly Value[] }): boolean {
  const inputsStatic = (): boolean => g.inputs.every((v) => v.shape !== undefined && v.shape.every((d) => typeof d === 'number'));
  if (s === undefined) return inputsStatic();
  if (s.some((d) => typeof d !== 'number' && d.param !== null)) return false;
  return s.every((d) => typeof d === 'number') || inputsStatic();
}

/** An Add of `v` and a constant whose shape is [N] or [1,...,1,N] (a per-output-channel bias). */
export function isBiasAdd(add: Node, v: Value): boolean {
  if (opOfNode(add) !== 'Add' || add.inputs.length !== 2) return false;
  const other = add.inputs[0] === v ? add.inputs[1] : add.inputs[1] === v ? add.inputs[0] : undefined;
  const dims = other?.initializer?.dims;
  if (!dims || !other.initializer || !isFloat(other.initializer.dtype)) return false;
  return dims.length >= 1 && dims.slice(0, -1).every((d) => d === 1);
}

/** The default-domain opset a set of quantizations needs: 13 (per-axis), 19 (FP8), 21 (INT4/INT16, blocks). */
export function opsetFor(quants: readonly TensorQuant[]): number {
  let v = 13;
  for (const q of quants) {
    if (q.dtype === 'fp8e4m3') v = Math.max(v, 19);
    if (q.dtype === 'i4' || q.dtype === 'u4' || q.dtype === 'i16' || q.dtype === 'u16' || q.granularity.kind === 'blocked') v = Math.max(v, 21);
  }
  return v;
}
