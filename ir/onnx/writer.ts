// IR -> ONNX bytes: ModelProto messages, optional external data (one file, size threshold), atomic file writes.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { dtypeToOnnx } from '../dtype.js';
import { QccError } from '../errors.js';
import type { Attr, Dim, Graph, Model, Msg, Node, Tensor, Value, ValueType } from '../ir.js';
import { clearExternalCache } from './external.js';
import { encodeMessageChunks } from './wire.js';

export interface ExternalDataOptions {
  /** Data file name, relative to the model file (default: `<model file name>.data`). */
  location?: string;
  /** Tensors of at least this many bytes go to the data file (default 1024). */
  threshold?: number;
  /** Offsets are aligned to this many bytes (default 64). */
  align?: number;
}

export interface WriteOptions {
  /** Write large tensors to one external data file next to the model. */
  externalData?: boolean | ExternalDataOptions;
}

/** Where the encoder puts tensors that go to the data file. */
export interface ExternalPlan {
  readonly location: string;
  readonly threshold: number;
  readonly align: number;
  size: number;
  readonly parts: { offset: number; tensor: Tensor }[];
}

/** protobuf's message size limit: larger models need external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Plan for in-memory copies (clone): external tensors keep their references, nothing new goes external. */
export const KEEP_EXTERNAL: ExternalPlan = Object.freeze({ location: '', threshold: Infinity, align: 1, size: 0, parts: Object.freeze([]) as unknown as ExternalPlan['parts'] }) as ExternalPlan;

// ---------------------------------------------------------------------------------------------------------------
// IR -> messages

function shapeMsg(shape: readonly Dim[]): Msg {
  return { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : d.param === null ? {} : { dim_param: d.param })) };
}

export function typeToMsg(t: ValueType): Msg {
  if (t.kind === 'other') return t.proto;
  const tt: Msg = {};
  if (t.dtype !== undefined) tt.elem_type = dtypeToOnnx(t.dtype);
  if (t.shape !== undefined) tt.shape = shapeMsg(t.shape);
  return { tensor_type: tt };
}

function valueInfo(v: Value): Msg {
  const m: Msg = { ...(v._proto ?? {}), name: v.name };
  if (v._type !== undefined) {
    // the type as read is emitted unchanged (keeps denotations and anything else the IR does not model)
    const orig = v._proto?.type as Msg | undefined;
    m.type = v._type === v._protoType && orig !== undefined ? orig : typeToMsg(v._type);
  } else delete m.type;
  return m;
}

export function tensorToMsg(t: Tensor, ext?: ExternalPlan): Msg {
  const m: Msg = { ...(t.proto ?? {}) };
  m.dims = [...t.dims];
  m.data_type = dtypeToOnnx(t.dtype);
  if (t.name !== '' || t.proto?.name !== undefined) m.name = t.name;
  const d = t.data;
  if (d.kind === 'external' && ext === KEEP_EXTERNAL) {
    m.external_data = d.entries.map(([key, value]) => ({ key, value }));
    m.data_location = 1;
    m.$baseDir = d.baseDir; // for modelFromMsg (clone): the folder this tensor's location is relative to; never encoded
    return m;
  }
  if (ext && t.dtype !== 'string' && t.byteLength >= ext.threshold) {
    const offset = Math.ceil(ext.size / ext.align) * ext.align;
    ext.parts.push({ offset, tensor: t });
    ext.size = offset + t.byteLength;
    m.external_data = [
      { key: 'location', value: ext.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(t.byteLength) },
    ];
    m.data_location = 1;
    return m;
  }
  switch (d.kind) {
    case 'raw':
      m.raw_data = d.bytes;
      break;
    case 'fields':
      m[d.field] = d.values;
      break;
    case 'external':
      // written inline: the loader's location is relative to the input model's folder, not the output's
      m.raw_data = t.bytes();
      break;
  }
  return m;
}

