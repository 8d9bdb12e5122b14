// Shape and dtype inference: per-op rules at the model's opset, plus partial evaluation of small int shape tensors.
//
// Design: one forward walk in topological order (subgraphs before the node that holds them). Each known op has a
// rule in RULES that maps input types (and, where the op needs them, constant input values) to output types.
// Small integer tensors (Shape -> Gather -> Unsqueeze -> Concat chains, Constant nodes, initializers) are tracked as
// partially known element lists, where an element is a number or a SymDim, so that `Reshape(x, Concat(Shape(x)[0],
// -1))` resolves to [N, ...] with the symbolic batch kept. No symbolic arithmetic: a dim that cannot be computed is
// `{param: null}`, never a guess. Provably inconsistent static shapes throw E_SHAPE_INFERENCE at the node.

import { DTYPES, dtypeFromOnnx, isFloat, type DType } from './dtype.js';
import { QccError } from './errors.js';
import {
  decodeUtf8,
  int64ToNumber,
  type Dim,
  type Graph,
  type KnownOp,
  type Model,
  type Msg,
  type Node,
  type Shape,
  type SymDim,
  Tensor,
  type TensorType,
  type Value,
  type ValueType,
} from './ir.js';
import { Rewriter } from './rewriter.js';

export interface InferShapesOptions {
  /**
   * Fill dims (and ranks) inference cannot compute from the value's declared type. Default true. Turn it off after
   * changing input shapes, when old value_info may be stale.
   */
  keepDeclared?: boolean;
}

export interface InferShapesResult {
  /** Node outputs whose type was computed by a rule. */
  inferred: number;
  /** Op types without a rule (sorted, `domain.Op` outside the default domain); their outputs keep declared types. */
  unknownOps: string[];
}

/** Infers dtype and shape of every node output in the model (and its subgraphs), setting them with `rw.setType`. */
export function inferShapes(model: Model, rw?: Rewriter, opts: InferShapesOptions = {}): InferShapesResult {
  const cx = new Ctx(rw ?? new Rewriter(model.graph), model.opset || 21, opts.keepDeclared ?? true);
  cx.graph(model.graph);
  return { inferred: cx.inferred, unknownOps: [...cx.unknown].sort() };
}

// ---------------------------------------------------------------------------------------------------------------
// Partially known values

/** An element of a partially known tensor: a number, or a SymDim (named: equals that dim; `param: null`: unknown). */
type Elem = number | SymDim;

const UNK: SymDim = Object.freeze({ param: null });
/** Largest tensor whose elements are tracked. */
const MAX_TRACKED = 4096;
/** Slice/Shape ends at least this large mean "to the end". */
const BIG = 2 ** 31 - 1;

type Out = ValueType | undefined;
type Rule = (n: Node, cx: Ctx) => readonly Out[];

class Ctx {
  inferred = 0;
  readonly unknown = new Set<string>();
  /** Elements of small tensors; null: looked at and not computable; a Tensor: constant, decoded when first asked. */
  private readonly vals = new Map<Value, readonly Elem[] | Tensor | null>();
  /** Opset of the node being inferred. */
  ver = 0;

  constructor(
    readonly rw: Rewriter,
    readonly defaultOpset: number,
    readonly keepDeclared: boolean,
  ) {}

  graph(g: Graph): void {
    for (const n of g.nodes()) {
      for (const sg of n.subgraphs()) this.graph(sg);
      this.node(n);
    }
  }

  node(n: Node): void {
    const rule = n.op === 'opaque' ? undefined : RULES[n.op];
    if (!rule) {
      this.unknown.add(n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType);
      return;
    }
    this.ver = n.opsetVersion || this.defaultOpset;
    let outs: readonly Out[];
    try {
      outs = rule(n, this);
    } catch (e) {
      if (e instanceof QccError) throw e;
      throw new QccError('E_SHAPE_INFERENCE', `shape inference failed for ${n.opType}: ${(e as Error)?.message ?? String(e)}`, { node: n.name }, { cause: e });
    }
    n.outputs.forEach((v, i) => {
      const t = outs[i];
      if (!v || t === undefined) return;
      const merged = t.kind === 'tensor' ? mergeType(v.type, t, this.keepDeclared) : t;
      if (!typeEquals(v.type, merged)) this.rw.setType(v, merged);
      this.inferred++;
    });
    try {
      evalNode(n, this);
    } catch (e) {
      if (e instanceof QccError) throw e;
      throw new QccError('E_SHAPE_INFERENCE', `evaluating ${n.opType} failed: ${(e as Error)?.message ?? String(e)}`, { node: n.name }, { cause: e });
    }
  }

  /** Elements of v when known (constant, or computed from shapes), else undefined. */
  value(v: Value | undefined | null): readonly Elem[] | undefined {
    if (!v) return undefined;
    const c = this.vals.get(v);
    if (c !== undefined && !(c instanceof Tensor)) return c ?? undefined;
    let r: readonly Elem[] | null = null;
    if (c instanceof Tensor) r = tensorElems(c);
    else if (v.initializer) r = tensorElems(v.initializer);
    this.vals.set(v, r);
    return r ?? undefined;
  }

  /** Elements of v when all are known numbers. */
  ints(v: Value | undefined | null): number[] | undefined {
    const e = this.value(v);
    if (!e || !e.every((x) => typeof x === 'number')) return undefined;
    return e as number[];
  }

  /** A constant's data, decoded only if a rule asks for its elements. */
  setConstant(v: Value | null | undefined, t: Tensor): void {
    if (v && t.size <= MAX_TRACKED) this.vals.set(v, t);
  }

  setValue(v: Value | null | undefined, e: readonly Elem[] | undefined): void {
    if (!v || !e) return;
    const n = staticSize(v.shape);
    if (n === undefined || n !== e.length || n > MAX_TRACKED) return;
    this.vals.set(v, e);
  }
}

