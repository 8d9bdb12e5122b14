// ONNX Runtime (CPU execution provider) quantization limits as data, and legality(): what ORT runs as a quantized kernel, else the legal fallback.
//
// Sources: onnxruntime/core/optimizer/qdq_transformer/selectors_actions/{qdq_selector_action_transformer,qdq_selectors}.cc,
// qdq_util.cc, weight_bias_quantization.cc (the QDQ fusions of graph optimization level 'extended'/'all'), and
// measurements with onnxruntime-node 1.30 (FP8 rows). "Quantized kernel" means ORT's CPU kernels QLinearConv, QGemm,
// QLinearMatMul, MatMulIntegerToFloat and MatMulNBits; anything else in a QDQ model runs as DequantizeLinear + a float op.

import type { Node } from '../../ir/ir.js';
import type { QDType, TensorQuant } from '../../passes/quant/types.js';
import { opOfNode, reasonOf, weightAxes } from '../shared-plan.js';
import type { LayerRequest, OperandRequest, Reason } from '../target.js';

export interface Limit {
  readonly text: string;
  readonly cite: string;
}

const SEL = 'onnxruntime qdq_selectors.cc';

export const ORT_LIMITS = {
  op: {
    text: 'ORT CPU has quantized kernels for Conv, Gemm and MatMul only (no QDQ ConvTranspose kernel: it would run as DequantizeLinear + float ConvTranspose)',
    cite: 'onnxruntime qdq_selector_action_transformer.cc (CPU rules: Conv, MatMul, Gemm, DQMatMulToMatMulNBits)',
  },
  int4Conv: {
    text: 'the Conv selector refuses 4-bit weights: convolutions take INT8 weights',
    cite: `${SEL} ConvNodeGroupSelector (allow_4bit_weight false)`,
  },
  int4WithActivation: {
    text: 'INT4 weights fuse only into MatMulNBits, whose activation input stays float in the graph (onnxruntime 1.30 quantizes it to INT8 per block at run time by default: session.qdq_matmulnbits_accuracy_level 4)',
    cite: `${SEL} DQMatMulNodeGroupSelector (exactly one DQ input), MatMulNodeGroupSelector (allow_4bit false)`,
  },
  int4Gemm: {
    text: 'INT4 Gemm weights fuse into MatMulNBits only with transB=0, alpha=1 and beta=1: INT8 weights instead',
    cite: `${SEL} ValidateGemmForDQMatMulNBits`,
  },
  nbitsBlock: {
    text: 'MatMulNBits blocks run along K with a power-of-two block size of at least 16',
    cite: `${SEL} ValidateDQForMatMulNBits (axis 0, block_size >= 16 and a power of 2)`,
  },
  nbitsShape: {
    text: 'weight-only MatMul runs as MatMulNBits only for a 2-D constant second operand [K,N]',
    cite: `${SEL} DQMatMulNodeGroupSelector / ValidateDQForMatMulNBits (weight rank 2, input B)`,
  },
  weightOnlyConv: {
    text: 'no weight-only Conv kernel: a quantized Conv weight with a float input runs DequantizeLinear on every inference and a float Conv',
    cite: `${SEL} ConvNodeGroupSelector (DQ on every input and Q on the output)`,
  },
  weightOnlyGemm: {
    text: 'weight-only Gemm runs as MatMulNBits only with transB=0, alpha=1 and beta=1',
    cite: `${SEL} ValidateGemmForDQMatMulNBits`,
  },
  weightDtype: {
    text: 'quantized weights are int8/uint8 (INT4 on MatMul/Gemm as MatMulNBits; FP8 emulated)',
    cite: `${SEL} (4-bit and 16-bit weights are not enabled in the Conv selector)`,
  },
  weightOnlyDtype: {
    text: 'weight-only kernels (MatMulNBits) take 2-, 4- or 8-bit integer weights',
    cite: `${SEL} IsNBitsIntType`,
  },
  weightAxis: {
    text: 'per-channel weight scales run along the output channels (QLinearConv: output channel; QLinearMatMul/QGemm/MatMulNBits: output column)',
    cite: 'QLinearConv / QLinearMatMul (per-column b); onnxruntime weight_bias_quantization.cc (axis 0 for Conv, transB ? 0 : 1 for Gemm)',
  },
  activationDtype: {
    text: 'activations are uint8 with a zero point (U8S8): a Relu/Clip before QuantizeLinear is absorbed only when the zero point is the type minimum, which symmetric int8 never has, and 16-bit types are not enabled in the CPU selectors',
    cite: 'onnxruntime qdq_util.cc IsClipMadeRedundantByQ; qdq_selector_action_transformer.cc (allow_16bit false)',
  },
  activationPerTensor: {
    text: 'activation scales are per tensor (QLinearConv x_scale and the bias quantization need a scalar)',
    cite: 'onnxruntime weight_bias_quantization.cc (input DQ with a per-tensor scale); QLinearConv',
  },
  blockedWithActivation: {
    text: 'quantized MatMul/Gemm kernels take per-tensor or per-column weight scales; blocks are for weight-only MatMulNBits',
    cite: 'QLinearMatMul (per-column b); onnxruntime weight_bias_quantization.cc (block_size refused)',
  },
  fp8Activations: {
    text: 'onnxruntime-node 1.30 mishandles FP8 activation Q/DQ at graph optimization level basic and above: it fuses DQ->Conv/MatMul/Gemm/Add->Q into QLinear kernels that have no FP8 types (the session fails to load), drops a Relu before an FP8 QuantizeLinear (relu_quantizelinear.cc checks only int8/uint8 zero points) and throws in ClipQuantFusion on FP8 zero points; FP8 stays weight-only here (DequantizeLinear + float op, emulated)',
    cite: 'measured with onnxruntime-node 1.30 ("Type Error: Type tensor(float8e4m3fn) of input parameter ... of operator QLinearConv / MatMulIntegerToFloat"); onnxruntime relu_quantizelinear.cc, clip_quantizelinear.cc',
  },
  dtypePair: {
    text: 'uint8 activations pair with int8 weights',
    cite: `${SEL} ConvNodeGroupSelector / MatMulNodeGroupSelector dtype checks`,
  },
} as const satisfies Record<string, Limit>;

