// Pass fold-constants: evaluates weight-only subgraphs once, in onnxruntime, and replaces them by initializers.
//
//   %t = Transpose(%W); %y = MatMul(%x, %t)      ->  initializer %t = Wᵀ;  %y = MatMul(%x, %t)
//   %s = Shape(%x : f32[1,3,8,8])                 ->  initializer %s = i64[4] {1,3,8,8}
//
// A node folds when it is in the default domain, deterministic, has no subgraphs, is not in NEVER_FOLD, and every
// input is constant: an initializer (not one that is also a graph input, which callers may override), a dense
// Constant, or the output of another folding node (so whole chains fold). Shape and Size of values whose type
// annotation is fully static fold too (the annotation present on the Value is trusted; no inference is run here).
//
// Evaluation: all folding nodes go into ONE model (their constant inputs as initializers, every output as a graph
// output) run in ONE onnxruntime session. If ORT cannot load or run that model (an op it lacks, a bad attribute),
// the batch is bisected along topological order so the rest still folds; nodes ORT cannot run are left alone.
// Results over `max-bytes` (default 64 MiB), and outputs of element types onnxruntime-node cannot return, are not
// folded. Folded values keep their names (they turn into initializers where they were defined).

import { dtypeFromOnnx, rawByteLength, type DType } from '../ir/dtype.js';
import { QccError } from '../ir/errors.js';
import { Graph, Model, elementCount, isStaticShape, tensorFromTyped, type Node, type Tensor, type Value } from '../ir/ir.js';
import { Rewriter } from '../ir/rewriter.js';
import { createSession, fromOrt, ortTypeOf, run } from '../ir/ort.js';
import { constantTensor } from './constant-to-initializer.js';
import { definePass, passOption, type PassContext } from './pass.js';

/**
 * Ops that never fold, and why:
 * - nondeterministic: Random*, Multinomial, Bernoulli, and Dropout (random in training mode);
 * - quantization structure later passes read: QuantizeLinear, DequantizeLinear (Q/DQ on weights stays Q/DQ),
 *   DynamicQuantizeLinear and the integer/QLinear ops;
 * - control flow (also caught by "has subgraphs"): If, Loop, Scan, SequenceMap;
 * - results that are not tensors: sequence and optional ops.
 */
export const NEVER_FOLD: ReadonlySet<string> = new Set([
  'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'Dropout',
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'QLinearConv', 'QLinearMatMul', 'ConvInteger', 'MatMulInteger',
  'If', 'Loop', 'Scan', 'SequenceMap',
  'SequenceConstruct', 'SequenceEmpty', 'SequenceAt', 'SequenceInsert', 'SequenceErase', 'SequenceLength', 'SplitToSequence',
  'ConcatFromSequence', 'Optional', 'OptionalGetElement', 'OptionalHasElement',
  'Constant', // a source, not a fold: constant-to-initializer turns it into an initializer
]);

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

