// Schema-driven protobuf codec for ONNX: lazy bytes views on decode, zero-copy chunked encode, unknown fields kept.
//
// Why not protobufjs' generated decode/encode? protobufjs parses the schema (ONNX_PROTO) and gives us its
// reflection; the codec below is compiled from that reflection because qcc needs three things protobufjs'
// runtime does not give: (1) unknown fields preserved byte-for-byte (protobufjs drops them), (2) errors with a
// byte offset and a field path for untrusted files, (3) an encoder that emits large `bytes` payloads as views
// into the source buffer (no copy), so a 2 GB model is written with writev instead of being concatenated.

import protobuf from 'protobufjs';
import { QccError } from '../errors.js';
import { ONNX_PROTO } from './onnx.proto.js';

/** A decoded message: field name -> value; repeated fields are arrays; absent optional fields are undefined. */
export interface Msg {
  [field: string]: unknown;
  /** Raw records (tag + payload) of fields this schema does not know, in input order. */
  $unknown?: Uint8Array[];
  /** Byte offset of the message's first byte in the decoded buffer (for error locations). */
  $at?: number;
}

/** int64/uint64 decode to a number when exact, to a bigint otherwise. */
export type Int64 = number | bigint;

type Kind = 'int32' | 'int64' | 'uint64' | 'enum' | 'float' | 'double' | 'string' | 'bytes' | 'message' | 'bool' | 'uint32';

interface FieldPlan {
  readonly id: number;
  readonly name: string;
  readonly kind: Kind;
  readonly repeated: boolean;
  readonly packed: boolean;
  sub?: TypePlan;
}

export interface TypePlan {
  readonly name: string;
  readonly byId: Map<number, FieldPlan>;
  readonly fields: FieldPlan[]; // ordered by field number (the canonical serialization order)
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function wireOf(kind: Kind): number {
  switch (kind) {
    case 'float':
      return WIRE_FIXED32;
    case 'double':
      return WIRE_FIXED64;
    case 'string':
    case 'bytes':
    case 'message':
      return WIRE_LEN;
    default:
      return WIRE_VARINT;
  }
}

let plans: Map<string, TypePlan> | undefined;

function buildPlans(): Map<string, TypePlan> {
  const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  root.resolveAll();
  const out = new Map<string, TypePlan>();
  const types: protobuf.Type[] = [];
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Type) types.push(o);
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) visit(o as protobuf.NamespaceBase);
    }
  };
  visit(root);
  for (const t of types) {
    const name = t.fullName.replace(/^\.onnx\./, '');
    out.set(name, { name, byId: new Map(), fields: [] });
  }
  for (const t of types) {
    const plan = out.get(t.fullName.replace(/^\.onnx\./, ''))!;
    for (const f of [...t.fieldsArray].sort((a, b) => a.id - b.id)) {
      let kind: Kind;
      let sub: TypePlan | undefined;
      if (f.resolvedType instanceof protobuf.Type) {
        kind = 'message';
        sub = out.get(f.resolvedType.fullName.replace(/^\.onnx\./, ''));
      } else if (f.resolvedType instanceof protobuf.Enum) {
        kind = 'enum';
      } else {
        kind = f.type as Kind;
      }
      const fp: FieldPlan = { id: f.id, name: f.name, kind, repeated: f.repeated, packed: f.repeated && f.packed && f.options?.packed === true };
      if (sub) fp.sub = sub;
      plan.byId.set(f.id, fp);
      plan.fields.push(fp);
    }
  }
  return out;
}

