// Calibration data sources: seeded random inputs, .npy files and images (PNG/JPEG via sharp), yielded as ORT feeds batch by batch.
//
// Every source is re-iterable (batches() starts over, reading files again: nothing is held between batches) and
// yields up to `batchSize` samples per batch (default 1: the calibration copy of the model hands every requested
// activation to JS, so memory grows with the batch while ORT's CPU throughput per sample hardly changes; on
// ResNet-50 batch 1 was the fastest per sample). Which inputs are batched (dimension 0 is the batch):
//   - when some input's first dimension is symbolic: exactly those inputs (a symbolic dimension elsewhere that has
//     the same name takes the batch size too);
//   - when every first dimension is a number: the inputs whose first dimension equals that of the largest input;
//     the batch is then fixed at that size (an incomplete last batch is left out of `samples` and not yielded).
// Any other input of rank >= 1 (a static [2,2,1,1] tensor next to an [N,3,H,W] image, a static [3] vector) is not
// batched: it is fed whole, one sample replicated unchanged in every batch. A rank-0 input takes one value per
// batch, and batches then hold one sample (unless the batch is fixed).
//
// Random inputs, "in the input's expected range" (seeded per sample: sample k is the same whatever the batch size):
//   float inputs                N(0, 1): what an ImageNet-normalized image ((pixel/255 - mean) / std) looks like
//                               to the first layer, and the distribution of diffusion latents;
//   float named like a timestep U[0, 1000) (DiT's diffusion timestep `timestep`, `t`);
//   integers named like labels  U{0 .. 999} (DiT's `class_label`, any `label`/`class` input: ImageNet classes);
//   uint8 / int8 of rank >= 3   U{0 .. 255} / U{-128 .. 127} (raw images);
//   other integers              U{0 .. 9} (small non-negative ids, counts and flags);
//   bool                        fair coin.
// These are guesses from names and types, stated in `description`: real data gives better ranges.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OutputInfo } from 'sharp';
import type { DType } from '../../ir/dtype.js';
import { QccError } from '../../ir/errors.js';
import { bytesToTyped, shapeToString, type AnyTypedArray, type Dim, type Model, type Shape } from '../../ir/ir.js';
import { encodeF16, decodeF16 } from '../../ir/numerics.js';
import { ort, ortTypeOf, type Feeds } from '../../ir/ort.js';
import { mulberry32 } from '../../ir/random.js';

export type { Feeds } from '../../ir/ort.js';

export interface CalibrationData {
  readonly source: 'random' | 'npy' | 'images';
  /** Samples the batches yield in total. */
  readonly samples: number;
  /** Re-iterable; each batch holds up to the source's batch size of samples. */
  batches(): AsyncIterable<Feeds>;
  /** What the data is, one line per input (e.g. "latent f32 [B,4,32,32] ~ N(0,1)"), for summaries and reports. */
  readonly description?: string;
}

/**
 * Image preprocessing: resize to `size` = [width, height] (stretching, triangle filter), then per channel
 * `(pixel · scale - mean[c]) / std[c]` with pixel in 0..255, scale default 1/255, mean default 0, std default 1;
 * channels RGB (or BGR with `bgr`, mean/std then given in BGR order), laid out as the model's input
 * (`layout` overrides: 'nchw' or 'nhwc').
 */
export interface Preprocess {
  size?: [number, number];
  mean?: number[];
  std?: number[];
  layout?: 'nchw' | 'nhwc';
  scale?: number;
  bgr?: boolean;
}

/** Samples per batch unless a source is told otherwise. */
export const DEFAULT_CALIB_BATCH = 1;
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

// ---------------------------------------------------------------------------------------------------------------
// Model inputs and batching

interface InputSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

/** The inputs the data must feed (graph inputs without an initializer default). */
function modelInputs(model: Model): InputSpec[] {
  const out: InputSpec[] = [];
  for (const v of model.graph.inputs) {
    if (v.initializer) continue;
    const t = v.type;
    if (t?.kind !== 'tensor' || t.dtype === undefined || t.shape === undefined) {
      throw new QccError('E_USAGE', `model input '${v.name}' has no known element type and shape: cannot make calibration data for it`, { tensor: v.name });
    }
    if (ortTypeOf(t.dtype) === undefined || t.dtype === 'string') {
      const why = t.dtype === 'string' ? 'string tensors have no numeric range (quantize the model behind its tokenizer/decoder)' : `calibration data of type ${t.dtype} is not supported`;
      throw new QccError('E_USAGE', `cannot calibrate input '${v.name}': ${why}`, { tensor: v.name });
    }
    out.push({ name: v.name, dtype: t.dtype, shape: t.shape });
  }
  if (out.length === 0) throw new QccError('E_USAGE', 'the model has no inputs to feed calibration data to');
  return out;
}

/** Throws E_USAGE (naming the input) unless every model input can be fed calibration data: numeric tensors of known type and rank. */
export function checkCalibrationInputs(model: Model): void {
  modelInputs(model);
}

interface Batching {
  /** Samples per batch; `fixed` when the model's batch dimension is a number. */
  readonly size: number;
  readonly fixed: boolean;
  /** Names of symbolic dimensions that are the batch. */
  readonly params: ReadonlySet<string>;
  /** Inputs of rank >= 1 without a batch dimension: fed whole, the same sample in every batch. */
  readonly unbatched: ReadonlySet<string>;
}

