// Golden-file harness: `// RUN: qcc-opt` / `qcc-quant` lines, pipeline execution with verification, FileCheck-style matching, accept.
//
// A golden file (test/golden/<pass>/<case>.qir) is a .qir model plus comment directives:
//   // RUN: qcc-opt --pass=fold-batchnorm,dce [--<pass>.<option>=value] [--<option>=value] [--fixpoint=N]
//   // RUN: qcc-quant --target=tensorrt|ort --preset=w8a8 [--calibrator=C] [--percentile=P] [--per-tensor]
//                     [--block-size=N] [--mse-clip] [--no-bias-correction] [--keep-fp=GLOB[,GLOB]]... [--calib-samples=N] [--seed=S]
//        the whole `qcc compile` pipeline (targets/compile.ts compile(): canonicalize, plan, seeded random
//        calibration, quantize, verify), printing the quantized model; validation runs on 1 held-out sample and the
//        onnxruntime fusion/latency check is off, so the output is deterministic (defaults: 8 samples, seed 0)
//   // CHECK: <text>        the next line (at or after the previous match) containing <text>
//   // CHECK-NEXT: <text>   the line right after the previous match contains <text>
//   // CHECK-NOT: <text>    no line between the surrounding positive matches contains <text>; a CHECK-NOT before
//                           the first positive check applies to the whole output (unlike FileCheck, on purpose:
//                           `golden:accept` keeps CHECK-NOT lines at the top, as whole-output guards)
//   // expected-error: E_CODE [text]   parsing or the pipeline must fail with this code (and message text)
// Matching is structural on whitespace: runs of blanks collapse to one space and lines are trimmed, in both the
// output and the pattern. `{{regex}}` inside a pattern matches a regular expression; everything else is literal.
// The input is the whole file (directives are comments to the parser); passes come from passes/registry.ts and
// run under a PassManager with verifyInstrument (IR verified before and after every pass).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectPassOptions, parsePipeline } from '../../cli/pass-flags.js';
import { QccError, isQccError } from '../../ir/errors.js';
import { parseModel } from '../../ir/parse.js';
import { printModel } from '../../ir/print.js';
import { PassManager, verifyInstrument } from '../../passes/manager.js';
import type { Pass } from '../../passes/pass.js';
import type { Calibrator, QuantConfig } from '../../passes/quant/types.js';
import { compile } from '../../targets/compile.js';
import { isPreset, presetConfig, unknownPreset } from '../../targets/config.js';

/** test/golden in the source tree (this file runs from dist/test/golden). */
export const GOLDEN_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/golden');

export type CheckKind = 'CHECK' | 'CHECK-NEXT' | 'CHECK-NOT';
export interface Check {
  readonly kind: CheckKind;
  readonly pattern: string;
  /** 1-based line in the golden file */
  readonly line: number;
}

/** A `qcc-quant` RUN line: the arguments of compile(). */
export interface QuantRun {
  readonly target: 'tensorrt' | 'ort';
  readonly config: QuantConfig;
  readonly calibSamples: number;
  readonly seed: number;
}

export interface GoldenSpec {
  /** qcc-opt: the pass pipeline (empty for qcc-quant) */
  readonly passes: readonly Pass[];
  /** qcc-quant: the compile() run */
  readonly quant?: QuantRun;
  readonly options: ReturnType<typeof collectPassOptions>;
  readonly fixpoint: number | undefined;
  readonly checks: readonly Check[];
  readonly expectedError: { readonly code: string; readonly text: string } | undefined;
}

const DIRECTIVE = /^\s*\/\/\s*(RUN|CHECK-NEXT|CHECK-NOT|CHECK|expected-error)\s*:\s?(.*)$/;

