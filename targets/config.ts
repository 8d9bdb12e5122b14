// Quantization configuration: presets, the JSON config file (schema-checked, errors name the JSON path), node-name globs.
//
// A QuantConfig (passes/quant/types.ts) is what the CLI flags and the config file map onto and what the library's
// compile() takes. Precedence, lowest first: preset defaults (presetConfig) -> config file (loadConfigFile) ->
// explicit command-line flags (cli/compile.ts); `--keep-fp` globs add to the file's `keepFp`.
//
// Config file (JSON; every key optional, unknown keys are errors so that typos do not pass silently):
//
//   {
//     "preset": "w8a8",                        // w8a8 | w4a8 | w4a16 | w8a16 | fp8
//     "perChannel": true,                      // false = per-tensor weights (--per-tensor)
//     "blockSize": 128,                        // INT4 block size along K (--block-size)
//     "calibrator": "percentile",              // minmax | percentile | entropy | mse
//     "percentile": 99.99,                     // for the percentile calibrator, in (50, 100]
//     "mseClip": false,                        // MSE-optimal weight clipping search
//     "biasCorrection": true,                  // move weight quantization's mean output shift into the bias
//     "keepFp": ["head.*", "*.attn.qkv"],      // node-name globs kept in float
//     "layers": { "stem.conv": "fp", "layer4.*": { "precision": "int8", "calibrator": "entropy" } },
//     "ops":    { "MatMul": { "precision": "int8" }, "ConvTranspose": "fp" },
//     "overrides": [ { "match": "blocks.0.*", "precision": "fp8" }, { "match": "Gemm", "op": true, "granularity": "per-tensor" } ]
//   }
//
// `layers` (node-name globs) and `ops` (op types) are shorthands for `overrides` entries; a string value is a
// precision. Overrides apply in order `ops`, `layers`, `overrides`, and for one node the last matching entry wins
// field by field (layerOverride below). Globs: `*` any run of characters (dots and slashes included), `?` one.

import * as fs from 'node:fs';
import { QccError } from '../ir/errors.js';
import type { Calibrator, LayerOverride, Preset, QuantConfig } from '../passes/quant/types.js';

export const PRESETS: readonly Preset[] = ['w8a8', 'w4a8', 'w4a16', 'w8a16', 'fp8'];

/** One line per preset, for --help and error messages. */
export const PRESET_SUMMARY: Readonly<Record<Preset, string>> = {
  w8a8: 'INT8 weights (per-channel) and INT8 activations',
  w4a8: 'INT4 weights (blocked along K) on Gemm/MatMul, INT8 activations; targets legalize convolutions to INT8 weights',
  w4a16: 'INT4 weights (blocked along K), activations kept in float (weight-only)',
  w8a16: 'INT8 weights (per-channel), activations kept in float (weight-only)',
  fp8: 'FP8 E4M3 weights and activations',
};

export const CALIBRATORS: readonly Calibrator[] = ['minmax', 'percentile', 'entropy', 'mse'];
export const PRECISIONS = ['fp', 'int8', 'int4', 'fp8'] as const;
export const GRANULARITIES = ['per-tensor', 'per-channel', 'blocked'] as const;

export const DEFAULT_BLOCK_SIZE = 128;
export const DEFAULT_PERCENTILE = 99.99;

export function isPreset(s: string): s is Preset {
  return (PRESETS as readonly string[]).includes(s);
}

/** E_USAGE for an unknown preset name, listing the known ones. */
export function unknownPreset(name: string): QccError {
  return new QccError('E_USAGE', `unknown preset '${name}' (known: ${PRESETS.join(', ')})`);
}

/**
 * The configuration for a preset: per-channel symmetric weights, INT4 blocks of 128, percentile (99.99)
 * calibration for integer activations and minmax (amax) for FP8, whose wide dynamic range needs no clipping.
 * `o` overrides fields (checked like the config file's).
 */
