// Pass upgrade-opset: converts the default (ai.onnx) domain of a model upward, one opset version at a time.
//
// Every op's schema history (the opset versions where its definition changed) is in HISTORY, up to opset 21.
// Converting from A to B walks v = A+1 .. B; at each v, each node whose op changed at v goes through the adapter
// for (op, v): 'compatible' (the old node means the same under the new schema: new optional attributes or inputs
// with neutral defaults, wider type constraints, negative axes allowed, ...) or a rewrite. A change without an
// adapter is refused with E_UNSUPPORTED (`cannot convert <op> from opset A to B`) rather than risking a wrong
// model, and all refusals are found before the first edit, so a refused model is left untouched.
//
// Converted changes (everything else that changed is either listed as compatible in ADAPTERS or refused):
//
//   op(s)                                 at  change                                   rewrite
//   ------------------------------------  --  ---------------------------------------  --------------------------------------
//   Pad                                    2  attr paddings renamed pads               rename
//   Concat                                 4  axis became required                     axis=1 when absent (the old default)
//   Reshape                                5  shape attr -> input                      i64 initializer
//   Abs, Add, BatchNormalization, Ceil,    6  consumed_inputs attr removed             drop it
//     Clip, Div, Dropout, Elu, Exp, Floor,
//     HardSigmoid, InstanceNormalization,
//     LeakyRelu, Log, Max, Mean, Min, Mul,
//     Neg, PRelu, Reciprocal, Relu, Selu,
//     Sigmoid, Sqrt, Sub, Sum, Tanh
//   Add, Sub, Mul, Div, Pow, And, Or, Xor, 7  broadcast/axis attrs -> numpy broadcast  drop them; with `axis`, B gets trailing
//     Equal, Greater, Less                                                            1-dims (reshaped initializer or Unsqueeze)
//   Gemm                                   7  broadcast attr removed                   drop it
//   PRelu                                  7  1-D slope per channel -> numpy broadcast  slope [C] -> [C,1,..,1] (X rank > 2)
//   BatchNormalization, Dropout            7  is_test attr removed                     drop it (only is_test=1: inference)
//   BatchNormalization                     9  spatial attr removed                     drop it (only spatial=1)
//   Upsample                               9  scales attr -> input                     f32 initializer
//   Upsample                              10  deprecated                               Resize-10 (same inputs, same mode)
//   Slice                                 10  starts/ends/axes attrs -> inputs         i64 initializers
//   TopK                                  10  k attr -> input                          i64 [1] initializer
//   Dropout                               10  mask output became bool                  only when the mask is unused
//   Clip                                  11  min/max attrs -> inputs                  scalar initializers of X's dtype
//   Pad                                   11  pads/value attrs -> inputs               i64 pads, scalar constant_value
//   Resize                                11  roi input, coordinate modes              empty roi; asymmetric; nearest_mode floor
//                                                                                     (upsampling) / ceil (downsampling), as
//                                                                                     onnxruntime implements Resize-10 (nearest
//                                                                                     needs constant scales, except from
//                                                                                     Upsample, whose scales are >= 1)
//   Scatter                               11  deprecated                               ScatterElements (same semantics)
//   Dropout                               12  ratio attr -> input                      f32 scalar initializer
//   Softmax, LogSoftmax, Hardmax          13  no longer coerced to 2-D at axis         keep when axis is the last dim (rank
//                                                                                     known, or axis=-1); else
//                                                                                     Reshape(op(Flatten(x, axis), 1), Shape(x))
//   Squeeze, Unsqueeze, ReduceSum         13  axes attr -> input                       i64 initializer
//   Split                                 13  split attr -> input                      i64 initializer
//   BatchNormalization                    14  training_mode attr replaces the output   only inference BNs (one output)
//                                             count as the mode switch
//   RoiAlign                              16  default coordinate mode changed          set output_half_pixel when absent
//   Split                                 18  num_outputs (or split) required          num_outputs = output count
//   ReduceL1/L2/LogSum/LogSumExp/Max/     18  axes attr -> input                       i64 initializer
//     Mean/Min/Prod/SumSquare
//   GridSample                            20  modes renamed                            bilinear->linear, bicubic->cubic
//
// Refused (no adapter): Cast-6 (string `to`), Tile-6, GlobalLpPool/LpPool-2, GRU-3/7, LSTM-7, RNN-7, Upsample-7
// (from the experimental Upsample-1), Scan-9, DFT-20, GroupNormalization-21, any op not in HISTORY, model-local
// functions importing ai.onnx. Ranks and dtypes that some rewrites need come from a small local propagation
// (type annotations, initializers, and per-op rank rules), not from the shape-inference pass.
//
// The opset import is set to `to` and ir_version raised to at least what that opset needs (7 for 13, 10 for 21).

import { dtypeFromOnnx, type DType } from '../ir/dtype.js';
import { QccError } from '../ir/errors.js';
import { Tensor, attr, tensorFromTyped, type AnyTypedArray, type Attr, type Graph, type Int64, type Model, type Node, type Value } from '../ir/ir.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../ir/numerics.js';
import { Rewriter } from '../ir/rewriter.js';
import { constantTensor } from './constant-to-initializer.js';
import { definePass, passOption } from './pass.js';

export const MAX_OPSET = 21;

