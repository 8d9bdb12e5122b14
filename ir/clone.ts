// cloneModel(): a structurally independent copy of a model; tensor bytes are shared (they are never mutated in place).

import type { Model } from './ir.js';
import { modelFromMsg } from './onnx/reader.js';
import { KEEP_EXTERNAL, modelToMsg } from './onnx/writer.js';

/**
 * Deep copy of graphs, nodes, values and attributes. Tensor payloads are shared: the IR treats tensor data as
 * immutable (passes replace initializers with new tensors), so sharing is safe and costs no memory.
 */
export function cloneModel(m: Model): Model {
  const c = modelFromMsg(modelToMsg(m, KEEP_EXTERNAL), { baseDir: m.baseDir ?? '.' });
  c.baseDir = m.baseDir;
  return c;
}
