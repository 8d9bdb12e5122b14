// TensorRT's quantization limits as data (SPEC §8, §10), and legality(): whether TensorRT runs a layer quantized as asked, else the legal fallback.

import type { Node } from '../../ir/ir.js';
import type { QDType, TensorQuant } from '../../passes/quant/types.js';
import { opOfNode, reasonOf, weightAxes } from '../shared-plan.js';
import type { LayerRequest, OperandRequest, Reason } from '../target.js';

/** One backend limit: what it forbids and where it is documented. */
export interface Limit {
  readonly text: string;
  readonly cite: string;
}

/** Every limit legality() can cite. */
export const TRT_LIMITS = {
  op: {
    text: 'TensorRT quantizes the inputs of weighted layers only (Conv, ConvTranspose, Gemm, MatMul)',
    cite: 'SPEC §8 placement: quantize all inputs of weighted ops',
  },
  int4Conv: {
    text: 'INT4 is weight-only on Gemm/MatMul; convolutions take INT8 weights',
    cite: 'SPEC §8: INT4/FP4 are weight-only (DQ on constant weights -> Gemm/MatMul)',
  },
  int4WeightOnly: {
    text: 'INT4 weights are weight-only: the activation input stays in float',
    cite: 'SPEC §8: INT4/FP4 are weight-only',
  },
  int4Blocked: {
    text: 'INT4 weights are block-quantized along K',
    cite: 'SPEC §8 granularity: block (INT4 weight-only via DequantizeLinear block_size)',
  },
  blockAxis: {
    text: 'the blocked dimension must be the last or second-to-last',
    cite: 'SPEC §8 granularity: exactly one blocked dim, last or second-to-last',
  },
  int4EvenLastDim: {
    text: 'INT4 requires an even last dimension',
    cite: 'SPEC §8 granularity: INT4 requires an even last dimension',
  },
  blockedDtype: {
    text: 'block quantization is for INT4 weights; INT8/FP8 weights are per-tensor or per-channel',
    cite: 'SPEC §8: INT4/FP4 weight-only blocks',
  },
  weightDtype: {
    text: 'quantized types are INT8, FP8 E4M3 and INT4 (weights)',
    cite: 'SPEC §8: quantized types accepted INT8, FP8 (E4M3), INT4',
  },
  symmetric: {
    text: 'zero points must be 0 (symmetric quantization only)',
    cite: 'SPEC §8: symmetric only, zero point must be all zeros; §10.5',
  },
  weightAxis: {
    text: 'per-channel weight scales run along the output channels (Conv axis 0, ConvTranspose axis 1, the output column of Gemm/MatMul)',
    cite: 'SPEC §8 granularity: per-channel is for weights, 1-D scale of length dim[axis] (Conv KCRS axis 0, ConvTranspose axis 1, MatMul B[K,N] axis 1)',
  },
  activationPerTensor: {
    text: 'activations are quantized per tensor (per-axis scales are for weights)',
    cite: 'SPEC §8 granularity: activation quantization does not support per-axis',
  },
  activationDtype: {
    text: 'activations are INT8 or FP8 E4M3 (UINT8 is read as INT8)',
    cite: 'SPEC §8: UINT8 zero-point type is treated as INT8; INT4 is weight-only',
  },
  weightOnlyConv: {
    text: 'weight-only quantization runs on MatMul/Gemm; a weight-only convolution is dequantized at build time and runs in float',
    cite: 'TensorRT developer guide, weight-only quantization (MatMul/Gemm) [not re-read]',
  },
  fp8WeightOnly: {
    text: 'FP8 weights need FP8 activations (no FP8 weight-only kernels)',
    cite: 'TensorRT developer guide, explicit quantization: FP8 is W8A8 [not re-read]',
  },
  dtypePair: {
    text: 'a quantized layer takes its operands in one family (INT8 x INT8/INT4, FP8 x FP8)',
    cite: 'SPEC §8: with strongly typed networks precision comes only from the Q/DQ graph; TensorRT developer guide [not re-read]',
  },
} as const satisfies Record<string, Limit>;

/** What TensorRT accepts per weighted op. */
export interface TrtOpLimits {
  readonly weightDtypes: readonly QDType[];
  /** Runs with float activations and quantized weights (weight-only). */
  readonly weightOnly: boolean;
}

export const TRT_OPS: Readonly<Record<string, TrtOpLimits>> = {
  Conv: { weightDtypes: ['i8', 'fp8e4m3'], weightOnly: false },
  ConvTranspose: { weightDtypes: ['i8', 'fp8e4m3'], weightOnly: false },
  Gemm: { weightDtypes: ['i8', 'fp8e4m3', 'i4'], weightOnly: true },
  MatMul: { weightDtypes: ['i8', 'fp8e4m3', 'i4'], weightOnly: true },
};

export const TRT_ACTIVATION_DTYPES: readonly QDType[] = ['i8', 'fp8e4m3'];
/** Weight dtypes that may be block-quantized. */
export const TRT_BLOCKED_DTYPES: readonly QDType[] = ['i4'];
/** Weight dtypes of weight-only layers. */
export const TRT_WEIGHT_ONLY_DTYPES: readonly QDType[] = ['i8', 'i4'];
/** Block size used when INT4 weights are asked for without blocks. */
export const TRT_INT4_BLOCK = 128;

