// verify(): the IR invariants every pass must keep (use-def agreement, topological order, Q/DQ parameter shapes).

import { QccError, type Loc } from './errors.js';
import type { Graph, Model, Node, Value } from './ir.js';
import { isStaticShape } from './ir.js';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  readonly severity: Severity;
  readonly code: string;
  readonly message: string;
  readonly loc: Loc;
}

/** Checks the model's invariants; returns every violation found (empty when the model is well-formed). */
export function verify(m: Model): Diagnostic[] {
  const out: Diagnostic[] = [];
  verifyGraph(m.graph, out, new Set());
  return out;
}

/** Throws E_IR_VERIFY listing the first violations when verify() finds any error. */
export function assertValid(m: Model, where = 'model'): void {
  const errs = verify(m).filter((d) => d.severity === 'error');
  if (errs.length) {
    const head = errs.slice(0, 5).map((d) => `  ${d.code}: ${d.message}`).join('\n');
    throw new QccError('E_IR_VERIFY', `${where} violates ${errs.length} IR invariant(s):\n${head}`, errs[0]!.loc);
  }
}

function err(out: Diagnostic[], code: string, message: string, loc: Loc): void {
  out.push({ severity: 'error', code, message, loc });
}

/** `visible`: values defined (so far) in enclosing graphs, in scope for this graph's nodes. */
function verifyGraph(g: Graph, out: Diagnostic[], visible: Set<Value>): void {
  const defined = new Set<Value>(visible);
  const names = new Map<string, Value>();
  const def = (v: Value, what: string): void => {
    const prev = names.get(v.name);
    if (prev && prev !== v) err(out, 'duplicate-name', `two values are named '${v.name}' (${what})`, { tensor: v.name });
    names.set(v.name, v);
    defined.add(v);
  };
  for (const v of g.inputs) def(v, 'input');
  for (const v of g.initializers) {
    if (v.producer) err(out, 'initializer-has-producer', `initializer '${v.name}' also has producer ${v.producer.name}`, { tensor: v.name });
    if (!v.initializer) err(out, 'initializer-without-data', `value '${v.name}' is listed as an initializer but has no tensor`, { tensor: v.name });
    def(v, 'initializer');
  }
  for (const v of g.values()) if (v.sparseInitializer) def(v, 'sparse initializer');
  // per value, its recorded uses by node: scanning v.uses for every input was quadratic when one value feeds 100k nodes
  const useIndex = new Map<Value, Map<Node, number[]>>();
  const listsUse = (v: Value, n: Node, i: number): boolean => {
    let idx = useIndex.get(v);
    if (idx === undefined) {
      idx = new Map();
      for (const u of v.uses) {
        const l = idx.get(u.node);
        if (l) l.push(u.index);
        else idx.set(u.node, [u.index]);
      }
      useIndex.set(v, idx);
    }
    return idx.get(n)?.includes(i) ?? false;
  };
  let count = 0;
  let prev: Node | null = null;
  for (const n of g.nodes()) {
    count++;
    if (n.graph !== g) err(out, 'node-graph', `node ${n.name} is linked into a graph it does not belong to`, { node: n.name });
    if (n.prev !== prev) err(out, 'node-list', `node list is broken at ${n.name}`, { node: n.name });
    prev = n;
    n.inputs.forEach((v, i) => {
      if (!v) return;
      if (!defined.has(v)) {
        const why = v.producer && v.producer.graph === g ? 'is produced later (not topological)' : 'is not defined in scope';
        err(out, 'use-before-def', `input ${i} of ${n.name} ('${v.name}') ${why}`, { node: n.name, tensor: v.name });
      }
      if (!listsUse(v, n, i)) err(out, 'use-list', `'${v.name}' does not list its use by ${n.name}#${i}`, { node: n.name, tensor: v.name });
    });
    for (const sg of n.subgraphs()) verifyGraph(sg, out, defined);
    n.outputs.forEach((v, i) => {
      if (!v) return;
      if (v.producer !== n || v.producerIndex !== i) err(out, 'producer', `output ${i} of ${n.name} ('${v.name}') names another producer`, { node: n.name, tensor: v.name });
      if (v.graph !== g) err(out, 'value-graph', `output '${v.name}' of ${n.name} belongs to another graph`, { node: n.name, tensor: v.name });
      if (v.initializer) err(out, 'initializer-has-producer', `'${v.name}' is both an initializer and an output of ${n.name}`, { node: n.name, tensor: v.name });
      def(v, `output of ${n.name}`);
    });
    checkQdq(n, out);
  }
  if (count !== g.nodeCount) err(out, 'node-count', `graph '${g.name}' counts ${g.nodeCount} nodes but links ${count}`, {});
  // every recorded use must be real
  for (const v of defined) {
    if (visible.has(v)) continue;
    for (const u of v.uses) {
      if (u.node.inputs[u.index] !== v) err(out, 'use-list', `'${v.name}' lists a use by ${u.node.name}#${u.index} that reads something else`, { node: u.node.name, tensor: v.name });
      if (u.node.graph === null) err(out, 'use-list', `'${v.name}' lists a use by erased node ${u.node.name}`, { node: u.node.name, tensor: v.name });
    }
  }
  for (const v of g.outputs) if (!defined.has(v)) err(out, 'output-undefined', `graph output '${v.name}' is not defined`, { tensor: v.name });
}

