// Pattern-rewrite rules (match, check with a reason, rewrite) and the drivers that apply rule sets to a fixpoint.

import type { Graph, Node, Op, Value } from '../ir/ir.js';
import { Rewriter } from '../ir/rewriter.js';

/** Why a match failed, and where. */
export interface Fail {
  readonly fail: true;
  readonly reason: string;
  readonly at?: Value | Node | null;
}

export interface MatchCtx {
  fail(reason: string, at?: Value | Node | null): Fail;
}

const matchCtx: MatchCtx = {
  fail(reason, at) {
    return { fail: true, reason, at };
  },
};

export function isFail(x: unknown): x is Fail {
  return typeof x === 'object' && x !== null && (x as Fail).fail === true;
}

export interface Rule<B = unknown> {
  readonly name: string;
  /** The op the match starts from (`opaque` roots match on opType via `rootOpType`). */
  readonly root: Op;
  readonly rootOpType?: string;
  /** Higher first when several rules share a root. */
  readonly benefit?: number;
  match(n: Node, m: MatchCtx): B | Fail;
  rewrite(b: B, rw: Rewriter, n: Node): void;
}

export function defineRule<B>(r: Rule<B>): Rule<B> {
  return r;
}

export type RuleSet = readonly Rule<any>[];

/**
 * Operand-swapped variant of a rule whose root is a commutative binary op: the match sees inputs 0 and 1
 * exchanged; bindings refer to real values, so the rewrite is unchanged.
 */
export function commute<B>(r: Rule<B>): Rule<B> {
  return {
    ...r,
    name: `${r.name}(commuted)`,
    match(n, m) {
      const swapped = Object.create(n, {
        inputs: { get: () => [n.inputs[1] ?? null, n.inputs[0] ?? null, ...n.inputs.slice(2)] },
        input: { value: (i: number) => (i === 0 ? n.input(1) : i === 1 ? n.input(0) : n.input(i)) },
      }) as Node;
      const b = r.match(swapped, m);
      // bindings that captured the proxy must name the real node (rewrites compare nodes by identity)
      if (!isFail(b) && typeof b === 'object' && b !== null) {
        for (const [k, v] of Object.entries(b)) if (v === swapped) (b as Record<string, unknown>)[k] = n;
      }
      return b;
    },
  };
}

export interface ApplyOptions {
  /** 'walk': one sweep over the nodes; 'greedy': sweep until nothing matches (default). */
  driver?: 'greedy' | 'walk';
  /** Cap on sweeps for the greedy driver (default 16). Reaching it is not an error (best-effort fixpoint). */
  maxIters?: number;
  /** Descend into subgraphs (default true). */
  subgraphs?: boolean;
}

export interface ApplyResult {
  readonly changed: boolean;
  readonly applied: ReadonlyMap<string, number>;
  readonly sweeps: number;
  readonly converged: boolean;
}

/** Applies `rules` to `g`; each rule is tried only on nodes whose op is its root. */
export function applyRules(g: Graph, rules: RuleSet, opts: ApplyOptions = {}): ApplyResult {
  const byRoot = new Map<string, Rule<any>[]>();
  for (const r of rules) {
    const key = r.root === 'opaque' ? `opaque:${r.rootOpType ?? ''}` : r.root;
    let list = byRoot.get(key);
    if (!list) byRoot.set(key, (list = []));
    list.push(r);
  }
  for (const list of byRoot.values()) list.sort((a, b) => (b.benefit ?? 1) - (a.benefit ?? 1));
  const rw = new Rewriter(g);
  const applied = new Map<string, number>();
  const maxIters = opts.driver === 'walk' ? 1 : (opts.maxIters ?? 16);
  let sweeps = 0;
  let converged = false;
  const sweep = (graph: Graph): boolean => {
    let any = false;
    for (const n of graph.nodes()) {
      if (n.graph !== graph) continue; // erased by an earlier rewrite in this sweep
      const list = byRoot.get(n.op === 'opaque' ? `opaque:${n.opType}` : n.op);
      if (list) {
        for (const r of list) {
          const b = r.match(n, matchCtx);
          if (isFail(b)) continue;
          r.rewrite(b, rw, n);
          applied.set(r.name, (applied.get(r.name) ?? 0) + 1);
          any = true;
          break;
        }
      }
      if (opts.subgraphs !== false && n.graph === graph) for (const sg of n.subgraphs()) any = sweep(sg) || any;
    }
    return any;
  };
  while (sweeps < maxIters) {
    sweeps++;
    if (!sweep(g)) {
      converged = true;
      break;
    }
  }
  return { changed: rw.changed || applied.size > 0, applied, sweeps, converged };
}

export interface Explanation {
  readonly node: string;
  readonly matched: boolean;
  readonly reason?: string;
  readonly at?: string;
}

/** For `--explain-rule`: every root candidate of `rule` in `g`, and why it did or did not match. */
export function explainRule(g: Graph, rule: Rule<any>): Explanation[] {
  const out: Explanation[] = [];
  for (const n of g.allNodes()) {
    if (n.op !== rule.root || (n.op === 'opaque' && n.opType !== rule.rootOpType)) continue;
    const b = rule.match(n, matchCtx);
    if (isFail(b)) out.push({ node: n.name, matched: false, reason: b.reason, ...(b.at ? { at: b.at.name } : {}) });
    else out.push({ node: n.name, matched: true });
  }
  return out;
}