const isFp8 = (d: QDType): boolean => d === 'fp8e4m3';

function perChannel(n: Node, input: number, dtype: QDType): TensorQuant {
  const ax = weightAxes(n, input).channel;
  return { dtype, granularity: ax === undefined ? { kind: 'per-tensor' } : { kind: 'per-channel', axis: ax }, symmetric: true };
}

/** A legal version of one weight operand (hits records each limit applied). */
function legalWeight(n: Node, w: OperandRequest, op: TrtOpLimits, hits: Limit[]): OperandRequest {
  let q = w.quant;
  const L = TRT_LIMITS;
  if (!op.weightDtypes.includes(q.dtype)) {
    hits.push(q.dtype === 'i4' ? L.int4Conv : L.weightDtype);
    q = perChannel(n, w.input, isFp8(q.dtype) ? 'fp8e4m3' : 'i8');
  }
  if (!q.symmetric) {
    hits.push(L.symmetric);
    q = { ...q, symmetric: true };
  }
  if (q.granularity.kind === 'per-channel' && q.granularity.axis !== weightAxes(n, w.input).channel) {
    hits.push(L.weightAxis);
    q = perChannel(n, w.input, q.dtype);
  }
  if (q.granularity.kind === 'blocked' && !TRT_BLOCKED_DTYPES.includes(q.dtype)) {
    hits.push(L.blockedDtype);
    q = perChannel(n, w.input, q.dtype);
  }
  if (q.dtype === 'i4') {
    const dims = n.inputs[w.input]?.shape;
    const rank = dims?.length ?? 0;
    const k = weightAxes(n, w.input).k;
    if (q.granularity.kind !== 'blocked') {
      hits.push(L.int4Blocked);
      if (k !== undefined) q = { ...q, granularity: { kind: 'blocked', axis: k, size: TRT_INT4_BLOCK } };
    }
    const g = q.granularity;
    const last = dims?.[rank - 1];
    if (g.kind !== 'blocked' || (g.axis !== rank - 1 && g.axis !== rank - 2)) {
      hits.push(L.blockAxis);
      q = perChannel(n, w.input, 'i8');
    } else if (typeof last === 'number' && last % 2 !== 0) {
      hits.push(L.int4EvenLastDim);
      q = perChannel(n, w.input, 'i8');
    }
  }
  return q === w.quant ? w : { input: w.input, quant: q };
}

/**
 * Whether TensorRT runs `n` quantized as `q` asks. Refusals name the limit (TRT_LIMITS) and, when one exists, the
 * legal request: INT4 convolution weights -> INT8; INT4 with quantized activations -> weight-only; asymmetric ->
 * symmetric; per-axis activations -> per-tensor; UINT8/INT16 activations -> INT8; mixed INT8/FP8 operands -> the
 * activation's family. Weight-only convolutions and FP8 weight-only layers have no fallback (they stay float).
 */
export function trtLegality(n: Node, q: LayerRequest): true | Reason {
  const op = TRT_OPS[opOfNode(n)];
  if (!op) return reasonOf([TRT_LIMITS.op]);
  const L = TRT_LIMITS;
  const hits: Limit[] = [];
  let weights = q.weights.map((w) => legalWeight(n, w, op, hits));
  let acts = q.activations;
  if (weights.some((w) => w.quant.dtype === 'i4') && acts.length > 0 && weights.length > 0) {
    hits.push(L.int4WeightOnly);
    acts = [];
  }
  acts = acts.map((a) => {
    let x = a.quant;
    if (!TRT_ACTIVATION_DTYPES.includes(x.dtype)) {
      hits.push(L.activationDtype);
      x = { ...x, dtype: isFp8(x.dtype) ? 'fp8e4m3' : 'i8' };
    }
    if (!x.symmetric) {
      hits.push(L.symmetric);
      x = { ...x, symmetric: true };
    }
    if (x.granularity.kind !== 'per-tensor') {
      hits.push(L.activationPerTensor);
      x = { ...x, granularity: { kind: 'per-tensor' } };
    }
    return x === a.quant ? a : { input: a.input, quant: x };
  });
  if (acts.length > 0) {
    // one family per layer: the activations' (all activation operands share the first one's dtype)
    const fam = acts[0]!.quant.dtype;
    if (acts.some((a) => a.quant.dtype !== fam)) {
      hits.push(L.dtypePair);
      acts = acts.map((a) => (a.quant.dtype === fam ? a : { input: a.input, quant: { ...a.quant, dtype: fam } }));
    }
    if (weights.some((w) => isFp8(w.quant.dtype) !== isFp8(fam))) {
      hits.push(L.dtypePair);
      weights = weights.map((w) => (isFp8(w.quant.dtype) === isFp8(fam) ? w : { input: w.input, quant: perChannel(n, w.input, fam) }));
    }
  } else if (weights.length > 0) {
    if (!op.weightOnly) return reasonOf([L.weightOnlyConv]);
    if (weights.some((w) => !TRT_WEIGHT_ONLY_DTYPES.includes(w.quant.dtype))) return reasonOf([L.fp8WeightOnly]);
  }
  if (hits.length === 0) return true;
  return reasonOf(hits, { weights, activations: acts });
}
