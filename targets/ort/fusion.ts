// ONNX Runtime's QDQ fusion rules (CPU EP, graph optimization 'extended'/'all') as data, and predictFusion(): which layers become QLinearConv/QGemm/QLinearMatMul/MatMulIntegerToFloat/MatMulNBits.
//
// A model of the transformers ORT runs on a QDQ graph, in the order that matters here:
//   QDQ propagation (qdq_propagation.cc): a DQ with one consumer moves forward (unless a consumer of the op is a
//     Q already), and a Q backward through single-use values, across `propagate` ops (by op version), inserting
//     Q/DQ pairs with the same parameters;
//   MatMulAddFusion (matmul_add_fusion.cc): MatMul + Add(bias [N]) -> Gemm when B is 2-D and A is 2-D or has a
//     static shape;
//   WeightBiasQuantization (weight_bias_quantization.cc): the float bias of Conv/Gemm becomes an int32 DQ when the
//     input DQ has a scalar scale and the output reaches a Q with no branch (Relu/Clip allowed);
//   the selectors (qdq_selectors.cc), per target node: DQ on every input, a single Q on the output (after a Relu/Clip
//     that the Q makes redundant), same activation types in and out, no 4-/16-bit, int8 activations need int8 weights.
// Standalone Q/DQ: every QuantizeLinear/DequantizeLinear no fusion absorbs (a fused layer, DQ->op->Q around a
// `drop` op with equal parameters, or a QLinear unit: `unary`, `binary`, `variadic`); ORT runs them as kernels.

import type { DType } from '../../ir/dtype.js';
import type { Model, Node, Value } from '../../ir/ir.js';
import { clampOf, constScalar, dqDtype, likelyStatic, opOfNode, qDtype, scaleIsScalar, soleConsumer } from '../shared-plan.js';
import type { FusionLayer, FusionReport } from '../target.js';

export const ORT_FUSION = {
  weighted: ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'],
  /** DropQDQNodesRules: DQ -> op -> Q with equal parameters runs the op on the quantized tensor. */
  drop: ['Expand', 'Flatten', 'Gather', 'GatherElements', 'Reshape', 'Slice', 'Squeeze', 'Tile', 'Transpose', 'Unsqueeze', 'MaxPool', 'ReduceMax', 'ReduceMin', 'Resize'],
  /** Versions a drop rule is registered for (others: every version). */
  dropVersions: { MaxPool: [12] } as Readonly<Record<string, readonly number[]>>,
  /** Drop rules that need a positive scale (ordering must survive dequantization). */
  dropPositiveScale: ['MaxPool', 'ReduceMax', 'ReduceMin'],
  /** UnaryOpQDQRules -> com.microsoft QLinear* (DQ -> op -> Q). */
  unary: ['AveragePool', 'LeakyRelu', 'GlobalAveragePool', 'Sigmoid', 'Softmax'],
  /** BinaryOpQDQRules -> QLinearAdd / QLinearMul (2 DQ -> op -> Q). */
  binary: ['Add', 'Mul'],
  /** VariadicOpQDQRules -> QLinearConcat. */
  variadic: ['Concat'],
  /** QDQPropagationTransformer CanNodePropagate (qdq_propagation.cc, the version onnxruntime-node 1.30 ships): op -> versions. */
  propagate: {
    MaxPool: [12, 22],
    Reshape: [5, 13, 14, 19, 21, 23, 24, 25],
    Transpose: [1, 13, 21, 23, 24, 25],
    Squeeze: [1, 11, 13, 21, 23, 24, 25],
    Unsqueeze: [1, 11, 13, 21, 23, 24, 25],
    Slice: [1, 10, 11, 13],
  } as Readonly<Record<string, readonly number[]>>,
  /** MatMulAddFusion op versions. */
  matmulAdd: { MatMul: [1, 9, 13], Add: [7, 13, 14], Reshape: [5, 13, 14], Transpose: [1, 13], Softmax: [1, 11, 13] } as Readonly<Record<string, readonly number[]>>,
  /** Since-versions of the ops above (ai.onnx), to find a node's version from the model's opset. */
  since: {
    MaxPool: [1, 8, 10, 11, 12, 22],
    Reshape: [1, 5, 13, 14, 19, 21, 23, 24, 25],
    Transpose: [1, 13, 21, 23, 24, 25],
    Squeeze: [1, 11, 13, 21, 23, 24, 25],
    Unsqueeze: [1, 11, 13, 21, 23, 24, 25],
    Slice: [1, 10, 11, 13],
    MatMul: [1, 9, 13],
    Add: [1, 6, 7, 13, 14],
    Softmax: [1, 11, 13],
  } as Readonly<Record<string, readonly number[]>>,
  /** Activation types the integer kernels take. */
  intTypes: ['u8', 'i8'] as readonly DType[],
  /** Weight types of MatMulNBits. */
  nbitsTypes: ['i2', 'u2', 'i4', 'u4', 'i8', 'u8'] as readonly DType[],
  nbitsMinBlock: 16,
} as const;