function attrToMsg(name: string, a: Attr, ext: ExternalPlan | undefined, orig: Msg | undefined): Msg {
  const base: Msg = { ...(orig ?? {}) };
  for (const k of ['f', 'i', 's', 't', 'g', 'sparse_tensor', 'tp', 'floats', 'ints', 'strings', 'tensors', 'graphs', 'sparse_tensors', 'type_protos', 'ref_attr_name', 'type']) delete base[k];
  base.name = name;
  const TYPE: Record<Attr['type'], number> = {
    float: 1, int: 2, string: 3, tensor: 4, graph: 5, sparse_tensor: 11, type_proto: 13,
    floats: 6, ints: 7, strings: 8, tensors: 9, graphs: 10, sparse_tensors: 12, type_protos: 14, ref: 0,
  };
  switch (a.type) {
    case 'ref':
      base.ref_attr_name = a.value;
      base.type = a.refType;
      return base;
    case 'float':
      base.f = a.value;
      break;
    case 'int':
      base.i = a.value;
      break;
    case 'string':
      base.s = a.value;
      break;
    case 'tensor':
      base.t = tensorToMsg(a.value); // Constant values stay inline: ORT reads Constant attributes from the proto
      break;
    case 'graph':
      base.g = graphToMsg(a.value, ext);
      break;
    case 'sparse_tensor':
      base.sparse_tensor = a.value;
      break;
    case 'type_proto':
      base.tp = a.value;
      break;
    case 'floats':
      base.floats = a.value;
      break;
    case 'ints':
      base.ints = a.value;
      break;
    case 'strings':
      base.strings = a.value;
      break;
    case 'tensors':
      base.tensors = a.value.map((t) => tensorToMsg(t));
      break;
    case 'graphs':
      base.graphs = a.value.map((g) => graphToMsg(g, ext));
      break;
    case 'sparse_tensors':
      base.sparse_tensors = a.value;
      break;
    case 'type_protos':
      base.type_protos = a.value;
      break;
  }
  base.type = TYPE[a.type];
  return base;
}

function nodeToMsg(n: Node, ext: ExternalPlan | undefined): Msg {
  const m: Msg = { ...(n._proto ?? {}) };
  const generated = m.$unnamed; // a node without a name in the input keeps having none until it is renamed
  delete m.$unnamed;
  const ins = n.inputs.map((v) => (v ? v.name : ''));
  while (ins.length && ins[ins.length - 1] === '') ins.pop();
  m.input = ins;
  m.output = n.outputs.map((v) => (v ? v.name : ''));
  if (n.name !== generated) m.name = n.name;
  m.op_type = n.opType;
  if (n.domain !== '' || m.domain !== undefined) m.domain = n.domain;
  const attrExtras = m.$attrs as Record<string, Msg> | undefined; // doc_string, unknown fields (see the reader)
  delete m.$attrs;
  m.attribute = [...n.attrs.entries()].map(([k, a]) => attrToMsg(k, a, ext, attrExtras?.[k]));
  return m;
}

/**
 * A tensor type without an element type would be written as elem_type 0, which onnxruntime refuses ("Invalid tensor
 * data type 0"): such inferred-but-incomplete annotations are left out (an annotation read from the file is kept as is).
 */
function annotatable(v: Value): boolean {
  const t = v.type;
  if (t === undefined || t.kind !== 'tensor' || t.dtype !== undefined) return true;
  return t === v._protoType;
}

export function graphToMsg(g: Graph, ext?: ExternalPlan): Msg {
  const m: Msg = { ...(g._proto ?? {}) };
  const valueInfos: Msg[] = [];
  const io = new Set<Value>([...g.inputs, ...g.outputs]);
  const nodes: Msg[] = [];
  for (const n of g.nodes()) {
    nodes.push(nodeToMsg(n, ext));
    for (const o of n.outputs) if (o && !io.has(o) && (o.type !== undefined || o._proto !== undefined) && annotatable(o)) valueInfos.push(valueInfo(o));
  }
  m.node = nodes;
  m.name = g.name;
  m.initializer = g.initializers.map((v) => tensorToMsg(v.initializer!, ext));
  // sparse initializers as the reader listed them (Graph has no list of its own), under their current names
  const sparseValues = (m.$sparse as Value[] | undefined) ?? [];
  delete m.$sparse;
  const sparse = sparseValues.filter((v) => v.sparseInitializer).map((v) => {
    const sm = v.sparseInitializer!;
    const vals = sm.values as Msg | undefined;
    return vals === undefined || vals.name === v.name ? sm : { ...sm, values: { ...vals, name: v.name } };
  });
  if (sparse.length) m.sparse_initializer = sparse;
  m.input = g.inputs.map(valueInfo);
  m.output = g.outputs.map(valueInfo);
  m.value_info = valueInfos;
  return m;
}

