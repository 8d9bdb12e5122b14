// Pass pipelines from the command line: `--passes a,b`, `--<pass>.<option> value` flags derived from pass declarations.

import { QccError } from '../ir/errors.js';
import type { Pass, PassOption, PassOptions } from '../passes/pass.js';
import { allPasses, getPass } from '../passes/registry.js';

/** The flag (without dashes) that sets option `o` of pass `p`: `<pass>.<option>`. */
export function passFlag(p: Pass, o: PassOption): string {
  return `${p.name}.${o.name}`;
}

/** One line per option: `--upgrade-opset.to <number>  target opset (default 21)`. */
export function describeOption(o: PassOption): string {
  const dflt = o.default !== undefined ? ` (default ${String(o.default)})` : '';
  const choices = o.choices ? ` [${o.choices.join('|')}]` : '';
  return `${o.describe}${choices}${dflt}`;
}

/** Resolves `a,b,c` to passes; unknown names are E_PASS_UNKNOWN (a usage error). */
export function parsePipeline(spec: string | readonly string[]): Pass[] {
  const names = (typeof spec === 'string' ? [spec] : spec)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new QccError('E_USAGE', 'the pipeline is empty: give --passes a,b,c (see `qcc passes`)');
  return names.map(getPass);
}

/** Converts a flag's raw value to the option's declared type (E_PASS_OPTION when it does not fit). */
export function coerceOption(p: Pass, o: PassOption, raw: unknown): boolean | number | string {
  const bad = (): never => {
    throw new QccError('E_PASS_OPTION', `--${passFlag(p, o)} expects a ${o.type}${o.choices ? ` (${o.choices.join(', ')})` : ''}, got ${JSON.stringify(raw)}`, { pass: p.name });
  };
  let v: boolean | number | string;
  switch (o.type) {
    case 'boolean':
      if (typeof raw === 'boolean') v = raw;
      else if (raw === 'true' || raw === '1' || raw === '' || raw === undefined) v = true;
      else if (raw === 'false' || raw === '0') v = false;
      else return bad();
      break;
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n)) return bad();
      v = n;
      break;
    }
    case 'string':
      if (typeof raw !== 'string' && typeof raw !== 'number') return bad();
      v = String(raw);
      if (o.choices && !o.choices.includes(v)) return bad();
      break;
  }
  return v;
}

/**
 * Per-pass options from flag values keyed `<pass>.<option>` (as yargs or a golden RUN line produce them).
 * A flag for a pass that is not in the pipeline, or for an option the pass does not declare, is E_USAGE.
 */
export function collectPassOptions(flags: ReadonlyMap<string, unknown>, pipeline: readonly Pass[]): Record<string, PassOptions> {
  const out: Record<string, Record<string, boolean | number | string>> = {};
  for (const [key, raw] of flags) {
    const dot = key.indexOf('.');
    const passName = key.slice(0, dot);
    const optName = key.slice(dot + 1);
    const p = allPasses().find((x) => x.name === passName);
    const o = p?.options?.find((x) => x.name === optName);
    if (!p || !o) throw new QccError('E_USAGE', `unknown option --${key} (see \`qcc passes\`)`);
    if (!pipeline.includes(p)) throw new QccError('E_USAGE', `--${key} is given but pass ${passName} is not in the pipeline`);
    (out[p.name] ??= {})[o.name] = coerceOption(p, o, raw);
  }
  return out;
}

/** Every declared pass option as `[flag, pass, option]`, in registry order. */
export function allPassFlags(): [string, Pass, PassOption][] {
  return allPasses().flatMap((p) => (p.options ?? []).map((o) => [passFlag(p, o), p, o] as [string, Pass, PassOption]));
}
