// The canonicalization pipeline (`qcc convert --canonicalize [--opset N]`): the normal form later passes rely on.
//
//   constant-to-initializer -> upgrade-opset (with `opset`) -> fold-constants -> fold-batchnorm -> dce
//
// run by the PassManager as a best-effort fixpoint (at most 4 rounds; not converging is not an error). After it,
// weights are initializers, constant subgraphs are folded, BatchNormalization after a Conv/ConvTranspose/Gemm
// that owns its weights is gone, and nothing dead is left.

import type { Model } from '../ir/ir.js';
import { constantToInitializer } from './constant-to-initializer.js';
import { dce } from './dce.js';
import { foldBatchnorm } from './fold-batchnorm.js';
import { foldConstants } from './fold-constants.js';
import { PassManager, type PipelineResult } from './manager.js';
import type { DiagnosticSink, Instrument, Pass, PassOptions } from './pass.js';
import { upgradeOpset } from './upgrade-opset.js';

export const CANONICALIZE_FIXPOINT = 4;

export interface CanonicalizeOptions {
  /** Convert the ai.onnx opset up to this version first (no conversion when absent). */
  opset?: number;
  /** fold-constants' size limit for a folded result, in bytes. */
  maxFoldBytes?: number;
  instruments?: readonly Instrument[];
  diag?: DiagnosticSink;
}

/** The ordered pass list (upgrade-opset only when an opset is asked for). */
export function canonicalizationPasses(opts: { opset?: number } = {}): Pass[] {
  return [constantToInitializer, ...(opts.opset !== undefined ? [upgradeOpset] : []), foldConstants, foldBatchnorm, dce];
}

/** Canonicalizes `model` in place and returns the pipeline's result (its model is `model`). */
export async function canonicalize(model: Model, opts: CanonicalizeOptions = {}): Promise<PipelineResult> {
  const options: Record<string, PassOptions> = {};
  if (opts.opset !== undefined) options[upgradeOpset.name] = { to: opts.opset };
  if (opts.maxFoldBytes !== undefined) options[foldConstants.name] = { 'max-bytes': opts.maxFoldBytes };
  const pm = new PassManager(canonicalizationPasses(opts));
  return pm.run(model, {
    options,
    fixpoint: CANONICALIZE_FIXPOINT,
    ...(opts.instruments ? { instruments: opts.instruments } : {}),
    ...(opts.diag ? { diag: opts.diag } : {}),
  });
}
