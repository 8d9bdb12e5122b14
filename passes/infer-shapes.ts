// Pass infer-shapes: sets the dtype and shape of every node output from per-op rules (ir/shape-inference.ts).

import { inferShapes } from '../ir/shape-inference.js';
import { Rewriter } from '../ir/rewriter.js';
import { definePass, passOption } from './pass.js';

export const inferShapesPass = definePass({
  name: 'infer-shapes',
  summary: 'Infer dtype and shape of every value (symbolic dims kept); ops without a rule keep their declared types',
  mode: 'in-place',
  options: [
    {
      name: 'keep-declared',
      type: 'boolean',
      describe: 'fill dims inference cannot compute from declared value_info (turn off after changing input shapes)',
      default: true,
    },
  ],
  run(m, cx) {
    const rw = new Rewriter(m.graph);
    const r = inferShapes(m, rw, { keepDeclared: passOption<boolean>(inferShapesPass, cx, 'keep-declared') });
    if (r.unknownOps.length > 0) {
      cx.diag.report('warning', 'W_SHAPE_UNKNOWN_OPS', `no shape rule for ${r.unknownOps.join(', ')}: declared types kept`);
    }
    return { model: m, changed: rw.changed, stats: { inferred: r.inferred, unknownOps: r.unknownOps.length } };
  },
});
