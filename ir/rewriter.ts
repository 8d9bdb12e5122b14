// The Rewriter: the only way passes and rules change a graph; it keeps use lists and node order exact.

import type { DType } from './dtype.js';
import { QccError } from './errors.js';
import type { Attr, ValueType } from './ir.js';
import { Graph, Model, Node, Tensor, Value } from './ir.js';

// ---------------------------------------------------------------------------------------------------------------
// Deterministic fresh names

const nameTables = new WeakMap<object, Set<string>>();

function rootOf(g: Graph): Graph {
  let cur = g;
  while (cur.parent?.graph) cur = cur.parent.graph;
  return cur;
}

function collectNames(g: Graph, into: Set<string>): void {
  for (const v of g.values()) into.add(v.name);
  for (const n of g.nodes()) {
    into.add(n.name);
    for (const sg of n.subgraphs()) collectNames(sg, into);
  }
}

/** The set of value and node names used anywhere in the graph's model (built once, kept current by the Rewriter). */
export function nameTable(g: Graph): Set<string> {
  const key = rootOf(g);
  let t = nameTables.get(key);
  if (!t) {
    t = new Set();
    collectNames(key, t);
    nameTables.set(key, t);
  }
  return t;
}

/** Forget cached names (after building a graph outside the Rewriter). */
export function invalidateNames(g: Graph): void {
  nameTables.delete(rootOf(g));
}

/** `base` if unused, else `base_1`, `base_2`, ...: deterministic for a given graph and call order. */
export function freshName(g: Graph, base: string): string {
  const t = nameTable(g);
  let name = base || 'v';
  if (t.has(name)) {
    let i = 1;
    while (t.has(`${base}_${i}`)) i++;
    name = `${base}_${i}`;
  }
  t.add(name);
  return name;
}

// ---------------------------------------------------------------------------------------------------------------
// Low-level structural edits (also used by the ONNX reader to build graphs)

/** @internal */
export function linkUse(v: Value, node: Node, index: number): void {
  v._uses.push({ node, index });
}

/** @internal */
export function unlinkUse(v: Value, node: Node, index: number): void {
  const uses = v._uses;
  for (let i = 0; i < uses.length; i++) {
    const u = uses[i]!;
    if (u.node === node && u.index === index) {
      uses.splice(i, 1);
      return;
    }
  }
  throw new QccError('E_IR_MUTATION', `use list of ${v.name} lacks ${node.name}#${index}`, { node: node.name });
}

/** @internal Appends node to the end of g's node list (no checks). */
export function appendNode(g: Graph, n: Node): void {
  n._graph = g;
  n._prev = g._last;
  n._next = null;
  if (g._last) g._last._next = n;
  else g._first = n;
  g._last = n;
  g._nodeCount++;
}

function unlinkNode(n: Node): void {
  const g = n._graph!;
  if (n._prev) n._prev._next = n._next;
  else g._first = n._next;
  if (n._next) n._next._prev = n._prev;
  else g._last = n._prev;
  n._prev = n._next = null;
  n._graph = null;
  g._nodeCount--;
}

function linkBefore(ref: Node, n: Node): void {
  const g = ref._graph!;
  n._graph = g;
  n._next = ref;
  n._prev = ref._prev;
  if (ref._prev) ref._prev._next = n;
  else g._first = n;
  ref._prev = n;
  g._nodeCount++;
}

// ---------------------------------------------------------------------------------------------------------------

export interface CreateNodeOptions {
  domain?: string;
  name?: string;
  attrs?: Record<string, Attr | undefined> | ReadonlyMap<string, Attr>;
  /** Output count (names are made fresh from the node name) or explicit output names. */
  outputs?: number | readonly string[];
  /** Types of the outputs, when known. */
  outputTypes?: readonly (ValueType | undefined)[];
}

export interface RewriteStats {
  created: number;
  erased: number;
  rewired: number;
}

/**
 * Mutation API over one graph (and its subgraphs). `changed` turns true on the first real edit: an edit that
 * leaves things as they were (same input, same attribute object) is not a change.
 */
export class Rewriter {
  changed = false;
  readonly stats: RewriteStats = { created: 0, erased: 0, rewired: 0 };

  constructor(readonly graph: Graph) {}

  freshName(base: string): string {
    return freshName(this.graph, base);
  }

