// The ONNX Runtime target: placement (patterns.ts through the shared engine), legality, fusion prediction and session notes.

import type { Model, Value } from '../../ir/ir.js';
import type { QuantConfig, QuantPlan } from '../../passes/quant/types.js';
import { opOfNode, planQuantization } from '../shared-plan.js';
import type { Target, TargetExtras } from '../target.js';
import { ortPredictFusion } from './fusion.js';
import { ortLegality } from './legality.js';
import { ORT_PLACEMENT } from './patterns.js';

export function ortPlan(model: Model, config: QuantConfig): QuantPlan {
  return planQuantization(model, config, ORT_PLACEMENT);
}

/** Session settings the QDQ model needs to run fused in onnxruntime (node, web, python alike). */
export function ortExtras(model: Model, _files: { model: string }): TargetExtras {
  const notes = [
    "create the session with graphOptimizationLevel 'all' (onnxruntime-node's default) or 'extended': the QDQ fusions (QLinearConv, QGemm, QLinearMatMul, MatMulIntegerToFloat, MatMulNBits, QLinearAdd) run at level 2; with 'basic' or 'disabled' every Q/DQ executes and the model is slower than FP32",
  ];
  let nbits = false;
  let fp8 = false;
  for (const n of model.graph.nodes()) {
    if (opOfNode(n) !== 'DequantizeLinear') continue;
    const t = n.inputs[0]?.dtype;
    if (t?.startsWith('fp8')) fp8 = true;
    const weightOnly = n.inputs[0]?.isInitializer && (t === 'i4' || t === 'u4' || t === 'i8' || t === 'u8');
    if (weightOnly && n.outputs[0]?.uses.some((u) => opOfNode(u.node) === 'MatMul' && u.index === 1 && !dequantized(u.node.inputs[0]))) nbits = true;
  }
  if (nbits) {
    notes.push("weight-only MatMuls become com.microsoft MatMulNBits; onnxruntime 1.30 sets session.qdq_matmulnbits_accuracy_level to 4 by default, which quantizes the float activation to INT8 per block (W4A8/W8A8 compute); set the session config entry to '1' (extra: { session: { qdq_matmulnbits_accuracy_level: '1' } }) to keep activations in float32 (W4A16/W8A16)");
  }
  if (fp8) notes.push("FP8 Q/DQ run emulated: ORT CPU has no FP8 kernels (DequantizeLinear + float ops); use the model to check FP8 accuracy, not speed. A model with FP8 activation Q/DQ (e.g. compiled for TensorRT) must run with graphOptimizationLevel 'disabled': ORT 1.30's QDQ optimizations fail on FP8 (ClipQuantFusion throws, QLinear fusions without FP8 kernels)");
  const options = { graphOptimizationLevel: 'all' };
  return { files: { 'ort-session.json': `${JSON.stringify(options, null, 2)}\n` }, notes };
}

function dequantized(v: Value | null | undefined): boolean {
  const p = v?.producer;
  return p !== null && p !== undefined && opOfNode(p) === 'DequantizeLinear';
}

export const ORT: Target = {
  name: 'ort',
  legality: ortLegality,
  plan: ortPlan,
  predictFusion: ortPredictFusion,
  emitExtras: ortExtras,
};
