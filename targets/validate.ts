// Validation built into compile: run the FP32 and the quantized model in onnxruntime-node on held-out inputs and compare.
//
// Per graph output, accumulated over every held-out batch in float64 (memory does not grow with the sample count):
//   SQNR (dB)  = 10 log10( sum y^2 / sum (y - yq)^2 )      (+Infinity when identical; NaN when yq has NaN/Inf)
//   cosine     = sum y*yq / sqrt(sum y^2 * sum yq^2)        (1 when both are all zeros)
//   maxAbsErr  = max |y - yq|
//   top-1 agreement, for classifier-shaped outputs (rank 2 [N, C], C >= 2, float): the fraction of rows whose argmax
//   is the same in both models (first maximum wins on ties, as numpy.argmax).
// Integer and bool outputs are compared exactly (`exactMatch`: the fraction of equal elements).

import type * as ortTypes from 'onnxruntime-node';
import { QccError } from '../ir/errors.js';
import type { Model } from '../ir/ir.js';
import { decodeF16 } from '../ir/numerics.js';
import { createSession, run, type Feeds } from '../ir/ort.js';
import { batchRows } from '../passes/quant/calib-data.js';

/** What validation needs from a calibration data source (CalibrationData satisfies it). */
export interface InputBatches {
  readonly samples: number;
  batches(): AsyncIterable<Feeds>;
}

export interface OutputMetrics {
  readonly name: string;
  /** Signal-to-quantization-noise ratio of the quantized output against the FP32 one, dB (higher is better). */
  readonly sqnrDb: number;
  readonly cosine: number;
  readonly maxAbsErr: number;
  /** Rank-2 [N, C] float outputs: fraction of rows with the same argmax. */
  readonly top1Agreement?: number;
  /** Integer/bool outputs: fraction of equal elements. */
  readonly exactMatch?: number;
  /** Elements compared. */
  readonly elements: number;
  /** Non-finite (NaN/Inf) elements in the quantized output. */
  readonly nonFinite: number;
}

export interface ValidationResult {
  readonly outputs: OutputMetrics[];
  /** Samples (batch rows of the first input) compared. */
  readonly samples: number;
  readonly ms: number;
}

export interface ValidateOptions {
  /** Reuse existing sessions (e.g. the ORT fusion check's optimized session). */
  readonly sessions?: { readonly fp32?: ortTypes.InferenceSession; readonly quant?: ortTypes.InferenceSession };
  readonly onProgress?: (done: number, total: number) => void;
}

/** Float64 accumulators of one output's comparison metrics. */
export class MetricAccumulator {
  sumY2 = 0;
  sumYq2 = 0;
  sumErr2 = 0;
  dot = 0;
  maxAbs = 0;
  elements = 0;
  nonFinite = 0;
  equal = 0;
  rows = 0;
  rowsAgree = 0;
  constructor(
    readonly name: string,
    readonly kind: 'float' | 'exact',
  ) {}

  /** Adds one batch: `y` reference, `yq` quantized, `dims` their shape (for top-1 on [N, C]). */
  add(y: ArrayLike<number>, yq: ArrayLike<number>, dims: readonly number[]): void {
    if (y.length !== yq.length) throw new QccError('E_ORT', `output '${this.name}' has ${y.length} elements in the FP32 model and ${yq.length} in the quantized one`);
    const n = y.length;
    this.elements += n;
    if (this.kind === 'exact') {
      for (let i = 0; i < n; i++) if (y[i] === yq[i]) this.equal++;
      return;
    }
    let s2 = 0;
    let q2 = 0;
    let e2 = 0;
    let d = 0;
    let mx = this.maxAbs;
    for (let i = 0; i < n; i++) {
      const a = y[i]!;
      const b = yq[i]!;
      if (!Number.isFinite(b)) {
        this.nonFinite++;
        continue;
      }
      const e = a - b;
      s2 += a * a;
      q2 += b * b;
      e2 += e * e;
      d += a * b;
      const ae = Math.abs(e);
      if (ae > mx) mx = ae;
    }
    this.sumY2 += s2;
    this.sumYq2 += q2;
    this.sumErr2 += e2;
    this.dot += d;
    this.maxAbs = mx;
    if (dims.length === 2 && dims[1]! >= 2) {
      const rows = dims[0]!;
      const c = dims[1]!;
      for (let r = 0; r < rows; r++) {
        this.rows++;
        if (argmax(y, r * c, c) === argmax(yq, r * c, c)) this.rowsAgree++;
      }
    }
  }

