// The readable IR text format (.qir): printModel() renders a Model deterministically in an MLIR-like syntax.
//
// Grammar (the parser in ./parse.ts reads exactly what this file prints; `//` starts a comment):
//
//   model opset {"":21, "com.microsoft":1} ir 10 producer "pytorch" "2.1"
//   graph main(%x: f32[N,3,224,224]) -> (%y: f32[N,1000]) {
//     %w = const f32[64,3,7,7] {sha=0x1f2e3d4c5b6a7988, first=[0.01, -0.2, 0.3, 0.04]}
//     %b = const f32[2] [0.5, -1]
//     %y = Conv(%x, %w, %b) {dilations=[1,1], group=1} : f32[N,64,112,112] @conv1
//     %q = com.microsoft.MatMulNBits(%a, _, %c) {bits=4} : ? @mm
//     %z = If(%c) : f32[2] @if {
//       else_branch=graph else_g() -> (%e: f32[2]) {
//         ...
//       }
//     }
//   }
//
// - Value names follow `%`, node names `@` (always printed, at the end of the node line); names outside
//   [A-Za-z0-9_.$/-] (':' is allowed inside) are JSON-quoted: `%"x y"`. `_` is an omitted input or output.
// - Types: `f32[N,3,?]` (`?` an unknown dim, identifiers symbolic dims), `f32` unknown rank, `?[2]` unknown dtype,
//   `?` unknown type, `seq<T>`, `opt<T>`, `map<i64,T>`, `sparse<T>`, `!other` (other TypeProtos, not round-tripped).
// - Attributes print sorted by name. `1` is an int, `1.0`/`nan`/`inf` a float, `"s"` a string (`hex"00ff"` when
//   not UTF-8), `[1,2]` ints, `[1.0,2.5]` floats, `["a"]` strings, `ints[]`/`floats[]`/... empty lists,
//   `tensor f32[2] [1, 2]` tensors, `type<seq<f32[2]>>` type protos, `ref<"name", 2>` attribute references. Graph
//   attributes print in a trailing `{...}` region after the node name. Sparse-tensor attributes print as
//   `sparse_tensor<...>` and are not parseable.
// - Tensor data: tensors of at most 16 elements print every value exactly (floats as the shortest decimal that
//   encodes back to the same bits; bit patterns that have no such decimal, e.g. NaN payloads, as hex `0x7fc00001`;
//   complex as flattened re,im pairs; bool as true/false). Larger tensors print a summary: the first 16 hex digits
//   of the SHA-256 of their raw bytes and their first 4 values. See ./parse.ts for how summaries are read back.
// - Not shown: doc strings, metadata props, model-local functions, value_info fields other than the type,
//   names of tensors inside attributes. The text is a view for humans and golden tests, not a serialization.

import { createHash } from 'node:crypto';
import { DTYPES, type DType } from './dtype.js';
import type { Attr, Dim, Graph, Model, Msg, Node, Shape, Tensor, Value, ValueType } from './ir.js';
import { typeFromMsg } from './onnx/reader.js';
import {
  bf16BitsToF32,
  decodeFloat4E2M1,
  decodeFp8,
  encodeFloat4E2M1,
  encodeFp8,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  type Fp8DType,
} from './numerics.js';

export interface PrintOptions {
  /** Tensors with at most this many elements print every value (default 16). */
  maxInlineElements?: number;
}

/** Summaries of placeholder tensors made by the parser from summarized text: printed back unchanged. */
/** @internal */
export const placeholderSummaries = new WeakMap<Tensor, string>();

const DEFAULT_INLINE = 16;
const FIRST_VALUES = 4;

// ---------------------------------------------------------------------------------------------------------------
// Names

const BARE_VALUE = /^[A-Za-z0-9_.$/\-:]+$/;
const BARE_IDENT = /^[A-Za-z_$][A-Za-z0-9_.$/\-]*$/;
const DOMAIN_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const OPTYPE_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The bare form of a value or node name when it lexes back as one token, else a JSON string. */
export function formatName(name: string): string {
  return name !== '_' && BARE_VALUE.test(name) && !name.endsWith(':') ? name : JSON.stringify(name);
}

/** Identifiers without a sigil (graph names, symbolic dims). */
export function formatIdent(name: string): string {
  return name !== '_' && BARE_IDENT.test(name) && !KEYWORDS.has(name) ? name : JSON.stringify(name);
}

/** Words the parser treats specially where an identifier could stand. */
const KEYWORDS: ReadonlySet<string> = new Set(['nan', 'inf', 'true', 'false', 'graph', 'tensor', 'const', 'hex']);