/** Opset versions at which each ai.onnx op's schema was (re)defined, up to opset 21. */
export const HISTORY: Readonly<Record<string, readonly number[]>> = {
  Abs: [1, 6, 13], Acos: [7], Acosh: [9], Add: [1, 6, 7, 13, 14], AffineGrid: [20], And: [1, 7],
  ArgMax: [1, 11, 12, 13], ArgMin: [1, 11, 12, 13], Asin: [7], Asinh: [9], Atan: [7], Atanh: [9],
  AveragePool: [1, 7, 10, 11, 19], BatchNormalization: [1, 6, 7, 9, 14, 15], Bernoulli: [15], BitShift: [11],
  BitwiseAnd: [18], BitwiseNot: [18], BitwiseOr: [18], BitwiseXor: [18], BlackmanWindow: [17],
  Cast: [1, 6, 9, 13, 19, 21], CastLike: [15, 19, 21], Ceil: [1, 6, 13], Celu: [12], CenterCropPad: [18],
  Clip: [1, 6, 11, 12, 13], Col2Im: [18], Compress: [9, 11], Concat: [1, 4, 11, 13], ConcatFromSequence: [11],
  Constant: [1, 9, 11, 12, 13, 19, 21], ConstantOfShape: [9, 20, 21], Conv: [1, 11], ConvInteger: [10],
  ConvTranspose: [1, 11], Cos: [7], Cosh: [9], CumSum: [11, 14], DFT: [17, 20], DeformConv: [19],
  DepthToSpace: [1, 11, 13], DequantizeLinear: [10, 13, 19, 21], Det: [11], Div: [1, 6, 7, 13, 14],
  Dropout: [1, 6, 7, 10, 12, 13], DynamicQuantizeLinear: [11], Einsum: [12], Elu: [1, 6], Equal: [1, 7, 11, 13, 19],
  Erf: [9, 13], Exp: [1, 6, 13], Expand: [8, 13], EyeLike: [9], Flatten: [1, 9, 11, 13, 21], Floor: [1, 6, 13],
  GRU: [1, 3, 7, 14], Gather: [1, 11, 13], GatherElements: [11, 13], GatherND: [11, 12, 13], Gelu: [20],
  Gemm: [1, 6, 7, 9, 11, 13], GlobalAveragePool: [1], GlobalLpPool: [1, 2], GlobalMaxPool: [1],
  Greater: [1, 7, 9, 13], GreaterOrEqual: [12, 16], GridSample: [16, 20], GroupNormalization: [18, 21],
  HammingWindow: [17], HannWindow: [17], HardSigmoid: [1, 6], HardSwish: [14], Hardmax: [1, 11, 13],
  Identity: [1, 13, 14, 16, 19, 21], If: [1, 11, 13, 16, 19, 21], ImageDecoder: [20], InstanceNormalization: [1, 6],
  IsInf: [10, 20], IsNaN: [9, 13, 20], LRN: [1, 13], LSTM: [1, 7, 14], LayerNormalization: [17],
  LeakyRelu: [1, 6, 16], Less: [1, 7, 9, 13], LessOrEqual: [12, 16], Log: [1, 6, 13], LogSoftmax: [1, 11, 13],
  Loop: [1, 11, 13, 16, 19, 21], LpNormalization: [1], LpPool: [1, 2, 11, 18], MatMul: [1, 9, 13],
  MatMulInteger: [10], Max: [1, 6, 8, 12, 13], MaxPool: [1, 8, 10, 11, 12], MaxRoiPool: [1], MaxUnpool: [9, 11],
  Mean: [1, 6, 8, 13], MeanVarianceNormalization: [9, 13], MelWeightMatrix: [17], Min: [1, 6, 8, 12, 13], Mish: [18],
  Mod: [10, 13], Mul: [1, 6, 7, 13, 14], Multinomial: [7], Neg: [1, 6, 13], NegativeLogLikelihoodLoss: [12, 13],
  NonMaxSuppression: [10, 11], NonZero: [9, 13], Not: [1], OneHot: [9, 11], Optional: [15],
  OptionalGetElement: [15, 18], OptionalHasElement: [15, 18], Or: [1, 7], PRelu: [1, 6, 7, 9, 16],
  Pad: [1, 2, 11, 13, 18, 19, 21], Pow: [1, 7, 12, 13, 15], QLinearConv: [10], QLinearMatMul: [10, 21],
  QuantizeLinear: [10, 13, 19, 21], RNN: [1, 7, 14], RandomNormal: [1], RandomNormalLike: [1], RandomUniform: [1],
  RandomUniformLike: [1], Range: [11], Reciprocal: [1, 6, 13], ReduceL1: [1, 11, 13, 18], ReduceL2: [1, 11, 13, 18],
  ReduceLogSum: [1, 11, 13, 18], ReduceLogSumExp: [1, 11, 13, 18], ReduceMax: [1, 11, 12, 13, 18, 20],
  ReduceMean: [1, 11, 13, 18], ReduceMin: [1, 11, 12, 13, 18, 20], ReduceProd: [1, 11, 13, 18],
  ReduceSum: [1, 11, 13], ReduceSumSquare: [1, 11, 13, 18], RegexFullMatch: [20], Relu: [1, 6, 13, 14],
  Reshape: [1, 5, 13, 14, 19, 21], Resize: [10, 11, 13, 18, 19], ReverseSequence: [10], RoiAlign: [10, 16],
  Round: [11], STFT: [17], Scan: [8, 9, 11, 16, 19, 21], Scatter: [9, 11], ScatterElements: [11, 13, 16, 18],
  ScatterND: [11, 13, 16, 18], Selu: [1, 6], SequenceAt: [11], SequenceConstruct: [11], SequenceEmpty: [11],
  SequenceErase: [11], SequenceInsert: [11], SequenceLength: [11], SequenceMap: [17], Shape: [1, 13, 15, 19, 21],
  Shrink: [9], Sigmoid: [1, 6, 13], Sign: [9, 13], Sin: [7], Sinh: [9], Size: [1, 13, 19, 21],
  Slice: [1, 10, 11, 13], Softmax: [1, 11, 13], SoftmaxCrossEntropyLoss: [12, 13], Softplus: [1], Softsign: [1],
  SpaceToDepth: [1, 13], Split: [1, 2, 11, 13, 18], SplitToSequence: [11], Sqrt: [1, 6, 13],
  Squeeze: [1, 11, 13, 21], StringConcat: [20], StringNormalizer: [10], StringSplit: [20], Sub: [1, 6, 7, 13, 14],
  Sum: [1, 6, 8, 13], Tan: [7], Tanh: [1, 6, 13], TfIdfVectorizer: [9], ThresholdedRelu: [10], Tile: [1, 6, 13],
  TopK: [1, 10, 11], Transpose: [1, 13, 21], Trilu: [14], Unique: [11], Unsqueeze: [1, 11, 13, 21],
  Upsample: [1, 7, 9, 10], Where: [9, 16], Xor: [1, 7],
};

