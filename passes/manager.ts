// PassManager: runs pipelines with instruments (verify, timing, IR dumps), enforces pass modes, wraps failures.

import { QccError, isQccError } from '../ir/errors.js';
import type { Model } from '../ir/ir.js';
import { encodeModel } from '../ir/onnx/writer.js';
import { assertValid } from '../ir/verify.js';
import { diagnosticSink, type DiagnosticSink, type Instrument, type Pass, type PassOptions, type PassResult } from './pass.js';

export interface RunOptions {
  target?: string;
  /** Options per pass name. */
  options?: Readonly<Record<string, PassOptions>>;
  instruments?: readonly Instrument[];
  /** Repeat the whole pipeline until nothing changes, at most this many rounds (best effort: no error when reached). */
  fixpoint?: number;
  /** With fixpoint: fail when the cap is reached without convergence (`--test-convergence`). */
  testConvergence?: boolean;
  diag?: DiagnosticSink;
}

export interface PipelineResult {
  readonly model: Model;
  readonly changed: boolean;
  readonly rounds: number;
  readonly perPass: readonly { name: string; changed: boolean; ms: number; stats: Readonly<Record<string, number>> }[];
  readonly diag: DiagnosticSink;
}

export class PassManager {
  constructor(readonly passes: readonly Pass[]) {}

  async run(model: Model, opts: RunOptions = {}): Promise<PipelineResult> {
    const diag = opts.diag ?? diagnosticSink();
    const instruments = opts.instruments ?? [];
    const perPass: { name: string; changed: boolean; ms: number; stats: Readonly<Record<string, number>> }[] = [];
    const maxRounds = Math.max(1, opts.fixpoint ?? 1);
    let m = model;
    let anyChange = false;
    let rounds = 0;
    for (; rounds < maxRounds; rounds++) {
      let roundChange = false;
      const done: string[] = [];
      for (const p of this.passes) {
        const cx = { target: opts.target, options: opts.options?.[p.name] ?? {}, diag, instruments };
        const pre = p.requires?.(m);
        if (pre !== undefined && pre !== true) throw new QccError('E_PASS_FAILED', `pass ${p.name} cannot run: ${pre}`, { pass: p.name });
        for (const ins of instruments) ins.beforePass?.(p, m);
        const fingerprint = p.mode === 'functional' && instruments.some((i) => i.name === 'verify') ? digest(m) : undefined;
        const t0 = performance.now();
        let r: PassResult;
        try {
          r = await p.run(m, cx);
        } catch (e) {
          throw wrap(e, p, done);
        }
        const ms = performance.now() - t0;
        if (p.mode === 'in-place' && r.model !== m) throw new QccError('E_PASS_FAILED', `in-place pass ${p.name} returned a different model`, { pass: p.name });
        if (fingerprint !== undefined && digest(m) !== fingerprint) throw new QccError('E_PASS_FAILED', `functional pass ${p.name} mutated its input`, { pass: p.name });
        for (const ins of instruments) ins.afterPass?.(p, r, ms);
        perPass.push({ name: p.name, changed: r.changed, ms, stats: r.stats });
        done.push(p.name);
        roundChange ||= r.changed;
        m = r.model;
      }
      anyChange ||= roundChange;
      if (!roundChange) {
        rounds++;
        break;
      }
      if (rounds === maxRounds - 1 && maxRounds > 1 && opts.testConvergence) {
        throw new QccError('E_PASS_FAILED', `pipeline did not converge in ${maxRounds} rounds`);
      }
    }
    return { model: m, changed: anyChange, rounds, perPass, diag };
  }
}

function digest(m: Model): string {
  const b = encodeModel(m);
  let h = 2166136261;
  for (let i = 0; i < b.length; i += 7) h = Math.imul(h ^ b[i]!, 16777619);
  return `${b.length}:${h >>> 0}`;
}

function wrap(e: unknown, p: Pass, done: readonly string[]): QccError {
  const after = done.length ? ` after [${done.join(', ')}]` : '';
  if (isQccError(e)) return new QccError(e.code, `in pass ${p.name}${after}: ${e.message}`, { ...e.loc, pass: p.name }, { cause: e });
  return new QccError('E_PASS_FAILED', `in pass ${p.name}${after}: ${(e as Error)?.message ?? String(e)}`, { pass: p.name }, { cause: e });
}

/** Verifies the IR before and after every pass (on in tests by default). */
export function verifyInstrument(): Instrument {
  return {
    name: 'verify',
    beforePass(p, m) {
      assertValid(m, `input of pass ${p.name}`);
    },
    afterPass(p, r) {
      assertValid(r.model, `output of pass ${p.name}`);
      const post = p.ensures?.(r.model);
      if (post !== undefined && post !== true) throw new QccError('E_PASS_FAILED', `pass ${p.name} broke its postcondition: ${post}`, { pass: p.name });
    },
  };
}

/** Collects wall time per pass. */
export function timingInstrument(into: { name: string; ms: number }[]): Instrument {
  return {
    name: 'timing',
    afterPass(p, _r, ms) {
      into.push({ name: p.name, ms });
    },
  };
}

/** Calls `sink` with the IR text after every pass (for --dump-ir). */
export function dumpInstrument(print: (m: Model) => string, sink: (passName: string, text: string) => void): Instrument {
  return {
    name: 'dump',
    afterPass(p, r) {
      sink(p.name, print(r.model));
    },
  };
}