export function formatValueRef(v: Value | null | undefined): string {
  return v ? `%${formatName(v.name)}` : '_';
}

export function formatOp(domain: string, opType: string): string {
  if (OPTYPE_RE.test(opType) && (domain === '' || DOMAIN_RE.test(domain))) return domain === '' ? opType : `${domain}.${opType}`;
  return `op<${JSON.stringify(domain)}, ${JSON.stringify(opType)}>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Types

export function formatDim(d: Dim): string {
  if (typeof d === 'number') return String(d);
  return d.param === null ? '?' : formatIdent(d.param);
}

export function formatShape(s: Shape): string {
  return `[${s.map(formatDim).join(',')}]`;
}

/** `f32[N,3]`; `?` when the type is unknown. */
export function formatType(t: ValueType | undefined): string {
  if (t === undefined) return '?';
  if (t.kind === 'tensor') {
    if (t.dtype === undefined && t.shape === undefined) return '?';
    return `${t.dtype ?? '?'}${t.shape === undefined ? '' : formatShape(t.shape)}`;
  }
  return formatOtherType(t.proto);
}

function formatOtherType(p: Msg): string {
  const inner = (m: unknown): string => formatType(typeFromMsg(m as Msg | undefined));
  if (p.sequence_type !== undefined) return `seq<${inner((p.sequence_type as Msg).elem_type)}>`;
  if (p.optional_type !== undefined) return `opt<${inner((p.optional_type as Msg).elem_type)}>`;
  if (p.map_type !== undefined) {
    const mt = p.map_type as Msg;
    const key = typeFromMsg({ tensor_type: { elem_type: mt.key_type } } as Msg);
    return `map<${key?.kind === 'tensor' ? (key.dtype ?? '?') : '?'}, ${inner(mt.value_type)}>`;
  }
  if (p.sparse_tensor_type !== undefined) return `sparse<${formatType(typeFromMsg({ tensor_type: p.sparse_tensor_type } as Msg))}>`;
  return '!other';
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers and tensor elements

/** Shortest decimal `s` with encode(Number(s)) === bits, or undefined when none decodes back (NaN payloads). */
function shortestDecimal(v: number, bits: number | bigint, encode: (x: number) => number | bigint): string | undefined {
  if (Number.isNaN(v)) return encode(NaN) === bits ? 'nan' : undefined;
  if (v === Infinity) return encode(Infinity) === bits ? 'inf' : undefined;
  if (v === -Infinity) return encode(-Infinity) === bits ? '-inf' : undefined;
  if (Object.is(v, -0)) return encode(-0) === bits ? '-0' : undefined;
  for (let p = 1; p <= 17; p++) {
    const s = String(Number(v.toPrecision(p)));
    if (encode(Number(s)) === bits) return s;
  }
  return undefined;
}

const scratch = new DataView(new ArrayBuffer(8));
function f32Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true);
}
function f64Bits(x: number): bigint {
  scratch.setFloat64(0, x, true);
  return scratch.getBigUint64(0, true);
}

function hexBits(bits: number | bigint, digits: number): string {
  return `0x${bits.toString(16).padStart(digits, '0')}`;
}

/** A float attribute value: f32-shortest when the number is an exact float32, with a `.0` so it reads as a float. */
export function formatFloatAttr(v: number): string {
  const s = Math.fround(v) === v || !Number.isFinite(v) ? shortestDecimal(v, f32Bits(v), f32Bits)! : String(v);
  return /^-?\d+$/.test(s) ? `${s}.0` : s;
}

/** Number of printable elements (complex types print re,im pairs). */
function flatCount(t: Tensor): number {
  return t.dtype === 'c64' || t.dtype === 'c128' ? 2 * t.size : t.size;
}

/** Formats elements [start, start+count) of a tensor in its dtype (see the header for the rules). */
export function formatElements(dtype: DType, bytes: Uint8Array, start: number, count: number): string[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  for (let i = start; i < start + count; i++) out.push(formatElement(dtype, dv, bytes, i));
  return out;
}

function formatElement(dtype: DType, dv: DataView, bytes: Uint8Array, i: number): string {
  switch (dtype) {
    case 'f32':
    case 'c64': {
      const bits = dv.getUint32(4 * i, true);
      return shortestDecimal(dv.getFloat32(4 * i, true), bits, f32Bits) ?? hexBits(bits, 8);
    }
    case 'f64':
    case 'c128': {
      const bits = dv.getBigUint64(8 * i, true);
      return shortestDecimal(dv.getFloat64(8 * i, true), bits, f64Bits) ?? hexBits(bits, 16);
    }
    case 'f16': {
      const bits = dv.getUint16(2 * i, true);
      return shortestDecimal(f16BitsToF32(bits), bits, f32ToF16Bits) ?? hexBits(bits, 4);
    }
    case 'bf16': {
      const bits = dv.getUint16(2 * i, true);
      return shortestDecimal(bf16BitsToF32(bits), bits, f32ToBf16Bits) ?? hexBits(bits, 4);
    }
    case 'fp8e4m3':
    case 'fp8e4m3fnuz':
    case 'fp8e5m2':
    case 'fp8e5m2fnuz':
    case 'fp8e8m0': {
      const bits = bytes[i]!;
      const d = dtype as Fp8DType;
      return shortestDecimal(decodeFp8(d, bits), bits, (x) => encodeFp8(d, x, false, 'nearest')) ?? hexBits(bits, 2);
    }
    case 'fp4e2m1': {
      const bits = (bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf;
      return shortestDecimal(decodeFloat4E2M1(bits), bits, encodeFloat4E2M1) ?? hexBits(bits, 1);
    }
    case 'i8':
      return String(dv.getInt8(i));
    case 'u8':
      return String(bytes[i]!);
    case 'bool': {
      const b = bytes[i]!;
      return b === 0 ? 'false' : b === 1 ? 'true' : hexBits(b, 2);
    }
    case 'i16':
      return String(dv.getInt16(2 * i, true));
    case 'u16':
      return String(dv.getUint16(2 * i, true));
    case 'i32':
      return String(dv.getInt32(4 * i, true));
    case 'u32':
      return String(dv.getUint32(4 * i, true));
    case 'i64':
      return String(dv.getBigInt64(8 * i, true));
    case 'u64':
      return String(dv.getBigUint64(8 * i, true));
    case 'i4':
      return String((((bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf) << 28) >> 28);
    case 'u4':
      return String((bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf);
    case 'i2':
      return String((((bytes[i >>> 2]! >>> ((i & 3) << 1)) & 3) << 30) >> 30);
    case 'u2':
      return String((bytes[i >>> 2]! >>> ((i & 3) << 1)) & 3);
    case 'string':
      throw new Error('string elements are formatted by formatString');
  }
}

const fatal = new TextDecoder('utf-8', { fatal: true });
/** A JSON string, or `hex"..."` for bytes that are not valid UTF-8. */
export function formatBytesString(b: Uint8Array): string {
  try {
    return JSON.stringify(fatal.decode(b));
  } catch {
    return `hex"${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}"`;
  }
}

function digest(t: Tensor): string {
  const h = createHash('sha256');
  if (t.dtype === 'string') {
    const len = new Uint8Array(4);
    for (const s of t.strings()) {
      new DataView(len.buffer).setUint32(0, s.length, true);
      h.update(len);
      h.update(s);
    }
  } else h.update(t.bytes());
  return `0x${h.digest('hex').slice(0, 16)}`;
}

/** `[v0, v1, ...]` for small tensors, `{sha=0x..., first=[...]}` for large ones. */
export function formatTensorData(t: Tensor, opts: PrintOptions = {}): string {
  const ph = placeholderSummaries.get(t);
  if (ph !== undefined) return ph;
  const limit = opts.maxInlineElements ?? DEFAULT_INLINE;
  const n = flatCount(t);
  if (t.dtype === 'string') {
    const strs = t.strings();
    if (t.size <= limit) return `[${strs.map(formatBytesString).join(', ')}]`;
    return summaryText(digest(t), strs.slice(0, FIRST_VALUES).map(formatBytesString));
  }
  if (t.size <= limit) return `[${formatElements(t.dtype, t.bytes(), 0, n).join(', ')}]`;
  return summaryText(digest(t), formatElements(t.dtype, t.bytes(), 0, Math.min(FIRST_VALUES, n)));
}

/** @internal the summary syntax, shared with the parser so that placeholders print back identically. */
export function summaryText(sha: string, first: readonly string[]): string {
  return `{sha=${sha}, first=[${first.join(', ')}]}`;
}

/** `f32[2,3] [..]` / `f32[64,3,7,7] {sha=..., first=[..]}`. */
export function formatTensor(t: Tensor, opts: PrintOptions = {}): string {
  return `${t.dtype}${formatShape(t.dims)} ${formatTensorData(t, opts)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Attributes

function formatAttr(a: Attr, opts: PrintOptions, indent: string): string {
  switch (a.type) {
    case 'int':
      return String(a.value);
    case 'float':
      return formatFloatAttr(a.value);
    case 'string':
      return formatBytesString(a.value);
    case 'ints':
      return a.value.length ? `[${a.value.map(String).join(',')}]` : 'ints[]';
    case 'floats':
      return a.value.length ? `[${a.value.map(formatFloatAttr).join(',')}]` : 'floats[]';
    case 'strings':
      return a.value.length ? `[${a.value.map(formatBytesString).join(',')}]` : 'strings[]';
    case 'tensor':
      return `tensor ${formatTensor(a.value, opts)}`;
    case 'tensors':
      return a.value.length ? `[${a.value.map((t) => `tensor ${formatTensor(t, opts)}`).join(', ')}]` : 'tensors[]';
    case 'graph':
      return printGraph(a.value, opts, indent);
    case 'graphs':
      return a.value.length ? `[${a.value.map((g) => printGraph(g, opts, indent)).join(', ')}]` : 'graphs[]';
    case 'ref':
      return `ref<${JSON.stringify(a.value)}, ${a.refType}>`;
    case 'type_proto':
      return `type<${formatType(typeFromMsg(a.value))}>`;
    case 'type_protos':
      return a.value.length ? `[${a.value.map((t) => `type<${formatType(typeFromMsg(t))}>`).join(', ')}]` : 'type_protos[]';
    case 'sparse_tensor':
    case 'sparse_tensors':
      return `${a.type}<...>`;
  }
}

const byName = (a: [string, Attr], b: [string, Attr]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

// ---------------------------------------------------------------------------------------------------------------
// Graphs and models

function formatNode(n: Node, opts: PrintOptions, indent: string): string {
  const lhs = n.outputs.length ? `${n.outputs.map(formatValueRef).join(', ')} = ` : '';
  const args = n.inputs.map(formatValueRef).join(', ');
  const entries = [...n.attrs.entries()].sort(byName);
  const plain = entries.filter(([, a]) => a.type !== 'graph' && a.type !== 'graphs');
  const regions = entries.filter(([, a]) => a.type === 'graph' || a.type === 'graphs');
  let s = `${indent}${lhs}${formatOp(n.domain, n.opType)}(${args})`;
  if (plain.length) s += ` {${plain.map(([k, a]) => `${formatIdent(k)}=${formatAttr(a, opts, indent)}`).join(', ')}}`;
  const outs = n.outputs;
  if (outs.some((o) => o && o.type !== undefined)) s += ` : ${outs.map((o) => (o ? formatType(o.type) : '_')).join(', ')}`;
  s += ` @${formatName(n.name)}`;
  if (regions.length) {
    const inner = indent + '  ';
    s += ' {\n';
    for (const [k, a] of regions) s += `${inner}${formatIdent(k)}=${formatAttr(a, opts, inner)}\n`;
    s += `${indent}}`;
  }
  return s;
}

function formatIo(v: Value): string {
  return v.type === undefined ? formatValueRef(v) : `${formatValueRef(v)}: ${formatType(v.type)}`;
}

/** `graph name(inputs) -> (outputs) {` ... `}`; `indent` is the indentation of the line the graph starts on. */
export function printGraph(g: Graph, opts: PrintOptions = {}, indent = ''): string {
  const inner = indent + '  ';
  const lines: string[] = [`graph ${formatIdent(g.name)}(${g.inputs.map(formatIo).join(', ')}) -> (${g.outputs.map(formatIo).join(', ')}) {`];
  for (const v of g.initializers) lines.push(`${inner}${formatValueRef(v)} = const ${formatTensor(v.initializer!, opts)}`);
  for (const v of g.values()) if (v.sparseInitializer) lines.push(`${inner}${formatValueRef(v)} = sparse_const<...>`);
  for (const n of g.nodes()) lines.push(formatNode(n, opts, inner));
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** The model header line: opset imports, IR version, producer. */
export function formatModelHeader(m: Model): string {
  const opsets = [...m.opsetImports.entries()].map(([d, v]) => `${JSON.stringify(d)}:${v}`).join(', ');
  let s = `model opset {${opsets}} ir ${String(m.irVersion)}`;
  if (m.producerName !== undefined) {
    s += ` producer ${JSON.stringify(m.producerName)}`;
    if (m.producerVersion !== undefined) s += ` ${JSON.stringify(m.producerVersion)}`;
  }
  return s;
}

/** The whole model as .qir text (ends with a newline). Deterministic: equal models print equal text. */
export function printModel(m: Model, opts: PrintOptions = {}): string {
  return `${formatModelHeader(m)}\n${printGraph(m.graph, opts)}\n`;
}

/** @internal used by the parser to tell a decimal that needs a float marker. */
export const DTYPE_NAMES: ReadonlySet<string> = new Set(Object.keys(DTYPES));
