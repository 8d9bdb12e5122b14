// TensorRT's Q/DQ fusion rules as data (SPEC §8) and predictFusion(): which weighted layers of a QDQ model run quantized, what fuses into them, which Q/DQ stay standalone.
//
// The rules, applied per weighted layer (Conv, ConvTranspose, Gemm, MatMul):
// - operands: the weight must come from DequantizeLinear of a constant (INT8/FP8 per-tensor or per-channel, INT4
//   blocked on Gemm/MatMul; a Q/DQ pair on a float constant counts too: TensorRT quantizes it at build time); every
//   activation operand must come from a DequantizeLinear, directly or through ops TensorRT propagates DQ across
//   (`propagate`). Gemm/MatMul with a quantized weight and float activations run weight-only (INT8/INT4).
// - zero points must be 0 and activation scales scalar (SPEC §8); operands share one family (INT8 or FP8).
// - epilogue (each step single-use): bias Add (constant [N] operand), residual Add whose other input is DQ'd (Conv and
//   ConvTranspose only), one activation (`activations`), then an optional QuantizeLinear (INT8 output), also when
//   value-preserving ops (`qBackward`) sit between: TensorRT moves the Q backward across them.
// - a Q/DQ pair between the layer and its bias/activation blocks the fusion (the DQ runs standalone).
// Standalone Q/DQ: a DequantizeLinear some consumer of which is not a quantized layer (or a fused residual Add), and
// a QuantizeLinear none of whose DequantizeLinears is absorbed. A Q on a tensor made by a float layer (LayerNorm,
// Softmax, a network input) is counted as fused into that producer's output (TensorRT emits the quantized output
// or a reformat), not as standalone.

import type { DType } from '../../ir/dtype.js';
import type { Model, Node, Value } from '../../ir/ir.js';
import { dqDtype, isBiasAdd, opOfNode, qDtype, scaleIsScalar, soleConsumer, weightDq, zeroPointIsZero } from '../shared-plan.js';
import type { FusionLayer, FusionReport } from '../target.js';
import { TRT_OPS, TRT_WEIGHT_ONLY_DTYPES } from './legality.js';