function staticSize(s: Shape | undefined): number | undefined {
  if (s === undefined) return undefined;
  let n = 1;
  for (const d of s) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

/** Numeric elements of a small constant tensor (int, bool, f32, f64), else null. */
function tensorElems(t: Tensor): Elem[] | null {
  if (t.size > MAX_TRACKED) return null;
  switch (t.dtype) {
    case 'f32':
    case 'f64':
    case 'i8':
    case 'u8':
    case 'i16':
    case 'u16':
    case 'i32':
    case 'u32':
    case 'i64':
    case 'u64':
    case 'bool': {
      const a = t.typed();
      const out: number[] = new Array(t.size);
      for (let i = 0; i < t.size; i++) out[i] = Number(a[i]);
      return out;
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Type helpers

function tt(dtype: DType | undefined, shape: Shape | undefined): TensorType {
  return { kind: 'tensor', dtype, shape };
}

function dimEq(a: Dim, b: Dim): boolean {
  return typeof a === 'number' || typeof b === 'number' ? a === b : a.param === b.param;
}

function typeEquals(a: ValueType | undefined, b: ValueType): boolean {
  if (a === b) return true;
  if (!a || a.kind !== 'tensor' || b.kind !== 'tensor') return false;
  if (a.dtype !== b.dtype) return false;
  if (a.shape === undefined || b.shape === undefined) return a.shape === b.shape;
  return a.shape.length === b.shape.length && a.shape.every((d, i) => dimEq(d, b.shape![i]!));
}

/** Inferred facts win; unknown dims (and an unknown rank or dtype) are filled from the declared type. */
function mergeType(old: ValueType | undefined, inf: TensorType, keepDeclared: boolean): TensorType {
  if (!keepDeclared || !old || old.kind !== 'tensor') return inf;
  const dtype = inf.dtype ?? old.dtype;
  let shape = inf.shape;
  if (shape === undefined) shape = old.shape;
  else if (old.shape !== undefined && old.shape.length === shape.length) {
    const os = old.shape;
    shape = shape.map((d, i) => (typeof d !== 'number' && d.param === null ? os[i]! : d));
  }
  return tt(dtype, shape);
}

function fail(n: Node, msg: string): never {
  throw new QccError('E_SHAPE_INFERENCE', `${n.opType} '${n.name}': ${msg}`, { node: n.name });
}

const shp = (n: Node, i: number): Shape | undefined => n.input(i)?.shape;
const dt = (n: Node, i: number): DType | undefined => n.input(i)?.dtype;
const unknownDims = (r: number): Dim[] => Array.from({ length: r }, () => UNK);
const fmt = (s: Shape): string => `[${s.map((d) => (typeof d === 'number' ? d : (d.param ?? '?'))).join(',')}]`;

function normAxis(n: Node, a: number, rank: number): number {
  const r = a < 0 ? a + rank : a;
  if (r < 0 || r >= rank) fail(n, `axis ${a} is out of range for rank ${rank}`);
  return r;
}

/** Product of dims: a number when static; the one SymDim when every other factor is 1; else unknown. */
function dimProduct(ds: readonly Dim[]): Dim {
  let p = 1;
  let s: SymDim | undefined;
  for (const d of ds) {
    if (typeof d === 'number') p *= d;
    else if (s === undefined && d.param !== null) s = d;
    else return p === 0 ? 0 : UNK;
  }
  if (s === undefined) return p;
  return p === 1 ? s : p === 0 ? 0 : UNK;
}

/** Multidirectional (numpy) broadcast of two dims. */
function bdim(n: Node, a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number') {
    if (typeof b === 'number' && a !== b) fail(n, `cannot broadcast dims ${a} and ${b}`);
    return a;
  }
  if (typeof b === 'number') return b;
  return a.param !== null && a.param === b.param ? a : UNK;
}

function broadcast(n: Node, shapes: readonly (Shape | undefined)[]): Shape | undefined {
  let out: Dim[] | undefined;
  for (const s of shapes) {
    if (s === undefined) return undefined;
    if (out === undefined) {
      out = [...s];
      continue;
    }
    const r = Math.max(out.length, s.length);
    const next: Dim[] = new Array(r);
    for (let i = 0; i < r; i++) {
      const a = out[i - (r - out.length)] ?? 1;
      const b = s[i - (r - s.length)] ?? 1;
      next[i] = bdim(n, a, b);
    }
    out = next;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Rules

const same: Rule = (n) => [tt(dt(n, 0), shp(n, 0))];

const binary: Rule = (n, cx) => {
  // opsets < 7: `broadcast=1` broadcasts B onto A (suffix or `axis` aligned), so the result has A's shape
  if (cx.ver < 7 && n.attrInt('broadcast', 0) === 1) return [tt(dt(n, 0), shp(n, 0))];
  const shapes = n.inputs.map((v) => v?.shape);
  return [tt(dt(n, 0), broadcast(n, shapes))];
};

const compare: Rule = (n, cx) => {
  if (cx.ver < 7 && n.attrInt('broadcast', 0) === 1) return [tt('bool', shp(n, 0))];
  return [tt('bool', broadcast(n, [shp(n, 0), shp(n, 1)]))];
};

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

function window(n: Node, spatial: number, kernel: number[] | undefined): Window | undefined {
  const k = n.attrInts('kernel_shape') ?? kernel;
  if (k === undefined) return undefined;
  if (k.length !== spatial) fail(n, `kernel_shape has ${k.length} dims, input has ${spatial} spatial dims`);
  return {
    kernel: k,
    strides: n.attrInts('strides') ?? k.map(() => 1),
    dilations: n.attrInts('dilations') ?? k.map(() => 1),
    pads: n.attrInts('pads') ?? k.map(() => 0).concat(k.map(() => 0)),
    autoPad: n.attrString('auto_pad', 'NOTSET'),
  };
}

/** Output size of a sliding window over `inp` (Conv and pools). */
function windowDim(w: Window, i: number, inp: Dim, ceilMode: boolean): Dim {
  if (typeof inp !== 'number') return UNK;
  const s = w.strides[i] ?? 1;
  const dk = ((w.kernel[i] ?? 1) - 1) * (w.dilations[i] ?? 1) + 1;
  if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return Math.ceil(inp / s);
  const pb = w.autoPad === 'VALID' ? 0 : (w.pads[i] ?? 0);
  const pe = w.autoPad === 'VALID' ? 0 : (w.pads[i + w.kernel.length] ?? 0);
  const span = inp + pb + pe - dk;
  if (!ceilMode) return Math.floor(span / s) + 1;
  let o = Math.ceil(span / s) + 1;
  // the last window must start inside the input or the left padding
  if ((o - 1) * s >= inp + pb) o--;
  return o;
}

/** One spatial dim of a sliding window (Conv, pools) over an input of known size: what ONNX applies there. */
export interface WindowGeometry {
  readonly stride: number;
  readonly dilation: number;
  /** Padding actually applied before and after the input (auto_pad resolved: SAME_UPPER puts the odd one at the end). */
  readonly padBegin: number;
  readonly padEnd: number;
  /** Output size (floor mode). */
  readonly out: number;
}

/** The geometry of `n`'s window (`kernel`: its spatial kernel dims) per spatial input size (undefined where unknown). */
export function windowGeometry(n: Node, kernel: number[], inp: readonly unknown[]): (WindowGeometry | undefined)[] {
  const w = window(n, kernel.length, kernel)!;
  return inp.map((L, i) => {
    if (typeof L !== 'number' || !(L > 0)) return undefined;
    const stride = w.strides[i] ?? 1;
    const dilation = w.dilations[i] ?? 1;
    const out = windowDim(w, i, L, false) as number;
    let padBegin = w.autoPad === 'VALID' ? 0 : (w.pads[i] ?? 0);
    let padEnd = w.autoPad === 'VALID' ? 0 : (w.pads[i + kernel.length] ?? 0);
    if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') {
      const total = Math.max(0, (out - 1) * stride + ((w.kernel[i] ?? 1) - 1) * dilation + 1 - L);
      padBegin = w.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      padEnd = total - padBegin;
    }
    return { stride, dilation, padBegin, padEnd, out };
  });
}

function convShape(n: Node, x: Shape | undefined, w: Shape | undefined): Shape | undefined {
  if (x === undefined) return undefined;
  if (x.length < 3) fail(n, `input rank ${x.length} < 3`);
  const spatial = x.length - 2;
  const kernel = w && w.length === x.length && w.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : undefined;
  if (w && w.length !== x.length) fail(n, `weight rank ${w.length} differs from input rank ${x.length}`);
  const group = n.attrInt('group', 1);
  if (w && typeof x[1] === 'number' && typeof w[1] === 'number' && x[1] !== w[1] * group) {
    fail(n, `input channels ${x[1]} != weight channels ${w[1]} x group ${group}`);
  }
  const win = window(n, spatial, kernel);
  const out: Dim[] = [x[0]!, w ? w[0]! : UNK];
  for (let i = 0; i < spatial; i++) out.push(win ? windowDim(win, i, x[i + 2]!, false) : UNK);
  return out;
}

const conv: Rule = (n) => [tt(dt(n, 0), convShape(n, shp(n, 0), shp(n, 1)))];
const convInteger: Rule = (n) => [tt('i32', convShape(n, shp(n, 0), shp(n, 1)))];
const qlinearConv: Rule = (n) => [tt(dt(n, 7) ?? dt(n, 0), convShape(n, shp(n, 0), shp(n, 3)))];

const convTranspose: Rule = (n) => {
  const x = shp(n, 0);
  const w = shp(n, 1);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  if (x.length < 3) fail(n, `input rank ${x.length} < 3`);
  const spatial = x.length - 2;
  const group = n.attrInt('group', 1);
  if (w && typeof x[1] === 'number' && typeof w[0] === 'number' && x[1] !== w[0]) fail(n, `input channels ${x[1]} != weight dim 0 ${w[0]}`);
  const m = w ? (typeof w[1] === 'number' ? w[1] * group : group === 1 ? w[1]! : UNK) : UNK;
  const kernel = w && w.length === x.length && w.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : undefined;
  const win = window(n, spatial, kernel);
  const outShape = n.attrInts('output_shape');
  const outPad = n.attrInts('output_padding') ?? [];
  const out: Dim[] = [x[0]!, m];
  for (let i = 0; i < spatial; i++) {
    const inp = x[i + 2]!;
    if (outShape) {
      out.push(outShape[outShape.length === spatial + 2 ? i + 2 : i] ?? UNK);
    } else if (!win || typeof inp !== 'number') {
      out.push(UNK);
    } else {
      const s = win.strides[i] ?? 1;
      const dk = ((win.kernel[i] ?? 1) - 1) * (win.dilations[i] ?? 1) + 1;
      const full = s * (inp - 1) + (outPad[i] ?? 0) + dk;
      // SAME pads toward in*stride, but padding is never negative (as onnxruntime computes it)
      if (win.autoPad === 'SAME_UPPER' || win.autoPad === 'SAME_LOWER') out.push(Math.min(full, inp * s));
      else out.push(full - (win.autoPad === 'VALID' ? 0 : (win.pads[i] ?? 0) + (win.pads[i + spatial] ?? 0)));
    }
  }
  return [tt(dtype, out)];
};

const pool: Rule = (n) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  let shape: Shape | undefined;
  if (x !== undefined) {
    if (x.length < 3) fail(n, `input rank ${x.length} < 3`);
    const win = window(n, x.length - 2, undefined);
    const ceilMode = n.attrInt('ceil_mode', 0) !== 0;
    shape = [x[0]!, x[1]!, ...x.slice(2).map((d, i) => (win ? windowDim(win, i, d, ceilMode) : UNK))];
  }
  return [tt(dtype, shape), tt('i64', shape)];
};

const globalPool: Rule = (n) => {
  const x = shp(n, 0);
  return [tt(dt(n, 0), x === undefined ? undefined : x.map((d, i) => (i < 2 ? d : 1)))];
};

function matmulShape(n: Node, a: Shape | undefined, b: Shape | undefined): Shape | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (a.length === 0 || b.length === 0) fail(n, 'MatMul operands must have rank >= 1');
  const A = a.length === 1 ? [1, a[0]!] : a;
  const B = b.length === 1 ? [b[0]!, 1] : b;
  const ka = A[A.length - 1]!;
  const kb = B[B.length - 2]!;
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) fail(n, `inner dims differ: ${fmt(a)} x ${fmt(b)}`);
  const batch = broadcast(n, [A.slice(0, -2), B.slice(0, -2)])!;
  const out = [...batch];
  if (a.length > 1) out.push(A[A.length - 2]!);
  if (b.length > 1) out.push(B[B.length - 1]!);
  return out;
}

const matmul: Rule = (n) => [tt(dt(n, 0), matmulShape(n, shp(n, 0), shp(n, 1)))];
const matmulInteger: Rule = (n) => [tt('i32', matmulShape(n, shp(n, 0), shp(n, 1)))];
const qlinearMatmul: Rule = (n) => [tt(dt(n, 7) ?? dt(n, 0), matmulShape(n, shp(n, 0), shp(n, 3)))];

const gemm: Rule = (n) => {
  const a = shp(n, 0);
  const b = shp(n, 1);
  const ta = n.attrInt('transA', 0) !== 0;
  const tb = n.attrInt('transB', 0) !== 0;
  let M: Dim = UNK;
  let N: Dim = UNK;
  let ka: Dim = UNK;
  let kb: Dim = UNK;
  if (a) {
    if (a.length !== 2) fail(n, `A has rank ${a.length}, expected 2`);
    [M, ka] = ta ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
  }
  if (b) {
    if (b.length !== 2) fail(n, `B has rank ${b.length}, expected 2`);
    [kb, N] = tb ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
  }
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) fail(n, `inner dims differ: A ${fmt(a!)} B ${fmt(b!)}`);
  return [tt(dt(n, 0), [M, N])];
};