/** The node's op version (the last since-version at or below the model's opset), or the opset when unknown. */
export function opVersion(n: Node): number {
  const opset = n.opsetVersion;
  const since = ORT_FUSION.since[opOfNode(n)];
  if (!since) return opset;
  let v = since[0]!;
  for (const s of since) if (s <= opset) v = s;
  return v;
}

const inVersions = (n: Node, table: Readonly<Record<string, readonly number[]>>): boolean => {
  const vs = table[opOfNode(n)];
  return vs !== undefined && vs.includes(opVersion(n));
};

const canPropagate = (n: Node): boolean => inVersions(n, ORT_FUSION.propagate);
const is4bit = (d: DType | undefined): boolean => d === 'i4' || d === 'u4';
const is16bit = (d: DType | undefined): boolean => d === 'i16' || d === 'u16';
const isFp8 = (d: DType | undefined): boolean => d !== undefined && d.startsWith('fp8');
const name = (n: Node): string => `${opOfNode(n) || n.opType} '${n.name}'`;

/** Scalar scale, zero point and type of a Q or DQ (undefined when not constant scalars). */
function params(n: Node): { scale: number; zp: number; dtype: DType | undefined } | undefined {
  const scale = constScalar(n.inputs[1]);
  if (scale === undefined) return undefined;
  const z = n.inputs[2];
  const zp = z ? constScalar(z) : 0;
  if (zp === undefined) return undefined;
  return { scale, zp, dtype: opOfNode(n) === 'QuantizeLinear' ? qDtype(n) : dqDtype(n) };
}

function sameParams(a: Node, b: Node): boolean {
  const pa = params(a);
  const pb = params(b);
  return pa !== undefined && pb !== undefined && pa.scale === pb.scale && pa.zp === pb.zp && pa.dtype === pb.dtype;
}

const RANGE: Partial<Record<DType, [number, number]>> = { u8: [0, 255], i8: [-128, 127], u16: [0, 65535], i16: [-32768, 32767] };

/** qdq_util.cc IsClipMadeRedundantByQ: Relu when the zero point is the type minimum; Clip when its range covers Q's. */
function clipRedundant(clip: Node, q: Node): boolean {
  const p = params(q);
  const r = p?.dtype ? RANGE[p.dtype] : undefined;
  if (!p || !r) return false;
  if (opOfNode(clip) === 'Relu') return p.zp === r[0];
  const c = clampOf(clip);
  if (!c) return false;
  const lo = Math.round((c.min ?? -3.4028234663852886e38) / p.scale) + p.zp;
  const hi = Math.round((c.max ?? 3.4028234663852886e38) / p.scale) + p.zp;
  return lo <= r[0] && hi >= r[1];
}

interface Reach {
  readonly dq: Node;
  /** Propagation ops between the DQ and the value (the DQ's consumer first). */
  readonly chain: readonly Node[];
}

/** The DQ `v` comes from, directly or through ORT's forward QDQ propagation. */
function effDq(v: Value | null | undefined): Reach | undefined {
  const p = v?.producer;
  if (!p) return undefined;
  if (opOfNode(p) === 'DequantizeLinear') return { dq: p, chain: [] };
  if (!canPropagate(p) || p.inputs[0]?.isInitializer) return undefined;
  // an edge group with a QuantizeLinear among its consumers is left alone
  if ((p.outputs[0]?.uses ?? []).some((u) => opOfNode(u.node) === 'QuantizeLinear')) return undefined;
  const r = effDq(p.inputs[0]);
  if (!r) return undefined;
  if (r.chain.length === 0) {
    // propagation starts only from a DQ with one consumer and constant scalar parameters
    const out = r.dq.outputs[0]!;
    if (out.uses.length !== 1 || out.isGraphOutput || !params(r.dq)) return undefined;
  }
  return { dq: r.dq, chain: [...r.chain, p] };
}

