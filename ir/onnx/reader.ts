// ONNX bytes -> IR: decode ModelProto, validate untrusted sizes and names, build graphs with use-def chains.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { dtypeFromOnnx, rawByteLength, type DType } from '../dtype.js';
import { QccError, type Loc } from '../errors.js';
import {
  Graph,
  Model,
  Node,
  Tensor,
  Value,
  type Attr,
  type Dim,
  type Int64,
  type Msg,
  type TensorData,
  type TensorField,
  type ValueType,
} from '../ir.js';
import { appendNode, invalidateNames, linkUse } from '../rewriter.js';
import { checkExternalRange } from './external.js';
import { decodeMessage, LazyBytes } from './wire.js';

/** Elements a single tensor may declare. Larger claims are refused before anything is allocated. */
const MAX_ELEMENTS = 2 ** 40;

export interface ReadOptions {
  /** File name for error locations. */
  file?: string;
  /** Folder external data is relative to (default: the file's folder, or the working directory). */
  baseDir?: string;
  /** @internal loadModel's lazy mode: the file (as a location in a folder) its LazyBytes payloads are read from. */
  lazySource?: LazySource;
}

interface LazySource {
  readonly location: string;
  readonly baseDir: string;
}

/** loadModel's options. */
export interface LoadOptions {
  /**
   * Leave the main graph's initializers of at least `lazyMinBytes` in the file: their data is read from it when
   * used (it must not change meanwhile: a read checks its size and modification time), and the file's bytes are
   * not held in memory. What compile uses, so that peak memory does not include the input model.
   */
  readonly lazy?: boolean;
  /** Smallest initializer left in the file in lazy mode (default LAZY_MIN_BYTES). */
  readonly lazyMinBytes?: number;
}

/** loadModel's lazy mode leaves initializers of at least this many bytes in the file. */
export const LAZY_MIN_BYTES = 64 << 10;

interface Ctx {
  readonly file: string | undefined;
  readonly baseDir: string;
  readonly lazySource?: LazySource | undefined;
  readonly model: Model;
  unnamed: number;
  readonly usedNodeNames: Set<string>;
}

/** Decodes ONNX model bytes into the IR. Throws QccError with a code and location on malformed input. */
export function decodeModel(bytes: Uint8Array, opts: ReadOptions = {}): Model {
  const file = opts.file;
  if (bytes.length === 0) throw new QccError('E_ONNX_EMPTY', 'the model file is empty', { file });
  return modelFromMsg(decodeMessage(bytes, 'ModelProto', { file }), opts);
}

/** Builds the IR from a decoded ModelProto message (tensor data stays shared with the message). */
export function modelFromMsg(msg: Msg, opts: ReadOptions = {}): Model {
  const file = opts.file;
  const gmsg = msg.graph as Msg | undefined;
  if (gmsg === undefined) throw new QccError('E_ONNX_NOT_ONNX', 'not an ONNX model: ModelProto has no graph', { file });
  if (msg.ir_version === undefined && (msg.opset_import as unknown[] | undefined) === undefined) {
    throw new QccError('E_ONNX_NOT_ONNX', 'not an ONNX model: neither ir_version nor opset_import is set', { file });
  }
  // onnx.checker and ORT refuse this too; it is also what a file cut right after its graph field decodes to
  const irv = msg.ir_version as Int64 | undefined;
  if (irv !== undefined && irv >= 3 && !(msg.opset_import as unknown[] | undefined)?.length) {
    throw new QccError('E_MODEL_OPSET', `IR version ${String(irv)} requires opset_import, and the model has none (truncated file?)`, { file, path: 'ModelProto.opset_import' });
  }
  const opsets = new Map<string, number>();
  for (const o of (msg.opset_import as Msg[] | undefined) ?? []) {
    const v = o.version as Int64 | undefined;
    const dom = (o.domain as string | undefined) ?? '';
    if (typeof v === 'bigint' || (v !== undefined && v < 0)) throw new QccError('E_MODEL_OPSET', `opset version ${String(v)} for domain '${dom}' is invalid`, { file, byteOffset: o.$at, path: 'ModelProto.opset_import' });
    opsets.set(dom === 'ai.onnx' ? '' : dom, v ?? 0);
  }
  const graph = new Graph((gmsg.name as string | undefined) ?? '');
  const model = new Model(graph, { irVersion: (msg.ir_version as Int64 | undefined) ?? 0, opsetImports: opsets });
  model.producerName = msg.producer_name as string | undefined;
  model.producerVersion = msg.producer_version as string | undefined;
  model.domain = msg.domain as string | undefined;
  model.modelVersion = msg.model_version as Int64 | undefined;
  model.docString = msg.doc_string as string | undefined;
  for (const e of (msg.metadata_props as Msg[] | undefined) ?? []) model.metadataProps.push([(e.key as string) ?? '', (e.value as string) ?? '']);
  model.functions.push(...((msg.functions as Msg[] | undefined) ?? []));
  model._proto = stripKeys(msg, ['ir_version', 'opset_import', 'producer_name', 'producer_version', 'domain', 'model_version', 'doc_string', 'graph', 'metadata_props', 'functions']);
  // the opset_import entries as written (absent vs '' domain, order): the writer reuses them while the opsets are unchanged
  if (msg.opset_import !== undefined) model._proto.$opset_import = msg.opset_import;
  const baseDir = path.resolve(opts.baseDir ?? (file ? path.dirname(file) : '.'));
  model.baseDir = baseDir;
  const ctx: Ctx = { file, baseDir, lazySource: opts.lazySource, model, unnamed: 0, usedNodeNames: new Set() };
  collectNodeNames(gmsg, ctx.usedNodeNames, 0);
  buildGraph(ctx, graph, gmsg, null, 'ModelProto.graph');
  invalidateNames(graph);
  return model;
}