/** Reads the directives of a golden file. A malformed RUN line is E_USAGE. */
export function parseGolden(text: string, file = '<golden>'): GoldenSpec {
  let run: string | undefined;
  const checks: Check[] = [];
  let expectedError: GoldenSpec['expectedError'];
  text.split('\n').forEach((l, i) => {
    const m = DIRECTIVE.exec(l);
    if (!m) return;
    const [, kind, rest] = m as unknown as [string, string, string];
    if (kind === 'RUN') {
      if (run !== undefined) throw new QccError('E_USAGE', `${file}:${i + 1}: only one RUN line is supported`);
      run = rest.trim();
    } else if (kind === 'expected-error') {
      const [code = '', ...words] = rest.trim().split(/\s+/);
      expectedError = { code, text: words.join(' ') };
    } else checks.push({ kind: kind as CheckKind, pattern: normalize(rest), line: i + 1 });
  });
  if (run === undefined) throw new QccError('E_USAGE', `${file}: no '// RUN: qcc-opt --pass=...' line`);
  const words = run.split(/\s+/).filter((w) => w !== '');
  const tool = words.shift();
  if (tool !== 'qcc-opt' && tool !== 'qcc-quant') throw new QccError('E_USAGE', `${file}: the RUN line must start with qcc-opt or qcc-quant`);
  let passSpec: string | undefined;
  let fixpoint: number | undefined;
  const raw: [string, string | undefined][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('--')) throw new QccError('E_USAGE', `${file}: unexpected '${w}' in the RUN line`);
    const eq = w.indexOf('=');
    const key = eq < 0 ? w.slice(2) : w.slice(2, eq);
    let value = eq < 0 ? undefined : w.slice(eq + 1);
    if (value === undefined && words[i + 1] !== undefined && !words[i + 1]!.startsWith('--')) value = words[++i];
    if (tool === 'qcc-quant') raw.push([key, value]);
    else if (key === 'pass' || key === 'passes') passSpec = value;
    else if (key === 'fixpoint') fixpoint = Number(value);
    else raw.push([key, value]);
  }
  if (tool === 'qcc-quant') return { passes: [], quant: quantRun(raw, file), options: {}, fixpoint: undefined, checks, expectedError };
  if (passSpec === undefined) throw new QccError('E_USAGE', `${file}: the RUN line has no --pass=`);
  const passes = parsePipeline(passSpec);
  // `--option=v` is short for `--<pass>.option=v` when exactly one pass in the pipeline declares it
  const flags = new Map<string, unknown>();
  for (const [key, value] of raw) {
    if (key.includes('.')) {
      flags.set(key, value);
      continue;
    }
    const owners = passes.filter((p) => p.options?.some((o) => o.name === key));
    if (owners.length !== 1) throw new QccError('E_USAGE', `${file}: --${key} names ${owners.length ? 'an option of several passes' : 'no option of the pipeline'}; write --<pass>.${key}`);
    flags.set(`${owners[0]!.name}.${key}`, value);
  }
  return { passes, options: collectPassOptions(flags, passes), fixpoint, checks, expectedError };
}