  /** Creates a node (not yet in any graph) with fresh output values. Insert it with insertBefore/append. */
  createNode(opType: string, inputs: readonly (Value | null | undefined)[], opts: CreateNodeOptions = {}): Node {
    const name = opts.name !== undefined && !nameTable(this.graph).has(opts.name) ? (nameTable(this.graph).add(opts.name), opts.name) : this.freshName(opts.name ?? opType.toLowerCase());
    const n = new Node(opts.domain ?? '', opType, name);
    inputs.forEach((v, i) => {
      n._inputs.push(v ?? null);
      if (v) linkUse(v, n, i);
    });
    const outs = opts.outputs ?? 1;
    const names = typeof outs === 'number' ? Array.from({ length: outs }, (_, i) => (outs === 1 ? `${name}_out` : `${name}_out${i}`)) : outs;
    names.forEach((on, i) => {
      if (on === '') {
        n._outputs.push(null);
        return;
      }
      // output values belong to the graph the node will be inserted into; fixed up on insert
      const v = new Value(this.graph, typeof outs === 'number' ? this.freshName(on) : this.claimName(on), opts.outputTypes?.[i]);
      v._producer = n;
      v._producerIndex = i;
      n._outputs.push(v);
    });
    if (opts.attrs) {
      const entries = opts.attrs instanceof Map ? [...opts.attrs.entries()] : Object.entries(opts.attrs);
      for (const [k, a] of entries) if (a !== undefined) n._attrs.set(k, a);
    }
    this.stats.created++;
    this.changed = true;
    return n;
  }

  private claimName(name: string): string {
    const t = nameTable(this.graph);
    if (t.has(name)) throw new QccError('E_IR_MUTATION', `value name '${name}' is already used`);
    t.add(name);
    return name;
  }

  private adopt(g: Graph, n: Node): void {
    if (n._graph) throw new QccError('E_IR_MUTATION', `node ${n.name} is already in a graph`, { node: n.name });
    for (const v of n._outputs) if (v && v.graph !== g) (v as { graph: Graph }).graph = g;
  }

  insertBefore(ref: Node, n: Node): Node {
    this.adopt(ref._graph!, n);
    linkBefore(ref, n);
    this.changed = true;
    return n;
  }

  insertAfter(ref: Node, n: Node): Node {
    if (ref._next) return this.insertBefore(ref._next, n);
    return this.append(ref._graph!, n);
  }

  append(g: Graph, n: Node): Node {
    this.adopt(g, n);
    appendNode(g, n);
    this.changed = true;
    return n;
  }

  /** Creates and inserts a node before `before`; returns it. */
  insertOpBefore(before: Node, opType: string, inputs: readonly (Value | null | undefined)[], opts: CreateNodeOptions = {}): Node {
    const n = this.createNode(opType, inputs, opts);
    return this.insertBefore(before, n);
  }

  /** Moves an already-inserted node before `ref` (same graph). */
  moveBefore(n: Node, ref: Node): void {
    if (n === ref || n._next === ref) return;
    unlinkNode(n);
    linkBefore(ref, n);
    this.changed = true;
  }

  setInput(n: Node, index: number, v: Value | null): void {
    const old = n._inputs[index] ?? null;
    if (old === v) return;
    if (old) unlinkUse(old, n, index);
    while (n._inputs.length <= index) n._inputs.push(null);
    n._inputs[index] = v;
    if (v) linkUse(v, n, index);
    // trailing omitted inputs are dropped, as ONNX writers do
    while (n._inputs.length > 0 && n._inputs[n._inputs.length - 1] === null) n._inputs.pop();
    this.stats.rewired++;
    this.changed = true;
  }

  /** Replaces all inputs of n. */
  setInputs(n: Node, inputs: readonly (Value | null)[]): void {
    for (let i = n._inputs.length - 1; i >= inputs.length; i--) this.setInput(n, i, null);
    inputs.forEach((v, i) => this.setInput(n, i, v));
  }

  setAttr(n: Node, name: string, a: Attr | undefined): void {
    const old = n._attrs.get(name);
    if (old === a) return;
    if (a === undefined) n._attrs.delete(name);
    else n._attrs.set(name, a);
    this.changed = true;
  }

  setType(v: Value, t: ValueType | undefined): void {
    if (v._type === t) return;
    v._type = t;
    this.changed = true;
  }

