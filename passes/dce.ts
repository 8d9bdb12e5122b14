// Pass dce: dead-code elimination of nodes whose outputs nobody reads, and of initializers nobody reads.
//
// A node is dead when none of its outputs is used by a node (in this graph or a subgraph) and none is an output
// of its graph. Dead nodes are erased consumers-first, so whole dead chains go in one sweep; subgraph bodies are
// cleaned too, and a dead If/Loop/Scan goes together with its bodies.
//
// Side effects: standard ONNX inference ops have none (Random* ops are nondeterministic, not effectful: an unused
// random draw can go). qcc therefore treats every op as pure, in any domain, with one exception: a node that
// declares no outputs at all is kept, since it can only exist for an effect we cannot see (SIDE_EFFECT_OPS lists
// further op types to keep; it is empty on purpose).
//
// Initializers: an unused initializer goes unless it is also a graph input (an overridable default, part of the
// model's interface). Graph inputs themselves are never removed.

import type { Graph, Node } from '../ir/ir.js';
import { Rewriter } from '../ir/rewriter.js';
import { definePass } from './pass.js';

/** `domain:opType` of ops kept even when dead. Empty: no op in ai.onnx has side effects at inference. */
export const SIDE_EFFECT_OPS: ReadonlySet<string> = new Set<string>();

function hasSideEffects(n: Node): boolean {
  return n.outputs.every((o) => o === null) || SIDE_EFFECT_OPS.has(`${n.domain}:${n.opType}`);
}

function isDead(n: Node): boolean {
  if (hasSideEffects(n)) return false;
  const g = n.graph!;
  return n.outputs.every((o) => !o || (o.uses.length === 0 && !g.outputs.includes(o)));
}

/** Erases n and everything inside its subgraphs (their nodes read outer values: those uses must go too). */
export function eraseDeep(rw: Rewriter, n: Node): void {
  for (const sg of n.subgraphs()) {
    rw.setGraphOutputs(sg, []);
    for (const inner of sg.nodeArray().reverse()) eraseDeep(rw, inner);
  }
  rw.erase(n);
}

type DceStats = { nodes: number; initializers: number };

function sweepGraph(g: Graph, rw: Rewriter, stats: DceStats): void {
  // consumers first: a node's users come after it, so a reverse walk sees them erased before it
  for (const n of g.nodeArray().reverse()) {
    if (n.graph !== g) continue;
    if (isDead(n)) {
      eraseDeep(rw, n);
      stats.nodes++;
      continue;
    }
    for (const sg of n.subgraphs()) sweepGraph(sg, rw, stats);
  }
  for (const v of [...g.initializers]) {
    if (v.uses.length === 0 && !g.outputs.includes(v) && !g.inputs.includes(v)) {
      rw.removeInitializer(v);
      stats.initializers++;
    }
  }
}

export const dce = definePass({
  name: 'dce',
  summary: 'Remove nodes whose outputs are unused and initializers nobody reads (also inside subgraphs)',
  mode: 'in-place',
  run(m) {
    const rw = new Rewriter(m.graph);
    const stats: DceStats = { nodes: 0, initializers: 0 };
    // a subgraph sweep can make outer values dead (their last use was inside a body): repeat until stable
    for (let round = 0; round < 8; round++) {
      const before = stats.nodes + stats.initializers;
      sweepGraph(m.graph, rw, stats);
      if (stats.nodes + stats.initializers === before) break;
    }
    return { model: m, changed: rw.changed, stats };
  },
  ensures(m) {
    for (const n of m.graph.nodes()) if (isDead(n)) return `node ${n.name} is dead`;
    return true;
  },
});
