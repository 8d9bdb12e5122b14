// `qcc compile MODEL --target tensorrt|ort --w8a8|...`: argv -> QuantConfig and CompileOptions -> compile() -> files and summary.
//
// Writes OUT (default `<model>.<preset>.<target>.onnx` beside MODEL), `<OUT without .onnx>.report.json` and the
// target's extras (TensorRT: the trtexec command line), all only after the whole compilation succeeded. Prints the
// summary table on stdout (the report JSON with --json); a progress bar on stderr when stderr is a terminal.
// Configuration precedence: preset defaults < --config FILE < explicit flags; --keep-fp globs add to the file's.

import * as fs from 'node:fs';
import * as path from 'node:path';
import cliProgress from 'cli-progress';
import type { Argv, CommandModule } from 'yargs';
import { QccError } from '../ir/errors.js';
import { writeFileAtomic } from '../ir/onnx/writer.js';
import { checkCalibrationInputs, parsePreprocess } from '../passes/quant/calib-data.js';
import type { Calibrator, Preset, QuantConfig } from '../passes/quant/types.js';
import { compile, withFiles, type CompileOptions, type CompileProgress } from '../targets/compile.js';
import { applyConfigFile, CALIBRATORS, isPreset, presetConfig, PRESET_SUMMARY, PRESETS, readConfigFile, unknownPreset } from '../targets/config.js';
import { reportJson } from '../targets/report.js';
import type { CliIo } from './app.js';
import { readModel, writeModel } from './io.js';

export const TARGETS = ['tensorrt', 'ort'] as const;

export interface CompileArgs {
  model: string;
  target: string;
  output?: string;
  preset?: string;
  'w8a8'?: boolean;
  'w4a8'?: boolean;
  'w4a16'?: boolean;
  'w8a16'?: boolean;
  fp8?: boolean;
  'per-tensor'?: boolean;
  'block-size'?: number;
  calibrator?: string;
  percentile?: number;
  'mse-clip'?: boolean;
  'bias-correction'?: boolean;
  calib?: string;
  'calib-samples'?: number;
  'validation-samples'?: number;
  preprocess?: string;
  config?: string;
  'keep-fp'?: (string | number)[];
  json?: boolean;
  seed?: number;
  'external-data'?: boolean;
  dim?: (string | number)[];
  'ort-check'?: boolean;
  'segment-mb'?: number;
  progress?: boolean;
}

/** The preset from the flags: at most one of --w8a8 ... --fp8 / --preset NAME. */
export function presetFromArgs(a: CompileArgs): Preset | undefined {
  const given: string[] = PRESETS.filter((p) => a[p] === true);
  if (a.preset !== undefined) {
    if (!isPreset(a.preset)) throw unknownPreset(a.preset);
    if (!given.includes(a.preset)) given.push(a.preset);
  }
  if (given.length > 1) throw new QccError('E_USAGE', `give one preset, not ${given.map((p) => `--${p}`).join(' and ')}`);
  return given[0] as Preset | undefined;
}

