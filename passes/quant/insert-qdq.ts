// Activation Q/DQ insertion: one QuantizeLinear per planned tensor, one DequantizeLinear per consumer input.
//
//   y = Producer(...)                 y = Producer(...)
//   a = Conv(y, W)           ->       y_quantized = QuantizeLinear(y, y_scale, y_zero_point)
//   b = Add(y, c)                     y_dequantized = DequantizeLinear(y_quantized, y_scale, y_zero_point)
//                                     a = Conv(y_dequantized, W)
//                                     y_dequantized_1 = DequantizeLinear(y_quantized, y_scale, y_zero_point)
//                                     b = Add(y_dequantized_1, c)
//
// - The Q goes right after the producer (for a graph input or an initializer: at the top of its graph); each DQ
//   right before its consumer. One DQ per consumer *input* (`{node, input}`): TensorRT's recommended layout,
//   and what ORT's QDQ selectors want (a DQ per node unit). `consumers` empty = every node input reading the tensor.
// - Graph outputs stay float unless the plan says `graphOutput`: then the output reads its own DequantizeLinear
//   and keeps its name, while the float tensor the producer writes is renamed `<t>_float` (ORT fuses a layer only as
//   DQ -> op -> Q, so a classifier Gemm writing the logits needs this). No Q is inserted when nothing reads a DQ.
// - Scale: scalar float32 initializer `<t>_scale`; zero point: scalar initializer `<t>_zero_point` of the plan's
//   dtype (u8 / i8 / u16 / i16 / fp8e4m3), always explicit (absent would mean UINT8 in ONNX, INT8 in TensorRT).
//   Activations are per-tensor only (TensorRT: "activation quantization does not support per-axis"; QParams is
//   scalar), so no `axis` is written: it is ignored for scalar scales and would not exist below opset 13.
// - Names are deterministic: nodes `<t>_q`, `<t>_dq`, `<t>_dq_1`, ...; values `<t>_quantized`, `<t>_dequantized`,
//   `<t>_dequantized_1`, ... (a suffix `_N` is added when a name is taken).
// - `params` is keyed by tensor name; a plan with `sameAs` and no entry of its own uses its `sameAs` tensor's entry.
// - Opset: FP8 needs 19, 16-bit integers 21; a lower model is converted with upgrade-opset first (after every plan
//   has been validated, so a refusal leaves the model untouched).

import { QccError, type Loc } from '../../ir/errors.js';
import { encodeFp8 } from '../../ir/numerics.js';
import { tensorFromTyped, tensorType, type AnyTypedArray, type Graph, type Model, type Node, type Value } from '../../ir/ir.js';
import { Rewriter } from '../../ir/rewriter.js';
import { diagnosticSink } from '../pass.js';
import { upgradeOpset } from '../upgrade-opset.js';
import { unusedName } from './quantize-weights.js';
import type { ActivationPlan, QDType, QParams } from './types.js';

type ActQDType = Extract<QDType, 'i8' | 'u8' | 'i16' | 'u16' | 'fp8e4m3'>;

const INT_RANGE: Readonly<Record<Exclude<ActQDType, 'fp8e4m3'>, readonly [number, number]>> = {
  i8: [-128, 127],
  u8: [0, 255],
  i16: [-32768, 32767],
  u16: [0, 65535],
};

interface Use {
  readonly node: Node;
  readonly input: number;
}

interface Resolved {
  readonly tensor: Value;
  readonly dtype: ActQDType;
  readonly scale: number;
  readonly zeroPoint: number;
  readonly uses: Use[];
  /** The tensor is a graph output that reads the dequantized value. */
  readonly graphOutput: boolean;
}

function refuse(message: string, loc: Loc): never {
  throw new QccError('E_UNSUPPORTED', message, loc);
}

function valueMap(m: Model): Map<string, Value> {
  const out = new Map<string, Value>();
  const visit = (g: Graph): void => {
    for (const v of g.values()) if (!out.has(v.name)) out.set(v.name, v);
    for (const n of g.nodes()) for (const sg of n.subgraphs()) visit(sg);
  };
  visit(m.graph);
  return out;
}