  rename(v: Value, name: string): void {
    if (v._name === name) return;
    const t = nameTable(this.graph);
    if (t.has(name)) throw new QccError('E_IR_MUTATION', `value name '${name}' is already used`);
    t.add(name);
    v._name = name;
    if (v._initializer) v._initializer = v._initializer.withName(name);
    this.changed = true;
  }

  /**
   * Every use of `old` (node inputs, graph outputs) now reads `nu`. Graph outputs keep their names: when `old`
   * is a graph output, `nu` takes over its name if `nu` is a plain node output; otherwise an Identity keeps it.
   */
  replaceAllUsesWith(old: Value, nu: Value): void {
    if (old === nu) return;
    for (const u of [...old._uses]) this.setInput(u.node, u.index, nu);
    this.replaceGraphOutput(old, nu);
    this.changed = true;
  }

  /**
   * The graph outputs that are `old` become `nu`, keeping their names: `nu` takes over the name when it is a plain
   * node output of the same graph (`old` is renamed to a fresh `<name><suffix>`); otherwise an Identity keeps it.
   * Node inputs reading `old` are not touched.
   */
  replaceGraphOutput(old: Value, nu: Value, suffix = '_replaced'): void {
    if (old === nu) return;
    const g = old.graph;
    const outIdx = g._outputs.indexOf(old);
    if (outIdx >= 0) {
      const canTakeName = nu.graph === g && nu._producer !== null && !g._outputs.includes(nu) && !nu._initializer && !g._inputs.includes(nu);
      const oldName = old._name;
      if (canTakeName) {
        old._name = this.freshName(`${oldName}${suffix}`);
        nu._name = oldName;
        if (nu._type === undefined) nu._type = old._type;
        for (let i = 0; i < g._outputs.length; i++) if (g._outputs[i] === old) g._outputs[i] = nu;
      } else {
        const producer = old._producer;
        old._name = this.freshName(`${oldName}${suffix}`);
        const id = this.createNode('Identity', [nu], { name: `${oldName}_identity`, outputs: [oldName], outputTypes: [old._type ?? nu._type] });
        if (producer && producer._graph === g && producer._next) this.insertAfter(producer, id);
        else this.append(g, id);
        for (let i = 0; i < g._outputs.length; i++) if (g._outputs[i] === old) g._outputs[i] = id._outputs[0]!;
      }
    }
    this.changed = true;
  }

  /** Replaces node n's outputs by `values` (one per output) and erases n. */
  replaceOp(n: Node, values: readonly (Value | null)[]): void {
    n._outputs.forEach((o, i) => {
      const nv = values[i];
      if (o && nv) this.replaceAllUsesWith(o, nv);
      else if (o && o._uses.length > 0) throw new QccError('E_IR_MUTATION', `replaceOp: output ${i} of ${n.name} still used`, { node: n.name });
    });
    this.erase(n);
  }

  /** Erases a node whose outputs are unused (and are not graph outputs). */
  erase(n: Node): void {
    const g = n._graph;
    if (!g) throw new QccError('E_IR_MUTATION', `node ${n.name} is not in a graph`, { node: n.name });
    for (const o of n._outputs) {
      if (!o) continue;
      if (o._uses.length > 0) throw new QccError('E_IR_MUTATION', `cannot erase ${n.name}: output ${o.name} is still used by ${o._uses[0]!.node.name}`, { node: n.name });
      if (g._outputs.includes(o)) throw new QccError('E_IR_MUTATION', `cannot erase ${n.name}: output ${o.name} is a graph output`, { node: n.name });
    }
    n._inputs.forEach((v, i) => {
      if (v) unlinkUse(v, n, i);
    });
    n._inputs.length = 0;
    unlinkNode(n);
    this.stats.erased++;
    this.changed = true;
  }

  /** Adds an initializer to g (the main graph by default) and returns its value. The name is made fresh. */
  addInitializer(t: Tensor, g: Graph = this.graph): Value {
    const name = this.freshName(t.name || 'const');
    const v = new Value(g, name);
    v._initializer = t.withName(name);
    g._initializers.push(v);
    this.changed = true;
    return v;
  }

  /** Replaces the constant data of an initializer value (shape and dtype may change). */
  setInitializer(v: Value, t: Tensor): void {
    if (!v._initializer && !v.graph._initializers.includes(v)) {
      if (v._producer) throw new QccError('E_IR_MUTATION', `value ${v.name} has a producer and cannot become an initializer`);
      v.graph._initializers.push(v);
    }
    const nt = t.withName(v._name);
    if (v._initializer === nt) return;
    v._initializer = nt;
    if (v._type?.kind === 'tensor') v._type = { kind: 'tensor', dtype: nt.dtype, shape: nt.dims };
    this.changed = true;
  }