/** The Q the single-use value `t` reaches, directly or through ORT's backward Q propagation. */
function effQ(t: Value): { q: Node; chain: Node[] } | undefined {
  const c = soleConsumer(t);
  if (!c) return undefined;
  if (opOfNode(c) === 'QuantizeLinear') return { q: c, chain: [] };
  if (!canPropagate(c)) return undefined;
  const r = effQ(c.outputs[0]!);
  if (!r || !params(r.q)) return undefined;
  return { q: r.q, chain: [c, ...r.chain] };
}

/** Real Q consumers of `v`, or the virtual one backward propagation inserts. */
function qChildren(v: Value): Node[] {
  const qs = v.uses.map((u) => u.node).filter((u) => opOfNode(u) === 'QuantizeLinear');
  if (qs.length) return qs;
  const e = effQ(v);
  return e ? [e.q] : [];
}

interface OutputGroup {
  readonly qs: readonly Node[];
  readonly clip?: Node;
  /** Output edges of the node the Q children hang off (the target, or the clip). */
  readonly edges: number;
  readonly graphOutput: boolean;
  readonly fail?: string;
}

/** NodeGroupSelector::GetQDQSelection's view of a target's output (`out` is the node producing the unit's output). */
function outputGroup(out: Node): OutputGroup {
  const v = out.outputs[0]!;
  let clip: Node | undefined;
  const c = soleConsumer(v);
  if (c && (opOfNode(c) === 'Relu' || opOfNode(c) === 'Clip') && soleConsumer(c.outputs[0]!)) clip = c;
  const src = clip?.outputs[0] ?? v;
  const qs = qChildren(src);
  const base = { qs, edges: clip ? 1 : v.uses.length, graphOutput: v.isGraphOutput, ...(clip ? { clip } : {}) };
  if (clip) {
    if (qs.length !== 1) return { ...base, fail: `${name(clip)} after the layer does not feed a QuantizeLinear, so ORT groups nothing (qdq_selectors.cc GetQDQSelection)` };
    if (!clipRedundant(clip, qs[0]!)) {
      const p = params(qs[0]!);
      return { ...base, fail: `${name(clip)} before ${name(qs[0]!)} is not absorbed: ${opOfNode(clip) === 'Relu' ? `the zero point ${p?.zp} is not the type minimum` : 'the quantized range is not inside the Clip range'} (qdq_util.cc IsClipMadeRedundantByQ)` };
    }
  }
  return base;
}

/** CheckQDQNodes for the output side: one Q per output edge (exactly one), and no graph output. */
function qOk(og: OutputGroup): boolean {
  return og.qs.length === 1 && og.edges === 1 && !og.graphOutput;
}

function qFail(og: OutputGroup, what: string): string {
  if (og.graphOutput) return `the ${what} output is also a graph output: ORT fuses only when every output edge goes to QuantizeLinear`;
  return `the ${what} output feeds ${og.edges} consumers, not only QuantizeLinear: ORT fuses only when every output edge goes to QuantizeLinear`;
}

/** weight_bias_quantization.cc IsNoBranchPathToQuantizeLinear (with backward Q propagation). */
function pathToQ(out: Node): boolean {
  let cur = out;
  for (let i = 0; i < 8; i++) {
    const v = cur.outputs[0]!;
    if (v.uses.length !== 1) return false;
    const c = v.uses[0]!.node;
    if (opOfNode(c) === 'QuantizeLinear' || effQ(v)) return true;
    if (opOfNode(c) !== 'Relu' && opOfNode(c) !== 'Clip') return false;
    cur = c;
  }
  return false;
}

function shapeOf(v: Value | null | undefined): readonly (number | { param: string | null })[] | undefined {
  if (!v) return undefined;
  if (v.shape) return v.shape;
  const p = v.producer;
  if (p && (opOfNode(p) === 'DequantizeLinear' || opOfNode(p) === 'QuantizeLinear')) return shapeOf(p.inputs[0]);
  return undefined;
}