export function presetConfig(preset: Preset, o: Partial<QuantConfig> = {}): QuantConfig {
  if (!isPreset(preset as string)) throw unknownPreset(String(preset));
  const base: QuantConfig = {
    preset,
    perChannel: true,
    blockSize: DEFAULT_BLOCK_SIZE,
    // mse for integer activations: on the PaddleOCR recognizer (rendered text, bench/RESULTS.md) it keeps W8A8
    // exact match within 0.4 points of FP32 (percentile 99.99: 2.2), and on the zoo it is within +-0.6 dB of it
    calibrator: preset === 'fp8' ? 'minmax' : 'mse',
    percentile: DEFAULT_PERCENTILE,
    mseClip: false,
    overrides: [],
    keepFp: [],
  };
  const r = { ...base, ...stripUndefined(o) } as QuantConfig;
  if (r.preset !== preset && !isPreset(r.preset as string)) throw unknownPreset(String(r.preset));
  checkConfig(r);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Range checks shared by presetConfig, the config file and the CLI (messages name `where`, a flag or a JSON path). */
export function checkConfig(c: QuantConfig, where: (field: string) => string = (f) => f): void {
  if (!Number.isInteger(c.blockSize) || c.blockSize < 2) throw new QccError('E_USAGE', `${where('blockSize')} must be an integer >= 2, got ${String(c.blockSize)}`);
  if (!(typeof c.percentile === 'number' && c.percentile > 50 && c.percentile <= 100)) throw new QccError('E_USAGE', `${where('percentile')} must be a number in (50, 100], got ${String(c.percentile)}`);
  if (!CALIBRATORS.includes(c.calibrator)) throw new QccError('E_USAGE', `${where('calibrator')} must be one of ${CALIBRATORS.join(', ')}, got ${JSON.stringify(c.calibrator)}`);
  for (const g of c.keepFp) if (typeof g !== 'string' || g === '') throw new QccError('E_USAGE', `${where('keepFp')}: globs must be non-empty strings, got ${JSON.stringify(g)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The config file

/** A parsed, schema-checked config file: only the keys it sets. */
export interface ConfigFile {
  readonly file: string;
  readonly preset?: Preset;
  readonly perChannel?: boolean;
  readonly blockSize?: number;
  readonly calibrator?: Calibrator;
  readonly percentile?: number;
  readonly mseClip?: boolean;
  readonly biasCorrection?: boolean;
  readonly keepFp?: readonly string[];
  /** `ops`, then `layers`, then `overrides`, in file order. */
  readonly overrides?: readonly LayerOverride[];
}

const TOP_KEYS = ['$schema', 'preset', 'perChannel', 'blockSize', 'calibrator', 'percentile', 'mseClip', 'biasCorrection', 'keepFp', 'layers', 'ops', 'overrides'] as const;
const OVERRIDE_KEYS = ['match', 'op', 'precision', 'granularity', 'calibrator'] as const;

/** Reads and checks a config file; every problem is E_USAGE (exit 2) naming the file and the JSON path (`$.a.b[2]`). */
export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QccError('E_IO', `cannot read config file ${file}: ${(e as Error).message}`, { file });
  }
  return parseConfigText(text, file);
}

/** parseConfigText: readConfigFile without the file system (`file` names the source in errors). */
export function parseConfigText(text: string, file: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new QccError('E_USAGE', `config file ${file} is not valid JSON: ${jsonErrorWhere(text, (e as Error).message)}`, { file });
  }
  return checkConfigJson(json, file);
}

/**
 * V8's JSON.parse message on one line with the line and column: "Expected double-quoted property name in JSON at
 * position 42" -> "Expected double-quoted property name (line 4, column 1) near '}'". V8 gives no position for an
 * unexpected token and quotes the text instead ("Unexpected token 'e', ..."ibrator": entropy\n}\n" is not valid
 * JSON"): the quote is dropped and the position comes from jsonErrorOffset.
 */
export function jsonErrorWhere(text: string, msg: string): string {
  const what = msg
    .replace(/, (?:\.\.\.)?"[\s\S]*$/, '') // the quoted text of "Unexpected token 'x', "..." is not valid JSON"
    .replace(/ (?:in JSON )?at position \d+[\s\S]*$/, '') // the position (and Node 22's "(line 3 column 17)")
    .split('\n')[0]!;
  const m = /position (\d+)/.exec(msg);
  const at = m ? Number(m[1]) : jsonErrorOffset(text);
  const pos = at < 0 || at > text.length ? text.length : at;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  const rest = text.slice(pos).split(/\r?\n/)[0]!.trimEnd();
  const near = rest === '' ? '' : ` near '${rest.length > 24 ? `${rest.slice(0, 24)}...` : rest}'`;
  return `${what} (line ${line}, column ${col})${near}`;
}

/**
 * The offset of the first character JSON.parse rejects in `text` (text.length when the text ends too early), -1
 * when the text is valid JSON. A small RFC 8259 scanner; V8 reports the same offsets where it reports one.
 */
export function jsonErrorOffset(text: string): number {
  const n = text.length;
  let i = 0;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const digit = (): boolean => i < n && text[i]! >= '0' && text[i]! <= '9';
  const digits = (): void => {
    if (!digit()) fail();
    while (digit()) i++;
  };
  const str = (): void => {
    i++; // the opening quote
    for (;;) {
      if (i >= n) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          for (let k = 0; k < 4; k++) if (!/[0-9a-fA-F]/.test(text[++i] ?? '')) fail();
        } else if (i >= n || !'"\\/bfnrt'.includes(text[i]!)) fail();
      }
      i++;
    }
  };
  const value = (depth: number): void => {
    if (depth > 1000) fail();
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          str();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value(depth + 1);
        ws();
        if (text[i] === close) return void i++;
        if (text[i] !== ',') fail();
        i++;
      }
    }
    if (c === '"') return str();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      if (c === '-') i++;
      if (text[i] === '0') i++;
      else digits();
      if (text[i] === '.') {
        i++;
        digits();
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits();
      }
      return;
    }
    const word = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : undefined;
    if (word === undefined) fail();
    for (const ch of word!) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  try {
    value(0);
    ws();
    return i < n ? i : -1;
  } catch (e) {
    if (e instanceof JsonStop) return e.at;
    throw e;
  }
}

class JsonStop {
  constructor(readonly at: number) {}
}

class Checker {
  constructor(readonly file: string) {}
  fail(path: string, what: string): never {
    throw new QccError('E_USAGE', `config file ${this.file}: ${path} ${what}`, { file: this.file, path });
  }
  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object, got ${kind(v)}`);
    return v as Record<string, unknown>;
  }
  keys(o: Record<string, unknown>, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(`${path}.${k}`, `is not a known key (known: ${allowed.filter((a) => a !== '$schema').join(', ')})`);
    }
  }
  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, `must be true or false, got ${kind(v)}`);
    return v as boolean;
  }
  str(v: unknown, path: string): string {
    if (typeof v !== 'string' || v === '') this.fail(path, `must be a non-empty string, got ${kind(v)}`);
    return v as string;
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(path, `must be one of ${allowed.join(', ')}, got ${kind(v)}`);
    return v as T;
  }
  int(v: unknown, path: string, min: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(path, `must be an integer >= ${min}, got ${kind(v)}`);
    return v as number;
  }
  num(v: unknown, path: string, lo: number, hi: number): number {
    if (typeof v !== 'number' || !(v > lo && v <= hi)) this.fail(path, `must be a number in (${lo}, ${hi}], got ${kind(v)}`);
    return v as number;
  }
  glob(v: unknown, path: string): string {
    const g = this.str(v, path);
    return g;
  }
  override(v: unknown, path: string, fixed: { match?: string; op?: boolean }): LayerOverride {
    if (typeof v === 'string') return { ...(fixed as { match: string }), precision: this.oneOf(v, path, PRECISIONS) };
    const o = this.object(v, path);
    this.keys(o, path, fixed.match === undefined ? OVERRIDE_KEYS : OVERRIDE_KEYS.filter((k) => k !== 'match' && k !== 'op'));
    const match = fixed.match ?? this.glob(o.match, `${path}.match`);
    const op = fixed.op ?? (o.op === undefined ? undefined : this.bool(o.op, `${path}.op`));
    const r: { -readonly [K in keyof LayerOverride]: LayerOverride[K] } = { match };
    if (op) r.op = true;
    if (o.precision !== undefined) r.precision = this.oneOf(o.precision, `${path}.precision`, PRECISIONS);
    if (o.granularity !== undefined) r.granularity = this.oneOf(o.granularity, `${path}.granularity`, GRANULARITIES);
    if (o.calibrator !== undefined) r.calibrator = this.oneOf(o.calibrator, `${path}.calibrator`, CALIBRATORS);
    if (r.precision === undefined && r.granularity === undefined && r.calibrator === undefined) this.fail(path, 'sets nothing: give precision, granularity or calibrator');
    return r;
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

function checkConfigJson(json: unknown, file: string): ConfigFile {
  const c = new Checker(file);
  const o = c.object(json, '$');
  c.keys(o, '$', TOP_KEYS);
  const r: { -readonly [K in keyof ConfigFile]: ConfigFile[K] } = { file };
  if (o.preset !== undefined) {
    const p = o.preset;
    if (typeof p !== 'string' || !isPreset(p)) c.fail('$.preset', `must be a preset (known: ${PRESETS.join(', ')}), got ${kind(p)}`);
    r.preset = p as Preset;
  }
  if (o.perChannel !== undefined) r.perChannel = c.bool(o.perChannel, '$.perChannel');
  if (o.blockSize !== undefined) r.blockSize = c.int(o.blockSize, '$.blockSize', 2);
  if (o.calibrator !== undefined) r.calibrator = c.oneOf(o.calibrator, '$.calibrator', CALIBRATORS);
  if (o.percentile !== undefined) r.percentile = c.num(o.percentile, '$.percentile', 50, 100);
  if (o.mseClip !== undefined) r.mseClip = c.bool(o.mseClip, '$.mseClip');
  if (o.biasCorrection !== undefined) r.biasCorrection = c.bool(o.biasCorrection, '$.biasCorrection');
  if (o.keepFp !== undefined) {
    if (!Array.isArray(o.keepFp)) c.fail('$.keepFp', `must be an array of node-name globs, got ${kind(o.keepFp)}`);
    r.keepFp = (o.keepFp as unknown[]).map((g, i) => c.glob(g, `$.keepFp[${i}]`));
  }
  const overrides: LayerOverride[] = [];
  if (o.ops !== undefined) {
    const ops = c.object(o.ops, '$.ops');
    for (const [k, v] of Object.entries(ops)) {
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(k)) c.fail(`$.ops.${k}`, 'is not an op type (e.g. "Conv", "MatMul")');
      overrides.push(c.override(v, `$.ops.${k}`, { match: k, op: true }));
    }
  }
  if (o.layers !== undefined) {
    const layers = c.object(o.layers, '$.layers');
    for (const [k, v] of Object.entries(layers)) overrides.push(c.override(v, `$.layers[${JSON.stringify(k)}]`, { match: k }));
  }
  if (o.overrides !== undefined) {
    if (!Array.isArray(o.overrides)) c.fail('$.overrides', `must be an array of {match, op?, precision?, granularity?, calibrator?}, got ${kind(o.overrides)}`);
    (o.overrides as unknown[]).forEach((v, i) => overrides.push(c.override(v, `$.overrides[${i}]`, {})));
  }
  if (overrides.length) r.overrides = overrides;
  return r;
}