export function modelToMsg(model: Model, ext?: ExternalPlan): Msg {
  // ext: where large tensors go (saveModel's data file), or KEEP_EXTERNAL for in-memory copies
  const m: Msg = { ...(model._proto ?? {}) };
  m.ir_version = model.irVersion;
  const opsets = [...model.opsetImports.entries()].map(([domain, version]) => ({ domain, version }));
  const read = m.$opset_import as Msg[] | undefined; // as the reader found them (see decodeModel)
  delete m.$opset_import;
  const same = read !== undefined && read.length === opsets.length && read.every((o, i) => ((o.domain as string | undefined) ?? '').replace(/^ai\.onnx$/, '') === opsets[i]!.domain && ((o.version as number | undefined) ?? 0) === opsets[i]!.version);
  m.opset_import = same ? read : opsets;
  if (model.producerName !== undefined) m.producer_name = model.producerName;
  if (model.producerVersion !== undefined) m.producer_version = model.producerVersion;
  if (model.domain !== undefined) m.domain = model.domain;
  if (model.modelVersion !== undefined) m.model_version = model.modelVersion;
  if (model.docString !== undefined) m.doc_string = model.docString;
  m.graph = graphToMsg(model.graph, ext);
  if (model.metadataProps.length) m.metadata_props = model.metadataProps.map(([key, value]) => ({ key, value }));
  if (model.functions.length) m.functions = model.functions;
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Bytes and files

/** Encodes a model into one buffer (tensors inline). */
export function encodeModel(model: Model): Uint8Array {
  const { chunks, size } = encodeModelChunks(model);
  if (size > PROTOBUF_LIMIT) throw new QccError('E_MODEL_TOO_LARGE', `the model is ${size} bytes, over protobuf's 2 GiB limit: write it with external data`);
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export function encodeModelChunks(model: Model, ext?: ExternalPlan): { chunks: Uint8Array[]; size: number } {
  return encodeMessageChunks(modelToMsg(model, ext), 'ModelProto');
}

/** Writes chunks to `file` atomically: a temporary file in the same folder, then rename. Nothing is left on failure. */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[] | ((fd: number) => void)): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    if (typeof chunks === 'function') chunks(fd);
    else writeAll(fd, chunks);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    if (e instanceof QccError) throw e;
    throw new QccError('E_IO', `cannot write ${file}: ${(e as Error).message}`, { file });
  }
}

function writeAll(fd: number, chunks: readonly Uint8Array[]): void {
  // writev takes at most IOV_MAX (1024) buffers per call
  for (let i = 0; i < chunks.length; i += 512) {
    const batch = chunks.slice(i, i + 512);
    let want = 0;
    for (const c of batch) want += c.length;
    let done = fs.writevSync(fd, batch as Uint8Array[]);
    if (done < want) {
      // partial write: finish chunk by chunk
      let skip = done;
      for (const c of batch) {
        if (skip >= c.length) {
          skip -= c.length;
          continue;
        }
        let off = skip;
        skip = 0;
        while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off);
      }
      done = want;
    }
  }
}

/**
 * Saves a model. With `externalData`, tensors over the threshold go to one data file beside the model
 * (both written atomically; the data file first). Without it, external tensors of the input are inlined.
 */
export function saveModel(model: Model, file: string, opts: WriteOptions = {}): { bytes: number; dataBytes: number } {
  if (!opts.externalData) {
    const { chunks, size } = encodeModelChunks(model);
    if (size > PROTOBUF_LIMIT) throw new QccError('E_MODEL_TOO_LARGE', `the model is ${size} bytes, over protobuf's 2 GiB limit: save it with external data (--external-data)`, { file });
    writeFileAtomic(file, chunks);
    return { bytes: size, dataBytes: 0 };
  }
  const o = typeof opts.externalData === 'object' ? opts.externalData : {};
  const location = o.location ?? `${path.basename(file)}.data`;
  if (location.includes('/') || location.includes('\\') || location.includes('..')) {
    throw new QccError('E_EXTERNAL_PATH', `external data location '${location}' must be a plain file name`, { file });
  }
  const plan: ExternalPlan = { location, threshold: o.threshold ?? 1024, align: o.align ?? 64, size: 0, parts: [] };
  const { chunks, size } = encodeModelChunks(model, plan);
  if (size > PROTOBUF_LIMIT) throw new QccError('E_MODEL_TOO_LARGE', `the model is ${size} bytes even with external data`, { file });
  const dataFile = path.join(path.dirname(path.resolve(file)), location);
  // the data goes to a temporary name first and replaces the old data file only once the model file is written:
  // a failure at any point leaves the previous model and data (or nothing) behind, never an orphan data file
  const dataTmp = path.join(path.dirname(dataFile), `.${location}.${process.pid}.${Date.now()}.part`);
  writeFileAtomic(dataTmp, (fd) => {
    let pos = 0;
    const zeros = new Uint8Array(plan.align);
    for (const p of plan.parts) {
      if (p.offset > pos) {
        fs.writeSync(fd, zeros, 0, p.offset - pos);
        pos = p.offset;
      }
      const b = p.tensor.bytes(); // external inputs are read one tensor at a time
      writeAll(fd, [b]);
      pos += b.length;
    }
  });
  try {
    writeFileAtomic(file, chunks);
    fs.renameSync(dataTmp, dataFile);
  } catch (e) {
    try {
      fs.unlinkSync(dataTmp);
    } catch {
      /* already gone */
    }
    if (e instanceof QccError) throw e;
    throw new QccError('E_IO', `cannot write ${dataFile}: ${(e as Error).message}`, { file: dataFile });
  } finally {
    clearExternalCache(dataFile);
  }
  return { bytes: size, dataBytes: plan.size };
}