/** DQ of a constant (the weight side): the DQ node when `v` is DequantizeLinear(initializer). */
function constDq(v: Value | null | undefined): Node | undefined {
  const p = v?.producer;
  return p && opOfNode(p) === 'DequantizeLinear' && p.inputs[0]?.isInitializer ? p : undefined;
}

/** ValidateDQForMatMulNBits: why the weight DQ cannot feed MatMulNBits, or undefined when it can. */
function nbitsProblem(dq: Node): string | undefined {
  const w = dq.inputs[0]!;
  const t = w.initializer!.dtype;
  if (!ORT_FUSION.nbitsTypes.includes(t)) return `weight type ${t} is not a 2/4/8-bit integer`;
  const st = dq.inputs[1]?.dtype;
  if (st !== 'f32' && st !== 'f16') return 'the weight scale is not float/float16';
  if (dq.inputs[1] && !dq.inputs[1].isInitializer) return 'the weight scale is not constant';
  const dims = w.initializer!.dims;
  if (dims.length !== 2) return 'the weight is not 2-D';
  const bs = dq.attrInt('block_size', 0);
  const sdims = dq.inputs[1]!.shape ?? [];
  if (bs > 0) {
    if (dq.attrInt('axis', 1) !== 0) return 'the weight blocks do not run along K (axis 0)';
    if (bs < ORT_FUSION.nbitsMinBlock || (bs & (bs - 1)) !== 0) return `block size ${bs} is not a power of two >= ${ORT_FUSION.nbitsMinBlock}`;
    if (sdims.length !== 2) return 'the block scales are not 2-D';
    return undefined;
  }
  if (sdims.length === 0 || (sdims.length === 1 && sdims[0] === 1 && dims[1] !== 1)) return undefined;
  if (sdims.length === 1 && sdims[0] === dims[1] && dq.attrInt('axis', 1) === 1) return undefined;
  return 'the weight scales are neither per-tensor, per-column (axis 1) nor blocks along K';
}

/** Reshape(v5/13/14) <- Transpose(v1/13) <- MatMul <- Softmax: MatMulAddFusion leaves attention projections alone. */
function attentionProjection(mm: Node): boolean {
  const r = mm.inputs[0]?.producer;
  if (!r || opOfNode(r) !== 'Reshape' || !inVersions(r, ORT_FUSION.matmulAdd)) return false;
  const t = r.inputs[0]?.producer;
  if (!t || opOfNode(t) !== 'Transpose' || !inVersions(t, ORT_FUSION.matmulAdd)) return false;
  const av = t.inputs[0]?.producer;
  if (!av || opOfNode(av) !== 'MatMul') return false;
  const s = av.inputs[0]?.producer;
  return s !== undefined && s !== null && opOfNode(s) === 'Softmax' && inVersions(s, ORT_FUSION.matmulAdd);
}

/** The Add a MatMul becomes a Gemm with (MatMulAddFusion), or undefined. */
function matmulAddFusion(mm: Node): { add: Node; bias: Value } | undefined {
  if (!inVersions(mm, ORT_FUSION.matmulAdd)) return undefined;
  const out = mm.outputs[0]!;
  if (out.uses.length !== 1 || out.isGraphOutput) return undefined;
  const add = out.uses[0]!.node;
  if (opOfNode(add) !== 'Add' || !inVersions(add, ORT_FUSION.matmulAdd) || add.inputs.length !== 2) return undefined;
  const bias = add.inputs[0] === out ? add.inputs[1] : add.inputs[0];
  const a = shapeOf(mm.inputs[0]);
  const b = shapeOf(mm.inputs[1]);
  const bs = shapeOf(bias);
  if (!bias || !b || b.length !== 2 || !bs) return undefined;
  const n = b[1];
  if (a?.length !== 2) {
    if (attentionProjection(mm)) return undefined;
    // ORT needs A's shape static; unknown dims are judged by likelyStatic (ORT's shape inference may know more)
    if (!likelyStatic(a, mm.graph!) || typeof b[0] !== 'number' || typeof n !== 'number') return undefined;
    if (!(bs.length === 1 && bs[0] === n)) return undefined;
  } else if (!(bs.length === 1 && bs[0] === n) && !(bs.length === 2 && (bs[0] === 1 || bs[0] === a[0]) && (bs[1] === n || bs[1] === 1))) return undefined;
  return { add, bias };
}

