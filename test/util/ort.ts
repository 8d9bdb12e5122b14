// One-shot onnxruntime runs for tests: a session at optimization 'disabled' (bit-exact reference behaviour), released after one run.

import type { Model } from '../../ir/ir.js';
import { createSession, run, type ort } from '../../ir/ort.js';

/** Every output of `m` on `feeds`, from a fresh session at optimization level 'disabled'. */
export async function outputs(m: Model | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    return await run(s, feeds);
  } finally {
    await s.release();
  }
}