/** The compiled plan for an ONNX message type, e.g. `ModelProto`, `TensorProto`. */
export function typePlan(name: string): TypePlan {
  plans ??= buildPlans();
  const p = plans.get(name);
  if (!p) throw new Error(`no ONNX message type ${name}`);
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

const MAX_DEPTH = 64;
const utf8 = new TextDecoder('utf-8', { fatal: false });
const TWO32 = 4294967296;

/**
 * A bytes field left in the file (decodeMessage's `lazy`): its byte range in the decoded buffer. The reader turns
 * it into file-backed tensor data; nothing else in a decoded message holds one.
 */
export class LazyBytes {
  constructor(
    readonly offset: number,
    readonly length: number,
  ) {}
}

/** decodeMessage's lazy mode: which bytes fields stay in the file, and that every other one is copied. */
export interface LazyOptions {
  /** Field paths (e.g. `ModelProto.graph.initializer.raw_data`) whose payloads of at least `minBytes` stay in the file. */
  readonly paths: ReadonlySet<string>;
  readonly minBytes: number;
}

/** A copy of buf[a, b) that shares no memory with it (Buffer#slice would return a view). */
function copyOf(buf: Uint8Array, a: number, b: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, a, b);
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly view: DataView,
    start: number,
    readonly file: string | undefined,
    readonly lazy: LazyOptions | undefined,
  ) {
    this.pos = start;
  }

  fail(code: 'E_ONNX_TRUNCATED' | 'E_ONNX_WIRE_TYPE' | 'E_ONNX_VARINT' | 'E_ONNX_NESTING', msg: string, path: string, at = this.pos): never {
    throw new QccError(code, msg, { file: this.file, byteOffset: at, path });
  }

  /** Reads a varint as an unsigned 64-bit quantity: number when < 2^53, bigint otherwise. */
  varint(end: number, path: string): number | bigint {
    const buf = this.buf;
    let pos = this.pos;
    let b = pos < end ? buf[pos++]! : this.fail('E_ONNX_TRUNCATED', 'varint runs past the end of its message', path);
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = b & 0x7f;
    let mul = 128;
    for (let i = 1; i < 7; i++) {
      if (pos >= end) this.fail('E_ONNX_TRUNCATED', 'varint runs past the end of its message', path);
      b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = pos;
        return result;
      }
      mul *= 128;
    }
    // more than 49 bits: finish in bigint
    let big = BigInt(result);
    let shift = 49n;
    for (let i = 7; i < 10; i++) {
      if (pos >= end) this.fail('E_ONNX_TRUNCATED', 'varint runs past the end of its message', path);
      b = buf[pos++]!;
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        big &= 0xffffffffffffffffn;
        return big <= 9007199254740991n ? Number(big) : big;
      }
      shift += 7n;
    }
    return this.fail('E_ONNX_VARINT', 'varint longer than 10 bytes', path);
  }

  varint32(end: number, path: string): number {
    const v = this.varint(end, path);
    if (typeof v === 'number') return v <= 0xffffffff ? v : Number(BigInt(v) & 0xffffffffn);
    return Number(v & 0xffffffffn);
  }

  /** A length prefix: unlike varint32 it is never masked, so 2^32+k cannot pass for k (the caller checks the end). */
  len(end: number, path: string): number {
    const v = this.varint(end, path);
    return typeof v === 'number' ? v : Number.MAX_SAFE_INTEGER;
  }
}

function toSigned64(v: number | bigint): Int64 {
  if (typeof v === 'number') return v; // < 2^53, positive
  if (v >= 0x8000000000000000n) {
    const s = v - 0x10000000000000000n;
    return s >= -9007199254740991n ? Number(s) : s;
  }
  return v;
}

function toInt32(v: number): number {
  return v | 0;
}

function readScalar(r: Reader, f: FieldPlan, wire: number, end: number, path: string): unknown {
  switch (f.kind) {
    case 'int32':
    case 'enum':
      return toInt32(r.varint32(end, path));
    case 'uint32':
      return r.varint32(end, path);
    case 'bool':
      return r.varint(end, path) !== 0;
    case 'int64':
      return toSigned64(r.varint(end, path));
    case 'uint64':
      return r.varint(end, path);
    case 'float': {
      if (r.pos + 4 > end) r.fail('E_ONNX_TRUNCATED', 'float runs past the end of its message', path);
      const v = r.view.getFloat32(r.pos, true);
      r.pos += 4;
      return v;
    }
    case 'double': {
      if (r.pos + 8 > end) r.fail('E_ONNX_TRUNCATED', 'double runs past the end of its message', path);
      const v = r.view.getFloat64(r.pos, true);
      r.pos += 8;
      return v;
    }
    default:
      void wire;
      throw new Error(`not a scalar kind: ${f.kind}`);
  }
}