interface Verdict {
  readonly layer: FusionLayer;
  /** Q/DQ nodes the fused kernel consumes. */
  readonly absorbed: readonly Node[];
}

/** Predicts ORT's treatment of every weighted layer of a QDQ model, and the Q/DQ it runs standalone. */
export function ortPredictFusion(model: Model): FusionReport {
  const g = model.graph;
  const absorbed = new Set<Node>();
  const layers: FusionLayer[] = [];
  for (const n of g.nodes()) {
    const op = opOfNode(n);
    if (!(ORT_FUSION.weighted as readonly string[]).includes(op)) continue;
    const v = predictLayer(n, op);
    layers.push(v.layer);
    for (const a of v.absorbed) absorbed.add(a);
  }
  for (const n of g.nodes()) for (const a of unitAbsorbs(n)) absorbed.add(a);

  const standaloneQdq: { node: string; reason: string }[] = [];
  // WeightBiasQuantization adds DequantizeLinear nodes to layers it prepares for fusion; unfused, they stay
  for (const l of layers) {
    if (l.quantized) continue;
    const n = g.findNode(l.node)!;
    for (const what of weightBiasDqs(n)) {
      standaloneQdq.push({ node: `${n.name}/${what}`, reason: `DequantizeLinear of the ${what} added by ORT (WeightBiasQuantization) runs on every inference: ${name(n)} is not fused` });
    }
  }
  for (const n of g.nodes()) {
    const op = opOfNode(n);
    if ((op !== 'QuantizeLinear' && op !== 'DequantizeLinear') || absorbed.has(n)) continue;
    if (op === 'DequantizeLinear') {
      const users = [...new Set((n.outputs[0]?.uses ?? []).map((u) => name(u.node)))];
      const what = n.inputs[0]?.isInitializer ? 'of a constant' : 'of an activation';
      standaloneQdq.push({ node: n.name, reason: `DequantizeLinear ${what} runs on every inference: ${users.length ? `${users.join(', ')} is not fused` : 'it feeds a graph output'}` });
    } else {
      const p = n.inputs[0]?.producer;
      standaloneQdq.push({ node: n.name, reason: `QuantizeLinear runs standalone: ${p ? `${name(p)} is not fused with it` : 'it quantizes a graph input'}` });
    }
  }
  const q = layers.filter((l) => l.quantized).length;
  return { layers, coverage: layers.length ? q / layers.length : 1, standaloneQdq };
}