const batchNorm: Rule = (n) => {
  const x = shp(n, 0);
  const stat = shp(n, 1) ?? (x && x.length > 1 ? [x[1]!] : undefined);
  const sdt = dt(n, 3) ?? dt(n, 1) ?? dt(n, 0);
  return [tt(dt(n, 0), x), tt(sdt, stat), tt(sdt, stat), tt(sdt, stat), tt(sdt, stat)];
};

const layerNorm: Rule = (n) => {
  const x = shp(n, 0);
  const stash = dtypeFromOnnx(n.attrInt('stash_type', 1)) ?? 'f32';
  let stat: Shape | undefined;
  if (x) {
    const axis = normAxis(n, n.attrInt('axis', -1), x.length);
    stat = x.map((d, i) => (i < axis ? d : 1));
  }
  return [tt(dt(n, 0), x), tt(stash, stat), tt(stash, stat)];
};

const dropout: Rule = (n, cx) => {
  const x = shp(n, 0);
  return [tt(dt(n, 0), x), tt(cx.ver >= 10 ? 'bool' : dt(n, 0), x)];
};

const cast: Rule = (n) => {
  const a = n.attr('to');
  let to: DType | undefined;
  if (a?.type === 'int') to = dtypeFromOnnx(int64ToNumber(a.value));
  else if (a?.type === 'string') {
    const name = decodeUtf8(a.value).toUpperCase();
    to = (Object.keys(DTYPES) as DType[]).find((d) => DTYPES[d].onnxName === name);
  }
  return [tt(to, shp(n, 0))];
};