function decodeInto(r: Reader, plan: TypePlan, end: number, depth: number, path: string): Msg {
  if (depth > MAX_DEPTH) r.fail('E_ONNX_NESTING', `messages nested deeper than ${MAX_DEPTH}`, path);
  const msg: Msg = { $at: r.pos };
  const buf = r.buf;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = r.varint32(end, path);
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === 0) r.fail('E_ONNX_WIRE_TYPE', 'field number 0 is invalid', path, tagAt);
    const f = plan.byId.get(id);
    if (f === undefined) {
      skipField(r, wire, end, `${path}.#${id}`, depth);
      (msg.$unknown ??= []).push(r.lazy ? copyOf(buf, tagAt, r.pos) : buf.subarray(tagAt, r.pos));
      continue;
    }
    const fpath = `${path}.${f.name}`;
    const expected = wireOf(f.kind);
    if (wire === WIRE_LEN && f.repeated && expected !== WIRE_LEN) {
      // packed repeated scalars (accepted whether or not the schema says packed)
      const len = r.len(end, fpath);
      const stop = r.pos + len;
      if (stop > end) r.fail('E_ONNX_TRUNCATED', `packed field of ${len} bytes runs past the end of its message`, fpath, tagAt);
      let arr = msg[f.name] as unknown[] | undefined;
      if (!arr) msg[f.name] = arr = [];
      if (f.kind === 'float' && len % 4 === 0) {
        const n = len / 4;
        for (let i = 0; i < n; i++) {
          const v = r.view.getFloat32(r.pos + 4 * i, true);
          if (v !== v) nanBitsOf(arr).set(arr.length, r.view.getUint32(r.pos + 4 * i, true));
          arr.push(v);
        }
        r.pos = stop;
      } else if (f.kind === 'double' && len % 8 === 0) {
        const n = len / 8;
        for (let i = 0; i < n; i++) {
          const v = r.view.getFloat64(r.pos + 8 * i, true);
          if (v !== v) nanBitsOf(arr).set(arr.length, r.view.getBigUint64(r.pos + 8 * i, true));
          arr.push(v);
        }
        r.pos = stop;
      } else {
        while (r.pos < stop) arr.push(readScalar(r, f, expected, stop, fpath));
      }
      if (r.pos !== stop) r.fail('E_ONNX_TRUNCATED', 'packed field does not end on an element boundary', fpath, tagAt);
      continue;
    }
    if (wire !== expected) {
      r.fail('E_ONNX_WIRE_TYPE', `field ${f.name} (#${id}) has wire type ${wire}, expected ${expected}`, fpath, tagAt);
    }
    let value: unknown;
    if (expected === WIRE_LEN) {
      const len = r.len(end, fpath);
      const start = r.pos;
      const stop = start + len;
      if (stop > end) r.fail('E_ONNX_TRUNCATED', `field of ${len} bytes runs past the end of its message (${end - start} left)`, fpath, tagAt);
      if (f.kind === 'message') {
        value = decodeInto(r, f.sub!, stop, depth + 1, fpath);
      } else if (f.kind === 'string') {
        value = utf8.decode(buf.subarray(start, stop));
      } else if (r.lazy) {
        // lazy mode keeps no view of the buffer alive: big payloads on the listed paths stay in the file, the rest
        // are copied
        value = len >= r.lazy.minBytes && r.lazy.paths.has(fpath) ? new LazyBytes(start, len) : copyOf(buf, start, stop);
      } else {
        value = buf.subarray(start, stop);
      }
      r.pos = stop;
    } else {
      value = readScalar(r, f, wire, end, fpath);
      if (value !== value) {
        // a NaN: keep its bits (see NAN_BITS); singular fields keep them in msg.$nan
        const bits = f.kind === 'float' ? r.view.getUint32(r.pos - 4, true) : r.view.getBigUint64(r.pos - 8, true);
        if (f.repeated) nanBitsOf((msg[f.name] ??= []) as unknown[]).set((msg[f.name] as unknown[]).length, bits);
        else ((msg.$nan ??= {}) as Record<string, number | bigint>)[f.name] = bits;
      }
    }
    if (f.repeated) {
      const arr = msg[f.name] as unknown[] | undefined;
      if (arr) arr.push(value);
      else msg[f.name] = [value];
    } else if (f.kind === 'message' && msg[f.name] !== undefined) {
      // protobuf semantics: a repeated occurrence of a singular message field merges into the first
      msg[f.name] = mergeMsg(msg[f.name] as Msg, value as Msg);
    } else {
      msg[f.name] = value;
    }
  }
  if (r.pos !== end) r.fail('E_ONNX_TRUNCATED', 'message does not end where its length says', path);
  return msg;
}