/** What ORT's CPU EP accepts per weighted op. FP8 weights are accepted weight-only and run emulated. */
export interface OrtOpLimits {
  /** The fused kernel(s). */
  readonly kernel: string;
  readonly weightDtypes: readonly QDType[];
  /** Integer weight-only kernel: 'nbits' (MatMulNBits), or none. */
  readonly weightOnly: 'nbits' | 'none';
}

export const ORT_OPS: Readonly<Record<string, OrtOpLimits>> = {
  Conv: { kernel: 'QLinearConv', weightDtypes: ['i8', 'u8', 'fp8e4m3'], weightOnly: 'none' },
  Gemm: { kernel: 'QGemm / MatMulNBits', weightDtypes: ['i8', 'u8', 'fp8e4m3', 'i4', 'u4'], weightOnly: 'nbits' },
  MatMul: { kernel: 'QLinearMatMul / MatMulIntegerToFloat / MatMulNBits', weightDtypes: ['i8', 'u8', 'fp8e4m3', 'i4', 'u4'], weightOnly: 'nbits' },
};

/** Integer activations ORT fuses with Relu/Clip absorption: asymmetric uint8 per tensor. */
export const ORT_ACTIVATION: TensorQuant = { dtype: 'u8', granularity: { kind: 'per-tensor' }, symmetric: false };
/** Weight dtypes of MatMulNBits. */
export const ORT_NBITS_DTYPES: readonly QDType[] = ['i8', 'u8', 'i4', 'u4'];
export const ORT_NBITS_MIN_BLOCK = 16;

const isFp8 = (d: QDType): boolean => d === 'fp8e4m3';
const is4 = (d: QDType): boolean => d === 'i4' || d === 'u4';

function perChannel(n: Node, input: number, dtype: QDType): TensorQuant {
  const ax = weightAxes(n, input).channel;
  return { dtype, granularity: ax === undefined ? { kind: 'per-tensor' } : { kind: 'per-channel', axis: ax }, symmetric: true };
}

/** Gemm that MatMulNBits accepts: transB=0, alpha=1, beta=1. */
function plainGemm(n: Node): boolean {
  return n.attrInt('transA', 0) === 0 && n.attrInt('transB', 0) === 0 && n.attrFloat('alpha', 1) === 1 && n.attrFloat('beta', 1) === 1;
}

function largestPow2(x: number): number {
  let p = 1;
  while (p * 2 <= x) p *= 2;
  return p;
}

