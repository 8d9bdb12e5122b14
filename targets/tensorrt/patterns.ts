// TensorRT's Q/DQ placement rules as data (SPEC §8 "Q/DQ layer-placement recommendations"), run by targets/shared-plan.ts.
//
// Decisions (SPEC §8):
// - All inputs of Conv, ConvTranspose, Gemm and MatMul are quantized, both operands of activation x activation
//   MatMuls included (attention's QK^T and softmax.V); outputs are not (DQ->Conv fuses to INT8-in/float-out, and the
//   consumer's input Q gives INT8 output when TensorRT fuses it backwards).
// - Nothing between a weighted layer and its bias or activation: TensorRT folds bias, BN and ReLU itself.
// - Residual Adds: Q/DQ on the shortcut input of an Add fed by a quantized Conv/ConvTranspose (so Conv+Add(+ReLU)
//   fuse with INT8 in/out). Adds after MatMul/Gemm (transformer residual streams) are left alone: quantizing the
//   residual stream costs accuracy and the CNN fusion rule does not apply.
// - Commuting ops (MaxPool, Reshape, Transpose, Flatten, Concat, ...): no Q/DQ of their own. The Q/DQ sits right at
//   the quantized consumer's input, after the commuting ops, and TensorRT propagates DQ forward / Q backward through
//   them to reach fusions (SPEC §8), so no scale sharing is needed in the plan.
// - Activations: symmetric INT8 per tensor (FP8 E4M3 for the fp8 preset); weights symmetric (legality.ts).
// - First and last layers are quantized like every other layer; keep them float with --keep-fp.

import type { PlacementSpec } from '../shared-plan.js';
import { TRT_FUSION } from './fusion.js';
import { trtLegality } from './legality.js';

export const TRT_PLACEMENT: PlacementSpec = {
  backend: 'TensorRT',
  weightedOps: ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'],
  activation: {
    int8: { dtype: 'i8', granularity: { kind: 'per-tensor' }, symmetric: true },
    int4: { dtype: 'i8', granularity: { kind: 'per-tensor' }, symmetric: true },
    fp8: { dtype: 'fp8e4m3', granularity: { kind: 'per-tensor' }, symmetric: true },
  },
  epilogue: { biasAddAfter: TRT_FUSION.biasAfter, activations: TRT_FUSION.activations },
  residual: { fusers: ['Conv', 'ConvTranspose'], quantize: 'shortcut', dtypes: ['i8', 'fp8e4m3'] },
  legality: trtLegality,
};