function isDefaultDomain(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

function byteSize(t: Tensor): number {
  if (t.dtype === 'string') return t.strings().reduce((a, s) => a + s.length, 0);
  return t.byteLength;
}

// ---------------------------------------------------------------------------------------------------------------
// Shape / Size of statically shaped values

function foldShapes(g: Graph, rw: Rewriter): number {
  let n = 0;
  for (const node of g.nodes()) {
    for (const sg of node.subgraphs()) n += foldShapes(sg, rw);
    const isSize = node.op === 'opaque' && isDefaultDomain(node) && node.opType === 'Size';
    if ((node.op !== 'Shape' && !isSize) || !node.outputs[0]) continue;
    const shape = node.input(0)?.shape;
    if (!isStaticShape(shape)) continue;
    let t: Tensor;
    if (isSize) {
      t = tensorFromTyped('', 'i64', [], BigInt64Array.of(BigInt(elementCount(shape))));
    } else {
      // Shape-15 start/end: clamped, negative counts from the back
      const r = shape.length;
      const clamp = (x: number): number => Math.min(r, Math.max(0, x < 0 ? x + r : x));
      const start = clamp(node.attrInt('start', 0));
      const end = clamp(node.attrInt('end', r));
      const dims = shape.slice(start, Math.max(start, end));
      t = tensorFromTyped('', 'i64', [dims.length], BigInt64Array.from(dims.map((d) => BigInt(d))));
    }
    rw.replaceByInitializers(node, [t]);
    n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Candidates

interface Plan {
  /** folding nodes, topologically ordered (pre-order over graphs) */
  readonly nodes: Node[];
  readonly isCand: Set<Node>;
  /** constant inputs that are not node outputs: initializers and dense Constant outputs */
  readonly sources: Map<Value, Tensor>;
  tooBig: number;
}

/** Upper bound on the bytes of a node's outputs when it can be told before running it, else undefined. */
function estimateBytes(n: Node, constOf: (v: Value | undefined) => Tensor | undefined): number | undefined {
  let total = 0;
  let known = true;
  for (const o of n.outputs) {
    if (!o) continue;
    const s = o.shape;
    const d = o.dtype;
    if (isStaticShape(s) && d !== undefined && d !== 'string') total += rawByteLength(d, elementCount(s));
    else known = false;
  }
  if (known) return total;
  // ops that make big tensors from small ones: bound them from their (constant) inputs
  const ints = (v: Value | undefined): number[] | undefined => {
    const t = constOf(v);
    if (!t || (t.dtype !== 'i64' && t.dtype !== 'i32')) return undefined;
    return Array.from(t.typed() as ArrayLike<number | bigint>, (x) => Number(x));
  };
  const elem = (d: DType | undefined): number => (d === undefined || d === 'string' ? 8 : Math.max(1, rawByteLength(d, 1)));
  switch (n.op) {
    case 'ConstantOfShape': {
      const dims = ints(n.input(0));
      if (!dims) return undefined;
      const v = n.attrTensor('value');
      return elementCount(dims) * elem(v?.dtype ?? 'f32');
    }
    case 'Expand': {
      const x = constOf(n.input(0));
      const dims = ints(n.input(1));
      if (!x || !dims) return undefined;
      const r = Math.max(x.dims.length, dims.length);
      let count = 1;
      for (let i = 0; i < r; i++) {
        const a = x.dims[x.dims.length - r + i] ?? 1;
        const b = dims[dims.length - r + i] ?? 1;
        count *= Math.max(a, b);
      }
      return count * elem(x.dtype);
    }
    case 'Tile': {
      const x = constOf(n.input(0));
      const reps = ints(n.input(1));
      if (!x || !reps) return undefined;
      return x.size * elementCount(reps) * elem(x.dtype);
    }
    default:
      return undefined;
  }
}

function plan(m: Model, maxBytes: number): Plan {
  const p: Plan = { nodes: [], isCand: new Set(), sources: new Map(), tooBig: 0 };
  const isConst = (v: Value | null): boolean => {
    if (v === null) return true;
    if (p.sources.has(v)) return true;
    if (v.initializer) {
      if (v.isGraphInput) return false; // an overridable default, not a constant
      p.sources.set(v, v.initializer);
      return true;
    }
    const prod = v.producer;
    if (!prod) return false;
    if (p.isCand.has(prod)) return true;
    if (prod.op === 'Constant') {
      const t = constantTensor(prod);
      if (!t) return false;
      p.sources.set(v, t);
      return true;
    }
    return false;
  };
  const constOf = (v: Value | undefined): Tensor | undefined => (v ? p.sources.get(v) : undefined);
  const visit = (g: Graph): void => {
    for (const n of g.nodes()) {
      if (isFoldable(n) && n.inputs.every(isConst)) {
        const live = n.outputs.some((o) => o && (o.uses.length > 0 || o.isGraphOutput));
        const est = estimateBytes(n, constOf);
        if (est !== undefined && est > maxBytes) p.tooBig++;
        else if (live) {
          p.nodes.push(n);
          p.isCand.add(n);
        }
      }
      for (const sg of n.subgraphs()) visit(sg);
    }
  };
  visit(m.graph);
  return p;
}

function isFoldable(n: Node): boolean {
  if (!isDefaultDomain(n) || NEVER_FOLD.has(n.opType)) return false;
  if (n.subgraphs().length > 0) return false;
  if (n.outputs.every((o) => o === null)) return false;
  for (const o of n.outputs) {
    if (!o) continue;
    if (o.type?.kind === 'other') return false;
    const d = o.dtype;
    if (d !== undefined && ortTypeOf(d) === undefined) return false; // onnxruntime-node cannot hand it back
  }
  if (n.op === 'Cast') {
    const to = dtypeFromOnnx(n.attrInt('to', 0));
    if (to === undefined || ortTypeOf(to) === undefined) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

interface EvalState {
  readonly known: Map<Value, Tensor>;
  readonly failed: Map<Node, string>;
  sessions: number;
}

/** Runs `nodes` (topologically ordered, inputs available) in one ORT session; fills state.known. */
async function runBatch(m: Model, nodes: readonly Node[], p: Plan, st: EvalState): Promise<void> {
  const g = new Graph('qcc_fold');
  const em = new Model(g, { irVersion: Math.max(Number(m.irVersion), 7), opsetImports: new Map(m.opsetImports) });
  const rw = new Rewriter(g);
  const names = new Map<Value, Value>(); // original value -> value in the eval model
  let k = 0;
  const inputOf = (v: Value | null): Value | null => {
    if (!v) return null;
    const have = names.get(v);
    if (have) return have;
    const t = p.sources.get(v) ?? st.known.get(v);
    if (!t) throw new QccError('E_PASS_FAILED', `fold-constants: no value for ${v.name}`, { tensor: v.name });
    const nv = rw.addInitializer(t.withName(`c${k++}`));
    names.set(v, nv);
    return nv;
  };
  const outs: Value[] = [];
  const origOuts: Value[] = [];
  nodes.forEach((n, i) => {
    const ins = n.inputs.map(inputOf);
    const nn = rw.createNode(n.opType, ins, { domain: n.domain, name: `n${i}`, attrs: n.attrs, outputs: n.outputs.map((o, j) => (o ? `n${i}_${j}` : '')) });
    rw.append(g, nn);
    n.outputs.forEach((o, j) => {
      if (!o) return;
      const nv = nn.outputs[j]!;
      names.set(o, nv);
      outs.push(nv);
      origOuts.push(o);
    });
  });
  rw.setGraphOutputs(g, outs);
  st.sessions++;
  const session = await createSession(em, { optimization: 'disabled' });
  try {
    const r = await run(session, {});
    origOuts.forEach((o, i) => {
      const t = r[outs[i]!.name];
      if (!t) return;
      try {
        st.known.set(o, fromOrt(o.name, t));
      } catch (e) {
        if (!(e instanceof QccError)) throw e;
      }
    });
  } finally {
    await session.release();
  }
}

/** Evaluates `nodes`; on an ORT failure bisects (topological prefixes are closed under dependencies). */
async function evaluate(m: Model, nodes: readonly Node[], p: Plan, st: EvalState): Promise<void> {
  // drop nodes whose inputs depend on a failed node
  const avail = (v: Value | null, inBatch: Set<Node>): boolean => !v || p.sources.has(v) || st.known.has(v) || (v.producer !== null && inBatch.has(v.producer));
  const batch: Node[] = [];
  const inBatch = new Set<Node>();
  for (const n of nodes) {
    if (n.inputs.every((v) => avail(v, inBatch))) {
      batch.push(n);
      inBatch.add(n);
    }
  }
  if (batch.length === 0) return;
  try {
    await runBatch(m, batch, p, st);
  } catch (e) {
    if (!(e instanceof QccError)) throw e;
    if (batch.length === 1) {
      st.failed.set(batch[0]!, e.message);
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await evaluate(m, batch.slice(0, half), p, st);
    await evaluate(m, batch.slice(half), p, st);
  }
}

// ---------------------------------------------------------------------------------------------------------------

export const foldConstants = definePass({
  name: 'fold-constants',
  summary: 'Evaluate weight-only subgraphs (and Shape of static shapes) in onnxruntime and replace them by initializers',
  mode: 'in-place',
  options: [{ name: 'max-bytes', type: 'number', describe: 'largest folded result, in bytes (bigger ones stay computed)', default: DEFAULT_MAX_BYTES }],
  async run(m, cx: PassContext) {
    const maxBytes = passOption<number>(foldConstants, cx, 'max-bytes');
    const rw = new Rewriter(m.graph);
    const shapes = foldShapes(m.graph, rw);
    const p = plan(m, maxBytes);
    const st: EvalState = { known: new Map(), failed: new Map(), sessions: 0 };
    await evaluate(m, p.nodes, p, st);
    for (const [n, why] of st.failed) cx.diag.report('warning', 'W_FOLD_ORT', `not folded: onnxruntime cannot evaluate ${n.opType} alone: ${why}`, { node: n.name, pass: 'fold-constants' });
    // a node folds when every output has a result within the limit
    let tooBig = p.tooBig;
    const ok: Node[] = [];
    for (const n of p.nodes) {
      const ts = n.outputs.map((o) => (o ? st.known.get(o) : undefined));
      if (n.outputs.some((o, i) => o && !ts[i])) continue;
      if (ts.some((t) => t && byteSize(t) > maxBytes)) {
        tooBig++;
        continue;
      }
      ok.push(n);
    }
    // consumers first: what still has readers (kept nodes, graph outputs) becomes an initializer, the rest goes
    let folded = 0;
    let erased = 0;
    for (const n of ok.reverse()) {
      if (n.outputs.some((o) => o && (o.uses.length > 0 || o.isGraphOutput))) {
        rw.replaceByInitializers(n, n.outputs.map((o) => (o ? st.known.get(o) : undefined)));
        folded++;
      } else {
        rw.erase(n);
        erased++;
      }
    }
    return { model: m, changed: rw.changed, stats: { shapes, folded, erased, tooBig, failed: st.failed.size, sessions: st.sessions } };
  },
});
