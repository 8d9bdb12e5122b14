// Conformance runner: libonnx-testdata models through qcc decode -> encode, compared bit-for-bit in onnxruntime-node.

import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { QccError } from '../../ir/errors.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { ort } from '../../ir/ort.js';
import { feedsFor, listTestDirs, loadTestDir, TESTDATA_ROOT } from './testdata.js';

/** What happened to one test dir. */
export interface ModelOutcome {
  readonly id: string;
  /** qcc failed to decode or encode (message), else undefined. */
  readonly codecError?: string;
  /** encode(decode(encode(decode(x)))) is byte-identical to encode(decode(x)). */
  readonly fixedPoint: boolean;
  /** encode(decode(x)) is byte-identical to x itself (not required; reported). */
  readonly identicalToInput: boolean;
  /** ORT loads the original bytes / the converted bytes. */
  readonly ortOriginal: boolean;
  readonly ortConverted: boolean;
  readonly ortError?: string;
  /** Both fail to load with the same message. */
  readonly ortSameError?: boolean;
  /** Data sets whose outputs were compared and were bit-identical. */
  readonly setsIdentical: number;
  /** Data sets whose outputs differ between original and converted (the failure this suite exists to catch). */
  readonly setsMismatch: string[];
  /** Data sets not compared: inputs ORT's JS API cannot hold, or ORT fails to run both models the same way. */
  readonly setsSkipped: { set: string; why: string }[];
  /** Data sets where the original model itself gives different outputs on two runs (random ops). */
  readonly setsNondeterministic: string[];
}

export interface ConformanceSummary {
  readonly root: string;
  readonly found: number;
  /** Decoded and re-encoded without error. */
  readonly codecOk: number;
  readonly fixedPoint: number;
  readonly identicalToInput: number;
  /** ORT loads the original bytes. */
  readonly ortLoadable: number;
  /** ORT rejects both the original and the converted bytes. */
  readonly ortRejectedBoth: number;
  /** ORT rejects both with different messages (listed; should be empty). */
  readonly ortRejectedDifferently: string[];
  /** ORT loads one and not the other (must be 0). */
  readonly ortLoadMismatch: string[];
  /** Loadable models whose every compared data set gave bit-identical outputs (and at least one was compared). */
  readonly modelsBitIdentical: number;
  /** Loadable models with no comparable data set (all skipped or nondeterministic). */
  readonly modelsNotCompared: string[];
  readonly modelsMismatch: string[];
  readonly sets: { readonly total: number; readonly identical: number; readonly mismatch: number; readonly skipped: number; readonly nondeterministic: number };
  readonly ms: number;
  readonly outcomes: ModelOutcome[];
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Bitwise equality of two ORT tensors: same type, dims and bytes (so NaN equals NaN only with the same bits). */
export function ortTensorsIdentical(a: ort.Tensor, b: ort.Tensor): boolean {
  if (a.type !== b.type || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return false;
  if (a.type === 'string') {
    const x = a.data as string[];
    const y = b.data as string[];
    return x.length === y.length && x.every((s, i) => s === y[i]);
  }
  const x = a.data as ArrayBufferView;
  const y = b.data as ArrayBufferView;
  return bytesEqual(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
}

/** Bitwise equality of two ORT result maps (same output names, each identical). */
export function ortResultsIdentical(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => ortTensorsIdentical(a[k]!, b[k]!));
}

function msg(e: unknown): string {
  return e instanceof QccError ? e.describe() : String((e as Error)?.message ?? e).split('\n')[0]!;
}

async function tryRun(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor> | string> {
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } catch (e) {
    return msg(e);
  }
}

async function trySession(bytes: Uint8Array): Promise<ort.InferenceSession | string> {
  try {
    // not ir/ort.createSession: the same options, but ORT's own error log is silenced (failures are counted here)
    return await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 4 });
  } catch (e) {
    return msg(e);
  }
}

/** qcc's library path of `qcc convert`: decode, then encode. */
export function convertBytes(bytes: Uint8Array, file?: string): Uint8Array {
  return encodeModel(decodeModel(bytes, file === undefined ? {} : { file }));
}