  result(): OutputMetrics {
    if (this.kind === 'exact') {
      return { name: this.name, sqnrDb: this.equal === this.elements ? Infinity : NaN, cosine: NaN, maxAbsErr: NaN, exactMatch: this.elements ? this.equal / this.elements : 1, elements: this.elements, nonFinite: 0 };
    }
    const r: OutputMetrics = {
      name: this.name,
      sqnrDb: this.nonFinite ? NaN : sqnrFromSums(this.sumY2, this.sumErr2),
      cosine: this.nonFinite ? NaN : cosineFromSums(this.dot, this.sumY2, this.sumYq2),
      maxAbsErr: this.nonFinite ? Infinity : this.maxAbs,
      elements: this.elements,
      nonFinite: this.nonFinite,
      ...(this.rows ? { top1Agreement: this.rowsAgree / this.rows } : {}),
    };
    return r;
  }
}

function argmax(a: ArrayLike<number>, off: number, n: number): number {
  let best = 0;
  let bv = a[off]!;
  for (let i = 1; i < n; i++) {
    const v = a[off + i]!;
    if (v > bv || (Number.isNaN(bv) && !Number.isNaN(v))) {
      bv = v;
      best = i;
    }
  }
  return best;
}

export function sqnrFromSums(signal2: number, noise2: number): number {
  if (noise2 === 0) return Infinity;
  return 10 * Math.log10(signal2 / noise2);
}

export function cosineFromSums(dot: number, a2: number, b2: number): number {
  if (a2 === 0 && b2 === 0) return 1;
  if (a2 === 0 || b2 === 0) return 0;
  return dot / Math.sqrt(a2 * b2);
}

/** SQNR in dB of `yq` against the reference `y`, in float64. */
export function sqnrDb(y: ArrayLike<number>, yq: ArrayLike<number>): number {
  const m = new MetricAccumulator('y', 'float');
  m.add(y, yq, [y.length]);
  return m.result().sqnrDb;
}

export function cosineSimilarity(y: ArrayLike<number>, yq: ArrayLike<number>): number {
  const m = new MetricAccumulator('y', 'float');
  m.add(y, yq, [y.length]);
  return m.result().cosine;
}

export function maxAbsError(y: ArrayLike<number>, yq: ArrayLike<number>): number {
  const m = new MetricAccumulator('y', 'float');
  m.add(y, yq, [y.length]);
  return m.result().maxAbsErr;
}

/** Fraction of rows of the [rows, classes] matrices whose argmax agrees. */
export function top1Agreement(y: ArrayLike<number>, yq: ArrayLike<number>, rows: number, classes: number): number {
  const m = new MetricAccumulator('y', 'float');
  m.add(y, yq, [rows, classes]);
  return m.result().top1Agreement ?? NaN;
}

/** The elements of an ORT output as numbers (float16 decoded; int64 converted), and whether they compare exactly. */
function numbersOf(t: ortTypes.Tensor, name: string): { data: ArrayLike<number>; kind: 'float' | 'exact' } {
  switch (t.type) {
    case 'float32':
    case 'float64':
      return { data: t.data as Float32Array | Float64Array, kind: 'float' };
    case 'float16': {
      const d = t.data as unknown;
      if (d instanceof Uint16Array) return { data: decodeF16(d), kind: 'float' };
      return { data: Float32Array.from(d as ArrayLike<number>), kind: 'float' };
    }
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32':
    case 'bool':
      return { data: t.data as ArrayLike<number>, kind: 'exact' };
    case 'int64':
    case 'uint64':
      return { data: Float64Array.from(t.data as BigInt64Array, (v) => Number(v)), kind: 'exact' };
    default:
      throw new QccError('E_UNSUPPORTED', `validation cannot compare output '${name}' of type ${t.type}`, { tensor: name });
  }
}