function batching(inputs: readonly InputSpec[], requested: number | undefined): Batching {
  if (requested !== undefined && (!Number.isInteger(requested) || requested < 1)) {
    throw new QccError('E_USAGE', `calibration batch size must be a positive integer, not ${requested}`);
  }
  const ranked = inputs.filter((i) => i.shape.length > 0);
  const symbolic = ranked.filter((i) => typeof i.shape[0] !== 'number');
  // all static: the batch is the first dimension of the largest input (unknown dims count as large; ties: the first)
  const elements = (i: InputSpec): number => i.shape.slice(1).reduce<number>((a, d) => a * (typeof d === 'number' ? d : Infinity), 1);
  const main = symbolic.length ? undefined : ranked.reduce<InputSpec | undefined>((best, i) => (best === undefined || elements(i) > elements(best) ? i : best), undefined);
  const fixed = main?.shape[0] as number | undefined;
  const batched = (i: InputSpec): boolean => (fixed === undefined ? typeof i.shape[0] !== 'number' : i.shape[0] === fixed);
  const params = new Set<string>();
  for (const i of symbolic) {
    const d = i.shape[0]!;
    if (typeof d !== 'number' && d.param !== null) params.add(d.param);
  }
  const unbatched = new Set(ranked.filter((i) => !batched(i)).map((i) => i.name));
  if (fixed !== undefined) return { size: fixed, fixed: true, params, unbatched };
  if (inputs.some((i) => i.shape.length === 0)) return { size: 1, fixed: false, params, unbatched };
  return { size: requested ?? DEFAULT_CALIB_BATCH, fixed: false, params, unbatched };
}

/**
 * How the data sources batch `model`'s inputs (see the file comment): the fixed batch size, if any, and the inputs
 * fed whole in every batch (not to be sliced or counted as rows).
 */
export function inputBatching(model: Model): { readonly fixed: number | undefined; readonly unbatched: ReadonlySet<string> } {
  const b = batching(modelInputs(model), undefined);
  return { fixed: b.fixed ? b.size : undefined, unbatched: b.unbatched };
}

/** Samples in a batch: dim 0 of the first input not in `unbatched` (inputs fed whole to every batch). */
export function batchRows(feeds: Feeds, unbatched: ReadonlySet<string> = new Set()): number {
  const t = Object.entries(feeds).find(([k, v]) => !unbatched.has(k) && v.dims.length > 0)?.[1];
  return t ? Number(t.dims[0]) : 1;
}

function checkSamples(n: number | undefined, what: string): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new QccError('E_USAGE', `${what} must be a positive integer, not ${n}`);
}

/** The dims of one sample (the input shape without dim 0; all of it when unbatched) when every one is known or given. */
function sampleShape(i: InputSpec, b: Batching, dims: Record<string, number>): number[] {
  const skip = b.unbatched.has(i.name) ? 0 : 1;
  return i.shape.slice(skip).map((d, k) => resolveDim(i, k + skip, d, b, dims));
}

function resolveDim(i: InputSpec, axis: number, d: Dim, b: Batching, dims: Record<string, number>): number {
  if (typeof d === 'number') return d;
  const key = d.param ?? `${i.name}:${axis}`;
  const given = dims[key];
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 1) throw new QccError('E_USAGE', `dimension '${key}' must be a positive integer, not ${given}`, { tensor: i.name });
    return given;
  }
  if (d.param !== null && b.params.has(d.param)) return b.size;
  throw new QccError(
    'E_USAGE',
    `input '${i.name}' ${shapeToString(i.shape)} has the symbolic dimension ${d.param !== null ? `'${d.param}'` : '?'} at axis ${axis}: give its value with --dim ${key}=N (library: dims: {${/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)}: N})`,
    { tensor: i.name },
  );
}

function ortType(d: DType): ort.Tensor.Type {
  return ortTypeOf(d)!;
}