/** Reads and decodes an ONNX file. */
export function loadModel(file: string, o: LoadOptions = {}): Model {
  let bytes: Buffer;
  let real = file;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw new QccError('E_IO', `${file} is a directory, not an ONNX file`, { file });
    if (o.lazy) real = fs.realpathSync(file);
    bytes = fs.readFileSync(real);
  } catch (e) {
    if (e instanceof QccError) throw e;
    throw new QccError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  const baseDir = path.dirname(path.resolve(file));
  if (!o.lazy) return decodeModel(bytes, { file, baseDir });
  if (bytes.length === 0) throw new QccError('E_ONNX_EMPTY', 'the model file is empty', { file });
  const minBytes = o.lazyMinBytes ?? LAZY_MIN_BYTES;
  const msg = decodeMessage(bytes, 'ModelProto', { file, lazy: { paths: new Set(['ModelProto.graph.initializer.raw_data']), minBytes } });
  return modelFromMsg(msg, { file, baseDir, lazySource: { location: path.basename(real), baseDir: path.dirname(real) } });
}

function stripKeys(m: Msg, keys: readonly string[]): Msg {
  const out: Msg = { ...m };
  for (const k of keys) delete out[k];
  delete out.$at;
  return out;
}

function collectNodeNames(g: Msg, into: Set<string>, depth: number): void {
  for (const n of (g.node as Msg[] | undefined) ?? []) {
    const name = n.name as string | undefined;
    if (name) into.add(name);
    for (const a of (n.attribute as Msg[] | undefined) ?? []) {
      if (a.g) collectNodeNames(a.g as Msg, into, depth + 1);
      for (const sg of (a.graphs as Msg[] | undefined) ?? []) collectNodeNames(sg, into, depth + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Types

function dimFromMsg(d: Msg): Dim {
  const v = d.dim_value as Int64 | undefined;
  if (v !== undefined) {
    if (typeof v === 'number' && v >= 0) return v;
    return { param: null }; // negative / overflowing dim_value in a type annotation: treat as unknown
  }
  const p = d.dim_param as string | undefined;
  return { param: p === undefined || p === '' ? null : p };
}

export function typeFromMsg(t: Msg | undefined): ValueType | undefined {
  if (t === undefined) return undefined;
  const tt = t.tensor_type as Msg | undefined;
  if (tt === undefined) return { kind: 'other', proto: t };
  const code = tt.elem_type as number | undefined;
  const dtype = code === undefined || code === 0 ? undefined : dtypeFromOnnx(code);
  const shapeMsg = tt.shape as Msg | undefined;
  const shape = shapeMsg === undefined ? undefined : ((shapeMsg.dim as Msg[] | undefined) ?? []).map(dimFromMsg);
  return { kind: 'tensor', dtype, shape };
}

// ---------------------------------------------------------------------------------------------------------------
// Tensors

const FIELD_ORDER: readonly TensorField[] = ['float_data', 'int32_data', 'string_data', 'int64_data', 'double_data', 'uint64_data'];

function dimsOf(t: Msg, loc: Loc): number[] {
  const raw = (t.dims as Int64[] | undefined) ?? [];
  const dims: number[] = [];
  let count = 1;
  for (const d of raw) {
    if (typeof d === 'bigint' || d < 0) throw new QccError('E_MODEL_DIM', `dimension ${String(d)} is negative or overflows`, loc);
    dims.push(d);
    count *= d;
  }
  if (count > MAX_ELEMENTS) throw new QccError('E_MODEL_TOO_LARGE', `tensor declares ${count} elements (limit ${MAX_ELEMENTS})`, loc);
  return dims;
}

/** TensorProto -> Tensor, with the declared size checked against the bytes actually present. */
export function tensorFromMsg(t: Msg, ctx: { file?: string | undefined; baseDir: string; lazySource?: LazySource | undefined }, where: string): Tensor {
  const name = (t.name as string | undefined) ?? '';
  const loc: Loc = { file: ctx.file, tensor: name, path: where, byteOffset: t.$at };
  const dims = dimsOf(t, loc);
  const code = (t.data_type as number | undefined) ?? 0;
  const dtype = dtypeFromOnnx(code);
  if (dtype === undefined) throw new QccError('E_MODEL_DTYPE', `data_type ${code} is not a known ONNX tensor type`, loc);
  let count = 1;
  for (const d of dims) count *= d;
  // an explicit empty name stays in proto so that the writer emits it again
  const proto = stripKeys(t, ['dims', 'data_type', ...(name === '' && t.name !== undefined ? [] : ['name']), 'raw_data', 'external_data', 'data_location', ...FIELD_ORDER]);
  const extEntries = (t.external_data as Msg[] | undefined) ?? [];
  let data: TensorData;
  if (t.data_location === 1 || extEntries.length > 0) {
    const entries = extEntries.map((e) => [(e.key as string) ?? '', (e.value as string) ?? ''] as const);
    const get = (k: string): string | undefined => entries.find((e) => e[0] === k)?.[1];
    const location = get('location');
    if (location === undefined) throw new QccError('E_EXTERNAL_PATH', 'external tensor has no location', loc);
    const offset = parseExtInt(get('offset') ?? '0', 'offset', loc);
    if (dtype === 'string') throw new QccError('E_MODEL_DTYPE', 'string tensors cannot be external', loc);
    const expect = rawByteLength(dtype, count);
    const length = get('length') !== undefined ? parseExtInt(get('length')!, 'length', loc) : expect;
    if (length !== expect) throw new QccError('E_MODEL_DATA_SIZE', `external length ${length} does not match dims [${dims.join(',')}] of ${dtype} (${expect} bytes)`, loc);
    // a clone's tensors keep their own folder (writer.ts KEEP_EXTERNAL): scratch data, a lazily read model file
    const baseDir = typeof t.$baseDir === 'string' ? t.$baseDir : ctx.baseDir;
    try {
      checkExternalRange(baseDir, location, offset, length, name);
    } catch (e) {
      // external.ts knows only the tensor; add the model file and the tensor's byte offset
      if (e instanceof QccError) throw new QccError(e.code, e.message, { ...loc, ...e.loc }, { cause: e });
      throw e;
    }
    data = { kind: 'external', location, offset, length, baseDir, entries };
  } else if (t.raw_data instanceof LazyBytes) {
    // loadModel's lazy mode: the payload stays in the model file, read like external data (same range checks)
    const { offset, length } = t.raw_data;
    const src = ctx.lazySource;
    if (!src) throw new QccError('E_EXTERNAL_MISSING', 'a lazily decoded tensor without its source file', loc);
    if (dtype === 'string') throw new QccError('E_MODEL_DTYPE', 'string tensors cannot use raw_data', loc);
    const expect = rawByteLength(dtype, count);
    if (length !== expect) throw new QccError('E_MODEL_DATA_SIZE', `raw_data has ${length} bytes, dims [${dims.join(',')}] of ${dtype} need ${expect}`, loc);
    checkExternalRange(src.baseDir, src.location, offset, length, name);
    const entries = [['location', src.location], ['offset', String(offset)], ['length', String(length)]] as const;
    data = { kind: 'external', location: src.location, offset, length, baseDir: src.baseDir, entries };
  } else if (t.raw_data !== undefined) {
    const bytes = t.raw_data as Uint8Array;
    if (dtype === 'string') throw new QccError('E_MODEL_DTYPE', 'string tensors cannot use raw_data', loc);
    const expect = rawByteLength(dtype, count);
    if (bytes.length !== expect) throw new QccError('E_MODEL_DATA_SIZE', `raw_data has ${bytes.length} bytes, dims [${dims.join(',')}] of ${dtype} need ${expect}`, loc);
    data = { kind: 'raw', bytes };
  } else {
    let field: TensorField = fieldFor(dtype);
    let values: (number | bigint | Uint8Array)[] = [];
    for (const f of FIELD_ORDER) {
      const v = t[f] as (number | bigint | Uint8Array)[] | undefined;
      if (v !== undefined && v.length > 0) {
        field = f;
        values = v;
        break;
      }
    }
    const expect = expectedFieldCount(dtype, count);
    if (values.length !== expect && !(count === 0 && values.length === 0)) {
      throw new QccError('E_MODEL_DATA_SIZE', `${field} has ${values.length} elements, dims [${dims.join(',')}] of ${dtype} need ${expect}`, loc);
    }
    data = { kind: 'fields', field, values };
  }
  return new Tensor(name, dtype, dims, data, Object.keys(proto).length ? proto : undefined);
}

function parseExtInt(s: string, what: string, loc: Loc): number {
  if (!/^\d+$/.test(s)) throw new QccError('E_EXTERNAL_RANGE', `external data ${what} '${s}' is not a non-negative integer`, loc);
  const v = Number(s);
  if (!Number.isSafeInteger(v)) throw new QccError('E_EXTERNAL_RANGE', `external data ${what} ${s} is too large`, loc);
  return v;
}

/** The TensorProto repeated field that holds a dtype's values when raw_data is not used. */
export function fieldFor(dtype: DType): TensorField {
  switch (dtype) {
    case 'f32':
    case 'c64':
      return 'float_data';
    case 'f64':
    case 'c128':
      return 'double_data';
    case 'i64':
      return 'int64_data';
    case 'u32':
    case 'u64':
      return 'uint64_data';
    case 'string':
      return 'string_data';
    default:
      return 'int32_data';
  }
}

function expectedFieldCount(dtype: DType, count: number): number {
  switch (dtype) {
    case 'c64':
    case 'c128':
      return 2 * count;
    case 'i4':
    case 'u4':
    case 'fp4e2m1':
    case 'i2':
    case 'u2':
      return rawByteLength(dtype, count);
    default:
      return count;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Attributes

const ATTR_TYPES: Record<number, Attr['type']> = {
  1: 'float', 2: 'int', 3: 'string', 4: 'tensor', 5: 'graph', 11: 'sparse_tensor', 13: 'type_proto',
  6: 'floats', 7: 'ints', 8: 'strings', 9: 'tensors', 10: 'graphs', 12: 'sparse_tensors', 14: 'type_protos',
};

const ATTR_VALUE_FIELDS = ['f', 'i', 's', 't', 'g', 'sparse_tensor', 'tp', 'floats', 'ints', 'strings', 'tensors', 'graphs', 'sparse_tensors', 'type_protos'];

function inferAttrType(a: Msg): Attr['type'] | undefined {
  if (a.f !== undefined) return 'float';
  if (a.i !== undefined) return 'int';
  if (a.s !== undefined) return 'string';
  if (a.t !== undefined) return 'tensor';
  if (a.g !== undefined) return 'graph';
  if (a.sparse_tensor !== undefined) return 'sparse_tensor';
  if (a.tp !== undefined) return 'type_proto';
  if ((a.floats as unknown[] | undefined)?.length) return 'floats';
  if ((a.ints as unknown[] | undefined)?.length) return 'ints';
  if ((a.strings as unknown[] | undefined)?.length) return 'strings';
  if ((a.tensors as unknown[] | undefined)?.length) return 'tensors';
  if ((a.graphs as unknown[] | undefined)?.length) return 'graphs';
  return undefined;
}

function attrFromMsg(ctx: Ctx, a: Msg, node: Node, scope: Scope, where: string): Attr {
  const name = (a.name as string | undefined) ?? '';
  const loc: Loc = { file: ctx.file, node: node.name, path: where, byteOffset: a.$at };
  if (a.ref_attr_name !== undefined) return { type: 'ref', value: a.ref_attr_name as string, refType: (a.type as number | undefined) ?? 0 };
  const code = a.type as number | undefined;
  const type = code !== undefined && code !== 0 ? ATTR_TYPES[code] : inferAttrType(a);
  if (type === undefined) throw new QccError('E_MODEL_ATTRIBUTE', `attribute '${name}' has an unknown or missing type (${String(code)})`, loc);
  switch (type) {
    case 'float':
      return { type, value: (a.f as number | undefined) ?? 0 };
    case 'int':
      return { type, value: (a.i as Int64 | undefined) ?? 0 };
    case 'string':
      return { type, value: (a.s as Uint8Array | undefined) ?? new Uint8Array(0) };
    case 'tensor':
      if (a.t === undefined) throw new QccError('E_MODEL_ATTRIBUTE', `tensor attribute '${name}' has no tensor`, loc);
      return { type, value: tensorFromMsg(a.t as Msg, ctx, `${where}.t`) };
    case 'graph': {
      if (a.g === undefined) throw new QccError('E_MODEL_ATTRIBUTE', `graph attribute '${name}' has no graph`, loc);
      return { type, value: subgraph(ctx, a.g as Msg, node, scope, `${where}.g`) };
    }
    case 'sparse_tensor':
      return { type, value: a.sparse_tensor as Msg };
    case 'type_proto':
      return { type, value: a.tp as Msg };
    case 'floats':
      return { type, value: (a.floats as number[] | undefined) ?? [] };
    case 'ints':
      return { type, value: (a.ints as Int64[] | undefined) ?? [] };
    case 'strings':
      return { type, value: (a.strings as Uint8Array[] | undefined) ?? [] };
    case 'tensors':
      return { type, value: ((a.tensors as Msg[] | undefined) ?? []).map((t, i) => tensorFromMsg(t, ctx, `${where}.tensors[${i}]`)) };
    case 'graphs':
      return { type, value: ((a.graphs as Msg[] | undefined) ?? []).map((g, i) => subgraph(ctx, g, node, scope, `${where}.graphs[${i}]`)) };
    case 'sparse_tensors':
      return { type, value: (a.sparse_tensors as Msg[] | undefined) ?? [] };
    case 'type_protos':
      return { type, value: (a.type_protos as Msg[] | undefined) ?? [] };
    case 'ref':
      throw new Error('unreachable');
  }
}

function subgraph(ctx: Ctx, g: Msg, owner: Node, scope: Scope, where: string): Graph {
  const sg = new Graph((g.name as string | undefined) ?? '', owner);
  buildGraph(ctx, sg, g, scope, where);
  return sg;
}

// ---------------------------------------------------------------------------------------------------------------
// Graphs

/** Name lookup through enclosing graphs (subgraphs may read outer values). */
interface Scope {
  readonly values: Map<string, Value>;
  readonly parent: Scope | null;
}

function lookup(s: Scope | null, name: string): Value | undefined {
  for (let cur = s; cur; cur = cur.parent) {
    const v = cur.values.get(name);
    if (v) return v;
  }
  return undefined;
}

function valueInfoFields(vi: Msg): Msg | undefined {
  const rest = stripKeys(vi, ['name']);
  return Object.keys(rest).length ? rest : undefined;
}

function buildGraph(ctx: Ctx, g: Graph, gm: Msg, parent: Scope | null, where: string): void {
  const scope: Scope = { values: new Map(), parent };
  const loc = (extra: Loc = {}): Loc => ({ file: ctx.file, path: where, ...extra });
  g._proto = stripKeys(gm, ['node', 'name', 'initializer', 'sparse_initializer', 'input', 'output', 'value_info']);
  if (Object.keys(g._proto).length === 0) g._proto = undefined;

  const define = (v: Value, what: string): void => {
    if (scope.values.has(v.name)) throw new QccError('E_MODEL_DUPLICATE_PRODUCER', `value '${v.name}' is defined twice (${what})`, loc({ tensor: v.name }));
    scope.values.set(v.name, v);
  };

  // graph inputs
  const inputs = (gm.input as Msg[] | undefined) ?? [];
  inputs.forEach((vi) => {
    const name = (vi.name as string | undefined) ?? '';
    const v = new Value(g, name, typeFromMsg(vi.type as Msg | undefined));
    v._proto = valueInfoFields(vi);
    v._protoType = v._type;
    define(v, 'graph input');
    g._inputs.push(v);
  });
  const isInput = new Set(g._inputs); // Array.includes per value was quadratic in adversarial files
  // initializers (may coincide with graph inputs: then the input is a default-valued input)
  ((gm.initializer as Msg[] | undefined) ?? []).forEach((tm, i) => {
    const t = tensorFromMsg(tm, ctx, `${where}.initializer[${i}]`);
    let v = scope.values.get(t.name);
    if (v && (v._initializer || v._sparse || !isInput.has(v))) {
      throw new QccError('E_MODEL_DUPLICATE_PRODUCER', `initializer '${t.name}' is defined twice`, loc({ tensor: t.name, byteOffset: tm.$at }));
    }
    if (!v) {
      v = new Value(g, t.name);
      define(v, 'initializer');
    }
    v._initializer = t;
    g._initializers.push(v);
  });
  ((gm.sparse_initializer as Msg[] | undefined) ?? []).forEach((sm) => {
    const name = ((sm.values as Msg | undefined)?.name as string | undefined) ?? '';
    let v = scope.values.get(name);
    if (v && (v._initializer || v._sparse || !isInput.has(v))) throw new QccError('E_MODEL_DUPLICATE_PRODUCER', `sparse initializer '${name}' is defined twice`, loc({ tensor: name }));
    if (!v) {
      v = new Value(g, name);
      define(v, 'sparse initializer');
    }
    v._sparse = sm;
    // Graph keeps no list of sparse initializers (values() does not see them): the writer finds them here, in file order
    g._proto ??= {};
    ((g._proto.$sparse ??= []) as Value[]).push(v);
  });

  // nodes: create all output values first so that order problems can be repaired (or reported as cycles)
  const nodeMsgs = (gm.node as Msg[] | undefined) ?? [];
  const nodes: Node[] = [];
  nodeMsgs.forEach((nm, i) => {
    const opType = (nm.op_type as string | undefined) ?? '';
    let name = (nm.name as string | undefined) ?? '';
    if (name === '') {
      do name = `${opType || 'node'}_${ctx.unnamed++}`;
      while (ctx.usedNodeNames.has(name));
      ctx.usedNodeNames.add(name);
    }
    const n = new Node((nm.domain as string | undefined) ?? '', opType, name);
    // an explicit empty name stays in rest; $unnamed is the generated name, which the writer omits while unchanged
    const rest = stripKeys(nm, ['input', 'output', ...(nm.name === '' ? [] : ['name']), 'op_type', 'attribute']);
    if (!nm.name) rest.$unnamed = name;
    n._proto = rest;
    for (const on of (nm.output as string[] | undefined) ?? []) {
      if (on === '') {
        n._outputs.push(null);
        continue;
      }
      const v = new Value(g, on);
      v._producer = n;
      v._producerIndex = n._outputs.length;
      if (scope.values.has(on)) throw new QccError('E_MODEL_DUPLICATE_PRODUCER', `value '${on}' has two producers`, loc({ node: name, tensor: on, byteOffset: nm.$at }));
      scope.values.set(on, v);
      n._outputs.push(v);
    }
    nodes.push(n);
    void i;
  });
  // value_info annotations
  for (const vi of (gm.value_info as Msg[] | undefined) ?? []) {
    const v = scope.values.get((vi.name as string | undefined) ?? '');
    if (!v) continue; // annotation of a value this graph does not define: dropped (it carries no meaning)
    if (isInput.has(v)) continue; // the graph input's own declaration is the one that counts
    v._type = typeFromMsg(vi.type as Msg | undefined);
    v._protoType = v._type;
    v._proto = valueInfoFields(vi);
  }
  // inputs and attributes
  nodes.forEach((n, i) => {
    const nm = nodeMsgs[i]!;
    const npath = `${where}.node[${i}]`;
    const ins = (nm.input as string[] | undefined) ?? [];
    ins.forEach((inName, k) => {
      if (inName === '') {
        n._inputs.push(null);
        return;
      }
      const v = lookup(scope, inName);
      if (!v) throw new QccError('E_MODEL_DANGLING_INPUT', `input '${inName}' of ${n.opType} node '${n.name}' is not produced by any node, input or initializer`, loc({ node: n.name, path: npath, byteOffset: nm.$at }));
      n._inputs.push(v);
      linkUse(v, n, k);
    });
    for (const [j, am] of ((nm.attribute as Msg[] | undefined) ?? []).entries()) {
      const a = attrFromMsg(ctx, am, n, scope, `${npath}.attribute[${j}]`);
      const an = (am.name as string | undefined) ?? '';
      if (n._attrs.has(an)) throw new QccError('E_MODEL_ATTRIBUTE', `attribute '${an}' appears twice`, loc({ node: n.name, path: npath }));
      n._attrs.set(an, a);
      // AttributeProto fields Attr does not model (doc_string, unknown fields), by attribute name, for the writer
      const extra = stripKeys(am, ['name', 'type', 'ref_attr_name', ...ATTR_VALUE_FIELDS]);
      if (Object.keys(extra).length) ((n._proto!.$attrs ??= {}) as Record<string, Msg>)[an] = extra;
    }
  });
  for (const n of orderTopologically(nodes, g, loc)) appendNode(g, n);

  // graph outputs
  for (const vi of (gm.output as Msg[] | undefined) ?? []) {
    const name = (vi.name as string | undefined) ?? '';
    const v = lookup(scope, name);
    if (!v) throw new QccError('E_MODEL_DANGLING_INPUT', `graph output '${name}' is not produced by any node, input or initializer`, loc({ tensor: name }));
    const t = typeFromMsg(vi.type as Msg | undefined);
    if (t !== undefined && (v._type === undefined || v.graph !== g || !isInput.has(v))) {
      if (v._type === undefined || v._producer) {
        v._type = t;
        v._protoType = t;
        if (v.graph === g) v._proto = valueInfoFields(vi); // the output's declaration, not a value_info entry's
      }
    }
    if (v._proto === undefined) v._proto = valueInfoFields(vi);
    g._outputs.push(v);
  }
}

/** File order when it is topological (the common case); otherwise a stable Kahn sort; a cycle is an error. */
function orderTopologically(nodes: Node[], g: Graph, loc: (l?: Loc) => Loc): Node[] {
  const pos = new Map<Node, number>();
  nodes.forEach((n, i) => pos.set(n, i));
  // a node's dependencies in this graph: producers of its inputs and of outer values its subgraphs read
  const deps = (n: Node): Node[] => {
    const out: Node[] = [];
    const visit = (v: Value | null): void => {
      if (!v) return;
      const p = v._producer;
      if (p && pos.has(p)) out.push(p); // p === n (a node reading its own output) is a cycle of length 1
    };
    for (const v of n._inputs) visit(v);
    const walkSub = (sg: Graph): void => {
      for (const sn of sgNodes(sg)) {
        for (const v of sn._inputs) if (v && v.graph === g) visit(v);
        for (const ssg of sn.subgraphs()) walkSub(ssg);
      }
    };
    for (const sg of n.subgraphs()) walkSub(sg);
    return out;
  };
  let ordered = true;
  const depList = nodes.map(deps);
  for (let i = 0; i < nodes.length && ordered; i++) for (const d of depList[i]!) if (pos.get(d)! >= i) ordered = false;
  if (ordered) return nodes;
  const indeg = nodes.map((_, i) => depList[i]!.length);
  const users = new Map<Node, number[]>();
  depList.forEach((ds, i) => {
    for (const d of ds) {
      let u = users.get(d);
      if (!u) users.set(d, (u = []));
      u.push(i);
    }
  });
  const out: Node[] = [];
  // stable: always take the earliest ready node in file order. A binary min-heap of file positions keeps this
  // O(n log n): a linear scan of the ready set was quadratic, so a 2 MB file of 100k unsorted nodes took 16 s.
  const heap: number[] = [];
  const push = (x: number): void => {
    let i = heap.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p]! <= x) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = x;
  };
  const pop = (): number => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= heap.length) break;
        if (c + 1 < heap.length && heap[c + 1]! < heap[c]!) c++;
        if (heap[c]! >= last) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  };
  indeg.forEach((d, i) => {
    if (d === 0) push(i);
  });
  while (heap.length) {
    const n = nodes[pop()]!;
    out.push(n);
    for (const u of users.get(n) ?? []) if (--indeg[u]! === 0) push(u);
  }
  if (out.length !== nodes.length) {
    const stuck = nodes.find((_, i) => indeg[i]! > 0)!;
    throw new QccError('E_MODEL_CYCLE', `the graph has a cycle through node '${stuck.name}'`, loc({ node: stuck.name }));
  }
  return out;
}

/** Nodes of a subgraph that is still being built (not yet linked) or already linked. */
function sgNodes(sg: Graph): Node[] {
  return sg.nodeArray();
}