/** The flags of a `qcc-quant` RUN line (see the file comment); anything else is E_USAGE. */
function quantRun(flags: readonly [string, string | undefined][], file: string): QuantRun {
  const bad = (what: string): never => {
    throw new QccError('E_USAGE', `${file}: qcc-quant ${what}`);
  };
  const int = (key: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) bad(`--${key} must be an integer >= ${min}, got ${String(v)}`);
    return n;
  };
  let target: QuantRun['target'] | undefined;
  let preset: string | undefined;
  let calibSamples = 8;
  let seed = 0;
  const o: { -readonly [K in keyof QuantConfig]?: QuantConfig[K] } = {};
  const keepFp: string[] = [];
  for (const [key, v] of flags) {
    switch (key) {
      case 'target':
        if (v !== 'tensorrt' && v !== 'ort') bad(`--target must be tensorrt or ort, got ${String(v)}`);
        target = v as QuantRun['target'];
        break;
      case 'preset':
        preset = v;
        break;
      case 'calibrator':
        o.calibrator = v as Calibrator;
        break;
      case 'percentile':
        o.percentile = Number(v);
        break;
      case 'per-tensor':
        o.perChannel = false;
        break;
      case 'mse-clip':
        o.mseClip = true;
        break;
      case 'no-bias-correction':
        o.biasCorrection = false;
        break;
      case 'block-size':
        o.blockSize = int(key, v, 2);
        break;
      case 'keep-fp':
        if (!v) bad('--keep-fp needs a glob');
        keepFp.push(...v!.split(','));
        break;
      case 'calib-samples':
        calibSamples = int(key, v, 1);
        break;
      case 'seed':
        seed = int(key, v, 0);
        break;
      default:
        bad(`has no option --${key}`);
    }
  }
  if (target === undefined) bad('needs --target=tensorrt|ort');
  if (preset === undefined) bad('needs --preset=NAME');
  if (!isPreset(preset!)) throw unknownPreset(preset!);
  return { target: target!, config: presetConfig(preset!, { ...o, keepFp }), calibSamples, seed };
}

export interface GoldenRun {
  readonly spec: GoldenSpec;
  /** printed IR after the pipeline, when it succeeded */
  readonly output?: string;
  readonly error?: QccError;
}