/** Reshape output from the target shape elements (0 copies, -1 is inferred, allowzero keeps 0). */
function reshapeTo(n: Node, x: Shape | undefined, target: readonly Elem[], allowZero: boolean): Shape {
  const out: Dim[] = [];
  let minus = -1;
  target.forEach((e, i) => {
    if (typeof e !== 'number') out.push(e);
    else if (e === 0 && !allowZero) {
      if (x && i >= x.length) fail(n, `shape element ${i} is 0 but the input has rank ${x.length}`);
      out.push(x ? x[i]! : UNK);
    } else if (e === -1) {
      if (minus >= 0) fail(n, 'more than one -1 in the target shape');
      minus = i;
      out.push(UNK);
    } else if (e < -1) fail(n, `invalid shape element ${e}`);
    else out.push(e);
  });
  if (x === undefined) return out;
  // static product and multiset of named dims of input and output (the -1 excluded)
  const count = (ds: readonly Dim[], skip: number): { p: number; syms: string[]; unknown: boolean } => {
    let p = 1;
    const syms: string[] = [];
    let unknown = false;
    ds.forEach((d, i) => {
      if (i === skip) return;
      if (typeof d === 'number') p *= d;
      else if (d.param === null) unknown = true;
      else syms.push(d.param);
    });
    return { p, syms, unknown };
  };
  const ci = count(x, -1);
  const co = count(out, minus);
  if (ci.unknown || co.unknown) return out;
  const rest = [...ci.syms];
  for (const s of co.syms) {
    const k = rest.indexOf(s);
    if (k < 0) return out; // output names a dim the input does not have: cannot relate
    rest.splice(k, 1);
  }
  if (minus >= 0) {
    if (co.p === 0) return out;
    if (rest.length === 0) {
      if (ci.p % co.p !== 0) fail(n, `cannot reshape ${fmt(x)} (${ci.p} elements) to ${fmt(out)}`);
      out[minus] = ci.p / co.p;
    } else if (rest.length === 1 && ci.p === co.p) out[minus] = { param: rest[0]! };
  } else if (rest.length === 0 && ci.p !== co.p) {
    fail(n, `cannot reshape ${fmt(x)} to ${fmt(out)}`);
  }
  return out;
}

const reshape: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (cx.ver < 5) {
    const s = n.attrInts('shape');
    return [tt(dtype, s ? reshapeTo(n, x, s, false) : undefined)];
  }
  const target = cx.value(n.input(1));
  const allowZero = n.attrInt('allowzero', 0) !== 0;
  if (target) return [tt(dtype, reshapeTo(n, x, target, allowZero))];
  const ts = shp(n, 1);
  return [tt(dtype, ts && ts.length === 1 && typeof ts[0] === 'number' ? unknownDims(ts[0]) : undefined)];
};

const transpose: Rule = (n) => {
  const x = shp(n, 0);
  if (x === undefined) return [tt(dt(n, 0), undefined)];
  const perm = n.attrInts('perm') ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length) fail(n, `perm has ${perm.length} entries for rank ${x.length}`);
  return [tt(dt(n, 0), perm.map((p) => x[normAxis(n, p, x.length)]!))];
};

const flatten: Rule = (n) => {
  const x = shp(n, 0);
  if (x === undefined) return [tt(dt(n, 0), undefined)];
  let axis = n.attrInt('axis', 1);
  if (axis < 0) axis += x.length;
  if (axis < 0 || axis > x.length) fail(n, `axis ${n.attrInt('axis', 1)} out of range for rank ${x.length}`);
  return [tt(dt(n, 0), [dimProduct(x.slice(0, axis)), dimProduct(x.slice(axis))])];
};

/** Axes from an attribute (before `inputFrom`) or from input `index`: number[], undefined when absent, null when unknown. */
function axesOf(n: Node, cx: Ctx, inputFrom: number, index: number, attrName = 'axes'): number[] | undefined | null {
  if (cx.ver < inputFrom) return n.attrInts(attrName);
  const v = n.input(index);
  if (!v) return undefined;
  return cx.ints(v) ?? null;
}

const squeeze: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  const axes = axesOf(n, cx, 13, 1);
  if (x === undefined) return [tt(dtype, undefined)];
  if (axes === null) {
    const as = shp(n, 1);
    return [tt(dtype, as && as.length === 1 && typeof as[0] === 'number' ? unknownDims(x.length - as[0]) : undefined)];
  }
  if (axes === undefined || axes.length === 0) {
    if (x.some((d) => typeof d !== 'number')) return [tt(dtype, undefined)];
    return [tt(dtype, x.filter((d) => d !== 1))];
  }
  const drop = new Set(axes.map((a) => normAxis(n, a, x.length)));
  for (const a of drop) if (typeof x[a] === 'number' && x[a] !== 1) fail(n, `cannot squeeze axis ${a} of size ${String(x[a])}`);
  return [tt(dtype, x.filter((_, i) => !drop.has(i)))];
};