/**
 * Bit patterns of the NaN elements of a decoded packed float/double field, by index. A JS number cannot carry a
 * signaling NaN (V8 quiets it on load), so the decoder records every NaN's bits beside the array and the encoder
 * writes those bits back for elements that are still NaN: float_data/double_data round-trip bit for bit.
 */
export const NAN_BITS: unique symbol = Symbol('qcc.nanBits');
type NanCarrier = unknown[] & { [NAN_BITS]?: Map<number, number | bigint> };

function nanBitsOf(arr: unknown[]): Map<number, number | bigint> {
  let m = (arr as NanCarrier)[NAN_BITS];
  if (m === undefined) {
    m = new Map();
    Object.defineProperty(arr, NAN_BITS, { value: m, enumerable: false }); // invisible to deepEqual and spreads
  }
  return m;
}

function mergeMsg(a: Msg, b: Msg): Msg {
  const out: Msg = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (k === '$at' || v === undefined) continue;
    const prev = out[k];
    if (Array.isArray(prev) && Array.isArray(v)) out[k] = [...prev, ...v];
    else out[k] = v;
  }
  return out;
}

function skipField(r: Reader, wire: number, end: number, path: string, depth: number): void {
  switch (wire) {
    case WIRE_VARINT:
      r.varint(end, path);
      return;
    case WIRE_FIXED64:
      if (r.pos + 8 > end) r.fail('E_ONNX_TRUNCATED', 'fixed64 runs past the end of its message', path);
      r.pos += 8;
      return;
    case WIRE_FIXED32:
      if (r.pos + 4 > end) r.fail('E_ONNX_TRUNCATED', 'fixed32 runs past the end of its message', path);
      r.pos += 4;
      return;
    case WIRE_LEN: {
      const len = r.len(end, path);
      if (r.pos + len > end) r.fail('E_ONNX_TRUNCATED', `field of ${len} bytes runs past the end of its message`, path);
      r.pos += len;
      return;
    }
    case 3: {
      // deprecated group: skip to the matching end-group tag
      if (depth > MAX_DEPTH) r.fail('E_ONNX_NESTING', 'groups nested too deep', path);
      for (;;) {
        const tag = r.varint32(end, path);
        if ((tag & 7) === 4) return;
        skipField(r, tag & 7, end, path, depth + 1);
      }
    }
    default:
      r.fail('E_ONNX_WIRE_TYPE', `invalid wire type ${wire}`, path);
  }
}

/**
 * Decodes `buf[start, end)` as message `type`. Bytes fields are views into `buf` (no copy); with `lazy`, no view
 * survives: payloads on its paths become LazyBytes (offsets into `buf`) and every other bytes field is a copy, so
 * the caller can drop `buf`.
 */