/** Runs one test dir through the codec and ORT. */
export async function checkTestDir(dir: string, root = TESTDATA_ROOT, convert: (bytes: Uint8Array, file?: string) => Uint8Array = convertBytes): Promise<ModelOutcome> {
  const td = loadTestDir(dir, root);
  const base = { id: td.id, fixedPoint: false, identicalToInput: false, ortOriginal: false, ortConverted: false, setsIdentical: 0, setsMismatch: [], setsSkipped: [], setsNondeterministic: [] };
  let e1: Uint8Array;
  let e2: Uint8Array;
  try {
    e1 = convert(td.modelBytes, `${dir}/model.onnx`);
    e2 = convert(e1);
  } catch (e) {
    return { ...base, codecError: msg(e) };
  }
  const fixedPoint = bytesEqual(e1, e2);
  const identicalToInput = bytesEqual(td.modelBytes, e1);
  const so = await trySession(td.modelBytes);
  const sc = await trySession(e1);
  const out: ModelOutcome & { setsMismatch: string[]; setsSkipped: { set: string; why: string }[]; setsNondeterministic: string[] } = {
    ...base,
    fixedPoint,
    identicalToInput,
    ortOriginal: typeof so !== 'string',
    ortConverted: typeof sc !== 'string',
    setsMismatch: [],
    setsSkipped: [],
    setsNondeterministic: [],
  };
  try {
    if (typeof so === 'string' || typeof sc === 'string') {
      const err = typeof so === 'string' ? so : typeof sc === 'string' ? sc : '';
      return { ...out, ortError: err, ortSameError: so === sc };
    }
    if (so.inputNames.join('\0') !== sc.inputNames.join('\0') || so.outputNames.join('\0') !== sc.outputNames.join('\0')) {
      out.setsMismatch.push('(input/output names differ)');
      return out;
    }
    let identical = 0;
    for (const set of td.sets) {
      const feeds = feedsFor(so, set.inputs);
      if (feeds === undefined) {
        out.setsSkipped.push({ set: set.name, why: 'inputs not feedable to onnxruntime-node' });
        continue;
      }
      const ro = await tryRun(so, feeds);
      const rc = await tryRun(sc, feeds);
      if (typeof ro === 'string' || typeof rc === 'string') {
        if (typeof ro === 'string' && typeof rc === 'string') out.setsSkipped.push({ set: set.name, why: `ORT fails to run both: ${ro}` });
        else out.setsMismatch.push(`${set.name} (only one runs: ${typeof ro === 'string' ? ro : rc})`);
        continue;
      }
      if (ortResultsIdentical(ro, rc)) {
        identical++;
        continue;
      }
      // a mismatch counts only if the original model is deterministic on these inputs
      const again = await tryRun(so, feeds);
      if (typeof again !== 'string' && !ortResultsIdentical(ro, again)) out.setsNondeterministic.push(set.name);
      else out.setsMismatch.push(set.name);
    }
    return { ...out, setsIdentical: identical };
  } finally {
    if (typeof so !== 'string') await so.release();
    if (typeof sc !== 'string') await sc.release();
  }
}

/** Runs the whole corpus in this process (sessions are released after each model). */
export async function runConformance(root = TESTDATA_ROOT, opts: { filter?: (id: string) => boolean; onModel?: (o: ModelOutcome) => void } = {}): Promise<ConformanceSummary> {
  const t0 = performance.now();
  const dirs = listTestDirs(root).filter((d) => !opts.filter || opts.filter(path.relative(root, d)));
  const outcomes: ModelOutcome[] = [];
  for (const d of dirs) {
    const o = await checkTestDir(d, root);
    outcomes.push(o);
    opts.onModel?.(o);
  }
  const loadable = outcomes.filter((o) => o.ortOriginal);
  const sets = { total: 0, identical: 0, mismatch: 0, skipped: 0, nondeterministic: 0 };
  for (const o of outcomes) {
    sets.identical += o.setsIdentical;
    sets.mismatch += o.setsMismatch.length;
    sets.skipped += o.setsSkipped.length;
    sets.nondeterministic += o.setsNondeterministic.length;
  }
  sets.total = sets.identical + sets.mismatch + sets.skipped + sets.nondeterministic;
  return {
    root,
    found: outcomes.length,
    codecOk: outcomes.filter((o) => o.codecError === undefined).length,
    fixedPoint: outcomes.filter((o) => o.fixedPoint).length,
    identicalToInput: outcomes.filter((o) => o.identicalToInput).length,
    ortLoadable: loadable.length,
    ortRejectedBoth: outcomes.filter((o) => o.codecError === undefined && !o.ortOriginal && !o.ortConverted).length,
    ortRejectedDifferently: outcomes.filter((o) => !o.ortOriginal && !o.ortConverted && o.ortSameError === false).map((o) => o.id),
    ortLoadMismatch: outcomes.filter((o) => o.ortOriginal !== o.ortConverted).map((o) => `${o.id}: ${o.ortError ?? ''}`),
    modelsBitIdentical: loadable.filter((o) => o.ortConverted && o.setsMismatch.length === 0 && o.setsIdentical > 0).length,
    modelsNotCompared: loadable.filter((o) => o.ortConverted && o.setsMismatch.length === 0 && o.setsIdentical === 0).map((o) => o.id),
    modelsMismatch: outcomes.filter((o) => o.setsMismatch.length > 0).map((o) => `${o.id}: ${o.setsMismatch.join(', ')}`),
    sets,
    ms: performance.now() - t0,
    outcomes,
  };
}

/** The counts as a Markdown table (bench/RESULTS.md, test logs). */
export function summaryTable(s: ConformanceSummary): string {
  const rows: [string, string][] = [
    ['models found (model.onnx)', String(s.found)],
    ['decoded and re-encoded by qcc', String(s.codecOk)],
    ['fixed point: encode(decode(encode(decode(x)))) == encode(decode(x))', String(s.fixedPoint)],
    ['byte-identical to the input file', String(s.identicalToInput)],
    ['ORT-loadable (original bytes)', String(s.ortLoadable)],
    ['ORT rejects both original and converted', String(s.ortRejectedBoth)],
    ['ORT loads only one of the two', String(s.ortLoadMismatch.length)],
    ['bit-identical ORT outputs (models, every data set)', String(s.modelsBitIdentical)],
    ['loadable but not comparable (sequence/optional inputs)', String(s.modelsNotCompared.length)],
    ['models with differing outputs', String(s.modelsMismatch.length)],
    ['data sets: identical / differing / skipped / nondeterministic', `${s.sets.identical} / ${s.sets.mismatch} / ${s.sets.skipped} / ${s.sets.nondeterministic}`],
    ['time', `${(s.ms / 1000).toFixed(1)} s`],
  ];
  return ['| libonnx-testdata conformance | count |', '|---|---:|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