/** The FP32 outputs of every held-out batch, kept to compare the quantized model against (one session at a time). */
export interface ReferenceOutputs {
  readonly names: readonly string[];
  readonly batches: readonly Readonly<Record<string, { readonly data: ArrayLike<number>; readonly kind: 'float' | 'exact'; readonly dims: readonly number[] }>>[];
  readonly samples: number;
}


/** One output of a reference batch, as ReferenceOutputs keeps it. */
export function referenceEntry(t: ortTypes.Tensor, name: string): ReferenceOutputs['batches'][number][string] {
  return { ...numbersOf(t, name), dims: t.dims.map(Number) };
}

/** Runs the reference session on every batch of `inputs` and keeps the outputs `names`. */
export async function referenceOutputs(
  session: ortTypes.InferenceSession,
  names: readonly string[],
  inputs: InputBatches,
  onProgress?: (done: number, total: number) => void,
  unbatched: ReadonlySet<string> = new Set(),
): Promise<ReferenceOutputs> {
  const batches: ReferenceOutputs['batches'][number][] = [];
  let samples = 0;
  for await (const feeds of inputs.batches()) {
    samples += batchRows(feeds, unbatched);
    const out = await run(session, feeds, names);
    const b: Record<string, { data: ArrayLike<number>; kind: 'float' | 'exact'; dims: number[] }> = {};
    for (const n of names) b[n] = { ...numbersOf(out[n]!, n), dims: out[n]!.dims.map(Number) };
    batches.push(b);
    onProgress?.(samples, 2 * inputs.samples);
  }
  if (samples === 0) throw new QccError('E_USAGE', 'validation got no input samples');
  return { names, batches, samples };
}

/** Runs the quantized session on the same batches and compares with the reference outputs. */
export async function compareOutputs(
  session: ortTypes.InferenceSession,
  ref: ReferenceOutputs,
  inputs: InputBatches,
  onProgress?: (done: number, total: number) => void,
  unbatched: ReadonlySet<string> = new Set(),
): Promise<OutputMetrics[]> {
  const acc = new Map<string, MetricAccumulator>();
  let i = 0;
  let samples = 0;
  for await (const feeds of inputs.batches()) {
    const r = ref.batches[i++];
    if (!r) throw new QccError('E_PASS_FAILED', 'validation inputs changed between the FP32 and the quantized run');
    samples += batchRows(feeds, unbatched);
    const out = await run(session, feeds, ref.names);
    for (const n of ref.names) {
      const a = r[n]!;
      const b = numbersOf(out[n]!, n);
      let m = acc.get(n);
      if (!m) acc.set(n, (m = new MetricAccumulator(n, a.kind)));
      m.add(a.data, b.data, a.dims);
    }
    onProgress?.(ref.samples + samples, 2 * ref.samples);
  }
  return ref.names.map((n) => acc.get(n)!.result());
}

/**
 * Runs `fp32` and `quant` on every batch of `inputs` (held out: never the calibration samples) and compares their
 * graph outputs (matched by name; the quantized model keeps the FP32 output names). The two models run one after
 * the other (the FP32 outputs are kept), so only one session is alive at a time; given sessions are not released.
 */
export async function validate(fp32: Model, quant: Model, inputs: InputBatches, o: ValidateOptions = {}): Promise<ValidationResult> {
  const t0 = performance.now();
  const names = fp32.graph.outputs.map((v) => v.name);
  const qNames = new Set(quant.graph.outputs.map((v) => v.name));
  for (const n of names) if (!qNames.has(n)) throw new QccError('E_PASS_FAILED', `the quantized model lost graph output '${n}'`, { tensor: n });
  const s32 = o.sessions?.fp32 ?? (await createSession(fp32));
  const ref = await referenceOutputs(s32, names, inputs, o.onProgress);
  if (!o.sessions?.fp32) await s32.release();
  const sq = o.sessions?.quant ?? (await createSession(quant));
  const outputs = await compareOutputs(sq, ref, inputs, o.onProgress);
  if (!o.sessions?.quant) await sq.release();
  return { outputs, samples: ref.samples, ms: performance.now() - t0 };
}