/** An ORT tensor of `dtype` from float64 values (numbers as the input's element type). */
function makeTensor(dtype: DType, values: Float64Array, dims: number[]): ort.Tensor {
  const n = values.length;
  switch (dtype) {
    case 'f32':
      return new ort.Tensor('float32', Float32Array.from(values), dims);
    case 'f64':
      return new ort.Tensor('float64', values, dims);
    case 'f16':
      return new ort.Tensor('float16', encodeF16(values), dims);
    case 'i64': {
      const a = new BigInt64Array(n);
      for (let k = 0; k < n; k++) a[k] = BigInt(values[k]!);
      return new ort.Tensor('int64', a, dims);
    }
    case 'u64': {
      const a = new BigUint64Array(n);
      for (let k = 0; k < n; k++) a[k] = BigInt(values[k]!);
      return new ort.Tensor('uint64', a, dims);
    }
    case 'i32':
      return new ort.Tensor('int32', Int32Array.from(values), dims);
    case 'u32':
      return new ort.Tensor('uint32', Uint32Array.from(values), dims);
    case 'i16':
      return new ort.Tensor('int16', Int16Array.from(values), dims);
    case 'u16':
      return new ort.Tensor('uint16', Uint16Array.from(values), dims);
    case 'i8':
      return new ort.Tensor('int8', Int8Array.from(values), dims);
    case 'u8':
      return new ort.Tensor('uint8', Uint8Array.from(values), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(values), dims);
    default:
      throw new QccError('E_UNSUPPORTED', `cannot make calibration data of type ${dtype}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Random

type Distribution = { kind: 'normal' } | { kind: 'uniform'; lo: number; hi: number } | { kind: 'int'; lo: number; hi: number };

const TIMESTEP = /(^t$|time_?step|^timesteps?$|(^|_)t_emb)/i;
const LABEL = /(label|class|categor)/i;

function distributionFor(i: InputSpec): { dist: Distribution; why: string } {
  switch (i.dtype) {
    case 'f32':
    case 'f64':
    case 'f16':
      if (TIMESTEP.test(i.name)) return { dist: { kind: 'uniform', lo: 0, hi: 1000 }, why: 'U[0,1000) (diffusion timestep)' };
      return { dist: { kind: 'normal' }, why: 'N(0,1) (normalized image / latent)' };
    case 'bool':
      return { dist: { kind: 'int', lo: 0, hi: 1 }, why: 'random booleans' };
    case 'u8':
      if (i.shape.length >= 3) return { dist: { kind: 'int', lo: 0, hi: 255 }, why: 'U{0..255} (raw image)' };
      break;
    case 'i8':
      if (i.shape.length >= 3) return { dist: { kind: 'int', lo: -128, hi: 127 }, why: 'U{-128..127}' };
      break;
    default:
      break;
  }
  if (LABEL.test(i.name)) return { dist: { kind: 'int', lo: 0, hi: 999 }, why: 'U{0..999} (class label)' };
  return { dist: { kind: 'int', lo: 0, hi: 9 }, why: 'U{0..9} (small non-negative integers)' };
}

/** A 32-bit seed for (seed, sample, input) — sample k is the same whatever the batching. */
function mixSeed(seed: number, sample: number, input: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (sample + 0x7f4a7c15), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13) ^ (input * 0x27d4eb2f), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function fillSample(out: Float64Array, offset: number, count: number, dist: Distribution, rng: () => number): void {
  switch (dist.kind) {
    case 'normal':
      for (let k = 0; k < count; k += 2) {
        // Marsaglia's polar method: two normals from a uniform point in the unit disc (no trigonometry)
        let u: number;
        let v: number;
        let s: number;
        do {
          u = 2 * rng() - 1;
          v = 2 * rng() - 1;
          s = u * u + v * v;
        } while (s >= 1 || s === 0);
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        out[offset + k] = u * f;
        if (k + 1 < count) out[offset + k + 1] = v * f;
      }
      return;
    case 'uniform':
      for (let k = 0; k < count; k++) out[offset + k] = dist.lo + (dist.hi - dist.lo) * rng();
      return;
    case 'int': {
      const span = dist.hi - dist.lo + 1;
      for (let k = 0; k < count; k++) out[offset + k] = dist.lo + Math.floor(span * rng());
      return;
    }
  }
}

/**
 * Seeded random inputs in each input's expected range (see the file comment). Symbolic dimensions other than the
 * batch need `dims` (by name, or `input:axis` for unnamed ones).
 */
export function randomCalibration(
  model: Model,
  o: { samples: number; seed?: number; batchSize?: number; dims?: Record<string, number> },
): CalibrationData {
  checkSamples(o.samples, 'calibration samples');
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new QccError('E_USAGE', `seed must be an integer in 0..2^32-1, not ${seed}`);
  const inputs = modelInputs(model);
  const b = batching(inputs, o.batchSize);
  const dims = o.dims ?? {};
  const specs = inputs.map((i) => ({ i, shape: sampleShape(i, b, dims), ...distributionFor(i) }));
  const samples = b.fixed ? Math.ceil(o.samples / b.size) * b.size : o.samples;
  const shapeText = (s: (typeof specs)[number]): string => {
    if (b.unbatched.has(s.i.name)) return `[${s.shape.join(',')}] ~ ${s.why}, the same in every batch`;
    return `[${(s.i.shape.length ? [b.fixed ? String(b.size) : 'B', ...s.shape] : []).join(',')}] ~ ${s.why}`;
  };
  const description = specs.map((s) => `${s.i.name} ${s.i.dtype} ${shapeText(s)}`).join('; ');
  return {
    source: 'random',
    samples,
    description: `seeded random inputs (seed ${seed}): ${description}`,
    async *batches(): AsyncIterable<Feeds> {
      // unbatched inputs: one sample (seeded like sample 0), fed unchanged in every batch
      const whole = new Map<string, ort.Tensor>();
      specs.forEach((s, idx) => {
        if (!b.unbatched.has(s.i.name)) return;
        const vals = new Float64Array(s.shape.reduce((a, d) => a * d, 1));
        fillSample(vals, 0, vals.length, s.dist, mulberry32(mixSeed(seed, 0, idx)));
        whole.set(s.i.name, makeTensor(s.i.dtype, vals, s.shape));
      });
      for (let first = 0; first < samples; first += b.size) {
        const n = Math.min(b.size, samples - first);
        const feeds: Feeds = {};
        specs.forEach((s, idx) => {
          const w = whole.get(s.i.name);
          if (w) return void (feeds[s.i.name] = w);
          const per = s.shape.reduce((a, d) => a * d, 1);
          const scalar = s.i.shape.length === 0;
          const vals = new Float64Array(scalar ? 1 : per * n);
          for (let k = 0; k < (scalar ? 1 : n); k++) fillSample(vals, k * per, per, s.dist, mulberry32(mixSeed(seed, first + k, idx)));
          feeds[s.i.name] = makeTensor(s.i.dtype, vals, scalar ? [] : [n, ...s.shape]);
        });
        yield feeds;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// .npy files

/** A parsed .npy header. */
export interface NpyHeader {
  readonly file: string;
  /** numpy's dtype string, e.g. '<f4' */
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
  /** Byte offset of the data. */
  readonly dataOffset: number;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** qcc dtype of a numpy descr ('<f4' -> f32); undefined for what qcc does not read. */
function npyDType(descr: string): DType | undefined {
  const m = /^([<|=])([fiub])(\d+)$/.exec(descr);
  if (!m) return undefined;
  const key = `${m[2]}${m[3]}`;
  const single = m[1] === '|';
  const map: Record<string, DType> = { f2: 'f16', f4: 'f32', f8: 'f64', i8: 'i64', i4: 'i32', i2: 'i16', i1: 'i8', u1: 'u8', u2: 'u16', u4: 'u32', u8: 'u64', b1: 'bool' };
  const d = map[key];
  if (d === undefined) return undefined;
  // one-byte types are written '|'; wider ones need an explicit (little-endian) byte order
  if ((key === 'i1' || key === 'u1' || key === 'b1') !== single && m[1] !== '=') return undefined;
  return d;
}

/** Parses the header of a .npy file (versions 1, 2 and 3) from its first bytes. */
export function parseNpyHeader(bytes: Uint8Array, file: string, fileSize: number): NpyHeader {
  const bad = (why: string): QccError => new QccError('E_USAGE', `${file} is not a readable .npy file: ${why}`, { file });
  if (bytes.length < 10 || NPY_MAGIC.some((b, k) => bytes[k] !== b)) throw bad('no \\x93NUMPY magic');
  const major = bytes[6]!;
  let hlen: number;
  let start: number;
  if (major === 1) {
    hlen = bytes[8]! | (bytes[9]! << 8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad('truncated header');
    hlen = (bytes[8]! | (bytes[9]! << 8) | (bytes[10]! << 16)) + bytes[11]! * 2 ** 24;
    start = 12;
  } else {
    throw bad(`format version ${major}.${bytes[7]} is not 1, 2 or 3`);
  }
  if (start + hlen > bytes.length) throw bad(`header of ${hlen} bytes is truncated`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + hlen));
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`header ${JSON.stringify(text.trim())} lacks descr, fortran_order or shape`);
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const shape = parts.map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`shape entry '${s}'`);
    return n;
  });
  const dataOffset = start + hlen;
  const dtype = npyDType(descr);
  if (dtype !== undefined) {
    const need = shape.reduce((a, d) => a * d, 1) * ((dtype === 'bool' ? 8 : bitsOf(dtype)) / 8);
    if (dataOffset + need > fileSize) throw bad(`shape (${shape.join(', ')}) of ${descr} needs ${need} data bytes, the file has ${fileSize - dataOffset}`);
  }
  return { file, descr, fortranOrder: fortran === 'True', shape, dataOffset };
}

function bitsOf(d: DType): number {
  switch (d) {
    case 'f64':
    case 'i64':
    case 'u64':
      return 64;
    case 'f32':
    case 'i32':
    case 'u32':
      return 32;
    case 'f16':
    case 'i16':
    case 'u16':
      return 16;
    default:
      return 8;
  }
}

function readNpyHeaderFile(file: string): NpyHeader {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 12));
    fs.readSync(fd, head, 0, head.length, 0);
    let hlen = 0;
    if (head.length >= 10) hlen = head[6] === 1 ? head.readUInt16LE(8) : head.length >= 12 ? head.readUInt32LE(8) : 0;
    const total = Math.min(size, 12 + hlen);
    const buf = Buffer.alloc(total);
    fs.readSync(fd, buf, 0, total, 0);
    return parseNpyHeader(buf, file, size);
  } catch (e) {
    if (e instanceof QccError) throw e;
    throw new QccError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { file });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The elements of a .npy file as a typed array of its own dtype (float16 as Uint16Array bits). */
export async function readNpy(file: string): Promise<{ header: NpyHeader; dtype: DType; data: AnyTypedArray }> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new QccError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  const header = parseNpyHeader(bytes.subarray(0, Math.min(bytes.length, 1 << 20)), file, bytes.length);
  const dtype = npyDType(header.descr);
  if (dtype === undefined) throw new QccError('E_USAGE', `${file}: numpy dtype '${header.descr}' is not supported (little-endian <f4, <f8, <f2, <i8, <i4, |u1, |i1, |b1 are)`, { file });
  if (header.fortranOrder && header.shape.filter((d) => d > 1).length > 1) {
    throw new QccError('E_USAGE', `${file}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)`, { file });
  }
  const n = header.shape.reduce((a, d) => a * d, 1);
  const raw = bytes.subarray(header.dataOffset, header.dataOffset + n * (bitsOf(dtype) / 8));
  return { header, dtype, data: bytesToTyped(dtype, raw) };
}

/** npy dtypes accepted for an input of `want`, converted on reading. */
const NPY_ACCEPT: Partial<Record<DType, readonly DType[]>> = {
  f32: ['f32', 'f64', 'f16'],
  f64: ['f64', 'f32'],
  f16: ['f16', 'f32', 'f64'],
  i64: ['i64', 'i32'],
  i32: ['i32', 'i64'],
  u8: ['u8'],
  i8: ['i8'],
  bool: ['bool', 'u8'],
  i16: ['i16'],
  u16: ['u16'],
};

const NPY_DESCR: Partial<Record<DType, string>> = { f32: '<f4', f64: '<f8', f16: '<f2', i64: '<i8', i32: '<i4', u8: '|u1', i8: '|i1', bool: '|b1', i16: '<i2', u16: '<u2' };

/** Converts `data` (npy dtype `from`) into a typed array for an ORT tensor of dtype `to`. */
function convert(data: AnyTypedArray, from: DType, to: DType): AnyTypedArray {
  if (from === to) return data;
  const asNumbers = (): Float64Array => {
    if (from === 'f16') return Float64Array.from(decodeF16(data as Uint16Array));
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float64Array.from(data, (v) => Number(v));
    return Float64Array.from(data as ArrayLike<number>);
  };
  switch (to) {
    case 'f32':
      return Float32Array.from(asNumbers());
    case 'f64':
      return asNumbers();
    case 'f16':
      return encodeF16(asNumbers());
    case 'i64':
      return BigInt64Array.from(data as Int32Array, (v) => BigInt(v));
    case 'i32':
      return Int32Array.from(data as BigInt64Array, (v) => Number(v));
    case 'bool':
      return new Uint8Array(data as Uint8Array).map((v) => (v ? 1 : 0));
    default:
      return data;
  }
}

interface NpyEntry {
  readonly header: NpyHeader;
  readonly dtype: DType;
  /** Samples in the file (1 for a sample file, dim 0 for a batch file; 0 for an unbatched input's whole tensor). */
  readonly samples: number;
  /** Shape of one sample (the whole tensor for an unbatched input). */
  readonly sampleShape: number[];
}

function listDir(dir: string, accept: (name: string) => boolean, what: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new QccError('E_IO', `cannot read the calibration directory ${dir}: ${(e as Error).message}`, { file: dir });
  }
  const files = names.filter(accept).sort(naturalCompare);
  if (files.length === 0) throw new QccError('E_USAGE', `${dir} holds no ${what}`, { file: dir });
  return files;
}

/** "x_2" before "x_10". */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function describeEntry(i: InputSpec, h: NpyHeader, dtype: DType, b: Batching): NpyEntry {
  const want = NPY_ACCEPT[i.dtype];
  if (!want || !want.includes(dtype)) {
    const ok = (want ?? []).map((d) => NPY_DESCR[d]).join(' or ');
    throw new QccError('E_USAGE', `${h.file}: dtype '${h.descr}' cannot feed input '${i.name}' (${i.dtype}${ok ? `: expected ${ok}` : ''})`, { file: h.file, tensor: i.name });
  }
  const r = i.shape.length;
  if (b.unbatched.has(i.name)) {
    if (h.shape.length !== r || i.shape.some((d, k) => typeof d === 'number' && d !== h.shape[k])) {
      throw new QccError('E_USAGE', `${h.file}: shape (${h.shape.join(', ')}) is not input '${i.name}' ${shapeToString(i.shape)}, which has no batch dimension: give its whole tensor`, { file: h.file, tensor: i.name });
    }
    return { header: h, dtype, samples: 0, sampleShape: [...h.shape] };
  }
  let samples: number;
  let shape: number[];
  if (h.shape.length === r - 1) {
    samples = 1;
    shape = [...h.shape];
  } else if (h.shape.length === r && r > 0) {
    samples = h.shape[0]!;
    shape = h.shape.slice(1);
  } else if (r === 0 && h.shape.length === 0) {
    samples = 1;
    shape = [];
  } else {
    throw new QccError('E_USAGE', `${h.file}: shape (${h.shape.join(', ')}) fits neither one sample nor a batch of input '${i.name}' ${shapeToString(i.shape)}`, { file: h.file, tensor: i.name });
  }
  i.shape.slice(1).forEach((d, k) => {
    const got = shape[k]!;
    const ok = typeof d === 'number' ? d === got : d.param === null || !b.params.has(d.param) || got === b.size || !b.fixed;
    if (!ok) {
      throw new QccError('E_USAGE', `${h.file}: shape (${h.shape.join(', ')}) does not match input '${i.name}' ${shapeToString(i.shape)} at axis ${k + 1}`, { file: h.file, tensor: i.name });
    }
  });
  return { header: h, dtype, samples, sampleShape: shape };
}

/**
 * Calibration samples from the .npy files of `dir`. A single-input model takes every .npy file; with several
 * inputs the files are named `<input>_<key>.npy` and the files sharing a key form one sample (or batch). A file
 * holds one sample (the input's shape without the batch dimension, or with batch 1) or a batch (dim 0 = samples);
 * the file of an unbatched input (see the file comment) holds its whole tensor, fed with every sample of its key.
 * Accepted dtypes: little-endian <f4 / <f8 / <f2 for float inputs (converted), <i8 / <i4 for integer inputs,
 * |u1 for uint8 and bool. Only the headers are read up front; data is read batch by batch.
 */
export function npyCalibration(dir: string, model: Model, o: { samples?: number; batchSize?: number } = {}): CalibrationData {
  checkSamples(o.samples, 'calibration samples');
  const inputs = modelInputs(model);
  const b = batching(inputs, o.batchSize);
  const files = listDir(dir, (n) => n.toLowerCase().endsWith('.npy'), '.npy files');
  // group files: key -> input -> entry
  const groups = new Map<string, Map<string, NpyEntry>>();
  const byLength = [...inputs].sort((x, y) => y.name.length - x.name.length);
  for (const f of files) {
    const base = f.slice(0, -4);
    let input: InputSpec | undefined;
    let key: string;
    if (inputs.length === 1) {
      input = inputs[0]!;
      key = base;
    } else {
      input = byLength.find((i) => base.startsWith(`${i.name}_`));
      if (!input) {
        throw new QccError('E_USAGE', `${path.join(dir, f)}: with several inputs, files must be named <input>_<key>.npy (inputs: ${inputs.map((i) => i.name).join(', ')})`, { file: path.join(dir, f) });
      }
      key = base.slice(input.name.length + 1);
    }
    const h = readNpyHeaderFile(path.join(dir, f));
    const dtype = npyDType(h.descr);
    if (dtype === undefined) {
      throw new QccError('E_USAGE', `${h.file}: numpy dtype '${h.descr}' is not supported (little-endian <f4, <f8, <f2, <i8, <i4, |u1, |i1, |b1 are)`, { file: h.file });
    }
    if (h.fortranOrder && h.shape.filter((d) => d > 1).length > 1) {
      throw new QccError('E_USAGE', `${h.file}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)`, { file: h.file });
    }
    let g = groups.get(key);
    if (!g) groups.set(key, (g = new Map()));
    g.set(input.name, describeEntry(input, h, dtype, b));
  }
  const keys = [...groups.keys()].sort(naturalCompare);
  let total = 0;
  for (const k of keys) {
    const g = groups.get(k)!;
    let n: number | undefined;
    for (const i of inputs) {
      const e = g.get(i.name);
      if (!e) throw new QccError('E_USAGE', `${path.join(dir, `${i.name}_${k}.npy`)} is missing (the other inputs have a file with key '${k}')`, { file: path.join(dir, `${i.name}_${k}.npy`) });
      if (b.unbatched.has(i.name)) continue;
      if (n !== undefined && e.samples !== n) {
        throw new QccError('E_USAGE', `${e.header.file} holds ${e.samples} samples, the other inputs' '${k}' files ${n}`, { file: e.header.file });
      }
      n = e.samples;
    }
    total += n!;
  }
  let samples = Math.min(o.samples ?? total, total);
  if (b.fixed) samples -= samples % b.size;
  if (samples === 0) throw new QccError('E_USAGE', `${dir}: ${total} samples do not fill one batch of ${b.size} (the model's fixed batch size)`, { file: dir });
  const entries = keys.map((k) => groups.get(k)!);
  return {
    source: 'npy',
    samples,
    description: `${samples} samples from ${files.length} .npy files in ${dir}`,
    batches: () =>
      streamBatches(inputs, b, samples, async function* () {
        for (const g of entries) {
          const loaded = new Map<string, { data: AnyTypedArray; e: NpyEntry }>();
          for (const i of inputs) {
            const e = g.get(i.name)!;
            const r = await readNpy(e.header.file);
            loaded.set(i.name, { data: convert(r.data, e.dtype, i.dtype), e });
          }
          const n = Math.max(...[...loaded.values()].map((l) => l.e.samples));
          for (let s = 0; s < n; s++) {
            const sample: Record<string, SampleData> = {};
            for (const i of inputs) {
              const { data, e } = loaded.get(i.name)!;
              const per = e.sampleShape.reduce((a, d) => a * d, 1);
              const at = b.unbatched.has(i.name) ? 0 : s;
              sample[i.name] = { data: data.subarray(at * per, (at + 1) * per) as AnyTypedArray, shape: e.sampleShape };
            }
            yield sample;
          }
        }
      }),
  };
}