/**
 * Whether ORT's CPU EP runs `n` as a quantized kernel as `q` asks. Fallbacks: INT4 on Conv (or on a Gemm
 * MatMulNBits cannot take) -> INT8 weights; INT4 with quantized activations -> weight-only MatMulNBits; FP8
 * activations -> FP8 weight-only (emulated); int8/int16/symmetric activations -> asymmetric uint8; per-axis
 * activations -> per tensor; blocked INT8 weights with activations -> per-channel; MatMulNBits block sizes -> the
 * largest power of two >= 16 below. Weight-only Conv, weight-only Gemm MatMulNBits cannot take, and ConvTranspose
 * have no fallback: those layers stay float.
 */
export function ortLegality(n: Node, q: LayerRequest): true | Reason {
  const opName = opOfNode(n);
  const op = ORT_OPS[opName];
  if (!op) return reasonOf([ORT_LIMITS.op]);
  const L = ORT_LIMITS;
  const hits: Limit[] = [];
  const gemm = opName === 'Gemm';

  let weights = q.weights.map((w): OperandRequest => {
    let x = w.quant;
    if (!op.weightDtypes.includes(x.dtype)) {
      hits.push(is4(x.dtype) ? L.int4Conv : L.weightDtype);
      x = perChannel(n, w.input, 'i8');
    } else if (is4(x.dtype) && gemm && !plainGemm(n)) {
      hits.push(L.int4Gemm);
      x = perChannel(n, w.input, 'i8');
    }
    if (x.granularity.kind === 'per-channel' && x.granularity.axis !== weightAxes(n, w.input).channel) {
      hits.push(L.weightAxis);
      x = perChannel(n, w.input, x.dtype);
    }
    return x === w.quant ? w : { input: w.input, quant: x };
  });

  let acts = q.activations;
  if (acts.length && weights.some((w) => is4(w.quant.dtype))) {
    hits.push(L.int4WithActivation);
    acts = [];
  }
  if (acts.some((a) => isFp8(a.quant.dtype))) {
    hits.push(L.fp8Activations);
    acts = [];
  }
  acts = acts.map((a): OperandRequest => {
    let x = a.quant;
    if (x.dtype !== 'u8' || x.symmetric) {
      hits.push(L.activationDtype);
      x = { ...x, dtype: 'u8', symmetric: false };
    }
    if (x.granularity.kind !== 'per-tensor') {
      hits.push(L.activationPerTensor);
      x = { ...x, granularity: { kind: 'per-tensor' } };
    }
    return x === a.quant ? a : { input: a.input, quant: x };
  });

  if (acts.length) {
    // uint8 activations pair with int8 weights
    weights = weights.map((w) => {
      let x = w.quant;
      if (isFp8(x.dtype)) {
        hits.push(L.dtypePair);
        x = perChannel(n, w.input, 'i8');
      }
      if (x.granularity.kind === 'blocked') {
        hits.push(L.blockedWithActivation);
        x = perChannel(n, w.input, x.dtype);
      }
      return x === w.quant ? w : { input: w.input, quant: x };
    });
  } else if (weights.length) {
    // weight-only: MatMulNBits (integer weights), or FP8 emulation (any op)
    if (weights.some((w) => !isFp8(w.quant.dtype))) {
      if (op.weightOnly === 'none') return reasonOf([L.weightOnlyConv]);
      if (gemm && !plainGemm(n)) return reasonOf([L.weightOnlyGemm]);
      const w = weights[0]!;
      const rank = n.inputs[w.input]?.shape?.length;
      if (weights.length !== 1 || w.input !== 1 || rank !== 2) return reasonOf([L.nbitsShape]);
      if (!ORT_NBITS_DTYPES.includes(w.quant.dtype)) return reasonOf([L.weightOnlyDtype]);
      const g = w.quant.granularity;
      if (g.kind === 'blocked' && (g.axis !== 0 || g.size < ORT_NBITS_MIN_BLOCK || largestPow2(g.size) !== g.size)) {
        hits.push(L.nbitsBlock);
        weights = [{ input: 1, quant: { ...w.quant, granularity: { kind: 'blocked', axis: 0, size: Math.max(ORT_NBITS_MIN_BLOCK, largestPow2(g.size)) } } }];
      }
    }
  } else {
    // nothing left to quantize (FP8 activation x activation MatMul)
    return reasonOf(hits.length ? hits : [L.op]);
  }
  if (hits.length === 0) return true;
  return reasonOf(hits, { weights, activations: acts });
}
