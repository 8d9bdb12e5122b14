// compile(): the quantization driver behind `qcc compile` (and the library API): canonicalize -> plan -> calibrate -> quantize -> check.
//
//   clone + canonicalize (opset raised to what the preset needs: 13 per-channel, 19 FP8, 21 INT4 blocks)
//   -> inferShapes -> target.plan(model, config) = QuantPlan
//   -> calibration data (given, a directory of .npy files or images, or seeded random inputs, loudly reported)
//   -> collectStatistics (onnxruntime-node, batch by batch) -> computeRange / qparamsFor per activation
//   -> quantizeWeights -> correctBias (calibrated channel means) -> insertQdq -> verify -> target.predictFusion
//   -> [--target ort: onnxruntime's optimized graph: fused-kernel counts, FP32 vs quantized latency]
//   -> validate (FP32 vs quantized on held-out inputs) -> target.emitExtras -> report + summary
//
// Held-out validation inputs are never calibration samples: with random calibration they are a second seeded set
// (seed + VALIDATION_SEED_OFFSET); with files, the samples after the calibration ones (or, when there are too few,
// the last quarter of them, calibrating on the rest). The input model is not modified.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as ortTypes from 'onnxruntime-node';
import { QccError } from '../ir/errors.js';
import { cloneModel } from '../ir/clone.js';
import type { Model, Node } from '../ir/ir.js';
import { decodeModel } from '../ir/onnx/reader.js';
import { ScratchData } from '../ir/onnx/scratch.js';
import { createSession, initializerBytes, ort, run, type Feeds } from '../ir/ort.js';
import { collectGarbage } from '../ir/gc.js';
import { DEFAULT_SEGMENT_BYTES, runSegmented, splitModel, type Segment } from '../ir/segments.js';
import { inferShapes } from '../ir/shape-inference.js';
import { assertValid } from '../ir/verify.js';
import { canonicalize } from '../passes/canonicalize.js';
import { PassManager } from '../passes/manager.js';
import { upgradeOpset } from '../passes/upgrade-opset.js';
import { collectStatistics, computeRange, qparamsFor, type TensorStats } from '../passes/quant/calibration.js';
import { batchRows, imageCalibration, inputBatching, npyCalibration, randomCalibration, type CalibrationData, type Preprocess } from '../passes/quant/calib-data.js';
import { correctBias, meanAxisFor } from '../passes/quant/bias-correction.js';
import { insertQdq } from '../passes/quant/insert-qdq.js';
import { granularityText, quantizeWeights } from '../passes/quant/quantize-weights.js';
import type { ActivationPlan, Fallback, QParams, QuantConfig, QuantPlan, Range } from '../passes/quant/types.js';
import { PRESET_SUMMARY, requiredOpset } from './config.js';
import {
  buildLayerReports,
  dtypeText,
  RANDOM_CALIBRATION_WARNING,
  renderSummary,
  WEIGHTED_OPS,
  type CompileReport,
  type FusionSummary,
  type LayerReport,
  type OrtCheck,
  type WeightInfo,
} from './report.js';
import { resolveChoices } from './shared-plan.js';
import { getTarget, type FusionReport } from './target.js';
import { compareOutputs, referenceEntry, referenceOutputs, type InputBatches, type OutputMetrics, type ReferenceOutputs } from './validate.js';

export const DEFAULT_CALIB_SAMPLES = 32;
export const DEFAULT_VALIDATION_SAMPLES = 16;
export const VALIDATION_SEED_OFFSET = 1_000_003;

export interface CompileProgress {
  readonly phase: string;
  readonly done: number;
  readonly total: number;
}

export interface CompileOptions {
  readonly target: 'tensorrt' | 'ort';
  readonly config: QuantConfig;
  /** Calibration data, or a directory of .npy files / images. Default: seeded random inputs (reported loudly). */
  readonly calib?: CalibrationData | { readonly dir: string; readonly preprocess?: Preprocess };
  /** Calibration samples (default 32). */
  readonly calibSamples?: number;
  /** Held-out validation samples (default 16). */
  readonly validationSamples?: number;
  /** Held-out validation inputs (never the calibration samples); default: see the file comment. */
  readonly validation?: CalibrationData;
  /** Seed of random calibration and validation inputs (default 0). */
  readonly seed?: number;
  /**
   * onnxruntime runs models with more initializer bytes than this in segments of at most this many weight bytes,
   * one session at a time (calibration and the FP32 reference; ir/segments.ts). Default DEFAULT_SEGMENT_BYTES;
   * 0: always the whole model.
   */
  readonly segmentBytes?: number;
  /** Histogram elements per sample and tensor (calibration.ts HIST_ELEMENTS when absent; Infinity: all). */
  readonly histogramElements?: number;
  /** Samples per calibration batch (calibration's default when absent). */
  readonly batchSize?: number;
  /** Values for symbolic input dims other than the batch (random inputs). */
  readonly dims?: Record<string, number>;
  /** onnxruntime's fusion check and latency measurement (default: on for --target ort). */
  readonly ortCheck?: boolean;
  /**
   * Timed runs per model for the latency ratio, at least (default 7, after 2 warm-up runs): the FP32 runs go on
   * until they fill LATENCY_MIN_MS, and the quantized model runs as many times.
   */
  readonly latencyRuns?: number;
  /** Name of the model in the report (default: the graph name). */
  readonly modelName?: string;
  /** The output model path the extras (trtexec command line) refer to (default `<name>.<preset>.<target>.onnx`). */
  readonly output?: string;
  readonly onProgress?: (p: CompileProgress) => void;
}