export function decodeMessage(buf: Uint8Array, type: string, opts: { file?: string; start?: number; end?: number; lazy?: LazyOptions } = {}): Msg {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new Reader(buf, view, opts.start ?? 0, opts.file, opts.lazy);
  return decodeInto(r, typePlan(type), opts.end ?? buf.length, 0, type);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Payloads at least this large are emitted as separate chunks that alias the caller's bytes. */
const ALIAS_THRESHOLD = 4096;

function varintSize(v: number): number {
  if (v < 0) return 10;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  let x = Math.floor(v / 0x10000000);
  while (x > 0) {
    n++;
    x = Math.floor(x / 128);
  }
  return n;
}

function bigVarintSize(v: bigint): number {
  let x = v < 0n ? v & 0xffffffffffffffffn : v;
  let n = 1;
  while (x >= 0x80n) {
    x >>= 7n;
    n++;
  }
  return n;
}

function scalarSize(kind: Kind, v: unknown): number {
  switch (kind) {
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'bool':
      return 1;
    case 'int32':
    case 'enum':
      return (v as number) < 0 ? 10 : varintSize(v as number);
    case 'uint32':
      return varintSize((v as number) >>> 0);
    case 'int64':
    case 'uint64':
      if (typeof v === 'bigint') return bigVarintSize(v);
      if (!Number.isSafeInteger(v)) throw new Error(`int64 field holds a non-integer ${String(v)}`);
      return (v as number) < 0 ? 10 : varintSize(v as number);
    default:
      throw new Error(`not a scalar kind ${kind}`);
  }
}

/** Two passes: sizes (cached per message object), then bytes. */
class Sizer {
  readonly sizes = new Map<Msg, number>();

  msg(m: Msg, plan: TypePlan): number {
    let total = 0;
    for (const f of plan.fields) {
      const v = m[f.name];
      if (v === undefined || v === null) continue;
      total += this.field(f, v);
    }
    if (m.$unknown) for (const u of m.$unknown) total += u.length;
    this.sizes.set(m, total);
    return total;
  }

  field(f: FieldPlan, v: unknown): number {
    const tagSize = varintSize(f.id << 3);
    if (f.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) return 0;
      if (f.packed) {
        let body = 0;
        if (f.kind === 'float') body = 4 * arr.length;
        else if (f.kind === 'double') body = 8 * arr.length;
        else for (const x of arr) body += scalarSize(f.kind, x);
        return tagSize + varintSize(body) + body;
      }
      let total = 0;
      for (const x of arr) total += tagSize + this.single(f, x);
      return total;
    }
    return tagSize + this.single(f, v);
  }

  single(f: FieldPlan, v: unknown): number {
    switch (f.kind) {
      case 'message': {
        const s = this.msg(v as Msg, f.sub!);
        return varintSize(s) + s;
      }
      case 'string': {
        const s = Buffer.byteLength(v as string, 'utf8');
        return varintSize(s) + s;
      }
      case 'bytes': {
        const s = (v as Uint8Array).length;
        return varintSize(s) + s;
      }
      default:
        return scalarSize(f.kind, v);
    }
  }
}

/** Chunked output: small writes go into staging buffers, large bytes fields are aliased. */
class ChunkWriter {
  readonly chunks: Uint8Array[] = [];
  private cur: Buffer;
  private pos = 0;
  private view: DataView;
  constructor(private readonly stagingSize = 1 << 20) {
    this.cur = Buffer.allocUnsafe(stagingSize);
    this.view = new DataView(this.cur.buffer, this.cur.byteOffset, this.cur.byteLength);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flush();
    this.cur = Buffer.allocUnsafe(Math.max(this.stagingSize, n));
    this.view = new DataView(this.cur.buffer, this.cur.byteOffset, this.cur.byteLength);
  }

  private flush(): void {
    if (this.pos > 0) this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = this.cur.subarray(this.pos);
    this.view = new DataView(this.cur.buffer, this.cur.byteOffset, this.cur.byteLength);
    this.pos = 0;
  }

