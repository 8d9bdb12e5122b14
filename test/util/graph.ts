// Test helper: a graph's whole structure as `out = Op(in, ...)` lines, for structural assertions.

import type { Graph } from '../../ir/ir.js';

/** `out = Op(in, ...)` per node, in order. */
export function graphText(g: Graph): string[] {
  return g.nodeArray().map((n) => `${n.outputs.map((o) => o?.name ?? '').join(',')} = ${n.opType}(${n.inputs.map((v) => v?.name ?? '').join(', ')})`);
}