export interface CompileResult {
  /** The quantized model (QDQ ONNX). */
  readonly model: Model;
  readonly plan: QuantPlan;
  readonly report: CompileReport;
  /** The readable summary table. */
  readonly summary: string;
  /** Extra files from the target (file name -> text), e.g. `<out>.trtexec.txt`. */
  readonly extras: Readonly<Record<string, string>>;
}

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

class Timer {
  readonly phases: { phase: string; ms: number }[] = [];
  add(phase: string, ms: number): void {
    const p = this.phases.find((x) => x.phase === phase);
    if (p) p.ms += ms;
    else this.phases.push({ phase, ms });
  }
  async time<T>(phase: string, f: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.add(phase, performance.now() - t0);
    }
  }
}

function positiveInt(v: number | undefined, dflt: number, what: string): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw new QccError('E_USAGE', `${what} must be a positive integer, got ${String(v)}`);
  return x;
}

function isCalibrationData(c: CompileOptions['calib']): c is CalibrationData {
  return c !== undefined && typeof (c as CalibrationData).batches === 'function';
}

// ---------------------------------------------------------------------------------------------------------------
// Calibration and held-out inputs

/**
 * The samples [from, from + count) of `data`, re-batched as they come (batch tensors sliced along dim 0; inputs in
 * `unbatched`, fed whole to every batch, are passed through).
 */
export function sampleRange(data: CalibrationData, from: number, count: number, unbatched: ReadonlySet<string> = new Set()): CalibrationData {
  const n = Math.max(0, Math.min(count, data.samples - from));
  return {
    source: data.source,
    samples: n,
    ...(data.description !== undefined ? { description: `${data.description} (samples ${from}..${from + n - 1})` } : {}),
    async *batches(): AsyncIterable<Feeds> {
      let at = 0;
      const end = from + n;
      for await (const feeds of data.batches()) {
        const rows = batchRows(feeds, unbatched);
        const lo = Math.max(from, at);
        const hi = Math.min(end, at + rows);
        if (hi > lo) yield lo === at && hi === at + rows ? feeds : sliceFeeds(feeds, lo - at, hi - at, unbatched);
        at += rows;
        if (at >= end) break;
      }
    },
  };
}

function sliceFeeds(feeds: Feeds, lo: number, hi: number, unbatched: ReadonlySet<string>): Feeds {
  const out: Feeds = {};
  for (const [k, t] of Object.entries(feeds)) {
    if (unbatched.has(k) || t.dims.length === 0) {
      out[k] = t;
      continue;
    }
    const dims = t.dims.map(Number);
    const row = dims.slice(1).reduce((a, b) => a * b, 1);
    const data = t.data as unknown as { subarray(a: number, b: number): unknown };
    out[k] = new ort.Tensor(t.type as never, data.subarray(lo * row, hi * row) as never, [hi - lo, ...dims.slice(1)]);
  }
  return out;
}

/** The batch size when the model's batched inputs have a fixed (numeric) first dimension (calib-data's rule). */
export function fixedBatch(m: Model): number | undefined {
  return inputBatching(m).fixed;
}

function hasFiles(dir: string, re: RegExp): boolean {
  try {
    return fs.readdirSync(dir).some((f) => re.test(f));
  } catch (e) {
    throw new QccError('E_IO', `cannot read calibration directory ${dir}: ${(e as Error).message}`, { file: dir });
  }
}

interface DataPlan {
  calib: CalibrationData;
  validation: InputBatches & { source: string };
  calibSeed?: number;
  validationSeed?: number;
  note?: string;
}

