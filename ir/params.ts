// countParams(): learnable parameters of a model (what PyTorch's sum(p.numel()) counts), for inspect and the zoo.

import { isFloat, type DType } from './dtype.js';
import type { Graph, Model, Value } from './ir.js';

/** Quantization parameter inputs (scales, zero points) of quantized ops: not parameters. */
const QPARAM_INPUTS: Readonly<Record<string, readonly number[]>> = {
  QuantizeLinear: [1, 2],
  DequantizeLinear: [1, 2],
  QLinearConv: [1, 2, 4, 5, 6, 7],
  QLinearMatMul: [1, 2, 4, 5, 6, 7],
  ConvInteger: [2, 3],
  MatMulInteger: [2, 3],
};

function isAllOnes(v: Value): boolean {
  const t = v.initializer!;
  if (t.dtype !== 'f32' && t.dtype !== 'f64') return false;
  const a = t.typed() as Float32Array | Float64Array;
  for (let i = 0; i < a.length; i++) if (a[i] !== 1) return false;
  return true;
}

/** Counts one initializer unless it is a constant, a statistic or a quantization parameter. */
function isParam(v: Value): boolean {
  const t = v.initializer!;
  if (t.dims.length === 0) return false; // scalars: constants (0.5, sqrt 2, Clip bounds, attention scale)
  const d: DType = t.dtype;
  const wide = d === 'i32' || d === 'u32' || d === 'i64' || d === 'u64';
  if (d === 'bool' || d === 'string' || d === 'c64' || d === 'c128') return false;
  if (!isFloat(d) && wide && !v.uses.some((u) => u.node.opType === 'QLinearConv' && u.index === 8)) return false; // shapes, axes, indices
  for (const u of v.uses) {
    const n = u.node;
    if (n.op === 'BatchNormalization' && (u.index === 3 || u.index === 4)) return false; // running statistics
    if (n.domain === '' && QPARAM_INPUTS[n.opType]?.includes(u.index)) return false;
    // LayerNorm without affine (elementwise_affine=False): Scale is a constant of ones and there is no B
    if (n.op === 'LayerNormalization' && u.index === 1 && !n.input(2) && isAllOnes(v)) return false;
  }
  return true;
}

function countGraph(g: Graph, seen: Set<Value>): number {
  let total = 0;
  for (const v of g.initializers) {
    if (seen.has(v)) continue;
    seen.add(v);
    if (isParam(v)) total += v.initializer!.size;
  }
  for (const n of g.nodes()) for (const sg of n.subgraphs()) total += countGraph(sg, seen);
  return total;
}

/**
 * Parameter count of a model: elements of its initializers (subgraphs included), excluding scalars, integer
 * shape/axis/index tensors, BatchNormalization running mean/variance, quantization scales and zero points, and the
 * all-ones Scale of an affine-free LayerNormalization. Matches PyTorch's sum(p.numel() for p in parameters()) for
 * the zoo (and for models torch.onnx exports without constant folding into weights).
 */
export function countParams(model: Model): number {
  return countGraph(model.graph, new Set());
}