/** Lowest IR version that can carry each opset (ONNX's release table). */
export function minIrVersion(opset: number): number {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset >= 11) return 6;
  if (opset >= 10) return 5;
  if (opset >= 9) return 4;
  return 3;
}

// ---------------------------------------------------------------------------------------------------------------
// Local facts: element type and rank, from annotations, initializers and per-op rules

interface Facts {
  readonly dtype?: DType | undefined;
  readonly rank?: number | undefined;
  /** length of a 1-D value when static (shape tensors: gives the rank of a Reshape's result) */
  readonly len1?: number | undefined;
}

const SAME_AS_INPUT0 = new Set([
  'Relu', 'Sigmoid', 'Tanh', 'Abs', 'Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Ceil', 'Floor', 'Erf', 'HardSigmoid',
  'HardSwish', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Clip', 'Dropout', 'Identity', 'Softmax',
  'LogSoftmax', 'Hardmax', 'BatchNormalization', 'InstanceNormalization', 'LRN', 'Sign', 'Round', 'Gelu', 'Mish',
  'LayerNormalization', 'ThresholdedRelu', 'PRelu', 'CumSum', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh',
  'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Shrink', 'MeanVarianceNormalization', 'LpNormalization', 'Conv', 'ConvTranspose',
  'MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'Upsample', 'Resize', 'Pad',
  'DepthToSpace', 'SpaceToDepth', 'Tile', 'Slice', 'Concat', 'Split', 'Transpose', 'ReverseSequence', 'ScatterElements',
  'Scatter', 'ScatterND', 'TopK', 'Trilu', 'GroupNormalization', 'Not',
]);
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mean', 'Sum', 'Mod', 'And', 'Or', 'Xor', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Where', 'BitShift']);
const BOOL_RESULT = new Set(['And', 'Or', 'Xor', 'Not', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'IsNaN', 'IsInf']);

/** A constant tensor behind v (initializer that is not an overridable input, or a dense Constant). */
function constOf(v: Value | null | undefined): Tensor | undefined {
  if (!v) return undefined;
  if (v.initializer) return v.isGraphInput ? undefined : v.initializer;
  if (v.producer?.op === 'Constant') return constantTensor(v.producer);
  return undefined;
}

function intsOf(v: Value | null | undefined): number[] | undefined {
  const t = constOf(v);
  if (!t || (t.dtype !== 'i64' && t.dtype !== 'i32')) return undefined;
  return Array.from(t.typed() as ArrayLike<number | bigint>, (x) => Number(x));
}

class LocalFacts {
  private readonly memo = new Map<Value, Facts>();

  of(v: Value | null | undefined): Facts {
    if (!v) return {};
    const hit = this.memo.get(v);
    if (hit) return hit;
    this.memo.set(v, {}); // cycle guard (graphs are acyclic, but be safe)
    const f = this.compute(v);
    this.memo.set(v, f);
    return f;
  }

  private compute(v: Value): Facts {
    const s = v.shape;
    const own: Facts = { dtype: v.dtype, rank: s?.length, len1: s?.length === 1 && typeof s[0] === 'number' ? s[0] : undefined };
    if (own.dtype !== undefined && own.rank !== undefined && (own.rank !== 1 || own.len1 !== undefined)) return own;
    const n = v.producer;
    if (!n || (n.domain !== '' && n.domain !== 'ai.onnx')) return own;
    const d = this.derive(n, v.producerIndex);
    const rank = own.rank ?? d.rank;
    return { dtype: own.dtype ?? d.dtype, rank, len1: rank === 1 ? (own.len1 ?? d.len1 ?? this.length1(n)) : undefined };
  }

