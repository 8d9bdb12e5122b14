// Model files for the CLI: .onnx through the ONNX reader/writer, .qir through the text parser/printer; writes are atomic.

import * as fs from 'node:fs';
import { QccError } from '../ir/errors.js';
import type { Model } from '../ir/ir.js';
import { loadModel } from '../ir/onnx/reader.js';
import { saveModel, writeFileAtomic } from '../ir/onnx/writer.js';
import { parseModel } from '../ir/parse.js';
import { printModel } from '../ir/print.js';

export type ModelFormat = 'onnx' | 'qir';

export function formatOf(file: string): ModelFormat {
  return file.toLowerCase().endsWith('.qir') ? 'qir' : 'onnx';
}

/**
 * Loads an .onnx file (external data validated, not read) or parses a .qir file. `lazy`: large initializers stay
 * in the .onnx file and are read when used (compile: the input model then costs no memory while onnxruntime runs).
 */
export function readModel(file: string, o: { lazy?: boolean } = {}): Model {
  if (formatOf(file) === 'onnx') return loadModel(file, o.lazy ? { lazy: true } : {});
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QccError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  return parseModel(text, { file });
}

export interface WriteModelOptions {
  /** External data for tensors of at least `threshold` bytes (onnx only). */
  externalData?: { threshold: number };
}

/** Writes the model atomically (temporary file, then rename): on failure no output file appears. */
export function writeModel(m: Model, file: string, opts: WriteModelOptions = {}): { bytes: number; dataBytes: number } {
  if (formatOf(file) === 'qir') {
    if (opts.externalData) throw new QccError('E_USAGE', 'external data applies to .onnx outputs, not .qir text');
    const bytes = new TextEncoder().encode(printModel(m));
    writeFileAtomic(file, [bytes]);
    return { bytes: bytes.length, dataBytes: 0 };
  }
  return saveModel(m, file, opts.externalData ? { externalData: { threshold: opts.externalData.threshold } } : {});
}
