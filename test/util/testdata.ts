// Test helper: find and load Debian libonnx-testdata test dirs (model bytes + test_data_set_* TensorProtos as IR/ORT tensors).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { QccError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/ir.js';
import { tensorFromMsg } from '../../ir/onnx/reader.js';
import { decodeMessage } from '../../ir/onnx/wire.js';
import { toOrt, type Feeds, type ort } from '../../ir/ort.js';

/** Where Debian's libonnx-testdata puts the ONNX backend test corpus. */
export const TESTDATA_ROOT = '/usr/share/libonnx-testdata/data';

export function hasTestdata(root = TESTDATA_ROOT): boolean {
  return fs.existsSync(root);
}

/** Every folder under `root` holding a model.onnx, sorted by path (deterministic order). */
export function listTestDirs(root = TESTDATA_ROOT): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (entries.some((e) => e.isFile() && e.name === 'model.onnx')) out.push(dir);
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('test_data_set_')) walk(path.join(dir, e.name));
  };
  walk(root);
  return out;
}

/** One test_data_set_N: its TensorProtos as read (undefined where a .pb is not a TensorProto, e.g. a SequenceProto). */
export interface TestDataSet {
  readonly name: string;
  readonly inputs: (Tensor | undefined)[];
  readonly outputs: (Tensor | undefined)[];
}

export interface TestDir {
  readonly dir: string;
  /** Path relative to the corpus root, e.g. `node/test_abs`. */
  readonly id: string;
  readonly modelBytes: Uint8Array;
  readonly sets: TestDataSet[];
}

function numbered(dir: string, prefix: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => path.join(dir, f));
}

/** Decodes a .pb file holding one TensorProto; undefined when it is not a (usable) TensorProto. */
export function readTensorPb(file: string): Tensor | undefined {
  const buf = fs.readFileSync(file);
  try {
    return tensorFromMsg(decodeMessage(buf, 'TensorProto', { file }), { file, baseDir: path.dirname(file) }, path.basename(file));
  } catch (e) {
    if (e instanceof QccError) return undefined;
    throw e;
  }
}

/** Loads a test dir: the model bytes (as stored) and each data set's tensors. */
export function loadTestDir(dir: string, root = TESTDATA_ROOT): TestDir {
  const modelBytes = fs.readFileSync(path.join(dir, 'model.onnx'));
  const sets: TestDataSet[] = [];
  for (const s of fs.readdirSync(dir).filter((f) => f.startsWith('test_data_set_')).sort()) {
    const sd = path.join(dir, s);
    sets.push({ name: s, inputs: numbered(sd, 'input_').map(readTensorPb), outputs: numbered(sd, 'output_').map(readTensorPb) });
  }
  return { dir, id: path.relative(root, dir), modelBytes, sets };
}

/**
 * ORT feeds for a session from a data set's inputs: by the tensor's name when the session has such an input,
 * else by position (the ONNX backend-test convention). Returns undefined when an input cannot be fed to
 * onnxruntime-node (not a tensor, or an element type ORT's JS API has no tensor type for).
 */
export function feedsFor(session: ort.InferenceSession, inputs: readonly (Tensor | undefined)[]): Feeds | undefined {
  const names = session.inputNames;
  if (inputs.length > names.length) return undefined;
  const feeds: Feeds = {};
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i];
    if (t === undefined) return undefined;
    const name = t.name !== '' && names.includes(t.name) ? t.name : names[i]!;
    try {
      feeds[name] = toOrt(t);
    } catch (e) {
      if (e instanceof QccError) return undefined;
      throw e;
    }
  }
  return feeds;
}

/** A data set's tensors as ORT tensors (undefined where onnxruntime-node has no tensor type for one). */
export function ortTensorsOf(set: TestDataSet): { inputs: (ort.Tensor | undefined)[]; outputs: (ort.Tensor | undefined)[] } {
  const conv = (t: Tensor | undefined): ort.Tensor | undefined => {
    if (t === undefined) return undefined;
    try {
      return toOrt(t);
    } catch (e) {
      if (e instanceof QccError) return undefined;
      throw e;
    }
  };
  return { inputs: set.inputs.map(conv), outputs: set.outputs.map(conv) };
}