  /** Static length of a 1-D result of the ops that build shape tensors. */
  private length1(n: Node): number | undefined {
    const x = this.of(n.input(0));
    switch (n.opType) {
      case 'Cast':
      case 'Identity':
      case 'Neg':
      case 'Abs':
        return x.len1;
      case 'Shape': {
        if (x.rank === undefined) return undefined;
        const r = x.rank;
        const clamp = (i: number): number => Math.min(r, Math.max(0, i < 0 ? i + r : i));
        return Math.max(0, clamp(n.attrInt('end', r)) - clamp(n.attrInt('start', 0)));
      }
      case 'Concat': {
        let sum = 0;
        for (const i of n.inputs) {
          const l = this.of(i).len1;
          if (l === undefined) return undefined;
          sum += l;
        }
        return sum;
      }
      case 'Unsqueeze':
        return x.rank === 0 ? 1 : undefined;
      case 'Gather': {
        const idx = constOf(n.input(1));
        return idx && idx.dims.length === 1 ? idx.dims[0] : undefined;
      }
      case 'Slice': {
        const len = x.len1;
        if (len === undefined) return undefined;
        const starts = n.attrInts('starts') ?? intsOf(n.input(1));
        const ends = n.attrInts('ends') ?? intsOf(n.input(2));
        const steps = n.attr('starts') ? [1] : (intsOf(n.input(4)) ?? [1]);
        if (!starts || !ends || starts.length !== 1 || ends.length !== 1 || steps.length !== 1 || steps[0] === 0) return undefined;
        const step = steps[0]!;
        const clamp = (i: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, i < 0 ? i + len : i));
        const lo = step > 0 ? 0 : -1;
        const hi = step > 0 ? len : len - 1;
        const a = clamp(starts[0]!, lo, hi);
        const b = clamp(ends[0]!, lo, hi);
        return Math.max(0, Math.ceil((b - a) / step));
      }
      default:
        return undefined;
    }
  }

  private derive(n: Node, outIndex: number): Facts {
    const x = this.of(n.input(0));
    const axesCount = (): number | undefined => {
      const a = n.attrInts('axes');
      if (a) return a.length;
      const c = intsOf(n.input(1));
      return c?.length;
    };
    const op = n.opType;
    if (op === 'Constant') {
      const t = constantTensor(n);
      return { dtype: t?.dtype, rank: t?.dims.length };
    }
    if (op === 'Cast') return { dtype: dtypeFromOnnx(n.attrInt('to', 0)), rank: x.rank };
    if (op === 'Shape') return { dtype: 'i64', rank: 1 };
    if (op === 'Size') return { dtype: 'i64', rank: 0 };
    if (op === 'IsNaN' || op === 'IsInf') return { dtype: 'bool', rank: x.rank };
    if (op === 'TopK' && outIndex === 1) return { dtype: 'i64', rank: x.rank };
    if (op === 'MaxPool' && outIndex === 1) return { dtype: 'i64', rank: x.rank };
    if (op === 'Dropout' && outIndex === 1) return { rank: x.rank };
    if (SAME_AS_INPUT0.has(op)) return { dtype: x.dtype, rank: x.rank };
    if (BROADCASTING.has(op)) {
      const ins = n.inputs.map((i) => this.of(i));
      const legacy = n.attrInt('broadcast', 0) !== 0; // opset < 7: the result has A's shape
      const ranks = ins.map((f) => f.rank);
      const rank = legacy ? ranks[0] : ranks.every((r) => r !== undefined) ? Math.max(...(ranks as number[])) : undefined;
      const dtype = BOOL_RESULT.has(op) ? 'bool' : op === 'Where' ? ins[1]?.dtype : ins[0]?.dtype;
      return { dtype, rank };
    }
    switch (op) {
      case 'MatMul': {
        const b = this.of(n.input(1));
        if (x.rank === undefined || b.rank === undefined) return { dtype: x.dtype };
        const rank = x.rank === 1 && b.rank === 1 ? 0 : x.rank === 1 ? b.rank - 1 : b.rank === 1 ? x.rank - 1 : Math.max(x.rank, b.rank);
        return { dtype: x.dtype, rank };
      }
      case 'Gemm':
      case 'Flatten':
        return { dtype: x.dtype, rank: 2 };
      case 'Reshape':
        return { dtype: x.dtype, rank: n.attrInts('shape')?.length ?? constOf(n.input(1))?.size ?? this.of(n.input(1)).len1 };
      case 'Squeeze': {
        const k = axesCount();
        return { dtype: x.dtype, rank: x.rank !== undefined && k !== undefined ? x.rank - k : undefined };
      }
      case 'Unsqueeze': {
        const k = axesCount();
        return { dtype: x.dtype, rank: x.rank !== undefined && k !== undefined ? x.rank + k : undefined };
      }
      case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL1':
      case 'ReduceL2': case 'ReduceLogSum': case 'ReduceLogSumExp': case 'ReduceSumSquare': {
        if (n.attrInt('keepdims', 1) !== 0) return { dtype: x.dtype, rank: x.rank };
        const k = axesCount();
        return { dtype: x.dtype, rank: x.rank === undefined ? undefined : k === undefined || k === 0 ? (n.input(1) ? undefined : 0) : x.rank - k };
      }
      case 'ArgMax':
      case 'ArgMin':
        return { dtype: 'i64', rank: x.rank === undefined ? undefined : n.attrInt('keepdims', 1) !== 0 ? x.rank : x.rank - 1 };
      case 'Gather': {
        const i = this.of(n.input(1));
        return { dtype: x.dtype, rank: x.rank !== undefined && i.rank !== undefined ? x.rank + i.rank - 1 : undefined };
      }
      case 'GatherElements':
        return { dtype: x.dtype, rank: x.rank };
      case 'Expand': {
        const s = constOf(n.input(1));
        return { dtype: x.dtype, rank: s && x.rank !== undefined ? Math.max(x.rank, s.size) : undefined };
      }
      case 'ConstantOfShape': {
        const s = constOf(n.input(0));
        return { dtype: n.attrTensor('value')?.dtype ?? 'f32', rank: s?.size };
      }
      case 'Range':
        return { dtype: x.dtype, rank: 1 };
      default:
        return {};
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Adapters

interface StepCtx {
  readonly rw: Rewriter;
  readonly facts: LocalFacts;
  /** the version being converted to in this step */
  readonly v: number;
}

interface Adapter {
  /** Why this node cannot be converted (checked on the original model before any edit), or undefined. */
  check?(n: Node, facts: LocalFacts): string | undefined;
  apply(n: Node, cx: StepCtx): void;
}

const COMPATIBLE: Adapter = { apply() {} };

function i64Init(rw: Rewriter, n: Node, what: string, values: readonly Int64[], dims: readonly number[] = [values.length]): Value {
  return rw.addInitializer(tensorFromTyped(`${n.name}_${what}`, 'i64', dims, BigInt64Array.from(values.map((x) => BigInt(x)))), n.graph!);
}

/** A scalar of `dtype` holding x (float and integer types). */
function scalarOf(dtype: DType, x: number): AnyTypedArray | undefined {
  switch (dtype) {
    case 'f32': return Float32Array.of(x);
    case 'f64': return Float64Array.of(x);
    case 'f16': return Uint16Array.of(f32ToF16Bits(x));
    case 'bf16': return Uint16Array.of(f32ToBf16Bits(x));
    case 'i8': return Int8Array.of(x);
    case 'u8': return Uint8Array.of(x);
    case 'i16': return Int16Array.of(x);
    case 'u16': return Uint16Array.of(x);
    case 'i32': return Int32Array.of(x);
    case 'u32': return Uint32Array.of(x);
    case 'i64': return BigInt64Array.of(BigInt(Math.trunc(x)));
    case 'u64': return BigUint64Array.of(BigInt(Math.trunc(x)));
    default: return undefined;
  }
}

function scalarInit(rw: Rewriter, n: Node, what: string, dtype: DType, x: number): Value {
  const a = scalarOf(dtype, x);
  if (!a) throw new QccError('E_UNSUPPORTED', `cannot make a ${dtype} scalar for ${n.opType}`, { node: n.name });
  return rw.addInitializer(tensorFromTyped(`${n.name}_${what}`, dtype, [], a), n.graph!);
}

/** Raw Int64 values of an ints attribute (keeps INT64_MAX exactly). */
function rawInts(n: Node, name: string): readonly Int64[] | undefined {
  const a = n.attr(name);
  if (!a) return undefined;
  if (a.type !== 'ints') throw new QccError('E_MODEL_ATTRIBUTE', `attribute '${name}' is ${a.type}, expected ints`, { node: n.name });
  return a.value;
}

const dropAttr = (...names: string[]): Adapter => ({
  apply(n, { rw }) {
    for (const a of names) rw.setAttr(n, a, undefined);
  },
});

/** attribute `name` -> input `index` (i64 1-D), when present. */
const attrToInput = (name: string, index: number): Adapter => ({
  apply(n, { rw }) {
    const vals = rawInts(n, name);
    rw.setAttr(n, name, undefined);
    if (vals === undefined) return;
    rw.setInput(n, index, i64Init(rw, n, name, vals)); // (pads skipped optional inputs with null)
  },
});

const requireAttrEq = (name: string, want: number, dflt: number, why: string, then: Adapter): Adapter => ({
  check(n) {
    return n.attrInt(name, dflt) !== want ? why : undefined;
  },
  apply(n, cx) {
    then.apply(n, cx);
  },
});

/** Opset < 7 broadcasting: `broadcast=1` with `axis` aligns B at axis of A; numpy aligns at the end. */
const legacyBroadcast: Adapter = {
  check(n, facts) {
    if (n.attrInt('broadcast', 0) === 0 || n.attr('axis') === undefined) return undefined;
    const ra = facts.of(n.input(0)).rank;
    const rb = facts.of(n.input(1)).rank;
    if (ra === undefined || rb === undefined) return 'legacy broadcast with axis needs the ranks of both inputs';
    return undefined;
  },
  apply(n, { rw, facts }) {
    const bc = n.attrInt('broadcast', 0) !== 0;
    const axisAttr = n.attr('axis');
    let axis = n.attrInt('axis', 0);
    rw.setAttr(n, 'broadcast', undefined);
    rw.setAttr(n, 'axis', undefined);
    if (!bc || axisAttr === undefined) return;
    const ra = facts.of(n.input(0)).rank!;
    const rb = facts.of(n.input(1)).rank!;
    if (axis < 0) axis += ra;
    const trailing = ra - axis - rb;
    if (trailing <= 0) return; // B already aligns with A's last dims
    const b = n.input(1)!;
    const t = constOf(b);
    if (t) {
      // the same data under B's dims plus trailing 1s (a new initializer: initializers are never mutated)
      const r = new Tensor(`${b.name}_bcast`, t.dtype, [...t.dims, ...Array<number>(trailing).fill(1)], t.data, t.proto);
      rw.setInput(n, 1, rw.addInitializer(r, n.graph!));
    } else {
      const axes = Array.from({ length: trailing }, (_, i) => rb + i);
      const u = rw.insertOpBefore(n, 'Unsqueeze', [b], { name: `${n.name}_bcast`, attrs: { axes: attr.ints(axes) } });
      rw.setInput(n, 1, u.outputs[0]!);
    }
  },
};

/** PRelu-6 applied a 1-D slope per channel (axis 1); PRelu-7 broadcasts it numpy-style (from the last axis). */
const prelu7: Adapter = {
  check(n, facts) {
    const slope = facts.of(n.input(1));
    if (slope.rank === 1 && slope.len1 === 1) return undefined;
    if (slope.rank === undefined || (slope.rank === 1 && facts.of(n.input(0)).rank === undefined)) return 'PRelu-6 slope alignment needs the ranks of X and slope';
    return undefined;
  },
  apply(n, { rw, facts }) {
    const slope = facts.of(n.input(1));
    const r = facts.of(n.input(0)).rank;
    if (slope.rank !== 1 || slope.len1 === 1 || r === undefined || r <= 2) return;
    const trailing = r - 2; // [C] -> [C, 1, ..., 1]: channel axis 1 of X
    const b = n.input(1)!;
    const t = constOf(b);
    if (t) {
      rw.setInput(n, 1, rw.addInitializer(new Tensor(`${b.name}_channel`, t.dtype, [...t.dims, ...Array<number>(trailing).fill(1)], t.data, t.proto), n.graph!));
    } else {
      const u = rw.insertOpBefore(n, 'Unsqueeze', [b], { name: `${n.name}_channel`, attrs: { axes: attr.ints(Array.from({ length: trailing }, (_, i) => 1 + i)) } });
      rw.setInput(n, 1, u.outputs[0]!);
    }
  },
};

/** Softmax-family before 13 flattens to 2-D at `axis`; from 13 it works along `axis` alone. */
const softmax13: Adapter = {
  apply(n, { rw, facts }) {
    const axis = n.attrInt('axis', 1);
    const rank = facts.of(n.input(0)).rank;
    const last = axis === -1 || (rank !== undefined && (axis < 0 ? axis + rank : axis) === rank - 1);
    if (last) {
      rw.setAttr(n, 'axis', attr.int(axis));
      return;
    }
    const x = n.input(0)!;
    const flat = rw.insertOpBefore(n, 'Flatten', [x], { name: `${n.name}_flatten`, attrs: { axis: attr.int(axis) } });
    const sm = rw.insertOpBefore(n, n.opType, [flat.outputs[0]!], { name: `${n.name}_2d`, attrs: { axis: attr.int(1) } });
    const shape = rw.insertOpBefore(n, 'Shape', [x], { name: `${n.name}_shape` });
    const back = rw.insertOpBefore(n, 'Reshape', [sm.outputs[0]!, shape.outputs[0]!], { name: `${n.name}_reshape`, outputTypes: [n.outputs[0]!.type] });
    rw.replaceAllUsesWith(n.outputs[0]!, back.outputs[0]!);
    rw.erase(n);
  },
};

/** Replaces n by a node of another op type with the same inputs, attributes and outputs' readers. */
function retype(n: Node, rw: Rewriter, opType: string, attrs: ReadonlyMap<string, Attr>, inputs: readonly (Value | null)[] = n.inputs): Node {
  const nn = rw.insertOpBefore(n, opType, inputs, { name: `${n.name}_${opType.toLowerCase()}`, attrs, outputs: n.outputs.length, outputTypes: n.outputs.map((o) => o?.type) });
  n.outputs.forEach((o, i) => {
    if (o) rw.replaceAllUsesWith(o, nn.outputs[i]!);
  });
  rw.erase(n);
  return nn;
}

function scalesOf(n: Node): readonly number[] | undefined {
  const a = n.attrFloats('scales');
  if (a) return a;
  const t = constOf(n.input(1));
  if (!t || t.dtype !== 'f32') return undefined;
  return Array.from(t.typed() as Float32Array);
}

/** onnxruntime's Resize-10 / Upsample nearest: floor when upsampling, ceil when downsampling (per axis). */
function nearestModeFor(scales: readonly number[]): 'floor' | 'ceil' | undefined {
  const up = scales.some((s) => s > 1);
  const down = scales.some((s) => s < 1);
  if (up && down) return undefined;
  return down ? 'ceil' : 'floor';
}

/** Resize nodes made from Upsample, whose scales are >= 1 by Upsample's definition (so nearest rounds down). */
const FROM_UPSAMPLE = new WeakSet<Node>();

const resize11: Adapter = {
  check(n) {
    if (n.attrString('mode', 'nearest') !== 'nearest') return undefined;
    if (n.opType === 'Upsample' || FROM_UPSAMPLE.has(n)) return undefined;
    const s = scalesOf(n);
    if (!s) return 'nearest Resize-10 needs constant scales to pick the rounding onnxruntime used';
    if (!nearestModeFor(s)) return 'nearest Resize-10 that upsamples some axes and downsamples others has no single nearest_mode';
    return undefined;
  },
  apply(n, { rw }) {
    const mode = n.attrString('mode', 'nearest');
    const nearest = FROM_UPSAMPLE.has(n) ? 'floor' : nearestModeFor(scalesOf(n) ?? []); // before scales moves to input 2
    const roi = rw.addInitializer(tensorFromTyped(`${n.name}_roi`, 'f32', [0], new Float32Array(0)), n.graph!);
    const scales = n.input(1) ?? null;
    rw.setInputs(n, [n.input(0)!, roi, scales]);
    rw.setAttr(n, 'coordinate_transformation_mode', attr.string('asymmetric'));
    if (mode === 'nearest') rw.setAttr(n, 'nearest_mode', attr.string(nearest!));
  },
};

function dtypeCheck(what: string, needed: (n: Node) => boolean): (n: Node, facts: LocalFacts) => string | undefined {
  return (n, facts) => {
    if (!needed(n)) return undefined;
    const d = facts.of(n.input(0)).dtype;
    if (d === undefined) return `the element type of ${n.input(0)?.name} is unknown (needed for ${what})`;
    if (!scalarOf(d, 0)) return `${what} cannot be a ${d} tensor`;
    return undefined;
  };
}

const REMOVE_CONSUMED_INPUTS = 'Abs Add BatchNormalization Ceil Clip Div Dropout Elu Exp Floor HardSigmoid InstanceNormalization LeakyRelu Log Max Mean Min Mul Neg PRelu Reciprocal Relu Selu Sigmoid Sqrt Sub Sum Tanh';
const LEGACY_BROADCAST = 'Add Sub Mul Div Pow And Or Xor Equal Greater Less';

/** Changes that keep the old node's meaning, by the version that introduced them (cf. onnx/version_converter). */
const COMPATIBLE_AT: Record<number, string> = {
  6: 'Gemm',
  7: 'AveragePool',
  8: 'Max Min Mean Sum MaxPool',
  9: 'Flatten Constant MatMul Gemm PRelu Greater Less Cast',
  10: 'AveragePool MaxPool',
  11: 'ArgMax ArgMin AveragePool Concat Constant Compress Conv ConvTranspose DepthToSpace Equal Flatten Gather Gemm Hardmax If LogSoftmax Loop LpPool MaxPool MaxUnpool NonMaxSuppression OneHot ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Scan Softmax Slice Split Squeeze TopK Unsqueeze',
  12: 'ArgMax ArgMin Clip Constant GatherND Max Min MaxPool Pow ReduceMax ReduceMin',
  13: 'Abs Add ArgMin ArgMax Cast Ceil Clip Concat Constant DepthToSpace DequantizeLinear Div Dropout Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gemm Greater Identity If IsNaN Less Log Loop LRN NegativeLogLikelihoodLoss MatMul Max Mean MeanVarianceNormalization Min Mod Mul Neg NonZero Pow Pad QuantizeLinear Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMean ReduceMax ReduceMin ReduceProd ReduceSumSquare Relu Reshape Resize ScatterElements ScatterND Shape Sigmoid Sign Size Slice SoftmaxCrossEntropyLoss SpaceToDepth Sqrt Sub Sum Tanh Tile Transpose',
  14: 'Add CumSum Div Identity Mul Relu Reshape Sub GRU LSTM RNN',
  15: 'BatchNormalization Pow Shape',
  16: 'ScatterElements ScatterND Identity Loop If Where Scan LessOrEqual GreaterOrEqual LeakyRelu PRelu',
  18: 'Pad Resize OptionalGetElement OptionalHasElement ScatterND ScatterElements LpPool',
  19: 'Equal AveragePool Cast CastLike Constant DequantizeLinear Identity If Loop Pad QuantizeLinear Reshape Resize Scan Shape Size',
  20: 'ConstantOfShape IsInf IsNaN ReduceMax ReduceMin',
  21: 'Cast CastLike Constant ConstantOfShape DequantizeLinear Flatten Identity If Loop Pad QLinearMatMul QuantizeLinear Reshape Scan Shape Size Squeeze Transpose Unsqueeze',
};

function buildAdapters(): Map<string, Adapter> {
  const t = new Map<string, Adapter>();
  const set = (ops: string, v: number, a: Adapter): void => {
    for (const op of ops.split(' ')) t.set(`${op}@${v}`, a);
  };
  for (const [v, ops] of Object.entries(COMPATIBLE_AT)) set(ops, Number(v), COMPATIBLE);
  set(REMOVE_CONSUMED_INPUTS, 6, dropAttr('consumed_inputs'));
  set(LEGACY_BROADCAST, 7, legacyBroadcast);
  set('Pad', 2, {
    apply(n, { rw }) {
      const p = n.attr('paddings');
      if (p) {
        rw.setAttr(n, 'pads', p);
        rw.setAttr(n, 'paddings', undefined);
      }
    },
  });
  set('Split', 2, { check: (n) => (n.inputs.length > 1 ? 'Split-1 with a split input' : undefined), apply() {} });
  set('Concat', 4, {
    apply(n, { rw }) {
      if (n.attr('axis') === undefined) rw.setAttr(n, 'axis', attr.int(1));
    },
  });
  set('Reshape', 5, attrToInput('shape', 1));
  set('Gemm', 7, dropAttr('broadcast'));
  set('PRelu', 7, prelu7);
  set('BatchNormalization Dropout', 7, requireAttrEq('is_test', 1, 0, 'is_test=0 (training mode)', dropAttr('is_test')));
  set('BatchNormalization', 9, requireAttrEq('spatial', 1, 1, 'spatial=0 (per-activation statistics)', dropAttr('spatial')));
  set('Upsample', 9, {
    apply(n, { rw }) {
      const s = n.attrFloats('scales');
      rw.setAttr(n, 'scales', undefined);
      if (s) rw.setInput(n, 1, rw.addInitializer(tensorFromTyped(`${n.name}_scales`, 'f32', [s.length], Float32Array.from(s)), n.graph!));
    },
  });
  set('Upsample', 10, {
    apply(n, { rw }) {
      FROM_UPSAMPLE.add(retype(n, rw, 'Resize', new Map([['mode', attr.string(n.attrString('mode', 'nearest'))]]), [n.input(0)!, n.input(1)!]));
    },
  });
  set('Slice', 10, {
    apply(n, { rw }) {
      const starts = rawInts(n, 'starts') ?? [];
      const ends = rawInts(n, 'ends') ?? [];
      const axes = rawInts(n, 'axes');
      for (const a of ['starts', 'ends', 'axes']) rw.setAttr(n, a, undefined);
      rw.setInputs(n, [n.input(0)!, i64Init(rw, n, 'starts', starts), i64Init(rw, n, 'ends', ends), ...(axes ? [i64Init(rw, n, 'axes', axes)] : [])]);
    },
  });
  set('TopK', 10, {
    apply(n, { rw }) {
      const k = n.attr('k');
      rw.setAttr(n, 'k', undefined);
      if (k?.type === 'int') rw.setInput(n, 1, i64Init(rw, n, 'k', [k.value]));
    },
  });
  set('Dropout', 10, {
    check: (n) => (n.outputs[1] && (n.outputs[1].uses.length || n.outputs[1].isGraphOutput) ? 'the Dropout mask is used (its type changes to bool at opset 10)' : undefined),
    apply() {},
  });
  set('Clip', 11, {
    check: dtypeCheck('Clip min/max', (n) => n.attr('min') !== undefined || n.attr('max') !== undefined),
    apply(n, { rw, facts }) {
      const lo = n.attr('min') !== undefined ? n.attrFloat('min', 0) : undefined;
      const hi = n.attr('max') !== undefined ? n.attrFloat('max', 0) : undefined;
      rw.setAttr(n, 'min', undefined);
      rw.setAttr(n, 'max', undefined);
      if (lo === undefined && hi === undefined) return;
      const d = facts.of(n.input(0)).dtype!;
      rw.setInputs(n, [n.input(0)!, lo === undefined ? null : scalarInit(rw, n, 'min', d, lo), hi === undefined ? null : scalarInit(rw, n, 'max', d, hi)]);
    },
  });
  set('Pad', 11, {
    check: dtypeCheck('Pad value', (n) => n.attrFloat('value', 0) !== 0),
    apply(n, { rw, facts }) {
      const pads = rawInts(n, 'pads') ?? [];
      const value = n.attrFloat('value', 0);
      rw.setAttr(n, 'pads', undefined);
      rw.setAttr(n, 'value', undefined);
      const ins: (Value | null)[] = [n.input(0)!, i64Init(rw, n, 'pads', pads)];
      if (value !== 0) ins.push(scalarInit(rw, n, 'value', facts.of(n.input(0)).dtype!, value));
      rw.setInputs(n, ins);
    },
  });
  set('Resize', 11, resize11);
  set('Scatter', 11, {
    apply(n, { rw }) {
      retype(n, rw, 'ScatterElements', n.attrs);
    },
  });
  set('Dropout', 12, {
    apply(n, { rw }) {
      const r = n.attr('ratio');
      rw.setAttr(n, 'ratio', undefined);
      if (r) rw.setInput(n, 1, rw.addInitializer(tensorFromTyped(`${n.name}_ratio`, 'f32', [], Float32Array.of(n.attrFloat('ratio', 0.5))), n.graph!));
    },
  });
  set('Softmax LogSoftmax Hardmax', 13, softmax13);
  set('Squeeze Unsqueeze ReduceSum', 13, attrToInput('axes', 1));
  set('Split', 13, attrToInput('split', 1));
  set('BatchNormalization', 14, {
    // before 14 the output count chose the mode: Y alone is inference, Y + statistics is training
    check: (n) => (n.outputs.filter((o) => o).length > 1 ? 'BatchNormalization with training outputs (training mode) is not converted' : undefined),
    apply() {},
  });
  set('RoiAlign', 16, {
    apply(n, { rw }) {
      if (n.attr('coordinate_transformation_mode') === undefined) rw.setAttr(n, 'coordinate_transformation_mode', attr.string('output_half_pixel'));
    },
  });
  set('Split', 18, {
    apply(n, { rw }) {
      if (!n.input(1) && n.attr('num_outputs') === undefined) rw.setAttr(n, 'num_outputs', attr.int(n.outputs.length));
    },
  });
  set('ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSumSquare', 18, attrToInput('axes', 1));
  set('GridSample', 20, {
    apply(n, { rw }) {
      const mode = n.attrString('mode', 'bilinear');
      const renamed = mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : mode;
      rw.setAttr(n, 'mode', attr.string(renamed));
    },
  });
  return t;
}

const ADAPTERS = buildAdapters();

/** The adapter for op at version v, 'none' when op did not change at v, undefined when the change is refused. */
function adapterFor(op: string, v: number): Adapter | 'none' | undefined {
  const h = HISTORY[op];
  if (!h) return undefined;
  if (!h.includes(v) || h[0] === v) return 'none';
  return ADAPTERS.get(`${op}@${v}`);
}

/** Op renames along the way (deprecated ops replaced by their successors). */
const SUCCESSOR: Record<string, { at: number; op: string }> = {
  Upsample: { at: 10, op: 'Resize' },
  Scatter: { at: 11, op: 'ScatterElements' },
};

function isDefault(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

function* graphsOf(g: Graph): IterableIterator<Graph> {
  yield g;
  for (const n of g.nodes()) for (const sg of n.subgraphs()) yield* graphsOf(sg);
}

/** Every reason the conversion would be refused (empty when it can go ahead). */
export function upgradeBlockers(m: Model, to: number): QccError[] {
  const from = m.opset;
  const out: QccError[] = [];
  const facts = new LocalFacts();
  for (const f of m.functions) {
    for (const o of (f.opset_import as { domain?: string; version?: number }[] | undefined) ?? []) {
      const d = o.domain ?? '';
      if ((d === '' || d === 'ai.onnx') && (o.version ?? 0) !== to) out.push(new QccError('E_UNSUPPORTED', `model-local function '${String(f.name)}' imports ai.onnx opset ${o.version}: its body is not converted`));
    }
  }
  for (const g of graphsOf(m.graph)) {
    for (const n of g.nodes()) {
      if (!isDefault(n)) continue;
      let op = n.opType;
      if (!HISTORY[op]) {
        out.push(new QccError('E_UNSUPPORTED', `cannot convert ${op} from opset ${from} to ${to}: unknown ai.onnx op`, { node: n.name }));
        continue;
      }
      for (let v = from + 1; v <= to; v++) {
        const a = adapterFor(op, v);
        if (a === undefined) {
          out.push(new QccError('E_UNSUPPORTED', `cannot convert ${op} from opset ${from} to ${to}: its change at opset ${v} has no converter`, { node: n.name }));
          break;
        }
        if (a !== 'none') {
          const why = a.check?.(n, facts);
          if (why) {
            out.push(new QccError('E_UNSUPPORTED', `cannot convert ${op} from opset ${from} to ${to}: ${why}`, { node: n.name }));
            break;
          }
        }
        const succ = SUCCESSOR[op];
        if (succ && succ.at === v) op = succ.op;
      }
    }
  }
  return out;
}

export const upgradeOpset = definePass({
  name: 'upgrade-opset',
  summary: 'Convert the ai.onnx opset upward (attributes that became inputs, Softmax semantics, deprecated ops)',
  mode: 'in-place',
  options: [{ name: 'to', type: 'number', describe: 'target ai.onnx opset version', default: MAX_OPSET }],
  run(m, cx) {
    const to = passOption<number>(upgradeOpset, cx, 'to');
    const from = m.opset;
    if (!Number.isInteger(to) || to > MAX_OPSET) throw new QccError('E_PASS_OPTION', `upgrade-opset --to ${to}: qcc converts up to opset ${MAX_OPSET}`);
    if (from === 0) throw new QccError('E_MODEL_OPSET', 'the model imports no ai.onnx opset');
    if (to < from) throw new QccError('E_UNSUPPORTED', `cannot convert from opset ${from} down to ${to}: only upward conversion is supported`);
    const rw = new Rewriter(m.graph);
    const stats: Record<string, number> = { from, to, rewritten: 0 };
    if (to === from) return { model: m, changed: false, stats };
    const blockers = upgradeBlockers(m, to);
    if (blockers.length) {
      const first = blockers[0]!;
      const more = blockers.length > 1 ? ` (and ${blockers.length - 1} more: ${[...new Set(blockers.slice(1).map((b) => b.loc.node ?? ''))].slice(0, 5).join(', ')})` : '';
      throw new QccError('E_UNSUPPORTED', `${first.message}${more}`, first.loc);
    }
    const facts = new LocalFacts();
    for (let v = from + 1; v <= to; v++) {
      const cx2: StepCtx = { rw, facts, v };
      for (const g of [...graphsOf(m.graph)]) {
        for (const n of g.nodeArray()) {
          if (!isDefault(n) || n.graph !== g) continue;
          const a = adapterFor(n.opType, v);
          if (a === 'none') continue;
          if (a === undefined) throw new QccError('E_UNSUPPORTED', `cannot convert ${n.opType} from opset ${from} to ${to}: its change at opset ${v} has no converter`, { node: n.name });
          if (a === COMPATIBLE) continue;
          const why = a.check?.(n, facts);
          if (why) throw new QccError('E_UNSUPPORTED', `cannot convert ${n.opType} from opset ${from} to ${to}: ${why}`, { node: n.name });
          a.apply(n, cx2);
          stats.rewritten!++;
        }
      }
    }
    rw.setOpset(m, to);
    const ir = minIrVersion(to);
    if (Number(m.irVersion) < ir) m.irVersion = ir;
    return { model: m, changed: true, stats };
  },
  ensures(m) {
    for (const n of m.graph.allNodes()) {
      if (!isDefault(n)) continue;
      if (n.opType === 'Upsample' || n.opType === 'Scatter') return `deprecated ${n.opType} (${n.name}) is left`;
    }
    return true;
  },
});