const unsqueeze: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  const axes = axesOf(n, cx, 13, 1);
  if (x === undefined) return [tt(dtype, undefined)];
  if (axes === null || axes === undefined) {
    const as = shp(n, 1);
    return [tt(dtype, axes === null && as && as.length === 1 && typeof as[0] === 'number' ? unknownDims(x.length + as[0]) : undefined)];
  }
  const r = x.length + axes.length;
  const ins = new Set(axes.map((a) => normAxis(n, a, r)));
  if (ins.size !== axes.length) fail(n, 'repeated axis');
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) out.push(ins.has(i) ? 1 : x[j++]!);
  return [tt(dtype, out)];
};

const concat: Rule = (n) => {
  const shapes = n.inputs.map((v) => v?.shape);
  const dtype = n.inputs.find((v) => v?.dtype !== undefined)?.dtype;
  const known = shapes.filter((s): s is Shape => s !== undefined);
  if (known.length === 0) return [tt(dtype, undefined)];
  const r = known[0]!.length;
  for (const s of known) if (s.length !== r) fail(n, `inputs have ranks ${known.map((k) => k.length).join(', ')}`);
  const axis = normAxis(n, n.attrInt('axis', 0), r);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    if (i === axis) {
      if (known.length !== shapes.length) out.push(UNK);
      else out.push(dimSum(known.map((s) => s[i]!)));
      continue;
    }
    let d: Dim = UNK;
    for (const s of known) {
      const e = s[i]!;
      if (typeof e === 'number') {
        if (typeof d === 'number' && d !== e) fail(n, `inputs differ in dim ${i}: ${d} vs ${e}`);
        d = e;
      } else if (typeof d !== 'number' && d.param === null) d = e;
    }
    out.push(d);
  }
  return [tt(dtype, out)];
};

/** Sum of dims: static sum; a named dim plus zeros; else unknown. */
function dimSum(ds: readonly Dim[]): Dim {
  let s = 0;
  let sd: SymDim | undefined;
  for (const d of ds) {
    if (typeof d === 'number') s += d;
    else if (sd === undefined && d.param !== null) sd = d;
    else return UNK;
  }
  return sd === undefined ? s : s === 0 ? sd : UNK;
}

const split: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  const nOut = n.outputs.length;
  if (x === undefined) return n.outputs.map(() => tt(dtype, undefined));
  const axis = normAxis(n, n.attrInt('axis', 0), x.length);
  let sizes: readonly Dim[] | undefined;
  let splitv: number[] | undefined | null;
  if (cx.ver >= 13) splitv = n.input(1) ? (cx.ints(n.input(1)) ?? null) : undefined;
  else splitv = n.attrInts('split') ?? (n.input(1) ? (cx.ints(n.input(1)) ?? null) : undefined);
  const d = x[axis]!;
  if (splitv === null) sizes = n.outputs.map(() => UNK);
  else if (splitv !== undefined && splitv.length > 0) {
    if (splitv.length !== nOut) fail(n, `split has ${splitv.length} entries for ${nOut} outputs`);
    const total = splitv.reduce((a, b) => a + b, 0);
    if (typeof d === 'number' && total !== d) fail(n, `split sizes sum to ${total}, dim is ${d}`);
    sizes = splitv;
  } else {
    const parts = cx.ver >= 18 ? n.attrInt('num_outputs', nOut) : nOut;
    if (typeof d !== 'number') sizes = n.outputs.map(() => UNK);
    else {
      const chunk = Math.ceil(d / parts);
      sizes = n.outputs.map((_, i) => Math.max(0, Math.min(chunk, d - chunk * i)));
    }
  }
  return sizes.map((s) => tt(dtype, x.map((e, i) => (i === axis ? s : e))));
};

function sliceLen(dim: Dim, start: number, end: number, step: number): Dim {
  if (step === 0) return UNK;
  if (typeof dim !== 'number') return step === 1 && start === 0 && end >= BIG ? dim : UNK;
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
  } else {
    s = Math.min(Math.max(s, 0), dim - 1);
    e = Math.min(Math.max(e, -1), dim - 1);
  }
  return Math.max(0, Math.ceil((e - s) / step));
}

interface SliceSpec {
  starts: number[];
  ends: number[];
  axes: number[] | undefined;
  steps: number[] | undefined;
}

/** The slice parameters, or null when they are not known. */
function sliceSpec(n: Node, cx: Ctx): SliceSpec | null {
  if (cx.ver < 10) {
    const starts = n.attrInts('starts');
    const ends = n.attrInts('ends');
    if (!starts || !ends) return null;
    return { starts, ends, axes: n.attrInts('axes'), steps: undefined };
  }
  const starts = cx.ints(n.input(1));
  const ends = cx.ints(n.input(2));
  const axes = n.input(3) ? cx.ints(n.input(3)) : undefined;
  const steps = n.input(4) ? cx.ints(n.input(4)) : undefined;
  if (!starts || !ends || (n.input(3) && !axes) || (n.input(4) && !steps)) return null;
  return { starts, ends, axes, steps };
}

const slice: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  const spec = sliceSpec(n, cx);
  if (spec === null) {
    const axes = cx.ver >= 10 && n.input(3) ? cx.ints(n.input(3)) : cx.ver < 10 ? n.attrInts('axes') : undefined;
    if (!axes) return [tt(dtype, unknownDims(x.length))];
    const touched = new Set(axes.map((a) => normAxis(n, a, x.length)));
    return [tt(dtype, x.map((d, i) => (touched.has(i) ? UNK : d)))];
  }
  const out = [...x];
  const axes = spec.axes ?? spec.starts.map((_, i) => i);
  if (spec.starts.length !== axes.length || spec.ends.length !== axes.length) fail(n, 'starts, ends and axes differ in length');
  axes.forEach((a, i) => {
    const ax = normAxis(n, a, x.length);
    out[ax] = sliceLen(x[ax]!, spec.starts[i]!, spec.ends[i]!, spec.steps?.[i] ?? 1);
  });
  return [tt(dtype, out)];
};

const gather: Rule = (n) => {
  const x = shp(n, 0);
  const idx = shp(n, 1);
  const dtype = dt(n, 0);
  if (x === undefined || idx === undefined) return [tt(dtype, undefined)];
  const axis = normAxis(n, n.attrInt('axis', 0), x.length);
  return [tt(dtype, [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)])];
};

const expand: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  const target = cx.value(n.input(1));
  if (target) return [tt(dtype, broadcast(n, [x, target]))];
  const ts = shp(n, 1);
  if (x === undefined || !ts || ts.length !== 1 || typeof ts[0] !== 'number') return [tt(dtype, undefined)];
  const r = Math.max(x.length, ts[0]);
  return [tt(dtype, Array.from({ length: r }, (_, i) => {
    const d = x[i - (r - x.length)];
    return typeof d === 'number' && d !== 1 ? d : UNK;
  }))];
};