  varint(v: number): void {
    if (v < 0) {
      this.bigVarint(BigInt(v));
      return;
    }
    this.ensure(10);
    const b = this.cur;
    while (v >= 0x80) {
      b[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    b[this.pos++] = v;
  }

  bigVarint(v: bigint): void {
    let x = v & 0xffffffffffffffffn;
    this.ensure(10);
    while (x >= 0x80n) {
      this.cur[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.cur[this.pos++] = Number(x);
  }

  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  u64(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  string(s: string, byteLen: number): void {
    this.ensure(byteLen);
    this.cur.write(s, this.pos, 'utf8');
    this.pos += byteLen;
  }

  bytes(b: Uint8Array): void {
    if (b.length >= ALIAS_THRESHOLD) {
      this.flush();
      this.chunks.push(b);
      return;
    }
    this.ensure(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}

function writeScalar(w: ChunkWriter, kind: Kind, v: unknown): void {
  switch (kind) {
    case 'float':
      w.f32(v as number);
      return;
    case 'double':
      w.f64(v as number);
      return;
    case 'bool':
      w.varint(v ? 1 : 0);
      return;
    case 'uint32':
      w.varint((v as number) >>> 0);
      return;
    default:
      if (typeof v === 'bigint') w.bigVarint(v);
      else w.varint(v as number);
  }
}

function writeMsg(w: ChunkWriter, s: Sizer, m: Msg, plan: TypePlan): void {
  for (const f of plan.fields) {
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    const wire = wireOf(f.kind);
    if (f.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      if (f.packed) {
        let body = 0;
        if (f.kind === 'float') body = 4 * arr.length;
        else if (f.kind === 'double') body = 8 * arr.length;
        else for (const x of arr) body += scalarSize(f.kind, x);
        w.varint((f.id << 3) | WIRE_LEN);
        w.varint(body);
        const nan = (arr as NanCarrier)[NAN_BITS];
        if (nan === undefined) for (const x of arr) writeScalar(w, f.kind, x);
        else arr.forEach((x, i) => writeFloatBits(w, f.kind, x, x !== x ? nan.get(i) : undefined));
        continue;
      }
      const nan = (arr as NanCarrier)[NAN_BITS];
      arr.forEach((x, i) => {
        w.varint((f.id << 3) | wire);
        if (nan !== undefined && x !== x) writeFloatBits(w, f.kind, x, nan.get(i));
        else writeSingle(w, s, f, x);
      });
      continue;
    }
    w.varint((f.id << 3) | wire);
    if (v !== v && m.$nan !== undefined) writeFloatBits(w, f.kind, v, (m.$nan as Record<string, number | bigint>)[f.name]);
    else writeSingle(w, s, f, v);
  }
  if (m.$unknown) for (const u of m.$unknown) w.bytes(u);
}

/** A float/double element, with its recorded NaN bit pattern when there is one. */
function writeFloatBits(w: ChunkWriter, kind: Kind, x: unknown, bits: number | bigint | undefined): void {
  if (bits === undefined) writeScalar(w, kind, x);
  else if (typeof bits === 'bigint') w.u64(bits);
  else w.u32(bits);
}

function writeSingle(w: ChunkWriter, s: Sizer, f: FieldPlan, v: unknown): void {
  switch (f.kind) {
    case 'message': {
      const size = s.sizes.get(v as Msg)!;
      w.varint(size);
      writeMsg(w, s, v as Msg, f.sub!);
      return;
    }
    case 'string': {
      const len = Buffer.byteLength(v as string, 'utf8');
      w.varint(len);
      w.string(v as string, len);
      return;
    }
    case 'bytes':
      w.varint((v as Uint8Array).length);
      w.bytes(v as Uint8Array);
      return;
    default:
      writeScalar(w, f.kind, v);
  }
}

/** Encodes a message as a list of chunks; large bytes fields alias the message's own Uint8Arrays. */
export function encodeMessageChunks(m: Msg, type: string): { chunks: Uint8Array[]; size: number } {
  const plan = typePlan(type);
  const s = new Sizer();
  const size = s.msg(m, plan);
  const w = new ChunkWriter();
  writeMsg(w, s, m, plan);
  return { chunks: w.finish(), size };
}

/** Encodes a message into one contiguous buffer. */
export function encodeMessage(m: Msg, type: string): Uint8Array {
  const { chunks, size } = encodeMessageChunks(m, type);
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