/** Applies a config file onto `base`: the file's preset (when given) replaces the base's; lists are appended. */
export function applyConfigFile(base: QuantConfig, f: ConfigFile): QuantConfig {
  const r: QuantConfig = {
    preset: f.preset ?? base.preset,
    perChannel: f.perChannel ?? base.perChannel,
    blockSize: f.blockSize ?? base.blockSize,
    calibrator: f.calibrator ?? (f.preset !== undefined && f.preset !== base.preset ? presetConfig(f.preset).calibrator : base.calibrator),
    percentile: f.percentile ?? base.percentile,
    mseClip: f.mseClip ?? base.mseClip,
    ...(f.biasCorrection ?? base.biasCorrection) !== undefined ? { biasCorrection: (f.biasCorrection ?? base.biasCorrection)! } : {},
    overrides: [...base.overrides, ...(f.overrides ?? [])],
    keepFp: [...base.keepFp, ...(f.keepFp ?? [])],
  };
  checkConfig(r, (field) => `config file ${f.file}: $.${field}`);
  return r;
}

/** Reads `file` and applies it onto `base` (see applyConfigFile). */
export function loadConfigFile(file: string, base: QuantConfig): QuantConfig {
  return applyConfigFile(base, readConfigFile(file));
}

// ---------------------------------------------------------------------------------------------------------------
// Globs and per-layer resolution

