// Pass constant-to-initializer: Constant nodes become initializers of their own graph, keeping the value's name.
//
//   %w = Constant<value=T>()            ->  initializer %w = T
//   %a = Constant<value_ints=[1,2]>()   ->  initializer %a = i64[2] {1,2}
//
// value, value_float(s), value_int(s) and value_string(s) are converted; `sparse_value` is left alone (the IR keeps
// sparse tensors as read and passes do not reason about them). A Constant inside an If/Loop/Scan body becomes an
// initializer of that body, so scoping is unchanged. PaddleOCR exports every weight this way.

import { QccError } from '../ir/errors.js';
import { Tensor, tensorFromTyped, type Graph, type Node } from '../ir/ir.js';
import { Rewriter } from '../ir/rewriter.js';
import { definePass } from './pass.js';

/** The tensor a Constant node holds, or undefined when it holds a sparse tensor (or nothing the IR can express). */
export function constantTensor(n: Node): Tensor | undefined {
  const where = { node: n.name };
  const a = (name: string) => n.attr(name);
  const value = a('value');
  if (value) {
    if (value.type !== 'tensor') throw new QccError('E_MODEL_ATTRIBUTE', `Constant 'value' is ${value.type}, expected tensor`, where);
    return value.value;
  }
  const vf = a('value_float');
  if (vf) return tensorFromTyped('', 'f32', [], Float32Array.of(n.attrFloat('value_float', 0)));
  const vfs = a('value_floats');
  if (vfs) {
    const xs = n.attrFloats('value_floats')!;
    return tensorFromTyped('', 'f32', [xs.length], Float32Array.from(xs));
  }
  const vi = a('value_int');
  if (vi) {
    if (vi.type !== 'int') throw new QccError('E_MODEL_ATTRIBUTE', `Constant 'value_int' is ${vi.type}, expected int`, where);
    return tensorFromTyped('', 'i64', [], BigInt64Array.of(BigInt(vi.value)));
  }
  const vis = a('value_ints');
  if (vis) {
    if (vis.type !== 'ints') throw new QccError('E_MODEL_ATTRIBUTE', `Constant 'value_ints' is ${vis.type}, expected ints`, where);
    return tensorFromTyped('', 'i64', [vis.value.length], BigInt64Array.from(vis.value.map((x) => BigInt(x))));
  }
  const vs = a('value_string');
  if (vs) {
    if (vs.type !== 'string') throw new QccError('E_MODEL_ATTRIBUTE', `Constant 'value_string' is ${vs.type}, expected string`, where);
    return new Tensor('', 'string', [], { kind: 'fields', field: 'string_data', values: [vs.value] });
  }
  const vss = a('value_strings');
  if (vss) {
    if (vss.type !== 'strings') throw new QccError('E_MODEL_ATTRIBUTE', `Constant 'value_strings' is ${vss.type}, expected strings`, where);
    return new Tensor('', 'string', [vss.value.length], { kind: 'fields', field: 'string_data', values: [...vss.value] });
  }
  return undefined; // sparse_value (or a Constant without a value: left for the verifier / ORT to reject)
}

function convertGraph(g: Graph, rw: Rewriter, stats: { constants: number; sparseKept: number }): void {
  for (const n of g.nodes()) {
    for (const sg of n.subgraphs()) convertGraph(sg, rw, stats);
    if (n.op !== 'Constant' || n.outputs.length !== 1 || !n.outputs[0]) continue;
    const t = constantTensor(n);
    if (!t) {
      stats.sparseKept++;
      continue;
    }
    rw.replaceByInitializers(n, [t]);
    stats.constants++;
  }
}

export const constantToInitializer = definePass({
  name: 'constant-to-initializer',
  summary: 'Turn Constant nodes into initializers (in the graph that holds them), keeping value names',
  mode: 'in-place',
  run(m) {
    const rw = new Rewriter(m.graph);
    const stats = { constants: 0, sparseKept: 0 };
    convertGraph(m.graph, rw, stats);
    return { model: m, changed: rw.changed, stats };
  },
  ensures(m) {
    for (const n of m.graph.allNodes()) if (n.op === 'Constant' && n.attr('sparse_value') === undefined) return `Constant ${n.name} is left`;
    return true;
  },
});
