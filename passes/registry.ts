// Every pass qcc has, declared once in its own file and listed here; the CLI's `passes`/`opt` read this list.

import { QccError } from '../ir/errors.js';
import type { Pass } from './pass.js';
import { inferShapesPass } from './infer-shapes.js';
import { constantToInitializer } from './constant-to-initializer.js';
import { dce } from './dce.js';
import { foldBatchnorm } from './fold-batchnorm.js';
import { foldConstants } from './fold-constants.js';
import { upgradeOpset } from './upgrade-opset.js';

const PASSES: readonly Pass[] = [
  inferShapesPass,
  constantToInitializer,
  upgradeOpset,
  foldConstants,
  foldBatchnorm,
  dce,
  // (each pass file adds itself here)
];

export function allPasses(): readonly Pass[] {
  return PASSES;
}

export function getPass(name: string): Pass {
  const p = PASSES.find((x) => x.name === name);
  if (!p) {
    throw new QccError('E_PASS_UNKNOWN', `unknown pass '${name}'; known passes: ${PASSES.map((x) => x.name).join(', ')}`);
  }
  return p;
}