/** Parses the file's model, runs its pipeline with verification (or, for qcc-quant, compile()), prints the result. */
export async function runGolden(text: string, file = '<golden>'): Promise<GoldenRun> {
  const spec = parseGolden(text, file);
  try {
    const m = parseModel(text, { file });
    if (spec.quant) {
      const q = spec.quant;
      const r = await compile(m, { target: q.target, config: q.config, calibSamples: q.calibSamples, validationSamples: 1, ortCheck: false, seed: q.seed });
      return { spec, output: printModel(r.model) };
    }
    const r = await new PassManager(spec.passes).run(m, {
      options: spec.options,
      instruments: [verifyInstrument()],
      ...(spec.fixpoint !== undefined ? { fixpoint: spec.fixpoint } : {}),
    });
    return { spec, output: printModel(r.model) };
  } catch (e) {
    if (isQccError(e)) return { spec, error: e };
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Matching

export function normalize(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

function matcher(pattern: string): (line: string) => boolean {
  if (!pattern.includes('{{')) return (l) => l.includes(pattern);
  let re = '';
  let rest = pattern;
  for (;;) {
    const a = rest.indexOf('{{');
    if (a < 0) break;
    const b = rest.indexOf('}}', a + 2);
    if (b < 0) break;
    re += escapeRe(rest.slice(0, a)) + `(?:${rest.slice(a + 2, b)})`;
    rest = rest.slice(b + 2);
  }
  const rx = new RegExp(re + escapeRe(rest));
  return (l) => rx.test(l);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Checks `output` against `checks`; returns undefined on success or a description of the first failure. */
export function fileCheck(output: string, checks: readonly Check[]): string | undefined {
  const lines = output.split('\n').map(normalize);
  let pos = 0;
  let last = -1;
  let nots: Check[] = [];
  let sawPositive = false;
  const checkNots = (from: number, to: number): string | undefined => {
    for (const c of nots) {
      const match = matcher(c.pattern);
      for (let i = from; i < to; i++) if (match(lines[i]!)) return `line ${c.line}: CHECK-NOT: '${c.pattern}' found in output line ${i + 1}: ${lines[i]}`;
    }
    return undefined;
  };
  for (const c of checks) {
    if (c.kind === 'CHECK-NOT') {
      if (!sawPositive) {
        // whole-output guard
        const match = matcher(c.pattern);
        const i = lines.findIndex(match);
        if (i >= 0) return `line ${c.line}: CHECK-NOT: '${c.pattern}' found in output line ${i + 1}: ${lines[i]}`;
      } else nots.push(c);
      continue;
    }
    const match = matcher(c.pattern);
    let at: number;
    if (c.kind === 'CHECK-NEXT') {
      if (last < 0) return `line ${c.line}: CHECK-NEXT without a previous match`;
      at = last + 1;
      if (at >= lines.length || !match(lines[at]!)) return `line ${c.line}: CHECK-NEXT: '${c.pattern}' not on output line ${at + 1} (found: ${lines[at] ?? '<end of output>'})`;
    } else {
      at = -1;
      for (let i = pos; i < lines.length; i++) {
        if (match(lines[i]!)) {
          at = i;
          break;
        }
      }
      if (at < 0) return `line ${c.line}: CHECK: '${c.pattern}' not found after output line ${pos}`;
    }
    const bad = checkNots(pos, at);
    if (bad) return bad;
    nots = [];
    sawPositive = true;
    last = at;
    pos = at + 1;
  }
  return checkNots(pos, lines.length);
}

/** Whether a run satisfies its file: the expected error, or success and every check. */
export function verdict(r: GoldenRun): string | undefined {
  const want = r.spec.expectedError;
  if (want) {
    if (!r.error) return `expected error ${want.code}, but the pipeline succeeded`;
    if (r.error.code !== want.code) return `expected error ${want.code}, got ${r.error.describe()}`;
    if (want.text && !r.error.message.includes(want.text)) return `error ${want.code} message lacks '${want.text}': ${r.error.message}`;
    return undefined;
  }
  if (r.error) return `unexpected error ${r.error.describe()}`;
  if (r.spec.checks.filter((c) => c.kind !== 'CHECK-NOT').length === 0) return 'no positive CHECK lines';
  return fileCheck(r.output!, r.spec.checks);
}

/**
 * The file with its CHECK lines regenerated from `r`: existing CHECK-NOT lines are kept (moved to the top of the
 * check block, where they guard the whole output), positive checks become the full output (`CHECK:` for its first
 * line, `CHECK-NEXT:` after), except that an old positive check with a `{{regex}}` that matches an output line is kept
 * for it (in order: scales of seeded calibration stay regexes). For expected-error files only the code is updated.
 * Returns undefined when the run
 * cannot be accepted (an unexpected error).
 */
export function acceptedText(text: string, r: GoldenRun): string | undefined {
  const lines = text.split('\n');
  if (r.spec.expectedError) {
    if (!r.error) return undefined;
    return lines.map((l) => l.replace(/^(\s*\/\/\s*expected-error\s*:\s*)\S+(.*)$/, (_, a: string, rest: string) => `${a}${r.error!.code}${r.error!.code === r.spec.expectedError!.code ? rest : ''}`)).join('\n');
  }
  if (r.error || r.output === undefined) return undefined;
  const nots: string[] = [];
  const kept: string[] = [];
  const regexChecks: string[] = [];
  for (const l of lines) {
    const m = DIRECTIVE.exec(l);
    if (m && m[1] === 'CHECK-NOT') nots.push(`// CHECK-NOT: ${normalize(m[2]!)}`);
    else if (m && m[1]!.startsWith('CHECK') && m[2]!.includes('{{')) regexChecks.push(normalize(m[2]!));
    else if (!m || !m[1]!.startsWith('CHECK')) kept.push(l);
  }
  while (kept.length && kept[kept.length - 1]!.trim() === '') kept.pop();
  const out = r.output.replace(/\n$/, '').split('\n');
  let next = 0;
  const checks = out.map((l, i) => {
    const line = normalize(l);
    const k = regexChecks.findIndex((p, j) => j >= next && matcher(p)(line));
    if (k >= 0) next = k + 1;
    return `// ${i === 0 ? 'CHECK' : 'CHECK-NEXT'}: ${k >= 0 ? regexChecks[k] : line}`;
  });
  return [...kept, '', ...nots, ...checks, ''].join('\n');
}

/** Every golden file under `dir`, sorted. */
export function listGoldenFiles(dir = GOLDEN_DIR): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.qir')) out.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}