function zeroPointTensor(name: string, dtype: ActQDType, zp: number): AnyTypedArray {
  switch (dtype) {
    case 'i8':
      return Int8Array.of(zp);
    case 'u8':
      return Uint8Array.of(zp);
    case 'i16':
      return Int16Array.of(zp);
    case 'u16':
      return Uint16Array.of(zp);
    case 'fp8e4m3':
      return Uint8Array.of(encodeFp8('fp8e4m3', zp));
    default:
      throw new QccError('E_UNSUPPORTED', `no zero point storage for ${String(dtype)}`, { tensor: name });
  }
}

function resolve(plans: readonly ActivationPlan[], params: ReadonlyMap<string, QParams>, values: ReadonlyMap<string, Value>, nodes: ReadonlyMap<string, Node>): Resolved[] {
  // merge plans of one tensor (their quantization must agree; consumers are united)
  const merged = new Map<string, { plan: ActivationPlan; all: boolean; consumers: Use[]; output: boolean }>();
  for (const p of plans) {
    const loc: Loc = { tensor: p.tensor };
    const prev = merged.get(p.tensor);
    if (prev) {
      const a = prev.plan.quant;
      const b = p.quant;
      if (a.dtype !== b.dtype || a.symmetric !== b.symmetric || a.granularity.kind !== b.granularity.kind) {
        refuse(`two activation plans for '${p.tensor}' disagree (${a.dtype} vs ${b.dtype})`, loc);
      }
    }
    const entry = prev ?? { plan: p, all: false, consumers: [], output: false };
    if (p.consumers.length === 0) entry.all = true;
    if (p.graphOutput === true) entry.output = true;
    for (const c of p.consumers) {
      const n = nodes.get(c.node);
      if (!n) refuse(`activation plan for '${p.tensor}' lists consumer '${c.node}', which is not in the graph`, { ...loc, node: c.node });
      if (n.input(c.input)?.name !== p.tensor) refuse(`activation plan lists input ${c.input} of '${c.node}', which does not read '${p.tensor}'`, { ...loc, node: c.node });
      if (!entry.consumers.some((u) => u.node === n && u.input === c.input)) entry.consumers.push({ node: n, input: c.input });
    }
    merged.set(p.tensor, entry);
  }
  const out: Resolved[] = [];
  for (const [name, { plan, all, consumers, output }] of merged) {
    const loc: Loc = { tensor: name };
    const v = values.get(name);
    if (!v) refuse(`activation plan names tensor '${name}', which is not in the graph`, loc);
    const q = plan.quant;
    if (q.dtype !== 'i8' && q.dtype !== 'u8' && q.dtype !== 'i16' && q.dtype !== 'u16' && q.dtype !== 'fp8e4m3') {
      refuse(`activations cannot be quantized to ${q.dtype} (i8, u8, i16, u16, fp8e4m3; INT4 is weight-only)`, loc);
    }
    if (q.granularity.kind !== 'per-tensor') refuse(`activation '${name}' asks for ${q.granularity.kind} quantization; activations are per-tensor`, loc);
    if (v.dtype !== undefined && v.dtype !== 'f32') refuse(`activation '${name}' is ${v.dtype}; only float32 tensors are quantized`, loc);
    // a plan with `sameAs` shares the other tensor's parameters when it has none of its own
    const qp = params.get(name) ?? (plan.sameAs !== undefined ? params.get(plan.sameAs) : undefined);
    if (!qp) refuse(`no scale / zero point for activation '${name}'${plan.sameAs !== undefined ? ` nor for '${plan.sameAs}' (sameAs)` : ''} (was it calibrated?)`, loc);
    const scale = Math.fround(qp.scale);
    if (!(Number.isFinite(scale) && scale > 0)) refuse(`scale of activation '${name}' is ${qp.scale}; it must be a positive finite float32`, loc);
    const zp = qp.zeroPoint;
    if (q.dtype === 'fp8e4m3') {
      if (zp !== 0) refuse(`FP8 zero point of '${name}' must be 0, not ${zp}`, loc);
    } else {
      const [lo, hi] = INT_RANGE[q.dtype];
      if (!Number.isInteger(zp) || zp < lo || zp > hi) refuse(`zero point ${zp} of '${name}' is not a ${q.dtype}`, loc);
      if (q.symmetric && zp !== 0) refuse(`symmetric plan for '${name}' has zero point ${zp}`, loc);
    }
    const uses: Use[] = all ? v.uses.map((u) => ({ node: u.node, input: u.index })) : consumers;
    out.push({ tensor: v, dtype: q.dtype, scale, zeroPoint: zp, uses, graphOutput: output && v.graph.outputs.includes(v) });
  }
  return out;
}