interface SampleData {
  readonly data: AnyTypedArray;
  readonly shape: readonly number[];
}

/**
 * Groups a stream of samples into batches of `b.size` (fewer at the end, or when a sample's shape differs from
 * the batch's: such samples cannot share a tensor). With a fixed batch size incomplete batches are dropped.
 * Unbatched inputs take the batch's first sample unchanged.
 */
async function* streamBatches(
  inputs: readonly InputSpec[],
  b: Batching,
  samples: number,
  source: () => AsyncGenerator<Record<string, SampleData>>,
): AsyncGenerator<Feeds> {
  let pending: Record<string, SampleData>[] = [];
  const flush = (): Feeds | undefined => {
    const batch = pending;
    pending = [];
    if (batch.length === 0 || (b.fixed && batch.length !== b.size)) return undefined;
    const feeds: Feeds = {};
    for (const i of inputs) {
      const shape = batch[0]![i.name]!.shape;
      if (b.unbatched.has(i.name)) {
        feeds[i.name] = new ort.Tensor(ortType(i.dtype), batch[0]![i.name]!.data as never, [...shape]);
        continue;
      }
      const per = shape.reduce((a, d) => a * d, 1);
      const first = batch[0]![i.name]!.data;
      const Ctor = first.constructor as new (n: number) => AnyTypedArray;
      const out = new Ctor(per * batch.length);
      batch.forEach((s, k) => (out as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(s[i.name]!.data as ArrayLike<unknown>, k * per));
      feeds[i.name] = new ort.Tensor(ortType(i.dtype), out as never, i.shape.length === 0 ? [] : [batch.length, ...shape]);
    }
    return feeds;
  };
  const sameShape = (x: Record<string, SampleData>, y: Record<string, SampleData>): boolean =>
    inputs.every((i) => x[i.name]!.shape.length === y[i.name]!.shape.length && x[i.name]!.shape.every((d, k) => d === y[i.name]!.shape[k]));
  let seen = 0;
  for await (const s of source()) {
    if (seen >= samples) break;
    seen++;
    if (pending.length > 0 && !sameShape(pending[0]!, s)) {
      if (b.fixed) throw new QccError('E_USAGE', `calibration samples of different shapes cannot fill the model's fixed batch of ${b.size}`);
      const f = flush();
      if (f) yield f;
    }
    pending.push(s);
    if (pending.length === b.size || inputs.some((i) => i.shape.length === 0)) {
      const f = flush();
      if (f) yield f;
    }
  }
  const f = flush();
  if (f) yield f;
}

// ---------------------------------------------------------------------------------------------------------------
// Images

const IMAGE_EXT = /\.(png|jpe?g|webp|tiff?)$/i;

/**
 * Calibration samples from the images (PNG, JPEG, WebP, TIFF) of `dir`, decoded by sharp (libvips) and
 * preprocessed as `o.preprocess` says. The model must have one image input of rank 4 (float, or uint8 for raw
 * pixels); its layout is `preprocess.layout`, else NCHW when dim 1 is 1 or 3 and NHWC when dim 3 is. Without
 * `size` the model's static H and W are used, else each image's own size.
 */
export function imageCalibration(dir: string, model: Model, o: { samples?: number; batchSize?: number; preprocess: Preprocess }): CalibrationData {
  checkSamples(o.samples, 'calibration samples');
  const inputs = modelInputs(model);
  if (inputs.length !== 1) {
    throw new QccError('E_USAGE', `image calibration feeds single-input models; this one has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): use .npy files`);
  }
  const input = inputs[0]!;
  if (input.shape.length !== 4) throw new QccError('E_USAGE', `input '${input.name}' ${shapeToString(input.shape)} is not an image batch (rank 4)`, { tensor: input.name });
  if (input.dtype !== 'f32' && input.dtype !== 'u8' && input.dtype !== 'f16') {
    throw new QccError('E_USAGE', `input '${input.name}' is ${input.dtype}: images feed float32, float16 or uint8 inputs`, { tensor: input.name });
  }
  const p = o.preprocess;
  checkPreprocess(p);
  const b = batching(inputs, o.batchSize);
  const s = input.shape;
  const num = (d: Dim | undefined): number | undefined => (typeof d === 'number' ? d : undefined);
  const layout = p.layout ?? (num(s[1]) === 1 || num(s[1]) === 3 ? 'nchw' : num(s[3]) === 1 || num(s[3]) === 3 ? 'nhwc' : 'nchw');
  const [cAxis, hAxis, wAxis] = layout === 'nchw' ? [1, 2, 3] : [3, 1, 2];
  const channels = num(s[cAxis]) ?? 3;
  if (channels !== 1 && channels !== 3) throw new QccError('E_USAGE', `input '${input.name}' ${shapeToString(s)} has ${channels} channels at axis ${cAxis} (${layout}); images give 1 or 3`, { tensor: input.name });
  const size: [number, number] | undefined = p.size ?? (num(s[wAxis]) !== undefined && num(s[hAxis]) !== undefined ? [num(s[wAxis])!, num(s[hAxis])!] : undefined);
  if (p.size && (num(s[wAxis]) ?? p.size[0]) !== p.size[0]) throw new QccError('E_USAGE', `resize width ${p.size[0]} differs from input '${input.name}' ${shapeToString(s)} (${layout})`, { tensor: input.name });
  if (p.size && (num(s[hAxis]) ?? p.size[1]) !== p.size[1]) throw new QccError('E_USAGE', `resize height ${p.size[1]} differs from input '${input.name}' ${shapeToString(s)} (${layout})`, { tensor: input.name });
  for (const [k, v] of [['mean', p.mean], ['std', p.std]] as const) {
    if (v && v.length !== 1 && v.length !== channels) throw new QccError('E_USAGE', `preprocess ${k} has ${v.length} values; the input has ${channels} channels`, { tensor: input.name });
  }
  if (input.dtype === 'u8' && (p.mean || p.std || p.scale !== undefined)) {
    throw new QccError('E_USAGE', `input '${input.name}' takes raw uint8 pixels: mean, std and scale do not apply`, { tensor: input.name });
  }
  const files = listDir(dir, (n) => IMAGE_EXT.test(n), 'images (.png, .jpg, .jpeg, .webp, .tif)');
  let samples = Math.min(o.samples ?? files.length, files.length);
  if (b.fixed) samples -= samples % b.size;
  if (samples === 0) throw new QccError('E_USAGE', `${dir}: ${files.length} images do not fill one batch of ${b.size} (the model's fixed batch size)`, { file: dir });
  const used = files.slice(0, samples).map((f) => path.join(dir, f));
  return {
    source: 'images',
    samples,
    description: `${samples} images from ${dir} (${describePreprocess(p, size, layout)})`,
    batches: () =>
      streamBatches(inputs, b, samples, async function* () {
        for (const f of used) yield { [input.name]: await loadImage(f, input.dtype, channels, layout, size, p) };
      }),
  };
}

function describePreprocess(p: Preprocess, size: [number, number] | undefined, layout: string): string {
  const parts = [size ? `resize ${size[0]}x${size[1]}` : 'native size', layout];
  if (p.scale !== undefined) parts.push(`scale ${p.scale}`);
  if (p.mean) parts.push(`mean ${p.mean.join('/')}`);
  if (p.std) parts.push(`std ${p.std.join('/')}`);
  if (p.bgr) parts.push('BGR');
  return parts.join(', ');
}

/** sharp, loaded on first use: libvips adds about 26 MB to the process, which compiles without images do not need. */
let sharpModule: Promise<(typeof import('sharp'))['default']> | undefined;
async function loadSharp(): Promise<(typeof import('sharp'))['default']> {
  sharpModule ??= import('sharp').then((m) => m.default);
  return sharpModule;
}

/** Decodes, resizes and normalizes one image into one sample of the input (shape without the batch dim). */
export async function loadImage(
  file: string,
  dtype: DType,
  channels: number,
  layout: 'nchw' | 'nhwc',
  size: [number, number] | undefined,
  p: Preprocess,
): Promise<SampleData> {
  let raw: Buffer;
  let info: OutputInfo;
  try {
    const sharp = await loadSharp();
    let img = sharp(file, { failOn: 'error' });
    img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
    img = img.removeAlpha();
    if (size) img = img.resize(size[0], size[1], { fit: 'fill', kernel: 'linear' });
    ({ data: raw, info } = await img.raw().toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new QccError('E_IO', `cannot decode image ${file}: ${(e as Error).message}`, { file });
  }
  const W = info.width;
  const H = info.height;
  const got = info.channels;
  const hw = W * H;
  // sharp's raw output is 8 bits per sample, also for 16-bit PNGs (converted by libvips)
  const px = raw;
  const scale = p.scale ?? 1 / 255;
  const shape = layout === 'nchw' ? [channels, H, W] : [H, W, channels];
  const n = channels * hw;
  const asFloat = dtype !== 'u8';
  const out = asFloat ? new Float32Array(n) : new Uint8Array(n);
  for (let c = 0; c < channels; c++) {
    // model channel c reads image channel src (BGR reverses), a grey image feeds every channel
    const src = got === 1 ? 0 : p.bgr ? channels - 1 - c : c;
    const m = p.mean ? p.mean[p.mean.length === 1 ? 0 : c]! : 0;
    const sd = p.std ? p.std[p.std.length === 1 ? 0 : c]! : 1;
    const k = scale;
    for (let i = 0; i < hw; i++) {
      const v = px[i * got + src]!;
      const at = layout === 'nchw' ? c * hw + i : i * channels + c;
      out[at] = asFloat ? (v * k - m) / sd : v;
    }
  }
  if (dtype === 'f16') return { data: encodeF16(out as Float32Array), shape };
  return { data: out, shape };
}

// ---------------------------------------------------------------------------------------------------------------
// --preprocess specs

const PREPROCESS_KEYS = ['resize', 'size', 'mean', 'std', 'layout', 'scale', 'bgr', 'rgb', 'imagenet'];

function checkPreprocess(p: Preprocess): void {
  const bad = (why: string): never => {
    throw new QccError('E_USAGE', `bad preprocessing: ${why}`);
  };
  if (p.size && (p.size.length !== 2 || !p.size.every((d) => Number.isInteger(d) && d >= 1 && d <= 65535))) bad(`size ${JSON.stringify(p.size)} is not [width, height] in pixels`);
  if (p.mean && !p.mean.every(Number.isFinite)) bad(`mean ${JSON.stringify(p.mean)} is not finite`);
  if (p.std && !p.std.every((x) => Number.isFinite(x) && x !== 0)) bad(`std ${JSON.stringify(p.std)} must be finite and non-zero`);
  if (p.scale !== undefined && !(Number.isFinite(p.scale) && p.scale !== 0)) bad(`scale ${p.scale} must be finite and non-zero`);
  if (p.layout !== undefined && p.layout !== 'nchw' && p.layout !== 'nhwc') bad(`layout '${String(p.layout)}' is not nchw or nhwc`);
}

/**
 * Parses a preprocessing spec: comma-separated items
 *   resize=WxH (or size=WxH; a single N means NxN), mean=a/b/c, std=a/b/c (one value or one per channel; '/' or ':'
 *   between values), layout=nchw|nhwc, scale=S (a number or a fraction like 1/255), bgr (or bgr=true|false), rgb,
 *   imagenet (= scale=1/255,mean=0.485/0.456/0.406,std=0.229/0.224/0.225; later items override).
 * Example: "resize=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw". Errors are E_USAGE.
 */
export function parsePreprocess(spec: string): Preprocess {
  const p: Preprocess = {};
  const fail = (why: string): never => {
    throw new QccError('E_USAGE', `bad preprocessing spec '${spec}': ${why}`);
  };
  const number = (s: string, what: string): number => {
    const t = s.trim();
    const frac = /^([-+]?[\d.eE+-]+)\s*\/\s*([-+]?[\d.eE+-]+)$/.exec(t);
    const v = frac ? Number(frac[1]) / Number(frac[2]) : t === '' ? NaN : Number(t);
    if (!Number.isFinite(v)) fail(`${what} '${s}' is not a number`);
    return v;
  };
  const list = (s: string, what: string): number[] => {
    const parts = s.split(/[/:]/);
    if (parts.length !== 1 && parts.length !== 3) fail(`${what} needs 1 or 3 values, got ${parts.length}`);
    return parts.map((x) => number(x, what));
  };
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase();
    const val = eq < 0 ? undefined : item.slice(eq + 1).trim();
    const need = (): string => (val === undefined || val === '' ? fail(`'${key}' needs a value`) : val);
    switch (key) {
      case 'resize':
      case 'size': {
        const v = need();
        const m = /^(\d+)(?:\s*[xX*]\s*(\d+))?$/.exec(v);
        if (!m) fail(`${key} '${v}' is not WxH`);
        const w = Number(m![1]);
        const h = m![2] !== undefined ? Number(m![2]) : w;
        if (w < 1 || h < 1 || w > 65535 || h > 65535) fail(`${key} '${v}' is out of range`);
        p.size = [w, h];
        break;
      }
      case 'mean':
        p.mean = list(need(), 'mean');
        break;
      case 'std':
        p.std = list(need(), 'std');
        if (p.std.some((x) => x === 0)) fail('std must not be 0');
        break;
      case 'layout': {
        const v = need().toLowerCase();
        if (v !== 'nchw' && v !== 'nhwc') fail(`layout '${v}' is not nchw or nhwc`);
        p.layout = v as 'nchw' | 'nhwc';
        break;
      }
      case 'scale':
        p.scale = number(need(), 'scale');
        if (p.scale === 0) fail('scale must not be 0');
        break;
      case 'bgr':
      case 'rgb': {
        let on = true;
        if (val !== undefined) {
          const v = val.toLowerCase();
          if (['1', 'true', 'yes', 'on'].includes(v)) on = true;
          else if (['0', 'false', 'no', 'off'].includes(v)) on = false;
          else fail(`${key}=${val} is not true or false`);
        }
        p.bgr = key === 'bgr' ? on : !on;
        break;
      }
      case 'imagenet':
        if (val !== undefined) fail("'imagenet' takes no value");
        p.scale = 1 / 255;
        p.mean = [...IMAGENET_MEAN];
        p.std = [...IMAGENET_STD];
        break;
      default:
        fail(`unknown item '${key}' (known: ${PREPROCESS_KEYS.join(', ')})`);
    }
  }
  return p;
}