const tile: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  const reps = cx.ver < 6 ? undefined : cx.ints(n.input(1));
  if (!reps) return [tt(dtype, unknownDims(x.length))];
  if (reps.length !== x.length) fail(n, `repeats has ${reps.length} entries for rank ${x.length}`);
  return [tt(dtype, x.map((d, i) => (typeof d === 'number' ? d * reps[i]! : reps[i] === 1 ? d : UNK)))];
};

const pad: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  const pads = cx.ver < 11 ? (n.attrInts('pads') ?? n.attrInts('paddings')) : cx.ints(n.input(1));
  const axes = cx.ver >= 18 && n.input(3) ? cx.ints(n.input(3)) : x.map((_, i) => i);
  if (!pads || !axes) return [tt(dtype, unknownDims(x.length))];
  if (pads.length !== 2 * axes.length) fail(n, `pads has ${pads.length} entries for ${axes.length} axes`);
  const out = [...x];
  axes.forEach((a, i) => {
    const ax = normAxis(n, a, x.length);
    const d = x[ax]!;
    const p = pads[i]! + pads[i + axes.length]!;
    out[ax] = typeof d === 'number' ? d + p : p === 0 ? d : UNK;
  });
  return [tt(dtype, out)];
};

/** floor(in * scale) as ORT computes it: float32 product of the dim and the float32 scale. */
function scaleDim(d: Dim, s: Elem): Dim {
  if (typeof d !== 'number' || typeof s !== 'number') return s === 1 ? d : UNK;
  return Math.floor(Math.fround(Math.fround(d) * Math.fround(s)));
}

function resizeShape(n: Node, x: Shape, scales: readonly Elem[] | undefined, sizes: readonly Elem[] | undefined, axesAttr: number[] | undefined, policy: string): Shape {
  const axes = (axesAttr ?? x.map((_, i) => i)).map((a) => normAxis(n, a, x.length));
  const out = [...x];
  if (sizes && sizes.length > 0) {
    if (sizes.length !== axes.length) fail(n, `sizes has ${sizes.length} entries for ${axes.length} axes`);
    if (policy === 'not_larger' || policy === 'not_smaller') {
      const ratios = axes.map((a, i) => {
        const d = x[a]!;
        const s = sizes[i]!;
        return typeof d === 'number' && typeof s === 'number' ? s / d : undefined;
      });
      if (ratios.some((r) => r === undefined)) return out.map((d, i) => (axes.includes(i) ? UNK : d));
      const r = policy === 'not_larger' ? Math.min(...(ratios as number[])) : Math.max(...(ratios as number[]));
      for (const a of axes) out[a] = Math.floor(r * (x[a] as number) + 0.5);
      return out;
    }
    axes.forEach((a, i) => (out[a] = sizes[i]!));
    return out;
  }
  if (scales && scales.length > 0) {
    if (scales.length !== axes.length) fail(n, `scales has ${scales.length} entries for ${axes.length} axes`);
    axes.forEach((a, i) => (out[a] = scaleDim(x[a]!, scales[i]!)));
    return out;
  }
  return out.map((d, i) => (axes.includes(i) ? UNK : d));
}

/** A tensor input is given but empty (opset-11 Resize passes an empty scales when sizes is used). */
function isEmptyInput(v: Value | undefined): boolean {
  return v !== undefined && v.shape !== undefined && v.shape.some((d) => d === 0);
}

const resize: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  let scalesV: Value | undefined;
  let sizesV: Value | undefined;
  if (cx.ver < 11) scalesV = n.input(1);
  else {
    scalesV = n.input(2);
    sizesV = n.input(3);
  }
  if (isEmptyInput(scalesV)) scalesV = undefined;
  if (isEmptyInput(sizesV)) sizesV = undefined;
  const scales = cx.value(scalesV);
  const sizes = cx.value(sizesV);
  if ((scalesV && !scales && !sizesV) || (sizesV && !sizes)) return [tt(dtype, unknownDims(x.length))];
  const axes = cx.ver >= 18 ? n.attrInts('axes') : undefined;
  return [tt(dtype, resizeShape(n, x, sizes ? undefined : scales, sizes, axes, cx.ver >= 18 ? n.attrString('keep_aspect_ratio_policy', 'stretch') : 'stretch'))];
};

const upsample: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  if (x === undefined) return [tt(dtype, undefined)];
  let scales: readonly Elem[] | undefined;
  if (cx.ver < 7) scales = [1, 1, n.attrFloat('height_scale', 1), n.attrFloat('width_scale', 1)];
  else if (cx.ver < 9) scales = n.attrFloats('scales');
  else scales = cx.value(n.input(1));
  if (!scales) return [tt(dtype, unknownDims(x.length))];
  return [tt(dtype, resizeShape(n, x, scales, undefined, undefined, 'stretch'))];
};