function predictLayer(n: Node, op: string): Verdict {
  const no = (reason: string): Verdict => ({ layer: { node: n.name, op, quantized: false, fusedWith: [], reason }, absorbed: [] });
  if (op === 'ConvTranspose') return no('ORT CPU has no quantized ConvTranspose kernel: DequantizeLinear + float ConvTranspose run');
  const a = effDq(n.inputs[0]);
  const bv = n.inputs[1];
  const b = effDq(bv);

  // weight-only: float activation, DQ(constant) weight -> MatMulNBits
  const wdq = constDq(bv);
  if (!a && wdq && isFp8(dqDtype(wdq))) return no(`FP8 weight-only ${op}: ORT CPU has no FP8 kernels; DequantizeLinear + float ${op} run (emulated)`);
  if (!a && wdq && (op === 'MatMul' || op === 'Gemm')) {
    if (op === 'Gemm') {
      const plain = n.attrInt('transA', 0) === 0 && n.attrInt('transB', 0) === 0 && n.attrFloat('alpha', 1) === 1;
      if (!plain) return no('weight-only Gemm: MatMulNBits needs transB=0 and alpha=1; DequantizeLinear + float Gemm run');
      if (n.inputs[2] && n.attrFloat('beta', 1) !== 1) return no('weight-only Gemm with beta != 1: DequantizeLinear + float Gemm run');
    }
    const why = nbitsProblem(wdq);
    if (why) return no(`weight-only ${op}: ${why}, so no MatMulNBits; DequantizeLinear + float ${op} run`);
    if (wdq.outputs[0]!.uses.length !== 1 || wdq.outputs[0]!.isGraphOutput) return no('the weight DequantizeLinear has other consumers: no MatMulNBits');
    const og = outputGroup(n);
    if (og.clip || og.qs.length) return no(`weight-only ${op} with a QuantizeLinear${og.clip ? ` after ${name(og.clip)}` : ''} on its output: MatMulNBits takes no output Q`);
    return { layer: { node: n.name, op, quantized: true, fusedWith: [name(wdq)], kernel: 'MatMulNBits' }, absorbed: [wdq] };
  }
  if (!a) return no(`input DQ missing: input 0 ('${n.inputs[0]?.name ?? '?'}') is not dequantized, so the ${op} runs in float`);
  const at = dqDtype(a.dq);
  if (isFp8(at)) {
    return no(op === 'Conv'
      ? 'FP8: ORT CPU has no FP8 Conv kernel; DequantizeLinear + float Conv run (emulated)'
      : `FP8 activations: ORT 1.30 fuses DQ->${op} into a kernel without FP8 types and the session fails to load`);
  }
  if (!at || !ORT_FUSION.intTypes.includes(at)) return no(`activation type ${at ?? 'unknown'}: ORT's CPU selectors fuse uint8/int8 only`);

  if (op === 'Conv') {
    let wt: DType | undefined;
    let byOrt = false;
    if (wdq) wt = dqDtype(wdq);
    else if (bv?.isInitializer && bv.initializer!.dtype === 'f32' && scaleIsScalar(a.dq) && pathToQ(n)) {
      wt = 'i8';
      byOrt = true;
    } else return no(bv?.isInitializer ? `weight not quantized: '${bv.name}' is a float initializer without DequantizeLinear` : `weight input '${bv?.name ?? '?'}' is not a dequantized constant`);
    if (is4bit(wt)) return no('INT4 weights: the Conv selector refuses 4-bit weights (qdq_selectors.cc)');
    if (!wt || !ORT_FUSION.intTypes.includes(wt)) return no(`weight type ${wt ?? 'unknown'}: QLinearConv takes uint8/int8 weights`);
    if (at === 'i8' && wt !== 'i8') return no('int8 activations need int8 weights (qdq_selectors.cc ConvNodeGroupSelector)');
    const bias = biasProblem(n, a.dq, wdq, 0);
    if (bias) return no(bias);
    const og = outputGroup(n);
    if (og.fail) return no(og.fail);
    if (og.qs.length === 0) return no('output not quantized: QLinearConv needs a QuantizeLinear on the Conv output (after an optional Relu/Clip)');
    if (!qOk(og)) return no(qFail(og, 'Conv'));
    if (qDtype(og.qs[0]!) !== at) return no(`the output type ${qDtype(og.qs[0]!)} differs from the input type ${at}`);
    return fused(n, op, 'QLinearConv', a, wdq, og, byOrt ? ['weight quantized per tensor by ORT (WeightBiasQuantization)'] : []);
  }

  if (!b) return no(bv?.isInitializer ? `weight not quantized: '${bv.name}' is a float initializer without DequantizeLinear` : `input DQ missing: input 1 ('${bv?.name ?? '?'}') is not dequantized`);
  const bt = dqDtype(b.dq);
  if (is4bit(at) || is4bit(bt)) return no(`INT4 weights with a quantized activation: the ${op} selector refuses 4-bit and MatMulNBits needs a float activation`);
  if (is16bit(at) || is16bit(bt)) return no('16-bit types are not enabled in the CPU selectors');
  if (isFp8(bt)) return no(`FP8 weights with integer activations: no ${op} kernel`);
  if (at === 'i8' && bt !== 'i8') return no('int8 activations need int8 weights');

  if (op === 'MatMul') {
    const fusedAdd = matmulAddFusion(n);
    if (fusedAdd) return gemmVerdict(n, op, a, b, fusedAdd.add, fusedAdd.bias, { transB: 0, beta: 1 }, at, [`Add(bias) '${fusedAdd.add.name}' (MatMulAddFusion)`]);
    const og = outputGroup(n);
    if (og.fail) return no(og.fail);
    if (og.qs.length === 0) return fused(n, op, 'MatMulIntegerToFloat', a, b.dq, og, []);
    if (!qOk(og)) return no(`${qFail(og, 'MatMul')}; with no QuantizeLinear at all it would become MatMulIntegerToFloat`);
    if (qDtype(og.qs[0]!) !== at) return no(`the output type ${qDtype(og.qs[0]!)} differs from the input type ${at}`);
    return fused(n, op, 'QLinearMatMul', a, b.dq, og, []);
  }
  // Gemm
  return gemmVerdict(n, op, a, b, n, n.inputs[2] ?? undefined, { transB: n.attrInt('transB', 0), beta: n.attrFloat('beta', 1) }, at, []);

  function gemmVerdict(layer: Node, lop: string, A: Reach, B: Reach, out: Node, bias: Value | undefined, attrs: { transB: number; beta: number }, aType: DType, extra: string[]): Verdict {
    const nope = (r: string): Verdict => ({ layer: { node: layer.name, op: lop, quantized: false, fusedWith: extra, reason: r }, absorbed: [] });
    const og = outputGroup(out);
    if (og.fail) return nope(og.fail);
    if (bias) {
      if (attrs.beta !== 1) return nope('Gemm bias with beta != 1: QGemm needs beta = 1');
      const bdq = bias.producer && opOfNode(bias.producer) === 'DequantizeLinear' ? bias.producer : undefined;
      if (bdq) {
        if (dqDtype(bdq) !== 'i32') return nope('the bias DequantizeLinear does not read int32');
      } else {
        const why = biasProblem(layer, A.dq, B.chain.length === 0 ? B.dq : undefined, attrs.transB ? 0 : 1, out);
        if (why) return nope(why);
        if (og.qs.length === 0) return nope('float bias and no QuantizeLinear on the output: ORT quantizes the bias (WeightBiasQuantization) only when the output goes to QuantizeLinear, so the Gemm runs in float');
      }
    }
    if (og.qs.length && !qOk(og)) return nope(qFail(og, 'Gemm'));
    if (og.qs.length && qDtype(og.qs[0]!) !== aType) return nope(`the output type ${qDtype(og.qs[0]!)} differs from the input type ${aType}`);
    return fused(layer, lop, 'QGemm', A, B.dq, og, extra);
  }
}

