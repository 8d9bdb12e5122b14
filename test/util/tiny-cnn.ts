// Test helper: a tiny residual CNN with seeded weights, used by the compile tests of the library and the CLI.

import { GraphBuilder } from '../../ir/builder.js';
import type { Model } from '../../ir/ir.js';
import { mulberry32 } from '../../ir/random.js';

/** stem conv -> residual block (conv-relu-conv + add) -> strided conv -> GAP -> MatMul classifier, seeded weights. */
export function tinyCnn(seed = 1): Model {
  const rnd = mulberry32(seed);
  const b = new GraphBuilder('tiny', { opset: 17 });
  const w = (name: string, dims: number[], fanIn: number) => b.f32(name, dims, Array.from({ length: dims.reduce((a, c) => a * c, 1) }, () => (rnd() * 2 - 1) * Math.sqrt(3 / fanIn)));
  const bias = (name: string, n: number) => b.f32(name, [n], Array.from({ length: n }, () => (rnd() - 0.5) * 0.1));
  const x = b.input('input', 'f32', [{ param: 'N' }, 3, 16, 16]);
  const conv = (name: string, v: ReturnType<typeof b.input>, cin: number, cout: number, stride = 1) =>
    b.op('Conv', [v, w(`${name}.weight`, [cout, cin, 3, 3], cin * 9), bias(`${name}.bias`, cout)], { name, attrs: { pads: [1, 1, 1, 1], strides: [stride, stride], kernel_shape: [3, 3] } });
  const s = b.op('Relu', [conv('stem', x, 3, 16)], { name: 'stem.relu' });
  const c1 = b.op('Relu', [conv('b1.conv1', s, 16, 16)], { name: 'b1.relu1' });
  const c2 = conv('b1.conv2', c1, 16, 16);
  const add = b.op('Relu', [b.op('Add', [c2, s], { name: 'b1.add' })], { name: 'b1.relu2' });
  const h = b.op('Relu', [conv('head', add, 16, 32, 2)], { name: 'head.relu' });
  const g = b.op('Flatten', [b.op('GlobalAveragePool', [h], { name: 'gap' })], { name: 'flatten' });
  const fc = b.op('MatMul', [g, w('fc.weight', [32, 10], 32)], { name: 'fc' });
  b.output(b.op('Add', [fc, bias('fc.bias', 10)], { name: 'fc.add' }));
  return b.build();
}
