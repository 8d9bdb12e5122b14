// The TensorRT target: placement (patterns.ts through the shared engine), legality, fusion prediction and the trtexec command line.

import * as path from 'node:path';
import type { Model } from '../../ir/ir.js';
import type { QuantConfig, QuantPlan } from '../../passes/quant/types.js';
import { planQuantization } from '../shared-plan.js';
import type { Target, TargetExtras } from '../target.js';
import { trtPredictFusion } from './fusion.js';
import { trtLegality } from './legality.js';
import { TRT_PLACEMENT } from './patterns.js';

export function trtPlan(model: Model, config: QuantConfig): QuantPlan {
  return planQuantization(model, config, TRT_PLACEMENT);
}

/** POSIX shell single-quoting (file names with spaces or quotes). */
function sh(s: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `trtexec.sh` builds the engine from the emitted model: --stronglyTyped makes the Q/DQ graph the only source of
 * precision; --profilingVerbosity=detailed and --exportLayerInfo let the user check the fusions predictFusion
 * expects (SPEC §8 "Validate by").
 */
export function trtExtras(_model: Model, files: { model: string }): TargetExtras {
  const onnx = path.basename(files.model);
  const stem = onnx.replace(/\.onnx$/i, '');
  const cmd = [
    'trtexec',
    `--onnx=${sh(onnx)}`,
    '--stronglyTyped',
    `--saveEngine=${sh(`${stem}.engine`)}`,
    '--profilingVerbosity=detailed',
    `--exportLayerInfo=${sh(`${stem}.layers.json`)}`,
  ].join(' ');
  return {
    files: { 'trtexec.sh': `#!/bin/sh\n# Builds the TensorRT engine for ${onnx} (run from this folder; TensorRT 10+).\nset -e\ncd "$(dirname "$0")"\n${cmd} "$@"\n` },
    notes: [
      `build the engine: ${cmd}`,
      `check ${stem}.layers.json: quantized layers show fused Conv/Gemm kernels with Int8 (or FP8) inputs, and there should be no standalone Quantize/Dequantize/Scale layers beyond those listed as standalone in this report`,
      'TensorRT is not run here: the fusion prediction follows the placement rules of SPEC §8; numerics are validated in onnxruntime',
    ],
  };
}

export const TENSORRT: Target = {
  name: 'tensorrt',
  legality: trtLegality,
  plan: trtPlan,
  predictFusion: trtPredictFusion,
  emitExtras: trtExtras,
};
