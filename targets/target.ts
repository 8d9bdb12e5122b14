// The Target interface (legality, placement plan, fusion prediction, extra files) and the registry of targets.
//
// A target is data plus a few functions: its legality table (targets/<t>/legality.ts), its placement rules
// (targets/<t>/patterns.ts, run by the target-neutral engine in targets/shared-plan.ts), its fusion rules
// (targets/<t>/fusion.ts). Targets never import each other; passes never ask which target runs (STYLE.md).

import { QccError } from '../ir/errors.js';
import type { Model, Node } from '../ir/ir.js';
import type { QuantConfig, QuantPlan, TensorQuant } from '../passes/quant/types.js';
import { ORT } from './ort/plan.js';
import { TENSORRT } from './tensorrt/plan.js';

export type TargetName = 'tensorrt' | 'ort';

/** One quantized operand of a layer: the node input index and how it is quantized. */
export interface OperandRequest {
  readonly input: number;
  readonly quant: TensorQuant;
}

/**
 * What a plan asks of one weighted layer: quantized constant operands (weights) and quantized activation operands.
 * No activations = weight-only; no weights = activation x activation (attention MatMuls).
 */
export interface LayerRequest {
  readonly weights: readonly OperandRequest[];
  readonly activations: readonly OperandRequest[];
}

/** Why a target refuses a request: the backend limit it hits and, when one exists, the legal request to use instead. */
export interface Reason {
  /** What cannot be done, e.g. "INT4 is weight-only on Gemm/MatMul; convolutions take INT8 weights". */
  readonly message: string;
  /** Where the limit is documented, e.g. "SPEC §8" or an ORT source file. */
  readonly limit: string;
  /** A legal request that replaces this one (legalization); absent: the layer stays in float. */
  readonly fallback?: LayerRequest;
}

/** The predicted fate of one weighted layer (Conv, ConvTranspose, Gemm, MatMul) in the backend. */
export interface FusionLayer {
  readonly node: string;
  readonly op: string;
  /** Runs with quantized inputs (integer / FP8 kernel, or a weight-only kernel). */
  readonly quantized: boolean;
  /** Nodes folded into the layer's kernel (bias Add, Relu, residual Add, the output QuantizeLinear, ...), by op and name. */
  readonly fusedWith: readonly string[];
  /** Why the layer is not quantized, or what limits the fusion of a quantized layer. */
  readonly reason?: string;
  /** The backend kernel the layer becomes (ORT: QLinearConv, QGemm, QLinearMatMul, MatMulIntegerToFloat, MatMulNBits). */
  readonly kernel?: string;
}

export interface FusionReport {
  readonly layers: readonly FusionLayer[];
  /** Quantized weighted layers / all weighted layers (1 when the model has none). */
  readonly coverage: number;
  /** QuantizeLinear / DequantizeLinear nodes the backend executes on their own (semantics kept, speed lost). */
  readonly standaloneQdq: readonly { readonly node: string; readonly reason: string }[];
}

export interface TargetExtras {
  /** Extra files to write beside the model: file name -> content. */
  readonly files: Record<string, string>;
  readonly notes: string[];
}

export interface Target {
  readonly name: TargetName;
  /** Whether the backend runs `n` quantized as `q` asks; otherwise the limit and the legal fallback. */
  legality(n: Node, q: LayerRequest): true | Reason;
  /** Placement for a canonicalized model with inferred shapes. Does not change the model. */
  plan(model: Model, config: QuantConfig): QuantPlan;
  /** Which weighted layers of a quantized (QDQ) model the backend will run quantized, and which Q/DQ stay standalone. */
  predictFusion(model: Model): FusionReport;
  /** Files and notes that go with the emitted model (`files.model` is the model's path). */
  emitExtras(model: Model, files: { model: string }): TargetExtras;
}

const TARGETS: Readonly<Record<TargetName, Target>> = { tensorrt: TENSORRT, ort: ORT };

export const TARGET_NAMES: readonly TargetName[] = Object.keys(TARGETS) as TargetName[];

/** The target called `name`; E_USAGE for an unknown name. */
export function getTarget(name: string): Target {
  const t = (TARGETS as Record<string, Target | undefined>)[name];
  if (!t) throw new QccError('E_USAGE', `unknown target '${name}' (known: ${TARGET_NAMES.join(', ')})`);
  return t;
}