  /** Removes an unused initializer. */
  removeInitializer(v: Value): void {
    if (v._uses.length > 0 || v.graph._outputs.includes(v)) throw new QccError('E_IR_MUTATION', `initializer ${v.name} is still used`);
    const g = v.graph;
    const i = g._initializers.indexOf(v);
    if (i >= 0) g._initializers.splice(i, 1);
    const j = g._inputs.indexOf(v);
    if (j >= 0) g._inputs.splice(j, 1);
    v._initializer = undefined;
    this.changed = true;
  }

  /** Turns a node output into an initializer holding `t` and erases the producer when it has no other live output. */
  foldToConstant(v: Value, t: Tensor): Value {
    const c = this.addInitializer(t.withName(`${v.name}_folded`), v.graph);
    this.replaceAllUsesWith(v, c);
    return c;
  }

  /**
   * Replaces node n by constants: each output keeps its Value (name, uses, graph-output role) and becomes an
   * initializer of n's graph holding tensors[i]; n is erased. For Constant nodes and constant folding, where the
   * value's name (often a weight's name) should survive.
   */
  replaceByInitializers(n: Node, tensors: readonly (Tensor | undefined)[]): Value[] {
    const g = n._graph;
    if (!g) throw new QccError('E_IR_MUTATION', `node ${n.name} is not in a graph`, { node: n.name });
    n._outputs.forEach((o, i) => {
      if (o && !tensors[i]) throw new QccError('E_IR_MUTATION', `replaceByInitializers: no tensor for output ${i} of ${n.name}`, { node: n.name });
    });
    const out: Value[] = [];
    n._outputs.forEach((o, i) => {
      if (!o) return;
      const t = tensors[i]!.withName(o._name);
      o._producer = null;
      o._producerIndex = -1;
      o._initializer = t;
      if (o._type?.kind === 'tensor') o._type = { kind: 'tensor', dtype: t.dtype, shape: t.dims };
      g._initializers.push(o);
      out.push(o);
    });
    n._outputs.length = 0;
    this.erase(n);
    return out;
  }

  addGraphInput(g: Graph, name: string, type: ValueType): Value {
    const v = new Value(g, this.claimName(name), type);
    g._inputs.push(v);
    this.changed = true;
    return v;
  }

  /**
   * Turns node output `v` into a graph input of its graph, keeping its name, type and uses (to cut a graph in
   * pieces): its producer gets a fresh unused output in its place.
   */
  detachAsInput(v: Value): void {
    const p = v._producer;
    if (!p) throw new QccError('E_IR_MUTATION', `detachAsInput: ${v.name} is not a node output`, { tensor: v.name });
    const g = v.graph;
    const stub = new Value(g, this.freshName(`${v._name}_detached`), v._type);
    stub._producer = p;
    stub._producerIndex = v._producerIndex;
    p._outputs[v._producerIndex] = stub;
    v._producer = null;
    v._producerIndex = -1;
    g._inputs.push(v);
    this.changed = true;
  }

  /** Drops the graph inputs of g that nothing reads (nodes, subgraphs or graph outputs); initializers stay. */
  removeUnusedGraphInputs(g: Graph): void {
    for (let i = g._inputs.length - 1; i >= 0; i--) {
      const v = g._inputs[i]!;
      if (v._initializer || v._uses.length > 0 || g._outputs.includes(v)) continue;
      g._inputs.splice(i, 1);
      this.changed = true;
    }
  }

  setGraphOutputs(g: Graph, outs: readonly Value[]): void {
    g._outputs.length = 0;
    g._outputs.push(...outs);
    this.changed = true;
  }

  /** Sets the default-domain (or another domain's) opset import. */
  setOpset(m: Model, version: number, domain = ''): void {
    if (m.opsetImports.get(domain) === version) return;
    m.opsetImports.set(domain, version);
    this.changed = true;
  }
}

/** Convenience: the dtype of a value or a refusal. */
export function requireDType(v: Value): DType {
  const d = v.dtype;
  if (d === undefined) throw new QccError('E_SHAPE_INFERENCE', `dtype of ${v.name} is unknown`, { tensor: v.name });
  return d;
}