function requiredOpset(r: Resolved): number {
  if (r.dtype === 'i16' || r.dtype === 'u16') return 21;
  if (r.dtype === 'fp8e4m3') return 19;
  return 10;
}

/**
 * Inserts Q/DQ pairs for the planned activations (see the file header). `params` maps tensor names to their
 * scale and zero point. Returns the number of QuantizeLinear + DequantizeLinear nodes inserted.
 */
export function insertQdq(model: Model, plans: readonly ActivationPlan[], params: ReadonlyMap<string, QParams>): { inserted: number } {
  if (plans.length === 0) return { inserted: 0 };
  const nodes = new Map<string, Node>();
  for (const n of model.graph.allNodes()) if (!nodes.has(n.name)) nodes.set(n.name, n);
  let resolved = resolve(plans, params, valueMap(model), nodes);
  let need = 0;
  for (const r of resolved) if (r.uses.length > 0 || r.graphOutput) need = Math.max(need, requiredOpset(r));
  if (model.opset < need) {
    try {
      upgradeOpset.run(model, { options: { to: need }, diag: diagnosticSink(), instruments: [] });
    } catch (e) {
      if (e instanceof QccError) throw new QccError(e.code, `activation quantization needs opset ${need}: ${e.message}`, e.loc, { cause: e });
      throw e;
    }
    nodes.clear();
    for (const n of model.graph.allNodes()) if (!nodes.has(n.name)) nodes.set(n.name, n);
    resolved = resolve(plans, params, valueMap(model), nodes);
  }
  const rw = new Rewriter(model.graph);
  let inserted = 0;
  for (const r of resolved) {
    if (r.uses.length === 0 && !r.graphOutput) continue;
    const v = r.tensor;
    const g = v.graph;
    const t = v.name;
    const sv = rw.addInitializer(tensorFromTyped(`${t}_scale`, 'f32', [], Float32Array.of(r.scale)), g);
    const zv = rw.addInitializer(tensorFromTyped(`${t}_zero_point`, r.dtype, [], zeroPointTensor(t, r.dtype, r.zeroPoint)), g);
    const shape = v.shape;
    const q = rw.createNode('QuantizeLinear', [v, sv, zv], { name: `${t}_q`, outputs: [unusedName(g, `${t}_quantized`)], outputTypes: [tensorType(r.dtype, shape)] });
    const producer = v.producer;
    if (producer && producer.graph) rw.insertAfter(producer, q);
    else if (g.first) rw.insertBefore(g.first, q);
    else rw.append(g, q);
    inserted++;
    for (const u of r.uses) {
      const dq = rw.createNode('DequantizeLinear', [q.outputs[0]!, sv, zv], {
        name: `${t}_dq`,
        outputs: [unusedName(g, `${t}_dequantized`)],
        outputTypes: [tensorType('f32', shape)],
      });
      rw.insertBefore(u.node, dq);
      rw.setInput(u.node, u.input, dq.outputs[0]!);
      inserted++;
    }
    if (r.graphOutput) {
      const dq = rw.createNode('DequantizeLinear', [q.outputs[0]!, sv, zv], {
        name: `${t}_dq`,
        outputs: [unusedName(g, `${t}_dequantized`)],
        outputTypes: [tensorType('f32', shape)],
      });
      rw.insertAfter(q, dq);
      rw.replaceGraphOutput(v, dq.outputs[0]!, '_float');
      inserted++;
    }
  }
  return { inserted };
}