function planData(model: Model, o: CompileOptions, calibSamples: number, validationSamples: number, seed: number): DataPlan {
  const batch = o.batchSize !== undefined ? { batchSize: o.batchSize } : {};
  const dims = o.dims !== undefined ? { dims: o.dims } : {};
  const vseed = (seed + VALIDATION_SEED_OFFSET) >>> 0;
  const randomValidation = () => randomCalibration(model, { samples: validationSamples, seed: vseed, ...batch, ...dims });
  if (o.calib === undefined) {
    return { calib: randomCalibration(model, { samples: calibSamples, seed, ...batch, ...dims }), calibSeed: seed, validation: o.validation ?? randomValidation(), ...(o.validation ? {} : { validationSeed: vseed }) };
  }
  let all: CalibrationData;
  if (isCalibrationData(o.calib)) all = o.calib;
  else {
    const dir = o.calib.dir;
    if (hasFiles(dir, /\.npy$/i)) all = npyCalibration(dir, model, { ...batch });
    else if (hasFiles(dir, /\.(png|jpe?g)$/i)) {
      if (!o.calib.preprocess) throw new QccError('E_USAGE', `calibration images in ${dir} need --preprocess (e.g. resize=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw)`);
      all = imageCalibration(dir, model, { ...batch, preprocess: o.calib.preprocess });
    } else throw new QccError('E_USAGE', `calibration directory ${dir} has no .npy, .png or .jpg files`, { file: dir });
  }
  const { fixed, unbatched } = inputBatching(model);
  if (o.validation) return { calib: sampleRange(all, 0, calibSamples, unbatched), validation: o.validation };
  // a model with a fixed batch B takes whole batches: both parts are multiples of B
  const B = fixed ?? 1;
  const down = (k: number) => Math.floor(k / B) * B;
  const total = all.samples;
  const holdout = down(Math.min(validationSamples, Math.max(total - calibSamples, Math.floor(total / 4))));
  const calibN = Math.max(Math.min(B, total), down(Math.min(calibSamples, total - holdout)));
  if (holdout < 1) {
    return {
      calib: sampleRange(all, 0, calibN, unbatched),
      validation: randomValidation(),
      validationSeed: vseed,
      note: `only ${total} calibration sample(s): validation runs on seeded random inputs instead of held-out files`,
    };
  }
  return {
    calib: sampleRange(all, 0, calibN, unbatched),
    validation: sampleRange(all, calibN, holdout, unbatched),
    ...(calibN < calibSamples ? { note: `${total} samples given: calibrating on ${calibN}, holding out ${holdout} for validation` } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// onnxruntime's verdict (--target ort)

/** Ops of onnxruntime's optimized graph that run a quantized weighted layer. */
export const ORT_QUANT_LAYER_OPS: ReadonlySet<string> = new Set([
  'QLinearConv', 'QLinearMatMul', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'QGemm', 'MatMulNBits', 'ConvInteger', 'MatMulInteger', 'QAttention', 'QLinearConvTranspose',
]);
/** Other quantized kernels worth counting (element-wise and pooling ops ORT runs in int8/uint8). */
export const ORT_QUANT_OTHER_OPS: ReadonlySet<string> = new Set([
  'QLinearAdd', 'QLinearMul', 'QLinearConcat', 'QLinearGlobalAveragePool', 'QLinearAveragePool', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearSoftmax', 'QLinearWhere', 'QLinearReduceMean',
]);
const FLOAT_LAYER_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'FusedConv', 'FusedGemm', 'FusedMatMul']);

/**
 * Weighted layers of a QDQ model that run quantized: the weight (input 1; for MatMul either operand when it is a
 * dequantized constant) comes from DequantizeLinear. A float layer that merely reads a dequantized activation (a
 * layer kept in float behind a quantized producer) does not count.
 */
export function quantizedLayers(m: Model): Node[] {
  const out: Node[] = [];
  const dq = (n: Node, i: number) => n.input(i)?.producer?.opType === 'DequantizeLinear';
  const dqConst = (n: Node, i: number) => dq(n, i) && n.input(i)!.producer!.input(0)?.isInitializer === true;
  for (const n of m.graph.nodes()) {
    if (n.domain !== '' || !WEIGHTED_OPS.has(n.opType)) continue;
    if (dq(n, 1) || (n.opType === 'MatMul' && dqConst(n, 0))) out.push(n);
  }
  return out;
}

/**
 * Counts the quantized kernels in onnxruntime's optimized graph of `quant`. A quantized layer is unfused when a float
 * Conv/ConvTranspose/Gemm/MatMul (or ORT's FusedConv/FusedGemm/FusedMatMul) still reads a DequantizeLinear output
 * there; it is matched to the layer of `quant` through the quantized tensors its DequantizeLinear inputs read (ORT
 * renames nodes it rewrites, e.g. MatMul+Add -> Gemm `fc/MatMulAddFusion`), else by name.
 */
export function countOrtFusion(quant: Model, optimized: Model, predicted?: FusionReport): Omit<OrtCheck, 'latencyMs' | 'speedup'> {
  const layers = quantizedLayers(quant);
  const byQuantized = new Map<string, Node>();
  for (const n of layers) {
    for (const v of n.inputs) {
      const p = v?.producer;
      if (p?.opType === 'DequantizeLinear' && p.input(0)) byQuantized.set(p.input(0)!.name, n);
    }
  }
  const byName = new Map(layers.map((n) => [n.name, n]));
  const fusedOps: Record<string, number> = {};
  const unfusedLayers = new Map<string, Node>();
  let standaloneQdq = 0;
  for (const n of optimized.graph.nodes()) {
    if (ORT_QUANT_LAYER_OPS.has(n.opType) || ORT_QUANT_OTHER_OPS.has(n.opType)) fusedOps[n.opType] = (fusedOps[n.opType] ?? 0) + 1;
    else if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') standaloneQdq++;
    else if (FLOAT_LAYER_OPS.has(n.opType)) {
      const dqs = n.inputs.map((v) => v?.producer).filter((p): p is Node => p?.opType === 'DequantizeLinear');
      if (!dqs.length) continue;
      const layer = dqs.map((d) => byQuantized.get(d.input(0)?.name ?? '')).find((l) => l !== undefined) ?? byName.get(n.name) ?? byName.get(n.name.split('/')[0]!);
      if (layer) unfusedLayers.set(layer.name, layer);
    }
  }
  const reasons = new Map((predicted?.layers ?? []).filter((l) => l.reason).map((l) => [l.node, l.reason!]));
  const unfused = [...unfusedLayers.values()].map((n) => ({
    node: n.name,
    op: n.opType,
    reason: reasons.get(n.name) ?? 'onnxruntime kept the layer in float: its Q/DQ neighbourhood matched none of its QDQ selectors (the target did not predict this)',
  }));
  // where the target's prediction and onnxruntime disagree
  const mispredicted: { node: string; predicted: 'fused' | 'unfused'; actual: 'fused' | 'unfused' }[] = [];
  for (const l of predicted?.layers ?? []) {
    if (!byName.has(l.node)) continue;
    const p = l.quantized && l.reason === undefined ? 'fused' : 'unfused';
    const a = unfusedLayers.has(l.node) ? 'unfused' : 'fused';
    if (p !== a) mispredicted.push({ node: l.node, predicted: p, actual: a });
  }
  return { quantizedLayers: layers.length, fused: layers.length - unfused.length, fusedOps, unfused, standaloneQdq, ...(predicted ? { mispredicted } : {}) };
}

/**
 * Median latency of `session` on `feeds` after 2 warm-up runs: at least `runs` timed runs and, with `minMs`, as
 * many more as fill that much time (at most LATENCY_MAX_RUNS). Seven runs of a 3 ms model are 20 ms of timing, and
 * the PaddleOCR recognizer's ratio then read anywhere from 0.5x to 1.6x across runs of the same code.
 */
async function latency(session: ortTypes.InferenceSession, feeds: Feeds, runs: number, minMs = 0): Promise<{ ms: number; runs: number }> {
  for (let i = 0; i < 2; i++) await run(session, feeds);
  const ts: number[] = [];
  let total = 0;
  while (ts.length < runs || (total < minMs && ts.length < LATENCY_MAX_RUNS)) {
    const t0 = performance.now();
    await run(session, feeds);
    const dt = performance.now() - t0;
    ts.push(dt);
    total += dt;
  }
  ts.sort((a, b) => a - b);
  const ms = ts.length % 2 ? ts[(ts.length - 1) / 2]! : (ts[ts.length / 2 - 1]! + ts[ts.length / 2]!) / 2;
  return { ms, runs: ts.length };
}

/** The FP32 latency runs fill at least this long; the quantized session then runs as many times. */
export const LATENCY_MIN_MS = 400;
const LATENCY_MAX_RUNS = 1000;

/** The first sample of `data` (the first batch when the model's batch is fixed). */
async function firstSample(data: InputBatches, fixed: boolean, unbatched: ReadonlySet<string>): Promise<Feeds> {
  for await (const feeds of data.batches()) return !fixed && batchRows(feeds, unbatched) > 1 ? sliceFeeds(feeds, 0, 1, unbatched) : feeds;
  throw new QccError('E_USAGE', 'no validation inputs for the latency measurement');
}

// ---------------------------------------------------------------------------------------------------------------
// The driver

function countOps(m: Model, op: string): number {
  let k = 0;
  for (const n of m.graph.nodes()) if (n.opType === op && n.domain === '') k++;
  return k;
}

async function raiseOpset(m: Model, to: number): Promise<void> {
  await new PassManager([upgradeOpset]).run(m, { options: { [upgradeOpset.name]: { to } } });
}

/** Checks that every graph input can be fed by calibration (numeric tensors). */
function checkInputs(m: Model): void {
  for (const v of m.graph.inputs) {
    if (v.isInitializer) continue;
    const t = v.type;
    if (t?.kind !== 'tensor') throw new QccError('E_USAGE', `cannot calibrate input '${v.name}': it is not a tensor (sequence/map/optional inputs cannot be calibrated)`, { tensor: v.name });
    if (t.dtype === 'string') throw new QccError('E_USAGE', `cannot calibrate input '${v.name}': string tensors have no numeric range (quantize the model behind its tokenizer/decoder)`, { tensor: v.name });
    if (t.dtype === undefined) throw new QccError('E_USAGE', `cannot calibrate input '${v.name}': its element type is unknown`, { tensor: v.name });
  }
}

interface Stage {
  readonly q: Model;
  readonly plan: QuantPlan;
  readonly fusion: FusionReport;
  readonly layers: LayerReport[];
  readonly fallbacks: Fallback[];
  readonly weightsQuantized: number;
  readonly activationsQuantized: number;
  readonly canonicalNodes: number;
}

/**
 * Steps 1-5 (canonicalize .. predict fusion). The canonical FP32 model lives only in here: once the quantized model
 * and the per-layer report exist, its float weights (BN-folded copies) can be collected before the ORT sessions
 * of validation are created.
 */
async function quantizeStage(
  model: Model,
  o: CompileOptions,
  data: DataPlan,
  timer: Timer,
  notes: string[],
  progress: (phase: string, done: number, total: number) => void,
  scratch: ScratchData,
): Promise<Stage> {
  const target = getTarget(o.target);
  const config = o.config;
  const segmentBytes = o.segmentBytes ?? DEFAULT_SEGMENT_BYTES;

  // 1. canonical FP32 model at the opset the preset needs
  const fp = await timer.time('canonicalize', async () => {
    const m = cloneModel(model);
    const need = requiredOpset(config);
    const r = await canonicalize(m, m.opset < need ? { opset: need } : {});
    for (const d of r.diag.items) notes.push(`canonicalize: ${d.severity}: ${d.message}`);
    inferShapes(m);
    return m;
  });
  const canonicalNodes = fp.graph.nodeCount;

  // 2. the target's plan
  let plan = await timer.time('plan', () => target.plan(fp, config));
  if (plan.opset > fp.opset) {
    await timer.time('upgrade-opset', async () => {
      await raiseOpset(fp, plan.opset);
      inferShapes(fp);
      plan = target.plan(fp, config);
    });
  }

  // the canonical model's weights go to disk: onnxruntime's calibration session reads them from there, and the JS
  // copy (BN-folded, so new arrays) is not held while that session holds its own
  // (collected now: V8 would free those arrays only after onnxruntime allocated its own copy)
  if (plan.activations.length) await timer.time('spill-weights', async () => collectGarbage(scratch.spill(fp)));

  // 3. calibration: ranges and quantization parameters of every planned activation
  const ranges = new Map<string, Range>();
  const params = new Map<string, QParams>();
  // the statistics bias correction reads (the layers' activation inputs), when it is on
  let biasInputs: ReadonlyMap<string, TensorStats> | undefined;
  if (plan.activations.length) {
    // a tensor planned `sameAs` another shares that one's parameters (ORT drops DQ -> Reshape -> Q only when they
    // are identical): it needs no statistics of its own
    // (with the candidates of placements decided by scale: every candidate is calibrated)
    const candidates = (plan.choices ?? []).flatMap((c) => c.candidates);
    const own = [...plan.activations, ...candidates].filter((a) => a.sameAs === undefined);
    // bias correction needs the per-channel mean of each quantized layer's activation input; a `sameAs` input is
    // measured for that alone (min/max in-graph, no histogram, no parameters of its own)
    const channelMeans = new Map<string, number>();
    const meanOnly: ActivationPlan[] = [];
    if (config.biasCorrection !== false) {
      const planned = new Map(plan.activations.map((a) => [a.tensor, a]));
      for (const w of plan.weights) {
        const n = fp.graph.findNode(w.node);
        const x = n?.inputs[0];
        const axis = n && w.input === 1 ? meanAxisFor(n) : undefined;
        const a = x ? planned.get(x.name) : undefined;
        if (!x || axis === undefined || !a || x.initializer || x.shape === undefined) continue;
        channelMeans.set(x.name, axis);
        if (a.sameAs !== undefined && !meanOnly.some((m) => m.tensor === x.name)) meanOnly.push({ ...a, calibrator: 'minmax' });
      }
    }
    const stats = await timer.time('calibrate', () => collectStatistics(fp, [...own, ...meanOnly], data.calib, {
        channelMeans,
        scratch,
        segmentBytes,
        onSegments: (segs) => notes.push(segmentNote('calibration', segs)),
        onProgress: (d, t) => progress('calibrate', d, t),
        ...(o.histogramElements !== undefined ? { histogramElements: o.histogramElements } : {}),
      }));
    if (channelMeans.size > 0) biasInputs = stats;
    for (const a of own) {
      const st = stats.get(a.tensor);
      if (!st) throw new QccError('E_PASS_FAILED', `calibration produced no statistics for tensor '${a.tensor}'`, { tensor: a.tensor });
      const r = computeRange(st, a);
      ranges.set(a.tensor, r);
      params.set(a.tensor, qparamsFor(r, a.quant));
    }
    for (const a of plan.activations) {
      if (a.sameAs === undefined || params.has(a.tensor)) continue;
      const r = ranges.get(a.sameAs);
      const p = params.get(a.sameAs);
      if (!r || !p) throw new QccError('E_PASS_FAILED', `activation '${a.tensor}' shares the parameters of '${a.sameAs}', which was not calibrated`, { tensor: a.tensor });
      ranges.set(a.tensor, r);
      params.set(a.tensor, p);
    }
    if (plan.choices?.length) {
      const r = resolveChoices(plan, params);
      plan = r.plan;
      const list = r.resolved.map((c) => `${c.node}: ${c.quantized} (scale ${c.scale.toPrecision(3)} vs ${c.others.map((x) => x.scale.toPrecision(3)).join(', ')})`);
      notes.push(`residual Adds fed by two quantized Convs: the input with the smaller scale is quantized and the other Conv fuses the Add (${r.resolved.length}: ${list.join('; ')})`);
    }
  } else notes.push('no activation is quantized (weight-only preset): calibration skipped');

  // 4. quantize: weights, then Q/DQ on activations, then verify
  const q = cloneModel(fp);
  const weightReports = await timer.time('quantize-weights', () => quantizeWeights(q, plan.weights));
  if (biasInputs) {
    const inputs = biasInputs;
    const bc = await timer.time('bias-correction', () => correctBias(q, fp, inputs));
    if (bc.length) {
      const ratio = bc.map((b) => (b.biasRms > 0 ? b.shiftRms / b.biasRms : 0));
      const median = [...ratio].sort((x, y) => x - y)[Math.floor(ratio.length / 2)]!;
      notes.push(`bias correction: ${bc.length} layer${bc.length === 1 ? '' : 's'} had the mean output shift of their quantized weights moved into the bias (median shift/bias RMS ${median.toFixed(3)}; --no-bias-correction turns it off)`);
    }
  }
  const { inserted } = await timer.time('insert-qdq', () => insertQdq(q, plan.activations, params));
  await timer.time('verify', () => assertValid(q, 'the quantized model'));

  // 5. the target's fusion prediction, and the per-layer report (it reads the canonical model's structure)
  const fusion = await timer.time('predict-fusion', () => target.predictFusion(q));
  const weights = new Map<string, WeightInfo>();
  // granularity changes quantizeWeights had to make are fallbacks too (no silent downgrade)
  const fallbacks: Fallback[] = [...plan.fallbacks];
  for (const w of weightReports) {
    weights.set(`${w.node}/${w.input}`, {
      input: w.input,
      tensor: w.tensor,
      dtype: w.dtype,
      granularity: w.granularity,
      scaleMin: w.scaleMin,
      scaleMax: w.scaleMax,
      sqnrDb: w.sqnrDb,
      ...(w.clipRatioMean !== undefined ? { clipRatioMean: w.clipRatioMean } : {}),
      ...(w.fallback !== undefined ? { fallback: w.fallback } : {}),
    });
    if (w.fallback === undefined) continue;
    const wp = plan.weights.find((p) => p.node === w.node && p.input === w.input);
    fallbacks.push({
      node: w.node,
      op: fp.graph.findNode(w.node)?.opType ?? '?',
      requested: `${dtypeText(w.dtype)} ${wp ? granularityText(wp.quant.granularity) : '?'} weights`,
      applied: `${dtypeText(w.dtype)} ${w.granularity} weights`,
      reason: w.fallback,
    });
  }
  const layers = buildLayerReports(fp, { plan: { ...plan, fallbacks }, weights, ranges, params, fusion });
  return { q, plan, fusion, layers, fallbacks, weightsQuantized: weightReports.length, activationsQuantized: inserted > 0 ? plan.activations.length : 0, canonicalNodes };
}

/** The note saying a model ran in segments. */
function segmentNote(what: string, segs: readonly Segment[]): string {
  const mb = (b: number) => (b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 1 : 0);
  return `${what} ran in ${segs.length} segments, one onnxruntime session at a time, to bound memory (weights ${segs.map((s) => mb(s.weightBytes)).join(' + ')} MB; cut after ${segs.slice(0, -1).map((s) => s.outputs.filter((n) => segs.some((t) => t.inputs.includes(n))).join(', ')).join(' | ')}; --segment-mb sets the limit)`;
}

/** The input model cut for the FP32 reference, when its weights exceed `bytes` and it can be cut. */
function referenceSegments(model: Model, names: readonly string[], bytes: number): Segment[] | undefined {
  if (initializerBytes(model) <= bytes) return undefined;
  const m = cloneModel(model);
  try {
    inferShapes(m);
  } catch {
    return undefined;
  }
  const segs = splitModel(m, bytes, names);
  if (!segs || !names.every((n) => segs.some((s) => s.computes.has(n)))) return undefined;
  return segs;
}

/**
 * The FP32 reference outputs of the held-out batches from the segments of the input model; with `sample`, each
 * segment's latency on it too (their sum is the model's).
 */
async function segmentedReference(
  segs: readonly Segment[],
  names: readonly string[],
  inputs: InputBatches,
  sample: Feeds | undefined,
  runs: number,
  timer: Timer,
  progress: (phase: string, done: number, total: number) => void,
  unbatched: ReadonlySet<string>,
): Promise<{ ref: ReferenceOutputs; fp?: { ms: number; runs: number } }> {
  const t0 = performance.now();
  let sessionMs = 0;
  let latencyMs = 0;
  const batches: Record<string, ReferenceOutputs['batches'][number][string]>[] = [];
  const rows: number[] = [];
  let count = 0; // validation batches (the latency sample comes after them)
  let samples = 0;
  let done = 0;
  let fp: { ms: number; runs: number } | undefined;
  const source = async function* (): AsyncGenerator<Feeds> {
    for await (const f of inputs.batches()) {
      count++;
      yield f;
    }
    if (sample) yield sample;
  };
  const last = segs.length - 1;
  await runSegmented(segs, source, {
    session: async (seg) => {
      const t = performance.now();
      const session = await createSession(seg.model);
      sessionMs += performance.now() - t;
      return { session };
    },
    admit: (feeds, i) => {
      if (i < count) {
        rows[i] = batchRows(feeds, unbatched);
        samples += rows[i]!;
      }
      return true;
    },
    onBatch: (seg, i, out) => {
      if (i >= count) return;
      const b = (batches[i] ??= {});
      for (const n of names) if (seg.computes.has(n)) b[n] = referenceEntry(out[n]!, n);
      if (seg.index === last) progress('validate', (done += rows[i]!), 2 * inputs.samples);
    },
    after: async (_seg, session, feedsOf) => {
      if (!sample) return;
      const t = performance.now();
      const l = await latency(session, feedsOf(count), runs, LATENCY_MIN_MS / segs.length);
      latencyMs += performance.now() - t;
      fp = { ms: (fp?.ms ?? 0) + l.ms, runs };
    },
  });
  // the quantized model runs as often as whole FP32 runs would have to fill LATENCY_MIN_MS (a segment's own count
  // can be far higher: a small segment runs up to LATENCY_MAX_RUNS times)
  if (fp) fp = { ms: fp.ms, runs: Math.max(runs, Math.min(LATENCY_MAX_RUNS, Math.ceil(LATENCY_MIN_MS / Math.max(fp.ms, 1e-3)))) };
  if (samples === 0) throw new QccError('E_USAGE', 'validation got no input samples');
  timer.add('ort-sessions', sessionMs);
  if (sample) timer.add('ort-check', latencyMs);
  timer.add('validate', performance.now() - t0 - sessionMs - latencyMs);
  return { ref: { names, batches, samples }, ...(fp ? { fp } : {}) };
}

/** The FP32 reference session: the input model, or (when onnxruntime refuses it) its canonical form. */
async function referenceSession(model: Model, config: QuantConfig, notes: string[]): Promise<ortTypes.InferenceSession> {
  try {
    return await createSession(model);
  } catch (e) {
    const m = cloneModel(model);
    const need = requiredOpset(config);
    await canonicalize(m, m.opset < need ? { opset: need } : {});
    notes.push(`the FP32 reference is the canonicalized model: onnxruntime refused the input model (${(e as Error).message})`);
    return createSession(m);
  }
}

/**
 * The quantized model's session at optimization level 'all' (what deployments use), or, when onnxruntime's own graph
 * optimizer throws on the model, at the highest level that loads, with a note. Seen with onnxruntime-node 1.30 on
 * valid FP8 QDQ models: ClipQuantFusion reads an FP8 zero point as an integer ("Unexpected data type for
 * QuantizeLinear input y_zero_point of 17") and the QDQ selectors fuse FP8 Q/DQ around Conv into QLinearConv,
 * which has no FP8 kernel.
 */
async function quantizedSession(q: Model, optimizedFile: string | undefined, notes: string[]): Promise<ortTypes.InferenceSession> {
  const levels = ['all', 'basic', 'disabled'] as const;
  let first: unknown;
  for (const optimization of levels) {
    try {
      const s = await createSession(q, { optimization, ...(optimizedFile ? { optimizedModelFilePath: optimizedFile } : {}) });
      if (first !== undefined) {
        notes.push(`onnxruntime's graph optimizer failed on the quantized model at level 'all' (${(first as Error).message}); it was validated at level '${optimization}'. Deploy with that level, or use another runtime for this model (the model itself is valid ONNX).`);
      }
      return s;
    } catch (e) {
      first ??= e;
      if (optimization === 'disabled') throw first;
    }
  }
  throw first;
}

/** Quantizes `model` for `o.target` under `o.config`; see the file comment. The input model is left unchanged. */
export async function compile(model: Model, o: CompileOptions): Promise<CompileResult> {
  const timer = new Timer();
  const target = getTarget(o.target);
  const config = o.config;
  const calibSamples = positiveInt(o.calibSamples, DEFAULT_CALIB_SAMPLES, 'calibration samples');
  const validationSamples = positiveInt(o.validationSamples, DEFAULT_VALIDATION_SAMPLES, 'validation samples');
  const runs = positiveInt(o.latencyRuns, 7, 'latency runs');
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new QccError('E_USAGE', `seed must be an integer in 0..2^32-1, got ${seed}`);
  const name = o.modelName ?? (model.graph.name || 'model');
  const segmentBytes = o.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!(segmentBytes >= 0) || !Number.isFinite(segmentBytes)) throw new QccError('E_USAGE', `segment bytes must be a number >= 0, got ${String(o.segmentBytes)}`);
  const progress = (phase: string, done: number, total: number) => o.onProgress?.({ phase, done, total });
  const notes: string[] = [];
  checkInputs(model);
  // the input model's graph inputs are the canonical model's: the data sources are built on the input model
  const data = planData(model, o, calibSamples, validationSamples, seed);

  const scratch = ScratchData.create();
  let st: Stage;
  try {
    st = await quantizeStage(model, o, data, timer, notes, progress, scratch);
    // what the quantized model still reads from the scratch folder (float weights left unquantized) comes back
    // into memory before the folder goes
    scratch.materialize(st.q);
  } finally {
    scratch.dispose();
  }
  const { q, plan, fusion } = st;

  // 6. validation on held-out inputs, one onnxruntime session at a time: FP32 first (outputs kept), then quantized;
  //    with the ORT check, the quantized session writes its optimized graph and both are timed on one sample
  const doOrt = o.ortCheck ?? o.target === 'ort';
  const names = model.graph.outputs.map((v) => v.name);
  const qNames = new Set(q.graph.outputs.map((v) => v.name));
  for (const n of names) if (!qNames.has(n)) throw new QccError('E_PASS_FAILED', `the quantized model lost graph output '${n}'`, { tensor: n });
  const batching = inputBatching(model);
  const sample = doOrt ? await firstSample(data.validation, batching.fixed !== undefined, batching.unbatched) : undefined;
  let fp = { ms: 0, runs };
  const ref = await (async () => {
    // a model too large for one session's weights to sit beside the process comfortably runs in segments
    // (at half the limit: the input model may still have its BatchNorms, and onnxruntime fuses them into the Convs
    // with one more copy of their weights)
    const segs = segmentBytes > 0 ? await timer.time('ort-sessions', () => referenceSegments(model, names, segmentBytes / 2)) : undefined;
    if (segs) {
      try {
        const r = await segmentedReference(segs, names, data.validation, sample, runs, timer, progress, batching.unbatched);
        notes.push(segmentNote('the FP32 reference', segs) + (r.fp ? `; its latency is the sum of the ${segs.length} segments'` : ''));
        if (r.fp) fp = r.fp;
        return r.ref;
      } catch (e) {
        if (!(e instanceof QccError && e.code === 'E_ORT')) throw e; // onnxruntime refused a segment: the whole model's path below
      }
    }
    const s32 = await timer.time('ort-sessions', () => referenceSession(model, config, notes));
    try {
      const r = await timer.time('validate', () => referenceOutputs(s32, names, data.validation, (d, t) => progress('validate', d, t), batching.unbatched));
      if (sample) fp = await timer.time('ort-check', () => latency(s32, sample, runs, LATENCY_MIN_MS));
      return r;
    } finally {
      await s32.release();
    }
  })();
  let ortCheck: OrtCheck | undefined;
  let outputs: OutputMetrics[];
  {
    const dir = doOrt ? fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-ort-')) : undefined;
    const file = dir ? path.join(dir, 'optimized.onnx') : undefined;
    try {
      const sq = await timer.time(doOrt ? 'ort-check' : 'ort-sessions', () => quantizedSession(q, file, notes));
      try {
        outputs = await timer.time('validate', () => compareOutputs(sq, ref, data.validation, (d, t) => progress('validate', d, t), batching.unbatched));
        if (file && sample) {
          ortCheck = await timer.time('ort-check', async () => {
            const optimized = decodeModel(new Uint8Array(fs.readFileSync(file)), { file });
            const counts = countOrtFusion(q, optimized, fusion);
            // as many runs as the FP32 session took
            const qMs = (await latency(sq, sample, fp.runs)).ms;
            return { ...counts, latencyMs: { fp32: fp.ms, quant: qMs, runs: fp.runs, batch: batchRows(sample, batching.unbatched) }, speedup: fp.ms / qMs };
          });
        }
      } finally {
        await sq.release();
      }
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  // 7. extras and the report
  const outFile = o.output ?? `${name}.${config.preset}.${o.target}.onnx`;
  const extras = target.emitExtras(q, { model: outFile });
  notes.push(...extras.notes);
  const weighted = st.layers.filter((l) => WEIGHTED_OPS.has(l.op));
  const fusionSummary: FusionSummary = {
    coverage: fusion.coverage,
    unfused: fusion.layers.filter((l) => !l.quantized || l.reason !== undefined).map((l) => ({ node: l.node, op: l.op, reason: l.reason ?? 'not quantized' })),
    standaloneQdq: fusion.standaloneQdq,
  };
  const random = data.calib.source === 'random';
  const report: CompileReport = {
    qcc: { version: version() },
    model: {
      name,
      opset: { input: model.opset, output: q.opset },
      nodes: { input: model.graph.nodeCount, canonical: st.canonicalNodes, output: q.graph.nodeCount },
      weightedLayers: weighted.length,
    },
    target: o.target,
    preset: config.preset,
    config,
    calibration: {
      source: data.calib.source,
      samples: plan.activations.length ? data.calib.samples : 0,
      ...(data.calibSeed !== undefined ? { seed: data.calibSeed } : {}),
      ...(data.calib.description ? { description: data.calib.description } : {}),
      ...(random && plan.activations.length ? { warning: RANDOM_CALIBRATION_WARNING } : {}),
    },
    validationInputs: {
      source: (data.validation as { source?: string }).source ?? 'given',
      samples: ref.samples,
      ...(data.validationSeed !== undefined ? { seed: data.validationSeed } : {}),
      ...(data.note ? { note: data.note } : {}),
    },
    counts: {
      layersQuantized: weighted.filter((l) => l.quantized).length,
      layersTotal: weighted.length,
      weightsQuantized: st.weightsQuantized,
      activationsQuantized: st.activationsQuantized,
      quantizeLinear: countOps(q, 'QuantizeLinear'),
      dequantizeLinear: countOps(q, 'DequantizeLinear'),
    },
    layers: st.layers,
    fallbacks: st.fallbacks,
    keptFloat: plan.keptFloat,
    fusion: fusionSummary,
    ...(ortCheck ? { ort: ortCheck } : {}),
    validation: { samples: ref.samples, outputs },
    timings: timer.phases.map((p) => ({ phase: p.phase, ms: Math.round(p.ms * 10) / 10 })),
    files: {},
    notes,
  };
  const summary = renderSummary(report, { presetSummary: PRESET_SUMMARY[config.preset] });
  return { model: q, plan, report, summary, extras: extras.files };
}

/** The report with the files written (CLI) and its summary re-rendered. */
export function withFiles(r: CompileResult, files: Readonly<Record<string, string>>): { report: CompileReport; summary: string } {
  const report: CompileReport = { ...r.report, files: { ...r.report.files, ...files } };
  return { report, summary: renderSummary(report, { presetSummary: PRESET_SUMMARY[r.report.config.preset] }) };
}
