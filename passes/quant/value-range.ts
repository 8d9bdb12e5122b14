// Value ranges known from the graph itself: small constants, the window a Relu or Clip fixes, and tensors that
// cannot be negative. Target-neutral: the planners (targets/shared-plan.ts) read them for range clamps, calibration
// to skip the minimum of tensors that are non-negative by construction.

import { isSubByte } from '../../ir/dtype.js';
import type { Node, Value } from '../../ir/ir.js';
import { f16BitsToF32 } from '../../ir/numerics.js';

/** Numeric elements of a small constant (initializer) tensor, undefined otherwise (and for packed sub-byte types). f16/bf16 are decoded; 8-bit float types give their codes. */
export function constValues(v: Value | null | undefined, max = 4096): number[] | undefined {
  const t = v?.initializer;
  if (!t || t.size > max || t.dtype === 'string' || isSubByte(t.dtype)) return undefined;
  const a = t.typed();
  const out: number[] = [];
  for (let i = 0; i < t.size; i++) {
    const x = a[i] as number | bigint;
    out.push(t.dtype === 'f16' ? f16BitsToF32(Number(x)) : t.dtype === 'bf16' ? bf16(Number(x)) : Number(x));
  }
  return out;
}

function bf16(bits: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, bits << 16);
  return b.getFloat32(0);
}

export function constScalar(v: Value | null | undefined): number | undefined {
  const c = constValues(v, 1);
  return c && c.length === 1 ? c[0] : undefined;
}

/** The [min, max] of a Relu or a Clip with constant bounds (undefined for other nodes or computed bounds). */
export function clampOf(n: Node | null | undefined): { min?: number; max?: number } | undefined {
  if (!n) return undefined;
  switch (n.domain === '' || n.domain === 'ai.onnx' ? n.opType : '') {
    case 'Relu':
      return { min: 0 };
    case 'Clip': {
      if (n.opsetVersion > 0 && n.opsetVersion < 11) {
        return { min: n.attrFloat('min', -3.4028234663852886e38), max: n.attrFloat('max', 3.4028234663852886e38) };
      }
      const lo = n.inputs[1];
      const hi = n.inputs[2];
      const min = lo ? constScalar(lo) : undefined;
      const max = hi ? constScalar(hi) : undefined;
      if ((lo && min === undefined) || (hi && max === undefined)) return undefined;
      return { ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) };
    }
    default:
      return undefined;
  }
}

/**
 * Whether every element of `v` is >= 0 by construction: a Relu or a Clip from >= 0 (clampOf), Sigmoid,
 * HardSigmoid, Softplus, Abs, and pooling or Identity of such a tensor.
 */
export function knownNonNegative(v: Value, depth = 0): boolean {
  const p = v.producer;
  if (!p || depth > 32 || p.outputs[0] !== v || (p.domain !== '' && p.domain !== 'ai.onnx')) return false;
  switch (p.opType) {
    case 'Relu':
    case 'Clip': {
      const lo = clampOf(p)?.min;
      return lo !== undefined && lo >= 0;
    }
    case 'Sigmoid':
    case 'HardSigmoid':
    case 'Softplus':
    case 'Abs':
      return true;
    case 'MaxPool':
    case 'AveragePool':
    case 'GlobalMaxPool':
    case 'GlobalAveragePool':
    case 'Identity':
      return knownNonNegative(p.inputs[0]!, depth + 1);
    default:
      return false;
  }
}
