// Quantization vocabulary shared by the calibration, weight-quantization and Q/DQ-insertion passes and the targets.
//
// Flow of `qcc compile` (targets/compile.ts):
//   canonicalize -> infer shapes -> target.plan(model, config) = QuantPlan
//   -> calibrate(model, plan.activations, data) = ranges -> quantizeWeights(plan.weights)
//   -> insertQdq(plan.activations, ranges) -> target.emit -> validate (FP32 vs quantized in onnxruntime-node)
// Passes are target-neutral: everything a target decides (which ops, which dtypes, symmetric or not, where Q/DQ go)
// arrives as data in the QuantPlan; passes never ask which target is running.

import type { DType } from '../../ir/dtype.js';

/** Element types qcc quantizes to. */
export type QDType = Extract<DType, 'i8' | 'u8' | 'i4' | 'u4' | 'i16' | 'u16' | 'fp8e4m3'>;

export type Granularity =
  | { readonly kind: 'per-tensor' }
  /** One scale per index of `axis` (ONNX opset 13 per-axis). */
  | { readonly kind: 'per-channel'; readonly axis: number }
  /** Blocks of `size` elements along `axis`; one scale per block and per index of every other dim (opset 21). */
  | { readonly kind: 'blocked'; readonly axis: number; readonly size: number };

export type Calibrator = 'minmax' | 'percentile' | 'entropy' | 'mse';

/** How one tensor is quantized. */
export interface TensorQuant {
  readonly dtype: QDType;
  readonly granularity: Granularity;
  /** Symmetric: zero point 0 (TensorRT requires it). Asymmetric: zero point from the range (ORT's uint8 activations). */
  readonly symmetric: boolean;
}

/** Activation quantization request: the tensor, its quantization and how its range is calibrated. */
export interface ActivationPlan {
  /** Name of the Value to quantize (after canonicalization). */
  readonly tensor: string;
  readonly quant: TensorQuant;
  readonly calibrator: Calibrator;
  /** For 'percentile' (default 99.99). */
  readonly percentile?: number;
  /**
   * Consumers that read the dequantized value: `{node, input}` pairs; each gets its own DequantizeLinear
   * (one QuantizeLinear per tensor, one DQ per consumer: TensorRT's recommended layout). Empty = all consumers.
   */
  readonly consumers: readonly { readonly node: string; readonly input: number }[];
  /**
   * Range clamp known from the graph (e.g. after Relu: [0, +inf), after Clip(0,6): [0, 6]): ORT absorbs Relu/Clip
   * into the quantization range. Calibrated ranges are intersected with it.
   */
  readonly clamp?: { readonly min?: number; readonly max?: number };
  /**
   * Reuse the QParams of this other planned tensor instead of calibrating this one (set by a target for tensors
   * behind value-preserving ops such as MaxPool/Reshape/Transpose: ORT drops DQ->op->Q only when both sides have
   * identical scale and zero point). Optional: calibrating it independently is still correct, only slower.
   */
  readonly sameAs?: string;
  /**
   * When the tensor is also a graph output, that output reads the dequantized value too (it keeps its name; the
   * float tensor becomes `<t>_float`). ORT needs it: a layer fuses only as DQ -> op -> Q, so the last layer of a
   * network (the classifier Gemm) runs in float unless its graph output is quantized. Absent: graph outputs stay float.
   */
  readonly graphOutput?: boolean;
}

/** Weight quantization request: an initializer read by one node input. */
export interface WeightPlan {
  /** The node that reads the weight and the input index (Conv: 1, Gemm: 1 (B), MatMul: 0 or 1). */
  readonly node: string;
  readonly input: number;
  readonly quant: TensorQuant;
  /** Search a per-channel (per-block) clipping ratio that minimises the quantization MSE (default off). */
  readonly mseClip?: boolean;
}

/** A layer the target could not quantize as asked, and what it did instead. */
export interface Fallback {
  readonly node: string;
  readonly op: string;
  readonly requested: string;
  readonly applied: string;
  /** Which backend limit, e.g. "TensorRT: INT4 is weight-only on Gemm/MatMul; convolutions take INT8 weights". */
  readonly reason: string;
}

/**
 * Placements decided after calibration. TensorRT fuses a residual Add into one of the Convs feeding it and needs the
 * Add's other input quantized; when both inputs are quantized Convs' outputs either Conv can take the Add, and the
 * better choice quantizes the input with the smaller scale (its rounding noise goes straight into the sum).
 * Candidates are in the order their producers run; compile calibrates all of them and keeps one.
 */
export interface ActivationChoice {
  /** The node whose input is chosen (the Add). */
  readonly node: string;
  readonly candidates: readonly ActivationPlan[];
}

/** What a target decides for a model under a config. */
export interface QuantPlan {
  readonly activations: readonly ActivationPlan[];
  /** Placements to resolve once scales are known (resolveChoices in targets/shared-plan.ts); absent: none. */
  readonly choices?: readonly ActivationChoice[];
  readonly weights: readonly WeightPlan[];
  readonly fallbacks: readonly Fallback[];
  /** Nodes deliberately left in float (keep-fp, exclusions, unsupported ops), with a reason each. */
  readonly keptFloat: readonly { readonly node: string; readonly op: string; readonly reason: string }[];
  /** The default-domain opset the quantized model needs (13 per-channel, 19 FP8, 21 INT4 blocks). */
  readonly opset: number;
}

/** Calibrated range of one activation tensor. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

/** Scale and zero point for one tensor (per-tensor activations). */
export interface QParams {
  readonly scale: number;
  readonly zeroPoint: number;
}

// ---------------------------------------------------------------------------------------------------------------
// User configuration (CLI flags and the JSON config file map onto this; the library takes it directly)

export type Preset = 'w8a8' | 'w4a8' | 'w4a16' | 'w8a16' | 'fp8';

export interface LayerOverride {
  /** Node-name glob (`*` and `?`), or an op type when `op` is set. */
  readonly match: string;
  readonly op?: boolean;
  /** 'fp' keeps the layer in float. */
  readonly precision?: 'fp' | 'int8' | 'int4' | 'fp8';
  readonly granularity?: 'per-tensor' | 'per-channel' | 'blocked';
  readonly calibrator?: Calibrator;
}

export interface QuantConfig {
  readonly preset: Preset;
  /** Per-channel weights unless false (`--per-tensor`). */
  readonly perChannel: boolean;
  /** INT4 block size along K (default 128). */
  readonly blockSize: number;
  readonly calibrator: Calibrator;
  /** For the percentile calibrator (default 99.99). */
  readonly percentile: number;
  readonly mseClip: boolean;
  readonly overrides: readonly LayerOverride[];
  /** Node-name globs kept in float. */
  readonly keepFp: readonly string[];
  /**
   * Bias correction (passes/quant/bias-correction.ts): the mean output shift of quantized weights moves into the
   * float bias, from per-channel input means measured during calibration. Default on; needs calibrated activations.
   */
  readonly biasCorrection?: boolean;
}
