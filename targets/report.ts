// The compile report: report.json (per layer: op, precision, granularity, scale statistics, calibrator, fallback) and the summary table.
//
// buildLayerReports() joins what the passes and the target produced (plan, weight reports, activation ranges and
// qparams, fusion prediction) into one row per weighted layer (Conv, ConvTranspose, Gemm, MatMul) and per other
// node that got quantized inputs. renderSummary() prints the readable table `qcc compile` writes on stdout;
// reportJson() serializes the report (non-finite numbers become the strings "Infinity", "-Infinity", "NaN").

import type { Model, Node } from '../ir/ir.js';
import type { ActivationPlan, Fallback, QParams, QuantConfig, QuantPlan, Range } from '../passes/quant/types.js';
import type { WeightReport } from '../passes/quant/quantize-weights.js';
import type { OutputMetrics } from './validate.js';

/** The loud warning when calibration ran on seeded random inputs (also in report.json `calibration.warning`). */
export const RANDOM_CALIBRATION_WARNING = 'no calibration data: ranges come from random inputs; quality numbers below are not meaningful for real data';

export const WEIGHTED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** A quantized weight in the report: quantizeWeights' own record, without the node (the layer row names it). */
export type WeightInfo = Omit<WeightReport, 'node'>;

export interface ActivationInfo {
  readonly input: number;
  readonly tensor: string;
  readonly dtype: string;
  readonly symmetric: boolean;
  readonly calibrator: string;
  readonly percentile?: number;
  readonly range: Range;
  readonly scale: number;
  readonly zeroPoint: number;
}

export interface LayerReport {
  readonly node: string;
  readonly op: string;
  /** e.g. "w:int4 a:int8", "w:int8 a:fp", "fp". */
  readonly precision: string;
  /** The weight's granularity ("per-channel(axis=0)", "blocked(axis=0,size=128)", "per-tensor"), or "-" without weights. */
  readonly granularity: string;
  readonly quantized: boolean;
  readonly weights: WeightInfo[];
  readonly activations: ActivationInfo[];
  readonly fallback?: { readonly requested: string; readonly applied: string; readonly reason: string };
  readonly keptFloat?: string;
  /** The target's fusion prediction for this layer. */
  readonly fusion?: { readonly fusedWith: readonly string[]; readonly reason?: string };
}

export interface FusionSummary {
  /** Quantized weighted layers / all weighted layers, as predicted by the target. */
  readonly coverage: number;
  readonly unfused: readonly { readonly node: string; readonly op: string; readonly reason: string }[];
  readonly standaloneQdq: readonly { readonly node: string; readonly reason: string }[];
}

/** onnxruntime's own verdict for --target ort: fused kernels in its optimized graph and the measured speed. */
export interface OrtCheck {
  /** Conv/ConvTranspose/Gemm/MatMul nodes of the quantized model whose inputs are all dequantized. */
  readonly quantizedLayers: number;
  /** Of those, how many ORT turned into quantized kernels (QLinearConv, QLinearMatMul, MatMulIntegerToFloat, ...). */
  readonly fused: number;
  /** Op histogram of the quantized-kernel ops in ORT's optimized graph. */
  readonly fusedOps: Readonly<Record<string, number>>;
  /** Quantized layers that stayed float in ORT's optimized graph, with the target's reason when it predicted one. */
  readonly unfused: readonly { readonly node: string; readonly op: string; readonly reason: string }[];
  /** Layers where the target's fusion prediction and onnxruntime's optimized graph disagree. */
  readonly mispredicted?: readonly { readonly node: string; readonly predicted: 'fused' | 'unfused'; readonly actual: 'fused' | 'unfused' }[];
  /** DequantizeLinear/QuantizeLinear nodes left in ORT's optimized graph (executed standalone). */
  readonly standaloneQdq: number;
  readonly latencyMs?: { readonly fp32: number; readonly quant: number; readonly runs: number; readonly batch: number };
  /** fp32 / quant median latency (>1: the quantized model is faster). */
  readonly speedup?: number;
}