function int(v: number | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min) throw new QccError('E_USAGE', `${flag} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** `--dim NAME=N` (repeatable): values of symbolic input dims for random inputs (NAME may be `input:axis`). */
export function parseDims(list: readonly (string | number)[] | undefined): Record<string, number> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, number> = {};
  for (const item of list.map(String)) {
    const m = /^(.+)=(\d+)$/.exec(item);
    if (!m || Number(m[2]) < 1) throw new QccError('E_USAGE', `--dim takes NAME=N with N a positive integer (e.g. --dim height=224 or --dim x:2=48), got '${item}'`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** preset defaults < --config FILE < explicit flags. */
export function configFromArgs(a: CompileArgs): QuantConfig {
  const flagPreset = presetFromArgs(a);
  const file = a.config !== undefined ? readConfigFile(a.config) : undefined;
  if (flagPreset && file?.preset && file.preset !== flagPreset) {
    throw new QccError('E_USAGE', `the config file ${a.config} sets preset ${file.preset} but the command line says --${flagPreset}`, { file: a.config!, path: '$.preset' });
  }
  const preset = flagPreset ?? file?.preset;
  if (!preset) throw new QccError('E_USAGE', `give a preset: ${PRESETS.map((p) => `--${p}`).join(', ')} (or "preset" in --config)`);
  let c = presetConfig(preset);
  if (file) c = applyConfigFile(c, file);
  if (a.calibrator !== undefined && !(CALIBRATORS as readonly string[]).includes(a.calibrator)) {
    throw new QccError('E_USAGE', `--calibrator must be one of ${CALIBRATORS.join(', ')}, got '${a.calibrator}'`);
  }
  const flags: Partial<QuantConfig> = {
    ...(a['per-tensor'] ? { perChannel: false } : {}),
    ...(a['block-size'] !== undefined ? { blockSize: int(a['block-size'], '--block-size', 2)! } : {}),
    ...(a.calibrator !== undefined ? { calibrator: a.calibrator as Calibrator } : {}),
    ...(a.percentile !== undefined ? { percentile: a.percentile } : {}),
    ...(a['mse-clip'] ? { mseClip: true } : {}),
    ...(a['bias-correction'] === false ? { biasCorrection: false } : {}),
  };
  if (a.percentile !== undefined && !(a.percentile > 50 && a.percentile <= 100)) throw new QccError('E_USAGE', `--percentile must be a number in (50, 100], got ${String(a.percentile)}`);
  const keepFp = (a['keep-fp'] ?? []).map(String);
  return presetConfig(c.preset, { ...c, ...flags, keepFp: [...c.keepFp, ...keepFp] });
}

/** `<dir>/<model base>.<preset>.<target>.onnx`. */
export function defaultOutput(model: string, preset: string, target: string): string {
  const dir = path.dirname(model);
  const base = path.basename(model).replace(/\.(onnx|qir)$/i, '');
  return path.join(dir, `${base}.${preset}.${target}.onnx`);
}

/** `<out without .onnx>.report.json`. */
export function reportFile(out: string): string {
  return `${out.replace(/\.onnx$/i, '')}.report.json`;
}

/** A cli-progress bar on stderr per phase (calibrate, validate) when enabled (stderr is a terminal, or --progress). */
function progressBar(enabled: boolean): { onProgress?: (p: CompileProgress) => void; stop(): void } {
  if (!enabled) return { stop() {} };
  let bar: cliProgress.SingleBar | undefined;
  let phase = '';
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onProgress(p) {
      if (p.phase !== phase || !bar) {
        stop();
        phase = p.phase;
        bar = new cliProgress.SingleBar({ format: `qcc: ${p.phase.padEnd(9)} [{bar}] {value}/{total} samples`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
        bar.start(p.total, p.done);
      } else bar.update(p.done);
      if (p.done >= p.total) stop();
    },
    stop,
  };
}

async function runCompile(a: CompileArgs, io: CliIo): Promise<void> {
  if (!(TARGETS as readonly string[]).includes(a.target)) throw new QccError('E_USAGE', `unknown target '${a.target}' (known: ${TARGETS.join(', ')})`);
  const config = configFromArgs(a);
  const calibSamples = int(a['calib-samples'], '--calib-samples', 1);
  const validationSamples = int(a['validation-samples'], '--validation-samples', 1);
  const seed = int(a.seed, '--seed', 0);
  const segmentMb = a['segment-mb'];
  if (segmentMb !== undefined && !(Number.isFinite(segmentMb) && segmentMb >= 0)) throw new QccError('E_USAGE', `--segment-mb must be a number >= 0, got ${String(segmentMb)}`);
  if (seed !== undefined && seed > 0xffffffff) throw new QccError('E_USAGE', `--seed must be at most 2^32-1, got ${seed}`);
  let calib: CompileOptions['calib'];
  if (a.calib !== undefined && a.calib !== 'random') calib = { dir: a.calib, ...(a.preprocess !== undefined ? { preprocess: parsePreprocess(a.preprocess) } : {}) };
  else if (a.preprocess !== undefined) throw new QccError('E_USAGE', '--preprocess applies to --calib DIR of images');
  const dims = parseDims(a.dim);
  const out = a.output ?? defaultOutput(a.model, config.preset, a.target);
  const model = readModel(a.model, { lazy: true });
  // an input calibration cannot feed (string, sequence, unknown type) is bad input: E_USAGE, exit 2
  checkCalibrationInputs(model);
  const bar = progressBar(a.progress ?? Boolean(process.stderr.isTTY));
  let r;
  try {
    r = await compile(model, {
      target: a.target as 'tensorrt' | 'ort',
      config,
      ...(calib ? { calib } : {}),
      ...(calibSamples !== undefined ? { calibSamples } : {}),
      ...(validationSamples !== undefined ? { validationSamples } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(dims ? { dims } : {}),
      ...(a['ort-check'] !== undefined ? { ortCheck: a['ort-check'] } : {}),
      ...(segmentMb !== undefined ? { segmentBytes: Math.round(segmentMb * 2 ** 20) } : {}),
      modelName: path.basename(a.model),
      output: out,
      ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
    });
  } finally {
    bar.stop();
  }
  // everything succeeded: write the model, the extras, then the report (which lists them)
  const files: Record<string, string> = { model: out };
  const w = writeModel(r.model, out, a['external-data'] ? { externalData: { threshold: 1024 } } : {});
  if (w.dataBytes) files.externalData = `${out}.data`;
  // the target's extras go beside OUT, named after it: trtexec.sh -> <OUT stem>.trtexec.sh
  const stem = path.basename(out).replace(/\.onnx$/i, '');
  for (const [name, text] of Object.entries(r.extras)) {
    const f = path.join(path.dirname(out), `${stem}.${path.basename(name)}`);
    writeFileAtomic(f, [new TextEncoder().encode(text)]);
    if (text.startsWith('#!')) fs.chmodSync(f, 0o755);
    files[path.basename(name)] = f;
  }
  const rf = reportFile(out);
  files.report = rf;
  const { report, summary } = withFiles(r, files);
  writeFileAtomic(rf, [new TextEncoder().encode(reportJson(report))]);
  io.out(a.json ? reportJson(report) : summary);
}

/** The yargs command module (registered in cli/app.ts). */
export function compileCommand(io: CliIo): CommandModule<object, CompileArgs> {
  return {
    command: 'compile <model>',
    describe: 'Quantize a model for TensorRT or onnxruntime: calibrated QDQ ONNX, report.json and a summary',
    builder: (y: Argv<object>) =>
      y
        .positional('model', { type: 'string', describe: 'input model (.onnx or .qir)', demandOption: true })
        .option('target', { type: 'string', choices: [...TARGETS], describe: 'deployment target: Q/DQ placement and legality follow its rules', demandOption: true })
        .option('w8a8', { type: 'boolean', describe: PRESET_SUMMARY.w8a8, group: 'Presets (give one):' })
        .option('w4a8', { type: 'boolean', describe: PRESET_SUMMARY.w4a8, group: 'Presets (give one):' })
        .option('w4a16', { type: 'boolean', describe: PRESET_SUMMARY.w4a16, group: 'Presets (give one):' })
        .option('w8a16', { type: 'boolean', describe: PRESET_SUMMARY.w8a16, group: 'Presets (give one):' })
        .option('fp8', { type: 'boolean', describe: PRESET_SUMMARY.fp8, group: 'Presets (give one):' })
        .option('preset', { type: 'string', describe: `the preset by name (${PRESETS.join(', ')})`, group: 'Presets (give one):' })
        .option('o', { alias: 'output', type: 'string', describe: 'output .onnx file', defaultDescription: '<model>.<preset>.<target>.onnx' })
        .option('per-tensor', { type: 'boolean', describe: 'one scale per weight tensor instead of per output channel' })
        .option('block-size', { type: 'number', describe: 'INT4 block size along K', defaultDescription: '128' })
        .option('calibrator', { type: 'string', choices: [...CALIBRATORS], describe: 'activation range calibrator', defaultDescription: 'mse (fp8: minmax)' })
        .option('percentile', { type: 'number', describe: 'percentile for the percentile calibrator', defaultDescription: '99.99' })
        .option('mse-clip', { type: 'boolean', describe: 'search MSE-optimal weight clipping per channel/block' })
        .option('bias-correction', { type: 'boolean', describe: 'move the mean output shift of quantized weights into the bias (calibrated channel means); --no-bias-correction turns it off', defaultDescription: 'on' })
        .option('calib', { type: 'string', describe: 'calibration data: a directory of .npy files or images, or "random" (seeded inputs; the default, reported loudly)' })
        .option('calib-samples', { type: 'number', describe: 'calibration samples', defaultDescription: '32' })
        .option('validation-samples', { type: 'number', describe: 'held-out samples for the FP32-vs-quantized validation', defaultDescription: '16' })
        .option('preprocess', { type: 'string', describe: 'image preprocessing, e.g. resize=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw' })
        .option('config', { type: 'string', describe: 'JSON config file: per-layer overrides and exclusions (targets/config.ts documents the keys)' })
        .option('keep-fp', { type: 'string', array: true, describe: 'keep nodes whose name matches this glob in float (repeatable)' })
        .option('dim', { type: 'string', array: true, describe: 'value of a symbolic input dimension for random calibration/validation inputs: NAME=N or INPUT:AXIS=N (repeatable)' })
        .option('json', { type: 'boolean', describe: 'print the report JSON instead of the summary table' })
        .option('seed', { type: 'number', describe: 'seed of random calibration/validation inputs', defaultDescription: '0' })
        .option('external-data', { type: 'boolean', describe: 'store large tensors in <OUT>.data (needed above 2 GiB)' })
        .option('ort-check', { type: 'boolean', describe: "count onnxruntime's fused quantized kernels and measure the speedup", defaultDescription: 'on for --target ort' })
        .option('segment-mb', { type: 'number', describe: 'onnxruntime runs models with more weights than this in segments of at most this many MiB, one session at a time (bounds memory); 0: whole model', defaultDescription: '32' })
        .option('progress', { type: 'boolean', describe: 'progress bar on stderr', defaultDescription: 'when stderr is a terminal' }) as unknown as Argv<CompileArgs>,
    handler: (a) => runCompile(a, io),
  };
}