export const TRT_FUSION = {
  weighted: ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'],
  /** DQ propagates forward (and Q backward) across these (SPEC §8: MaxPool, AvgPool-type, Reshape/Transpose/Concat...). */
  propagate: ['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Slice', 'Gather', 'Concat', 'Pad', 'Resize', 'Identity'],
  /** A Q moves backward across these value-preserving ops to a layer's output (averaging pools are not among them). */
  qBackward: ['MaxPool', 'GlobalMaxPool', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Slice', 'Gather', 'Identity'],
  /** Layers a constant bias Add folds into. */
  biasAfter: ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'],
  /** Layers a residual Add (the other input DQ'd) folds into. */
  residualAfter: ['Conv', 'ConvTranspose'],
  /** Pointwise activations that fold into the layer (SPEC §8: do not simulate ReLU fusion, TensorRT does it). */
  activations: ['Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid'],
} as const;

const has = (list: readonly string[], op: string): boolean => list.includes(op);

interface DqReach {
  /** The DequantizeLinear the value comes from. */
  readonly dq: Node;
  /** The DQ's consumer on the way (the value's producer chain ends at it). */
  readonly via: Node;
}

/** The DequantizeLinear `v` comes from, directly or through ops TensorRT propagates DQ across. */
function reachDq(v: Value | null | undefined, user: Node): DqReach | undefined {
  const p = v?.producer;
  if (!p) return undefined;
  const op = opOfNode(p);
  if (op === 'DequantizeLinear') return { dq: p, via: user };
  if (!has(TRT_FUSION.propagate, op)) return undefined;
  if (op === 'Concat') {
    const ins = p.inputs.filter((x) => x && !x.isInitializer);
    const rs = ins.map((x) => reachDq(x, p));
    return rs.every((r) => r) ? rs[0] : undefined;
  }
  return reachDq(p.inputs[0], p);
}

const isFp8 = (d: DType | undefined): boolean => d !== undefined && d.startsWith('fp8');

/** Predicts TensorRT's treatment of every weighted layer of a QDQ model (`--stronglyTyped` engine build). */
export function trtPredictFusion(model: Model): FusionReport {
  const g = model.graph;
  /** DQ node -> its consumers that a quantized layer absorbs. */
  const absorbedUses = new Map<Node, Set<Node>>();
  const absorbedQ = new Set<Node>();
  const absorb = (r: DqReach): void => {
    let s = absorbedUses.get(r.dq);
    if (!s) absorbedUses.set(r.dq, (s = new Set()));
    s.add(r.via);
  };
  const layers: FusionLayer[] = [];

  for (const n of g.nodes()) {
    const op = opOfNode(n);
    if (!has(TRT_FUSION.weighted, op)) continue;
    const conv = op === 'Conv' || op === 'ConvTranspose';
    const limits = TRT_OPS[op]!;
    const no = (reason: string): void => void layers.push({ node: n.name, op, quantized: false, fusedWith: [], reason });

    // operand roles
    let wi: number | undefined = conv ? 1 : [0, 1].find((i) => n.inputs[i]?.isInitializer || weightDq(n.inputs[i]) !== undefined);
    const ai = conv ? [0] : [0, 1].filter((i) => i !== wi);
    const w = wi === undefined ? undefined : n.inputs[wi];
    let wdq: { dq: Node; q?: Node } | undefined;
    let wtype: DType | undefined;
    if (wi !== undefined) {
      if (w?.isInitializer) {
        no(`weight not quantized: '${w.name}' is a float initializer without DequantizeLinear`);
        continue;
      }
      wdq = weightDq(w);
      if (!wdq) {
        no(`weight input '${w?.name ?? '?'}' is not a constant behind DequantizeLinear`);
        continue;
      }
      wtype = wdq.q ? qDtype(wdq.q) : dqDtype(wdq.dq);
      if (wtype === undefined || !(limits.weightDtypes as readonly string[]).includes(wtype)) {
        no(wtype === 'i4' ? 'INT4 convolution weights: TensorRT has no INT4 convolutions (SPEC §8)' : `weight type ${wtype ?? 'unknown'} is not one TensorRT quantizes (INT8, FP8 E4M3, INT4 on Gemm/MatMul)`);
        continue;
      }
      if (!zeroPointIsZero(wdq.dq)) {
        no('weight zero point is not 0: TensorRT is symmetric-only (SPEC §8)');
        continue;
      }
    }

    // activation operands
    const reach = ai.map((i) => ({ i, r: reachDq(n.inputs[i], n) }));
    const missing = reach.filter((x) => !x.r);
    let weightOnly = false;
    if (missing.length) {
      const allMissing = missing.length === ai.length;
      if (wtype !== undefined && allMissing && limits.weightOnly && TRT_WEIGHT_ONLY_DTYPES.includes(wtype as never)) weightOnly = true;
      else {
        const m = missing[0]!;
        no(`input DQ missing: input ${m.i} ('${n.inputs[m.i]?.name ?? '?'}') is not dequantized, so the layer runs in float`);
        continue;
      }
    }
    const present = reach.filter((x): x is { i: number; r: DqReach } => x.r !== undefined);
    const types = present.map((x) => dqDtype(x.r.dq));
    const notes: string[] = [];
    if (wtype === 'i4' && present.length) {
      // INT4 is weight-only: the layer runs weight-only, the activation Q/DQ stays standalone
      weightOnly = true;
      notes.push(`INT4 weights are weight-only: the activation Q/DQ on input ${present.map((x) => x.i).join(', ')} runs standalone (SPEC §8)`);
    } else if (present.length) {
      const fam = types[0];
      if (types.some((t) => isFp8(t) !== isFp8(fam)) || (wtype !== undefined && isFp8(wtype) !== isFp8(fam))) {
        no(`mixed INT8/FP8 operands (${[...types, wtype].filter(Boolean).join(', ')}): no fused kernel`);
        continue;
      }
      const asym = present.find((x) => !zeroPointIsZero(x.r.dq));
      if (asym) {
        no(`activation zero point on input ${asym.i} is not 0: TensorRT requires symmetric Q/DQ (SPEC §8)`);
        continue;
      }
      const axis = present.find((x) => !scaleIsScalar(x.r.dq));
      if (axis) {
        no(`per-axis activation scale on input ${axis.i}: activation quantization is per tensor (SPEC §8)`);
        continue;
      }
      for (const x of present) absorb(x.r);
    }

    // epilogue
    const fusedWith: string[] = [];
    if (wdq) {
      absorb({ dq: wdq.dq, via: n });
      if (wdq.q) absorbedQ.add(wdq.q);
    }
    let t = n.outputs[0]!;
    let bias = false;
    let residual = false;
    let act = false;
    for (;;) {
      const c = soleConsumer(t);
      if (!c) break;
      const cop = opOfNode(c);
      if (cop === 'Add' && !bias && !residual && !act && has(TRT_FUSION.biasAfter, op) && isBiasAdd(c, t)) {
        bias = true;
        fusedWith.push(`Add(bias) '${c.name}'`);
      } else if (cop === 'Add' && !residual && !act && !weightOnly && has(TRT_FUSION.residualAfter, op) && c.inputs.length === 2) {
        const other = c.inputs[0] === t ? c.inputs[1] : c.inputs[0];
        const r = reachDq(other, c);
        if (!r) {
          notes.push(`residual Add '${c.name}' has a float shortcut ('${other?.name ?? '?'}'): it runs as a separate layer`);
          break;
        }
        residual = true;
        absorb(r);
        fusedWith.push(`Add(residual) '${c.name}'`);
      } else if (has(TRT_FUSION.activations, cop) && !act && c.inputs[0] === t) {
        act = true;
        fusedWith.push(`${cop} '${c.name}'`);
      } else if (cop === 'QuantizeLinear' && !weightOnly) {
        absorbedQ.add(c);
        fusedWith.push(`QuantizeLinear '${c.name}' (quantized output)`);
        for (const u of c.outputs[0]?.uses ?? []) {
          if (opOfNode(u.node) !== 'DequantizeLinear') continue;
          for (const uu of u.node.outputs[0]?.uses ?? []) {
            const uop = opOfNode(uu.node);
            if ((has(TRT_FUSION.activations, uop) && !act) || (uop === 'Add' && !bias && isBiasAdd(uu.node, u.node.outputs[0]!))) {
              notes.push(`Q/DQ between ${op} and ${uop} '${uu.node.name}' blocks fusion: the ${uop} runs as a separate layer`);
            }
          }
        }
        break;
      } else if (!weightOnly && has(TRT_FUSION.qBackward, cop)) {
        // TensorRT moves a Q backward across value-preserving ops to the layer's output
        const via: Node[] = [];
        let u: Node | undefined = c;
        while (u && has(TRT_FUSION.qBackward, opOfNode(u)) && u.inputs[0] === (via.at(-1)?.outputs[0] ?? t)) {
          via.push(u);
          u = soleConsumer(u.outputs[0]);
        }
        if (u && opOfNode(u) === 'QuantizeLinear') {
          absorbedQ.add(u);
          fusedWith.push(`QuantizeLinear '${u.name}' (quantized output, across ${via.map((x) => `${opOfNode(x)} '${x.name}'`).join(', ')})`);
        }
        break;
      } else break;
      t = c.outputs[0]!;
    }
    layers.push({ node: n.name, op, quantized: true, fusedWith, ...(notes.length ? { reason: notes.join('; ') } : {}), kernel: weightOnly ? `weight-only ${wtype}` : `${types[0] ?? wtype} ${op}` });
  }

  // standalone Q/DQ
  const standaloneQdq: { node: string; reason: string }[] = [];
  const dqAbsorbedFully = (dq: Node): boolean => {
    const s = absorbedUses.get(dq);
    const uses = dq.outputs[0]?.uses ?? [];
    return s !== undefined && uses.length > 0 && uses.every((u) => s.has(u.node)) && !dq.outputs[0]!.isGraphOutput;
  };
  for (const n of g.nodes()) {
    const op = opOfNode(n);
    if (op === 'DequantizeLinear') {
      if (n.inputs[0]?.isInitializer || dqAbsorbedFully(n)) continue;
      const s = absorbedUses.get(n);
      const others = (n.outputs[0]?.uses ?? []).filter((u) => !s?.has(u.node)).map((u) => `${opOfNode(u.node) || u.node.opType} '${u.node.name}'`);
      const what = others.length ? `feeds ${[...new Set(others)].join(', ')}, not a quantized layer input` : 'feeds a graph output';
      standaloneQdq.push({ node: n.name, reason: `DequantizeLinear ${what}: runs as a standalone scale layer` });
    } else if (op === 'QuantizeLinear') {
      if (absorbedQ.has(n)) continue;
      const dqs = (n.outputs[0]?.uses ?? []).map((u) => u.node).filter((u) => opOfNode(u) === 'DequantizeLinear');
      if (dqs.some((d) => absorbedUses.has(d))) continue;
      standaloneQdq.push({ node: n.name, reason: 'QuantizeLinear whose value no quantized layer reads: runs as a standalone scale layer' });
    }
  }
  const q = layers.filter((l) => l.quantized).length;
  return { layers, coverage: layers.length ? q / layers.length : 1, standaloneQdq };
}