/** weight_bias_quantization.cc: the DequantizeLinear nodes ORT adds to a Conv/ConvTranspose/Gemm ('weight', 'bias'). */
function weightBiasDqs(n: Node): string[] {
  const op = opOfNode(n);
  if (op !== 'Conv' && op !== 'ConvTranspose' && op !== 'Gemm') return [];
  const x = n.inputs[0]?.producer;
  if (!x || opOfNode(x) !== 'DequantizeLinear' || !scaleIsScalar(x) || !pathToQ(n)) return [];
  const w = n.inputs[1];
  const wdq = w?.producer && opOfNode(w.producer) === 'DequantizeLinear' ? w.producer : undefined;
  if (!wdq && (!w?.isInitializer || w.initializer!.dtype !== 'f32')) return [];
  const b = n.inputs[2];
  if (b && (!b.isInitializer || b.initializer!.dims.length !== 1)) return [];
  if (wdq && !b) return [];
  if (wdq && b && !scaleIsScalar(wdq)) {
    if (wdq.attrInt('block_size', 0) !== 0 || wdq.inputs[1]?.shape?.[0] !== b.initializer!.dims[0]) return [];
    const rank = wdq.inputs[0]?.shape?.length ?? 0;
    let axis = wdq.attrInt('axis', 1);
    if (axis < 0) axis += rank;
    const expected = op === 'Gemm' ? (n.attrInt('transB', 0) ? 0 : 1) : op === 'ConvTranspose' ? 1 : 0;
    if (axis !== expected) return [];
  }
  return [...(wdq ? [] : ['weight']), ...(b ? ['bias'] : [])];
}