const globCache = new Map<string, RegExp>();

/** `*` matches any run of characters (including none, dots and slashes), `?` exactly one; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (!re) {
    const body = [...glob].map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
    re = new RegExp(`^${body}$`, 's');
    globCache.set(glob, re);
  }
  return re;
}

export function matchGlob(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

/** Whether `nodeName` matches one of the config's keep-fp globs (returns the glob). */
export function keptFpBy(config: QuantConfig, nodeName: string): string | undefined {
  return config.keepFp.find((g) => matchGlob(g, nodeName));
}

/** The merged override for a node: later matching entries win field by field; undefined when none matches. */
export function layerOverride(config: QuantConfig, nodeName: string, opType: string): Omit<LayerOverride, 'match' | 'op'> | undefined {
  let r: { -readonly [K in keyof LayerOverride]?: LayerOverride[K] } | undefined;
  for (const o of config.overrides) {
    const hit = o.op ? o.match === opType : matchGlob(o.match, nodeName);
    if (!hit) continue;
    r ??= {};
    if (o.precision !== undefined) r.precision = o.precision;
    if (o.granularity !== undefined) r.granularity = o.granularity;
    if (o.calibrator !== undefined) r.calibrator = o.calibrator;
  }
  return r;
}

/**
 * The lowest default-domain opset a configuration can need: 13 (per-channel INT8 DequantizeLinear; also all that
 * w8a8 and the weight-only w8a16 need), 19 (FP8), 21 (INT4 types and blocked DequantizeLinear).
 */
export function requiredOpset(c: QuantConfig): number {
  let v = 13;
  const precisions = new Set<string>(c.overrides.map((o) => o.precision ?? ''));
  if (c.preset === 'fp8' || precisions.has('fp8')) v = Math.max(v, 19);
  if (c.preset === 'w4a8' || c.preset === 'w4a16' || precisions.has('int4')) v = 21;
  return v;
}
