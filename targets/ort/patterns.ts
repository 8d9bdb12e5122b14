// ONNX Runtime's Q/DQ placement rules as data (QDQ "node units" of the CPU EP), run by targets/shared-plan.ts.
//
// ORT fuses a node only as a unit DQ(inputs) -> op -> Q(output) (qdq_selectors.cc), so unlike TensorRT the output of a
// quantized layer is quantized too:
// - Conv: always (QLinearConv needs the Q; its float bias is quantized by ORT's WeightBiasQuantization only when
//   the output goes to Q). Gemm with a bias: always (QGemm needs it; a Gemm with a float bias and no Q stays float).
//   MatMul followed by a bias Add whose input is 2-D or static: always (MatMulAddFusion turns it into such a Gemm).
//   Other MatMuls (dynamic batch, no bias, attention): only when a consumer is quantized; otherwise DQ->MatMul fuses
//   to MatMulIntegerToFloat with a float output, which saves a Q/DQ pair and keeps attention logits unquantized.
// - The Q goes after the layer's epilogue: MatMul's bias Add, then Relu/Clip, whose range becomes the clamp
//   (ORT drops a Relu before Q when the zero point is the type minimum, i.e. the calibrated range starts at 0, and a
//   Clip whose range contains the quantized range: qdq_util.cc IsClipMadeRedundantByQ). The Relu stays in the graph.
// - Activations: asymmetric uint8 per tensor with int8 per-channel symmetric weights (U8S8).
// - Residual Adds fed by a quantized Conv: both inputs and the output (QLinearAdd). Transformer residual streams
//   (Adds after MatMul) stay float, as for TensorRT.
// - Value-preserving ops between quantized tensors (MaxPool, Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Slice,
//   Gather, Expand, Tile) keep their source's QParams (`sameAs`), so ORT's DropQDQ rule runs them on uint8 data.
//   ORT's own QDQ propagation would do part of this, but only across some ops and op versions (qdq_propagation.cc
//   CanNodePropagate: no Gather, Flatten, Expand; Transpose only up to 13 in older releases); explicit Q/DQ with
//   shared parameters work on every release.
// - INT4 (w4a8/w4a16): blocked DequantizeLinear weights on MatMul, activation float: ORT fuses them into
//   com.microsoft MatMulNBits (legality.ts). FP8: weight-only and emulated (DequantizeLinear + float op): ORT 1.30
//   mis-fuses FP8 activation Q/DQ at optimization level basic and above (legality.ts ORT_LIMITS.fp8Activations).
// - First and last layers are quantized like every other layer (the final Gemm's output too: QGemm needs it);
//   keep them float with --keep-fp.

import type { PlacementSpec } from '../shared-plan.js';
import { ORT_FUSION } from './fusion.js';
import { ORT_ACTIVATION, ortLegality } from './legality.js';

export const ORT_PLACEMENT: PlacementSpec = {
  backend: 'ONNX Runtime CPU',
  weightedOps: ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'],
  activation: {
    int8: ORT_ACTIVATION,
    int4: ORT_ACTIVATION,
    fp8: { dtype: 'fp8e4m3', granularity: { kind: 'per-tensor' }, symmetric: true },
  },
  outputs: { rules: { Conv: 'always', Gemm: 'with-bias', MatMul: 'with-static-bias', Add: 'always' }, dtypes: ['u8'] },
  epilogue: { biasAddAfter: ['MatMul'], activations: ['Relu', 'Clip'] },
  residual: { fusers: ['Conv'], quantize: 'inputs-and-output', dtypes: ['u8'] },
  commuting: { ops: ORT_FUSION.drop },
  legality: ortLegality,
};