const reduce: Rule = (n, cx) => {
  const x = shp(n, 0);
  const dtype = dt(n, 0);
  const axes = axesOf(n, cx, n.opType === 'ReduceSum' ? 13 : 18, 1);
  const keep = n.attrInt('keepdims', 1) !== 0;
  if (x === undefined) return [tt(dtype, undefined)];
  if (axes === null) return [tt(dtype, keep ? x.map((d) => (d === 1 ? 1 : UNK)) : undefined)];
  let red: Set<number>;
  if (axes === undefined || axes.length === 0) {
    if (n.attrInt('noop_with_empty_axes', 0) !== 0) return [tt(dtype, x)];
    red = new Set(x.map((_, i) => i));
  } else red = new Set(axes.map((a) => normAxis(n, a, x.length)));
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (!red.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return [tt(dtype, out)];
};

const shapeOp: Rule = (n, cx) => {
  const x = shp(n, 0);
  if (x === undefined) return [tt('i64', [UNK])];
  const [s, e] = shapeRange(n, cx, x.length);
  return [tt('i64', [Math.max(0, e - s)])];
};

function shapeRange(n: Node, cx: Ctx, r: number): [number, number] {
  if (cx.ver < 15) return [0, r];
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  return [clamp(n.attrInt('start', 0)), clamp(n.attrInt('end', r))];
}

function constantTensor(n: Node): { dtype: DType | undefined; dims: number[]; elems?: readonly Elem[]; tensor?: Tensor } | undefined {
  for (const [k, a] of n.attrs) {
    switch (k) {
      case 'value':
        if (a.type === 'tensor') return { dtype: a.value.dtype, dims: [...a.value.dims], tensor: a.value };
        break;
      case 'value_float':
        if (a.type === 'float' || a.type === 'int') return { dtype: 'f32', dims: [], elems: [Math.fround(int64ToNumber(a.value))] };
        break;
      case 'value_floats':
        if (a.type === 'floats') return { dtype: 'f32', dims: [a.value.length], elems: a.value.map(Math.fround) };
        break;
      case 'value_int':
        if (a.type === 'int') return { dtype: 'i64', dims: [], elems: [int64ToNumber(a.value)] };
        break;
      case 'value_ints':
        if (a.type === 'ints') return { dtype: 'i64', dims: [a.value.length], elems: a.value.map(int64ToNumber) };
        break;
      case 'value_string':
        return { dtype: 'string', dims: [] };
      case 'value_strings':
        if (a.type === 'strings') return { dtype: 'string', dims: [a.value.length] };
        break;
      case 'sparse_value':
        if (a.type === 'sparse_tensor') {
          const m = a.value as Msg;
          const dims = ((m.dims as (number | bigint)[] | undefined) ?? []).map(int64ToNumber);
          const code = ((m.values as Msg | undefined)?.data_type as number | undefined) ?? 0;
          return { dtype: dtypeFromOnnx(code), dims };
        }
        break;
    }
  }
  return undefined;
}

const constant: Rule = (n) => {
  const c = constantTensor(n);
  return [c ? tt(c.dtype, c.dims) : tt(undefined, undefined)];
};

const constantOfShape: Rule = (n, cx) => {
  const dtype = n.attrTensor('value')?.dtype ?? 'f32';
  const s = cx.value(n.input(0));
  if (s) {
    for (const e of s) if (typeof e === 'number' && e < 0) fail(n, `negative dim ${e}`);
    return [tt(dtype, s)];
  }
  const is = shp(n, 0);
  return [tt(dtype, is && is.length === 1 && typeof is[0] === 'number' ? unknownDims(is[0]) : undefined)];
};

function rangeCount(dtype: DType | undefined, start: number, limit: number, delta: number): number {
  const diff = dtype === 'f32' ? Math.fround(limit - start) : limit - start;
  return Math.max(0, Math.ceil(diff / delta));
}

const range: Rule = (n, cx) => {
  const dtype = dt(n, 0);
  const [a, b, c] = [cx.ints(n.input(0)), cx.ints(n.input(1)), cx.ints(n.input(2))];
  if (!a || !b || !c || a.length !== 1 || b.length !== 1 || c.length !== 1) return [tt(dtype, [UNK])];
  if (c[0] === 0) fail(n, 'delta is 0');
  return [tt(dtype, [rangeCount(dtype, a[0]!, b[0]!, c[0]!)])];
};

const where: Rule = (n) => [tt(dt(n, 1) ?? dt(n, 2), broadcast(n, [shp(n, 0), shp(n, 1), shp(n, 2)]))];

const prelu: Rule = (n) => [tt(dt(n, 0), shp(n, 0))];

const quantize: Rule = (n) => {
  const od = n.attrInt('output_dtype', 0);
  const dtype = (od !== 0 ? dtypeFromOnnx(od) : undefined) ?? dt(n, 2) ?? 'u8';
  return [tt(dtype, shp(n, 0))];
};

const dequantize: Rule = (n) => {
  const od = n.attrInt('output_dtype', 0);
  return [tt((od !== 0 ? dtypeFromOnnx(od) : undefined) ?? dt(n, 1) ?? 'f32', shp(n, 0))];
};

const identity: Rule = (n) => {
  const t = n.input(0)?.type;
  if (t?.kind === 'other') return [t];
  return [tt(dt(n, 0), shp(n, 0))];
};

/** The per-op rules. Ops without one keep their declared output types and are reported as unknown. */
const RULES: { readonly [K in KnownOp]?: Rule } = {
  Conv: conv,
  ConvTranspose: convTranspose,
  ConvInteger: convInteger,
  QLinearConv: qlinearConv,
  Gemm: gemm,
  MatMul: matmul,
  MatMulInteger: matmulInteger,
  QLinearMatMul: qlinearMatmul,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  Relu: same,
  Clip: same,
  Sigmoid: same,
  HardSigmoid: same,
  HardSwish: same,
  Gelu: same,
  Erf: same,
  Tanh: same,
  Softmax: same,
  LeakyRelu: same,
  PRelu: prelu,
  Sqrt: same,
  Neg: same,
  Abs: same,
  Exp: same,
  Log: same,
  Reciprocal: same,
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Pow: binary,
  Max: binary,
  Min: binary,
  Equal: compare,
  Where: where,
  Reshape: reshape,
  Transpose: transpose,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  Expand: expand,
  Tile: tile,
  Pad: pad,
  MaxPool: pool,
  AveragePool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  Resize: resize,
  Upsample: upsample,
  ReduceMean: reduce,
  ReduceSum: reduce,
  ReduceMax: reduce,
  ReduceMin: reduce,
  ReduceProd: reduce,
  ReduceL2: reduce,
  Cast: cast,
  Shape: shapeOp,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Identity: identity,
  Dropout: dropout,
  Range: range,
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
};

/** Op types (default domain) that have an inference rule. */
export const SHAPE_INFERENCE_OPS: readonly KnownOp[] = Object.keys(RULES) as KnownOp[];

// ---------------------------------------------------------------------------------------------------------------
// Partial evaluation of small tensors (shape arithmetic)

function flatCopy(n: Node, cx: Ctx): void {
  cx.setValue(n.output(0), cx.value(n.input(0)));
}

/** Maps flat output indices to flat input indices under numpy broadcasting (static shapes). */
function bcastIndexer(out: readonly number[], inp: readonly number[]): (i: number) => number {
  const r = out.length;
  const strides: number[] = new Array(r).fill(0);
  let acc = 1;
  for (let k = inp.length - 1; k >= 0; k--) {
    const oi = k + (r - inp.length);
    strides[oi] = inp[k] === 1 ? 0 : acc;
    acc *= inp[k]!;
  }
  return (i) => {
    let j = 0;
    for (let k = r - 1; k >= 0; k--) {
      const d = out[k]!;
      j += (i % d) * strides[k]!;
      i = Math.floor(i / d);
    }
    return j;
  };
}

function elementwise(n: Node, cx: Ctx, f: (xs: Elem[]) => Elem): void {
  const out = n.output(0);
  const os = out?.shape;
  const size = staticSize(os);
  if (!out || size === undefined || size > MAX_TRACKED) return;
  const ins: { e: readonly Elem[]; idx: (i: number) => number }[] = [];
  for (const v of n.inputs) {
    const e = cx.value(v);
    const s = v?.shape;
    if (!e || !s || staticSize(s) === undefined) return;
    ins.push({ e, idx: bcastIndexer(os as number[], s as number[]) });
  }
  const res: Elem[] = new Array(size);
  for (let i = 0; i < size; i++) res[i] = f(ins.map((x) => x.e[x.idx(i)]!));
  cx.setValue(out, res);
}

function arith(op: string, a: Elem, b: Elem, isInt: boolean): Elem {
  if (typeof a === 'number' && typeof b === 'number') {
    switch (op) {
      case 'Add':
        return a + b;
      case 'Sub':
        return a - b;
      case 'Mul':
        return a * b;
      case 'Div':
        return b === 0 ? UNK : isInt ? Math.trunc(a / b) : a / b;
      case 'Max':
        return Math.max(a, b);
      case 'Min':
        return Math.min(a, b);
      case 'Equal':
        return a === b ? 1 : 0;
    }
    return UNK;
  }
  switch (op) {
    case 'Add':
      return b === 0 ? a : a === 0 ? b : UNK;
    case 'Sub':
      return b === 0 ? a : UNK;
    case 'Mul':
      return b === 1 ? a : a === 1 ? b : UNK;
    case 'Div':
      return b === 1 ? a : UNK;
    case 'Max':
    case 'Min':
      return typeof a !== 'number' && typeof b !== 'number' && a.param !== null && a.param === b.param ? a : UNK;
    case 'Equal':
      return typeof a !== 'number' && typeof b !== 'number' && a.param !== null && a.param === b.param ? 1 : UNK;
  }
  return UNK;
}

function castElem(e: Elem, to: DType | undefined): Elem {
  if (to === undefined) return UNK;
  if (typeof e !== 'number') return to === 'bool' ? UNK : e;
  if (to === 'bool') return e !== 0 ? 1 : 0;
  if (isFloat(to)) return to === 'f32' ? Math.fround(e) : e;
  return Math.trunc(e);
}

function evalNode(n: Node, cx: Ctx): void {
  switch (n.op) {
    case 'Constant': {
      const c = constantTensor(n);
      if (c?.tensor) cx.setConstant(n.output(0), c.tensor);
      else if (c?.elems) cx.setValue(n.output(0), c.elems);
      return;
    }
    case 'Shape': {
      const x = shp(n, 0);
      if (x === undefined) return;
      const [s, e] = shapeRange(n, cx, x.length);
      cx.setValue(n.output(0), x.slice(s, Math.max(s, e)));
      return;
    }
    case 'Identity':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Reshape':
    case 'Flatten':
      return flatCopy(n, cx);
    case 'Cast': {
      const e = cx.value(n.input(0));
      const to = n.output(0)?.dtype;
      if (e) cx.setValue(n.output(0), e.map((x) => castElem(x, to)));
      return;
    }
    case 'Concat': {
      const out = n.output(0)?.shape;
      if (!out) return;
      const axis = n.attrInt('axis', 0);
      if (!(axis === 0 || (out.length === 1 && axis === -1) || (axis < 0 && axis + out.length === 0))) return;
      const parts: Elem[] = [];
      for (const v of n.inputs) {
        const e = cx.value(v);
        if (!e) return;
        parts.push(...e);
      }
      cx.setValue(n.output(0), parts);
      return;
    }
    case 'Gather': {
      const data = cx.value(n.input(0));
      const idx = cx.ints(n.input(1));
      const xs = shp(n, 0);
      if (!data || !idx || !isStatic(xs)) return;
      const axis = normAxis(n, n.attrInt('axis', 0), xs.length);
      const outer = xs.slice(0, axis).reduce((a, b) => a * b, 1);
      const dim = xs[axis]!;
      const inner = xs.slice(axis + 1).reduce((a, b) => a * b, 1);
      const res: Elem[] = [];
      for (let o = 0; o < outer; o++) {
        for (let j of idx) {
          if (j < 0) j += dim;
          if (j < 0 || j >= dim) fail(n, `index ${j} out of range for dim ${dim}`);
          for (let k = 0; k < inner; k++) res.push(data[(o * dim + j) * inner + k]!);
        }
      }
      cx.setValue(n.output(0), res);
      return;
    }
    case 'Slice': {
      const data = cx.value(n.input(0));
      const xs = shp(n, 0);
      if (!data || !xs || xs.length !== 1 || typeof xs[0] !== 'number') return;
      const spec = sliceSpec(n, cx);
      if (!spec || spec.starts.length !== 1) return;
      const dim = xs[0];
      const step = spec.steps?.[0] ?? 1;
      const len = sliceLen(dim, spec.starts[0]!, spec.ends[0]!, step);
      if (typeof len !== 'number') return;
      let s = spec.starts[0]! < 0 ? spec.starts[0]! + dim : spec.starts[0]!;
      s = step > 0 ? Math.min(Math.max(s, 0), dim) : Math.min(Math.max(s, 0), dim - 1);
      const res: Elem[] = [];
      for (let i = 0; i < len; i++) res.push(data[s + i * step]!);
      cx.setValue(n.output(0), res);
      return;
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Max':
    case 'Min':
    case 'Equal': {
      const d = dt(n, 0);
      const isInt = d !== undefined && !isFloat(d);
      const op = n.op;
      return elementwise(n, cx, (xs) => xs.slice(1).reduce((a, b) => arith(op, a, b, isInt), xs[0]!));
    }
    case 'Neg':
      return elementwise(n, cx, ([a]) => (typeof a === 'number' ? -a : UNK));
    case 'Abs':
      return elementwise(n, cx, ([a]) => (typeof a === 'number' ? Math.abs(a) : UNK));
    case 'Where':
      return elementwise(n, cx, ([c, a, b]) => (typeof c === 'number' ? (c !== 0 ? a! : b!) : dimEq(a!, b!) ? a! : UNK));
    case 'ConstantOfShape': {
      const size = staticSize(n.output(0)?.shape);
      if (size === undefined || size > MAX_TRACKED) return;
      const t = n.attrTensor('value');
      const v = t ? tensorElems(t)?.[0] : 0;
      if (v !== undefined) cx.setValue(n.output(0), new Array<Elem>(size).fill(v));
      return;
    }
    case 'Range': {
      const [a, b, c] = [cx.ints(n.input(0)), cx.ints(n.input(1)), cx.ints(n.input(2))];
      if (!a || !b || !c || c[0] === 0) return;
      const count = rangeCount(dt(n, 0), a[0]!, b[0]!, c[0]!);
      if (count > MAX_TRACKED) return;
      cx.setValue(n.output(0), Array.from({ length: count }, (_, i) => a[0]! + i * c[0]!));
      return;
    }
    default:
      return;
  }
}

function isStatic(s: Shape | undefined): s is readonly number[] {
  return s !== undefined && s.every((d) => typeof d === 'number');
}