export interface CompileReport {
  readonly qcc: { readonly version: string };
  readonly model: {
    readonly name: string;
    readonly opset: { readonly input: number; readonly output: number };
    readonly nodes: { readonly input: number; readonly canonical: number; readonly output: number };
    readonly weightedLayers: number;
  };
  readonly target: string;
  readonly preset: string;
  readonly config: QuantConfig;
  readonly calibration: {
    readonly source: string;
    readonly samples: number;
    readonly seed?: number;
    /** The data source, e.g. "seeded random inputs (seed 0): input f32 [B,3,224,224] ~ N(0,1)". */
    readonly description?: string;
    readonly warning?: string;
  };
  readonly validationInputs: { readonly source: string; readonly samples: number; readonly seed?: number; readonly note?: string };
  readonly counts: {
    readonly layersQuantized: number;
    readonly layersTotal: number;
    readonly weightsQuantized: number;
    readonly activationsQuantized: number;
    readonly quantizeLinear: number;
    readonly dequantizeLinear: number;
  };
  readonly layers: readonly LayerReport[];
  readonly fallbacks: readonly Fallback[];
  readonly keptFloat: QuantPlan['keptFloat'];
  readonly fusion: FusionSummary;
  readonly ort?: OrtCheck;
  readonly validation: { readonly samples: number; readonly outputs: readonly OutputMetrics[] };
  readonly timings: readonly { readonly phase: string; readonly ms: number }[];
  readonly files: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Per-layer rows

export interface LayerInputs {
  readonly plan: QuantPlan;
  /** Weight reports from quantizeWeights, keyed `node/input`. */
  readonly weights: ReadonlyMap<string, WeightInfo>;
  readonly ranges: ReadonlyMap<string, Range>;
  readonly params: ReadonlyMap<string, QParams>;
  readonly fusion?: { readonly layers: readonly { readonly node: string; readonly op: string; readonly quantized: boolean; readonly fusedWith: readonly string[]; readonly reason?: string }[] };
}


const DTYPE_NAME: Record<string, string> = { i8: 'int8', u8: 'uint8', i4: 'int4', u4: 'uint4', i16: 'int16', u16: 'uint16', fp8e4m3: 'fp8' };
export function dtypeText(d: string): string {
  return DTYPE_NAME[d] ?? d;
}

/**
 * One row per weighted layer of `model` (the canonical FP32 model the plan refers to) and per other node reading a
 * quantized activation, in graph order.
 */
export function buildLayerReports(model: Model, x: LayerInputs): LayerReport[] {
  const acts = new Map<string, { plan: ActivationPlan; input: number }[]>();
  const add = (node: string, input: number, plan: ActivationPlan) => {
    let l = acts.get(node);
    if (!l) acts.set(node, (l = []));
    if (!l.some((e) => e.input === input)) l.push({ plan, input });
  };
  for (const p of x.plan.activations) {
    if (p.consumers.length) for (const c of p.consumers) add(c.node, c.input, p);
    else for (const u of model.graph.findValue(p.tensor)?.uses ?? []) add(u.node.name, u.index, p);
  }
  const weightPlans = new Map<string, { input: number; dtype: string }[]>();
  for (const w of x.plan.weights) {
    const l = weightPlans.get(w.node) ?? [];
    l.push({ input: w.input, dtype: w.quant.dtype });
    weightPlans.set(w.node, l);
  }
  const fallbacks = new Map(x.plan.fallbacks.map((f) => [f.node, f]));
  const kept = new Map(x.plan.keptFloat.map((k) => [k.node, k.reason]));
  const fusion = new Map((x.fusion?.layers ?? []).map((l) => [l.node, l]));
  const rows: LayerReport[] = [];
  for (const n of model.graph.nodes()) {
    const weighted = WEIGHTED_OPS.has(n.opType) && n.domain === '';
    if (!weighted && !acts.has(n.name) && !weightPlans.has(n.name)) continue;
    rows.push(layerRow(n, x, acts.get(n.name) ?? [], weightPlans.get(n.name) ?? [], fallbacks.get(n.name), kept.get(n.name), fusion.get(n.name)));
  }
  return rows;
}

function layerRow(
  n: Node,
  x: LayerInputs,
  acts: readonly { plan: ActivationPlan; input: number }[],
  wplans: readonly { input: number; dtype: string }[],
  fallback: Fallback | undefined,
  kept: string | undefined,
  fusion: { fusedWith: readonly string[]; reason?: string } | undefined,
): LayerReport {
  const weights: WeightInfo[] = [];
  for (const w of wplans) {
    const r = x.weights.get(`${n.name}/${w.input}`);
    if (r) weights.push(r);
  }
  const activations: ActivationInfo[] = [];
  for (const { plan, input } of [...acts].sort((a, b) => a.input - b.input)) {
    const range = x.ranges.get(plan.tensor);
    const qp = x.params.get(plan.tensor);
    if (!range || !qp) continue;
    activations.push({
      input,
      tensor: plan.tensor,
      dtype: dtypeText(plan.quant.dtype),
      symmetric: plan.quant.symmetric,
      calibrator: plan.calibrator,
      ...(plan.calibrator === 'percentile' && plan.percentile !== undefined ? { percentile: plan.percentile } : {}),
      range,
      scale: qp.scale,
      zeroPoint: qp.zeroPoint,
    });
  }
  const wd = weights.length ? dtypeText(weights[0]!.dtype) : wplans.length ? dtypeText(wplans[0]!.dtype) : undefined;
  const ad = activations.length ? activations[0]!.dtype : undefined;
  // a layer kept in float may still read a dequantized activation (its producer's Q/DQ serves another fusion)
  const quantized = kept === undefined && (wd !== undefined || ad !== undefined);
  const precision = wd !== undefined || ad !== undefined ? `w:${wd ?? 'fp'} a:${ad ?? 'fp'}` : 'fp';
  return {
    node: n.name,
    op: n.domain ? `${n.domain}.${n.opType}` : n.opType,
    precision,
    granularity: weights.length ? weights[0]!.granularity : '-',
    quantized,
    weights,
    activations,
    ...(fallback ? { fallback: { requested: fallback.requested, applied: fallback.applied, reason: fallback.reason } } : {}),
    ...(kept !== undefined ? { keptFloat: kept } : {}),
    ...(fusion ? { fusion: { fusedWith: [...fusion.fusedWith], ...(fusion.reason ? { reason: fusion.reason } : {}) } } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// JSON

/** report.json text: 2-space indented; Infinity/NaN as strings (JSON has no such numbers). */
export function reportJson(r: CompileReport): string {
  return `${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2)}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// The summary table

function table(rows: readonly (readonly string[])[], indent = '  ', numeric: readonly boolean[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 && !numeric[i] ? c : numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

export function fmtDb(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return x.toFixed(1);
}

function fmtNum(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
  return x.toFixed(digits);
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function names(list: readonly string[], max = 6): string {
  return list.length <= max ? list.join(', ') : `${list.slice(0, max).join(', ')} (+${list.length - max} more in report.json)`;
}

const BANNER = '!'.repeat(100);

/** The readable summary `qcc compile` prints on stdout. */
export function renderSummary(r: CompileReport, o: { presetSummary?: string } = {}): string {
  const out: string[] = [];
  const warn = r.calibration.warning;
  if (warn) out.push(BANNER, `!! WARNING: ${warn}`, `!! pass --calib DIR (.npy files or images) for ranges that hold on real inputs`, BANNER, '');
  out.push(`qcc compile: ${r.model.name} for ${r.target}, preset ${r.preset}${o.presetSummary ? ` (${o.presetSummary})` : ''}`);
  const cal = r.calibration;
  const calibrators = [...new Set(r.layers.flatMap((l) => l.activations.map((a) => (a.calibrator === 'percentile' ? `percentile ${a.percentile ?? r.config.percentile}` : a.calibrator))))];
  out.push(
    ...table([
      ['model', `${r.model.name}: opset ${r.model.opset.input} -> ${r.model.opset.output}, ${r.model.nodes.input} nodes (${r.model.nodes.canonical} after canonicalization, ${r.model.nodes.output} quantized)`],
      ['calibration', `${cal.source}${cal.source === 'random' ? ` (seeded, seed ${cal.seed ?? 0})` : ''}, ${cal.samples} samples; calibrator ${calibrators.length ? calibrators.join(', ') : r.config.calibrator}`],
      ['layers', `${r.counts.layersQuantized} / ${r.counts.layersTotal} weighted layers quantized; ${r.counts.weightsQuantized} weights, ${r.counts.activationsQuantized} activation tensors; ${r.counts.quantizeLinear} QuantizeLinear, ${r.counts.dequantizeLinear} DequantizeLinear`],
    ]),
  );

  // layers by precision
  const byPrec = new Map<string, number>();
  for (const l of r.layers) if (WEIGHTED_OPS.has(l.op)) byPrec.set(`${l.op} ${l.precision}${l.granularity !== '-' ? ` ${l.granularity}` : ''}`, (byPrec.get(`${l.op} ${l.precision}${l.granularity !== '-' ? ` ${l.granularity}` : ''}`) ?? 0) + 1);
  if (byPrec.size) {
    out.push('', 'Weighted layers by precision:');
    out.push(...table([...byPrec].sort((a, b) => b[1] - a[1]).map(([k, v]) => [String(v), k]), '  ', [true]));
  }

  out.push('', `Fallbacks (${r.fallbacks.length}):`);
  if (!r.fallbacks.length) out.push('  (none)');
  else {
    const groups = new Map<string, { f: Fallback; nodes: string[] }>();
    for (const f of r.fallbacks) {
      const k = `${f.op}\u0000${f.requested}\u0000${f.applied}\u0000${f.reason}`;
      const g = groups.get(k);
      if (g) g.nodes.push(f.node);
      else groups.set(k, { f, nodes: [f.node] });
    }
    for (const { f, nodes } of groups.values()) {
      out.push(`  ${nodes.length} x ${f.op}: ${f.requested} -> ${f.applied}: ${f.reason}`);
      out.push(`      ${names(nodes)}`);
    }
  }
  if (r.keptFloat.length) {
    out.push('', `Kept in float (${r.keptFloat.length}):`);
    const groups = new Map<string, string[]>();
    for (const k of r.keptFloat) groups.set(`${k.op}: ${k.reason}`, [...(groups.get(`${k.op}: ${k.reason}`) ?? []), k.node]);
    for (const [k, nodes] of groups) out.push(`  ${nodes.length} x ${k}`, `      ${names(nodes)}`);
  }

  const fu = r.fusion;
  out.push('', `Predicted fusion (${r.target}): ${pct(fu.coverage)} of weighted layers run quantized`);
  if (fu.unfused.length) {
    out.push(`  unfused (${fu.unfused.length}):`);
    out.push(...table(fu.unfused.slice(0, 20).map((u) => [u.node, u.op, u.reason]), '    '));
    if (fu.unfused.length > 20) out.push(`    (+${fu.unfused.length - 20} more in report.json)`);
  }
  if (fu.standaloneQdq.length) {
    out.push(`  standalone Q/DQ (${fu.standaloneQdq.length}):`);
    out.push(...table(fu.standaloneQdq.slice(0, 10).map((s) => [s.node, s.reason]), '    '));
    if (fu.standaloneQdq.length > 10) out.push(`    (+${fu.standaloneQdq.length - 10} more in report.json)`);
  }

  if (r.ort) {
    const o = r.ort;
    const ops = Object.entries(o.fusedOps).map(([k, v]) => `${v} ${k}`).join(', ');
    out.push('', `onnxruntime check (optimized graph): ${o.fused} / ${o.quantizedLayers} quantized Conv/MatMul/Gemm fused${ops ? ` (${ops})` : ''}; ${o.standaloneQdq} standalone Q/DQ left`);
    if (o.unfused.length) out.push(...table(o.unfused.slice(0, 20).map((u) => [u.node, u.op, u.reason]), '    '));
    if (o.mispredicted?.length) out.push(`  the target's prediction differs for ${o.mispredicted.length} layer(s): ${names(o.mispredicted.map((m) => `${m.node} (predicted ${m.predicted}, ${m.actual} in onnxruntime)`), 4)}`);
    if (o.latencyMs && o.speedup !== undefined) {
      out.push(`  latency (batch ${o.latencyMs.batch}, median of ${o.latencyMs.runs}): FP32 ${o.latencyMs.fp32.toFixed(2)} ms, quantized ${o.latencyMs.quant.toFixed(2)} ms: ${o.speedup.toFixed(2)}x`);
    }
  }

  const v = r.validation;
  const vi = r.validationInputs;
  out.push('', `Validation on ${v.samples} held-out samples (${vi.source}${vi.seed !== undefined ? `, seed ${vi.seed}` : ''}${vi.note ? `; ${vi.note}` : ''}):`);
  if (warn) out.push(`  !! ${warn}`);
  const vrows: string[][] = [['output', 'SQNR dB', 'cosine', 'max abs err', 'top-1 agree']];
  for (const m of v.outputs) {
    vrows.push([
      m.name,
      m.exactMatch !== undefined ? '-' : fmtDb(m.sqnrDb),
      m.exactMatch !== undefined ? '-' : m.cosine.toFixed(6),
      m.exactMatch !== undefined ? `exact ${pct(m.exactMatch)}` : fmtNum(m.maxAbsErr),
      m.top1Agreement !== undefined ? pct(m.top1Agreement) : '-',
    ]);
  }
  out.push(...table(vrows, '  ', [false, true, true, true, true]));

  out.push('', `Time: ${r.timings.map((t) => `${t.phase} ${fmtMs(t.ms)}`).join(', ')}; total ${fmtMs(r.timings.reduce((s, t) => s + t.ms, 0))}`);
  const files = Object.entries(r.files);
  if (files.length) {
    out.push('', 'Output files:');
    out.push(...table(files.map(([k, f]) => [k, f])));
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}