/** Q/DQ scale and zero-point shapes must match the axis (per-axis) or block (blocked), per ONNX opset 13/21 rules. */
function checkQdq(n: Node, out: Diagnostic[]): void {
  if (n.op !== 'QuantizeLinear' && n.op !== 'DequantizeLinear') return;
  const x = n.input(0);
  const s = n.input(1);
  const z = n.input(2);
  const loc = { node: n.name };
  if (!x || !s) {
    err(out, 'qdq-arity', `${n.opType} ${n.name} needs x and scale`, loc);
    return;
  }
  const xs = x.shape;
  const ss = s.shape;
  if (z && ss && z.shape && (ss.length !== z.shape.length || !ss.every((d, i) => d === z.shape![i]))) {
    if (isStaticShape(ss) && isStaticShape(z.shape)) err(out, 'qdq-zp-shape', `zero point shape [${z.shape.join(',')}] differs from scale shape [${ss.join(',')}]`, loc);
  }
  if (!xs || !ss || !isStaticShape(ss)) return;
  const rank = xs.length;
  const blockSize = n.attrInt('block_size', 0);
  const scaleCount = ss.reduce((a, b) => a * b, 1);
  if (ss.length === 0 || (ss.length === 1 && ss[0] === 1 && blockSize === 0)) return; // per-tensor
  let axis = n.attrInt('axis', 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) {
    err(out, 'qdq-axis', `axis ${n.attrInt('axis', 1)} is out of range for rank ${rank}`, loc);
    return;
  }
  const dim = xs[axis];
  if (blockSize > 0) {
    if (ss.length !== rank) {
      err(out, 'qdq-block', `blocked scale must have rank ${rank}, has ${ss.length}`, loc);
      return;
    }
    xs.forEach((d, i) => {
      if (typeof d !== 'number') return;
      const want = i === axis ? Math.ceil(d / blockSize) : d;
      if (ss[i] !== want) err(out, 'qdq-block', `blocked scale dim ${i} is ${ss[i]}, expected ${want} (block_size ${blockSize})`, loc);
    });
    return;
  }
  if (ss.length !== 1) {
    err(out, 'qdq-axis', `per-axis scale must be 1-D, has rank ${ss.length}`, loc);
    return;
  }
  if (typeof dim === 'number' && scaleCount !== dim) err(out, 'qdq-axis', `per-axis scale has ${scaleCount} elements, axis ${axis} has ${dim}`, loc);
}
