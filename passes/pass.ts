// The pass API: a pass is declared once (name, summary, options); the CLI's flags and help come from that declaration.

import { QccError, type Loc } from '../ir/errors.js';
import type { Model } from '../ir/ir.js';
import type { Diagnostic, Severity } from '../ir/verify.js';

export type PassOptionType = 'boolean' | 'number' | 'string';

export interface PassOption {
  readonly name: string;
  readonly type: PassOptionType;
  readonly describe: string;
  readonly default?: boolean | number | string;
  /** Allowed values for string options. */
  readonly choices?: readonly string[];
}

export type PassOptions = Readonly<Record<string, boolean | number | string | undefined>>;

export interface PassResult {
  readonly model: Model;
  readonly changed: boolean;
  /** Counters for the summary (nodes folded, constants created, ...). */
  readonly stats: Readonly<Record<string, number>>;
}

export interface DiagnosticSink {
  report(severity: Severity, code: string, message: string, loc?: Loc): void;
  readonly items: readonly Diagnostic[];
}

export function diagnosticSink(): DiagnosticSink {
  const items: Diagnostic[] = [];
  return {
    items,
    report(severity, code, message, loc = {}) {
      items.push({ severity, code, message, loc });
    },
  };
}

export interface Instrument {
  readonly name: string;
  beforePass?(pass: Pass, model: Model): void;
  afterPass?(pass: Pass, result: PassResult, ms: number): void;
}

export interface PassContext {
  /** Target name when a pipeline is run for a target (passes read target data through options, not by name). */
  readonly target?: string;
  readonly options: PassOptions;
  readonly diag: DiagnosticSink;
  readonly instruments: readonly Instrument[];
}

/**
 * `in-place` passes mutate and return the model they were given; `functional` passes return a new model and
 * leave their input untouched. The manager checks both.
 */
export interface Pass {
  readonly name: string;
  readonly summary: string;
  readonly mode: 'in-place' | 'functional';
  readonly options?: readonly PassOption[];
  /** Precondition: true, or why the pass cannot run on this model. */
  requires?(m: Model): true | string;
  run(m: Model, cx: PassContext): PassResult | Promise<PassResult>;
  /** Postcondition checked in tests: true, or what the pass failed to establish. */
  ensures?(m: Model): true | string;
}

export function definePass<P extends Pass>(p: P): P {
  if (!/^[a-z][a-z0-9-]*$/.test(p.name)) throw new Error(`pass name '${p.name}' must be kebab-case`);
  return p;
}

/** Reads option `name` of pass `p`, applying its declared default and type. */
export function passOption<T extends boolean | number | string>(p: Pass, cx: PassContext, name: string): T {
  const decl = p.options?.find((o) => o.name === name);
  if (!decl) throw new Error(`pass ${p.name} declares no option ${name}`);
  const v = cx.options[name] ?? decl.default;
  if (v === undefined) throw new QccError('E_PASS_OPTION', `pass ${p.name} needs option --${name}`, { pass: p.name });
  if (typeof v !== decl.type) throw new QccError('E_PASS_OPTION', `option --${name} of pass ${p.name} must be a ${decl.type}, got ${JSON.stringify(v)}`, { pass: p.name });
  if (decl.choices && !decl.choices.includes(v as string)) {
    throw new QccError('E_PASS_OPTION', `option --${name} of pass ${p.name} must be one of ${decl.choices.join(', ')}`, { pass: p.name });
  }
  return v as T;
}