/** Why ORT cannot quantize this layer's float bias (WeightBiasQuantization), or undefined when it can or no bias. */
function biasProblem(n: Node, xdq: Node, wdq: Node | undefined, expectedAxis: number, out: Node = n): string | undefined {
  const b = opOfNode(n) === 'MatMul' ? undefined : n.inputs[2];
  const bias = opOfNode(n) === 'MatMul' ? matmulAddFusion(n)?.bias : b;
  if (!bias) return undefined;
  const p = bias.producer;
  if (p && opOfNode(p) === 'DequantizeLinear') return dqDtype(p) === 'i32' ? undefined : 'the bias DequantizeLinear does not read int32';
  if (!bias.isInitializer) return `bias '${bias.name}' is neither a constant nor dequantized`;
  if (!scaleIsScalar(xdq)) return 'the input scale is not a scalar, so ORT cannot quantize the float bias';
  if (!pathToQ(out)) return undefined; // reported by the caller as "no output Q"
  const dims = bias.initializer!.dims;
  if (dims.length !== 1) return 'the float bias is not 1-D, so ORT cannot quantize it';
  if (wdq && !scaleIsScalar(wdq)) {
    const s = wdq.inputs[1]?.shape;
    if (!s || s.length !== 1 || s[0] !== dims[0]) return 'the weight scales do not match the bias length, so ORT cannot quantize the float bias';
    if (wdq.attrInt('block_size', 0) !== 0) return 'blocked weight scales: ORT cannot quantize the float bias';
    const rank = wdq.inputs[0]?.shape?.length ?? 0;
    let axis = wdq.attrInt('axis', 1);
    if (axis < 0) axis += rank;
    if (axis !== expectedAxis) return `the weight scales run along axis ${axis}, not the output-channel axis ${expectedAxis}: ORT cannot quantize the float bias`;
  }
  return undefined;
}

function fused(n: Node, op: string, kernel: string, a: Reach, w: Node | undefined, og: OutputGroup, extra: readonly string[]): Verdict {
  const absorbed: Node[] = [a.dq];
  if (w) absorbed.push(w);
  const b = n.inputs[2]?.producer;
  if (b && opOfNode(b) === 'DequantizeLinear') absorbed.push(b);
  const other = op === 'Conv' ? undefined : effDq(n.inputs[1]);
  if (other) absorbed.push(other.dq);
  const fusedWith = [...extra];
  if (og.clip) fusedWith.push(name(og.clip));
  if (og.qs.length) {
    fusedWith.push(name(og.qs[0]!));
    absorbed.push(og.qs[0]!);
  }
  return { layer: { node: n.name, op, quantized: true, fusedWith, kernel }, absorbed };
}

/** Q/DQ absorbed by non-weighted QDQ units: DropQDQ ops, QLinear unary/binary/variadic ops. */
function unitAbsorbs(n: Node): Node[] {
  const op = opOfNode(n);
  const F = ORT_FUSION;
  const dqs = n.inputs.filter((v) => v && !v.isInitializer).map((v) => effDq(v));
  const out = n.outputs[0];
  if (!out) return [];
  if ((F.drop as readonly string[]).includes(op)) {
    const vs = F.dropVersions[op];
    if (vs && !vs.includes(opVersion(n))) return [];
    const d = effDq(n.inputs[0]);
    const qs = qChildren(out);
    if (!d || qs.length !== 1 || out.uses.length !== 1 || out.isGraphOutput) return [];
    if (!sameParams(d.dq, qs[0]!)) return [];
    if ((F.dropPositiveScale as readonly string[]).includes(op) && !(params(qs[0]!)!.scale > 0)) return [];
    return [d.dq, qs[0]!];
  }
  const unary = (F.unary as readonly string[]).includes(op);
  const binary = (F.binary as readonly string[]).includes(op);
  const variadic = (F.variadic as readonly string[]).includes(op);
  if (!unary && !binary && !variadic) return [];
  if (n.inputs.some((v) => !v) || dqs.length !== n.inputs.length || dqs.some((d) => !d)) return [];
  const og = outputGroup(n);
  if (og.fail || !qOk(og)) return [];
  const t = dqDtype(dqs[0]!.dq);
  if (!t || !ORT_FUSION.intTypes.includes(t) || dqs.some((d) => dqDtype(d!.dq) !== t) || qDtype(og.qs[0]!) !== t) return [];
  if (unary && dqs.length !== 1) return [];
  if (binary && dqs.length !== 2) return [];
  return [...dqs.map((d) => d!.dq), og.qs[0]!];
}
