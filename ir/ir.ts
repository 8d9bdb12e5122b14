// The typed IR: Model, Graph (linked node list), Node, Value (use-def chains), Tensor (lazy data), Attribute.
//
// Invariants (checked by verify()): every Value has at most one producer and its use list agrees with the
// nodes' inputs; nodes are in topological order; initializers have no producer. Structure changes only
// through the methods in ./rewriter.ts, which keep use lists exact; the fields below that look mutable are
// `@internal` to this folder.

import type { DType } from './dtype.js';
import { DTYPES, isSubByte, rawByteLength } from './dtype.js';
import { QccError } from './errors.js';
import { NAN_BITS, type Int64, type Msg } from './onnx/wire.js';

export type { Int64, Msg };

// ---------------------------------------------------------------------------------------------------------------
// Types

/** A symbolic or unknown dimension. `param: null` is an unknown, unnamed dimension. */
export interface SymDim {
  readonly param: string | null;
}
export type Dim = number | SymDim;
export type Shape = readonly Dim[];

export interface TensorType {
  readonly kind: 'tensor';
  /** undefined when the element type is not known. */
  readonly dtype: DType | undefined;
  /** undefined when the rank is not known. */
  readonly shape: Shape | undefined;
}

/** Sequence, map, optional, sparse and opaque types: kept as their TypeProto, not modelled. */
export interface OtherType {
  readonly kind: 'other';
  readonly proto: Msg;
}

export type ValueType = TensorType | OtherType;

export function tensorType(dtype: DType | undefined, shape: Shape | undefined): TensorType {
  return { kind: 'tensor', dtype, shape };
}

export function sym(param: string | null): SymDim {
  return { param };
}

export function isStaticShape(s: Shape | undefined): s is readonly number[] {
  return s !== undefined && s.every((d) => typeof d === 'number');
}

export function dimEquals(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.param !== null && a.param === b.param;
}

export function shapeToString(s: Shape | undefined): string {
  if (s === undefined) return '?';
  return `[${s.map((d) => (typeof d === 'number' ? String(d) : (d.param ?? '?'))).join(',')}]`;
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor data

/**
 * Where a tensor's elements are.
 * - `raw`: ONNX raw_data layout (little-endian; 4- and 2-bit types packed, element 0 in the low bits). Usually a view
 *   into the loaded file buffer: loading copies nothing.
 * - `fields`: the typed repeated fields of TensorProto (float_data, int32_data, ...), kept as read so that a model
 *   round-trips exactly; decoded on demand.
 * - `external`: bytes in a file beside the model (validated on load, read on demand).
 */
export type TensorData =
  | { readonly kind: 'raw'; readonly bytes: Uint8Array }
  | { readonly kind: 'fields'; readonly field: TensorField; readonly values: readonly (number | bigint | Uint8Array)[] }
  | {
      readonly kind: 'external';
      readonly location: string;
      readonly offset: number;
      readonly length: number;
      /** absolute path of the folder the location is relative to */
      readonly baseDir: string;
      /** the external_data entries as read (checksum, ...) */
      readonly entries: readonly (readonly [string, string])[];
    };

export type TensorField = 'float_data' | 'int32_data' | 'string_data' | 'int64_data' | 'double_data' | 'uint64_data';

export type TypedArrayOf<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'i32'
      ? Int32Array
      : D extends 'i64'
        ? BigInt64Array
        : D extends 'u64'
          ? BigUint64Array
          : D extends 'i8'
            ? Int8Array
            : D extends 'u8' | 'bool'
              ? Uint8Array
              : D extends 'i16'
                ? Int16Array
                : D extends 'u16' | 'f16' | 'bf16'
                  ? Uint16Array
                  : D extends 'u32'
                    ? Uint32Array
                    : Uint8Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Reads an external tensor's bytes. Installed by ir/onnx/external.ts (keeps fs out of the core types). */
let externalReader: ((d: Extract<TensorData, { kind: 'external' }>, name: string) => Uint8Array) | undefined;
/** @internal */
export function setExternalReader(f: typeof externalReader): void {
  externalReader = f;
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export class Tensor {
  constructor(
    readonly name: string,
    readonly dtype: DType,
    readonly dims: readonly number[],
    readonly data: TensorData,
    /** TensorProto fields the IR does not model (doc_string, metadata_props, segment, unknown fields). */
    readonly proto?: Msg,
  ) {}

  get size(): number {
    return elementCount(this.dims);
  }

  /** Byte length of the raw little-endian representation (not defined for strings). */
  get byteLength(): number {
    return rawByteLength(this.dtype, this.size);
  }

  withName(name: string): Tensor {
    return name === this.name ? this : new Tensor(name, this.dtype, this.dims, this.data, this.proto);
  }

  /** Raw little-endian bytes (ONNX raw_data layout). A view when the data is already raw. */
  bytes(): Uint8Array {
    const d = this.data;
    switch (d.kind) {
      case 'raw':
        return d.bytes;
      case 'external':
        if (!externalReader) throw new QccError('E_EXTERNAL_MISSING', 'no external-data reader installed', { tensor: this.name });
        return externalReader(d, this.name);
      case 'fields':
        return fieldsToRaw(this.dtype, d.field, d.values, this.size, this.name);
    }
  }

  /**
   * Elements as a typed array in the dtype's natural JS representation: f32/f64/ints as themselves,
   * f16/bf16 as Uint16Array bit patterns, bool as Uint8Array, 8-bit float types as Uint8Array codes,
   * sub-byte types still packed (use ir/numerics to unpack). Aliases the loaded buffer when alignment allows.
   */
  typed(): AnyTypedArray {
    if (this.dtype === 'string') throw new QccError('E_MODEL_DTYPE', 'string tensors have no typed view', { tensor: this.name });
    return bytesToTyped(this.dtype, this.bytes());
  }

  /** String elements (dtype 'string' only). */
  strings(): Uint8Array[] {
    if (this.data.kind !== 'fields' || this.data.field !== 'string_data') {
      if (this.size === 0) return [];
      throw new QccError('E_MODEL_DTYPE', 'not a string tensor', { tensor: this.name });
    }
    return this.data.values as Uint8Array[];
  }
}

/** A typed view (or copy when unaligned) of raw bytes for a dtype. */
export function bytesToTyped(dtype: DType, b: Uint8Array): AnyTypedArray {
  const ctor = typedCtor(dtype);
  const bpe = ctor.BYTES_PER_ELEMENT;
  if (b.byteOffset % bpe === 0) return new ctor(b.buffer, b.byteOffset, Math.floor(b.byteLength / bpe));
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new ctor(copy.buffer, 0, Math.floor(b.byteLength / bpe));
}

type TypedCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): AnyTypedArray;
  new (length: number): AnyTypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

export function typedCtor(dtype: DType): TypedCtor {
  switch (dtype) {
    case 'f32':
      return Float32Array as unknown as TypedCtor;
    case 'f64':
      return Float64Array as unknown as TypedCtor;
    case 'i8':
      return Int8Array as unknown as TypedCtor;
    case 'i16':
      return Int16Array as unknown as TypedCtor;
    case 'u16':
    case 'f16':
    case 'bf16':
      return Uint16Array as unknown as TypedCtor;
    case 'i32':
      return Int32Array as unknown as TypedCtor;
    case 'u32':
      return Uint32Array as unknown as TypedCtor;
    case 'i64':
      return BigInt64Array as unknown as TypedCtor;
    case 'u64':
      return BigUint64Array as unknown as TypedCtor;
    case 'c64':
      return Float32Array as unknown as TypedCtor;
    case 'c128':
      return Float64Array as unknown as TypedCtor;
    default:
      return Uint8Array as unknown as TypedCtor;
  }
}

/** Converts TensorProto typed fields to raw bytes, per the ONNX rules for which field holds which dtype. */
function fieldsToRaw(dtype: DType, field: TensorField, values: readonly (number | bigint | Uint8Array)[], count: number, name: string): Uint8Array {
  const bits = DTYPES[dtype].bits;
  const out = new Uint8Array(rawByteLength(dtype, count));
  const dv = new DataView(out.buffer);
  const n = Math.min(values.length, count);
  if (isSubByte(dtype)) {
    // int32_data holds one (already packed) byte per int32 for 4-bit types, per the ONNX spec
    for (let i = 0; i < Math.min(values.length, out.length); i++) out[i] = Number(values[i]) & 0xff;
    return out;
  }
  const num = (i: number): number => Number(values[i]);
  switch (dtype) {
    case 'f32':
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, num(i), true);
      break;
    case 'f64':
      for (let i = 0; i < n; i++) dv.setFloat64(8 * i, num(i), true);
      break;
    case 'c64':
      for (let i = 0; i < Math.min(values.length, 2 * count); i++) dv.setFloat32(4 * i, num(i), true);
      break;
    case 'c128':
      for (let i = 0; i < Math.min(values.length, 2 * count); i++) dv.setFloat64(8 * i, num(i), true);
      break;
    case 'i64':
      for (let i = 0; i < n; i++) dv.setBigInt64(8 * i, BigInt(values[i] as number | bigint), true);
      break;
    case 'u64':
      for (let i = 0; i < n; i++) dv.setBigUint64(8 * i, BigInt(values[i] as number | bigint), true);
      break;
    case 'u32':
      for (let i = 0; i < n; i++) dv.setUint32(4 * i, num(i) >>> 0, true);
      break;
    case 'i32':
      for (let i = 0; i < n; i++) dv.setInt32(4 * i, num(i), true);
      break;
    case 'i16':
      for (let i = 0; i < n; i++) dv.setInt16(2 * i, num(i), true);
      break;
    case 'u16':
    case 'f16':
    case 'bf16':
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, num(i) & 0xffff, true);
      break;
    case 'string':
      throw new QccError('E_MODEL_DTYPE', 'string tensors have no raw bytes', { tensor: name });
    default:
      if (bits !== 8) throw new QccError('E_MODEL_DTYPE', `cannot convert ${field} for ${dtype}`, { tensor: name });
      for (let i = 0; i < n; i++) out[i] = num(i) & 0xff;
  }
  // NaN bit patterns the decoder recorded (a JS number cannot hold a signaling NaN): see NAN_BITS in onnx/wire.ts
  const nan = (values as { [NAN_BITS]?: Map<number, number | bigint> })[NAN_BITS];
  if (nan && (field === 'float_data' || field === 'double_data')) {
    const size = field === 'float_data' ? 4 : 8;
    for (const [i, b] of nan) {
      if (size * i + size > out.length) continue;
      if (typeof b === 'bigint') dv.setBigUint64(8 * i, b, true);
      else dv.setUint32(4 * i, b, true);
    }
  }
  return out;
}

/** A tensor whose data is the given typed array (no copy: the bytes view aliases it). */
export function tensorFromTyped(name: string, dtype: DType, dims: readonly number[], values: AnyTypedArray): Tensor {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const expect = rawByteLength(dtype, elementCount(dims));
  if (bytes.byteLength !== expect) {
    throw new QccError('E_MODEL_DATA_SIZE', `tensor data has ${bytes.byteLength} bytes, dims [${dims.join(',')}] of ${dtype} need ${expect}`, { tensor: name });
  }
  return new Tensor(name, dtype, dims, { kind: 'raw', bytes });
}

// ---------------------------------------------------------------------------------------------------------------
// Attributes

export type Attr =
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'int'; readonly value: Int64 }
  | { readonly type: 'string'; readonly value: Uint8Array }
  | { readonly type: 'tensor'; readonly value: Tensor }
  | { readonly type: 'graph'; readonly value: Graph }
  | { readonly type: 'sparse_tensor'; readonly value: Msg }
  | { readonly type: 'type_proto'; readonly value: Msg }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'ints'; readonly value: readonly Int64[] }
  | { readonly type: 'strings'; readonly value: readonly Uint8Array[] }
  | { readonly type: 'tensors'; readonly value: readonly Tensor[] }
  | { readonly type: 'graphs'; readonly value: readonly Graph[] }
  | { readonly type: 'sparse_tensors'; readonly value: readonly Msg[] }
  | { readonly type: 'type_protos'; readonly value: readonly Msg[] }
  | { readonly type: 'ref'; readonly value: string; readonly refType: number };

export type AttrType = Attr['type'];

const te = new TextEncoder();
const td = new TextDecoder();
export const attr = {
  float: (value: number): Attr => ({ type: 'float', value }),
  int: (value: Int64): Attr => ({ type: 'int', value }),
  string: (value: string): Attr => ({ type: 'string', value: te.encode(value) }),
  floats: (value: readonly number[]): Attr => ({ type: 'floats', value }),
  ints: (value: readonly Int64[]): Attr => ({ type: 'ints', value }),
  strings: (value: readonly string[]): Attr => ({ type: 'strings', value: value.map((s) => te.encode(s)) }),
  tensor: (value: Tensor): Attr => ({ type: 'tensor', value }),
  graph: (value: Graph): Attr => ({ type: 'graph', value }),
};

/** int64 as a JS number (INT64_MAX/MIN become +-2^63 approximately: fine for clamped indices). */
export function int64ToNumber(v: Int64): number {
  return typeof v === 'bigint' ? Number(v) : v;
}

export function decodeUtf8(b: Uint8Array): string {
  return td.decode(b);
}

// ---------------------------------------------------------------------------------------------------------------
// Values, nodes, graphs

export interface Use {
  readonly node: Node;
  readonly index: number;
}

export class Value {
  /** @internal */ _type: ValueType | undefined;
  /** @internal */ _producer: Node | null = null;
  /** @internal */ _producerIndex = -1;
  /** @internal */ readonly _uses: Use[] = [];
  /** @internal */ _initializer: Tensor | undefined;
  /** @internal */ _name: string;
  /** Sparse initializer (SparseTensorProto), kept as read. */
  /** @internal */ _sparse: Msg | undefined;
  /** value_info / input / output fields the IR does not model (doc_string, metadata_props), and the type as read. */
  /** @internal */ _proto: Msg | undefined;
  /** @internal */ _protoType: ValueType | undefined;

  constructor(
    /** The graph that defines this value (input, initializer or node output). */
    readonly graph: Graph,
    name: string,
    type?: ValueType,
  ) {
    this._name = name;
    this._type = type;
  }

  get name(): string {
    return this._name;
  }
  get type(): ValueType | undefined {
    return this._type;
  }
  get producer(): Node | null {
    return this._producer;
  }
  get producerIndex(): number {
    return this._producerIndex;
  }
  get uses(): readonly Use[] {
    return this._uses;
  }
  /** The constant tensor when this value is an initializer. */
  get initializer(): Tensor | undefined {
    return this._initializer;
  }
  get sparseInitializer(): Msg | undefined {
    return this._sparse;
  }
  get isInitializer(): boolean {
    return this._initializer !== undefined;
  }
  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }
  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }
  /** Element type when known: from the type annotation or the initializer. */
  get dtype(): DType | undefined {
    if (this._initializer) return this._initializer.dtype;
    return this._type?.kind === 'tensor' ? this._type.dtype : undefined;
  }
  /** Shape when known: from the initializer or the type annotation. */
  get shape(): Shape | undefined {
    if (this._initializer) return this._initializer.dims;
    return this._type?.kind === 'tensor' ? this._type.shape : undefined;
  }
  toString(): string {
    return `%${this._name}`;
  }
}

/** The ops qcc's passes reason about. Every other op (any domain) is an `opaque` node and passes through untouched. */
export const KNOWN_OPS = [
  'Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'BatchNormalization', 'LayerNormalization',
  'Relu', 'Clip', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Gelu', 'Erf', 'Tanh', 'Softmax', 'LeakyRelu', 'PRelu',
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Neg', 'Abs', 'Exp', 'Log', 'Reciprocal', 'Max', 'Min',
  'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'Expand',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Resize', 'Upsample', 'Pad',
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2',
  'Cast', 'Shape', 'Constant', 'ConstantOfShape', 'Identity', 'Dropout', 'Where', 'Equal', 'Range', 'Tile',
  'QuantizeLinear', 'DequantizeLinear', 'ConvInteger', 'MatMulInteger', 'QLinearConv', 'QLinearMatMul',
  'If', 'Loop', 'Scan',
] as const;
export type KnownOp = (typeof KNOWN_OPS)[number];
export type Op = KnownOp | 'opaque';
const KNOWN_SET: ReadonlySet<string> = new Set(KNOWN_OPS);

/** The IR op for an ONNX (domain, op_type): known ops live in the default domain ('' or 'ai.onnx'). */
export function opOf(domain: string, opType: string): Op {
  return (domain === '' || domain === 'ai.onnx') && KNOWN_SET.has(opType) ? (opType as KnownOp) : 'opaque';
}

export class Node {
  /** @internal */ readonly _inputs: (Value | null)[] = [];
  /** @internal */ readonly _outputs: (Value | null)[] = [];
  /** @internal */ readonly _attrs = new Map<string, Attr>();
  /** @internal */ _graph: Graph | null = null;
  /** @internal */ _prev: Node | null = null;
  /** @internal */ _next: Node | null = null;
  /** @internal */ _name: string;
  /** NodeProto fields the IR does not model (doc_string, overload, metadata_props, device_configurations, unknown). */
  /** @internal */ _proto: Msg | undefined;
  readonly op: Op;

  constructor(
    readonly domain: string,
    readonly opType: string,
    name: string,
  ) {
    this.op = opOf(domain, opType);
    this._name = name;
  }

  get name(): string {
    return this._name;
  }
  /** Inputs in order; `null` is an omitted optional input (empty name in ONNX). */
  get inputs(): readonly (Value | null)[] {
    return this._inputs;
  }
  /** Outputs in order; `null` is an omitted optional output. */
  get outputs(): readonly (Value | null)[] {
    return this._outputs;
  }
  get attrs(): ReadonlyMap<string, Attr> {
    return this._attrs;
  }
  get graph(): Graph | null {
    return this._graph;
  }
  get next(): Node | null {
    return this._next;
  }
  get prev(): Node | null {
    return this._prev;
  }
  /** Input i, or undefined when absent or omitted. */
  input(i: number): Value | undefined {
    return this._inputs[i] ?? undefined;
  }
  output(i: number): Value | undefined {
    return this._outputs[i] ?? undefined;
  }

  attr(name: string): Attr | undefined {
    return this._attrs.get(name);
  }
  attrInt(name: string, dflt: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, dflt?: number): number | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return dflt;
    if (a.type !== 'int') throw badAttr(this, name, 'int', a.type);
    return int64ToNumber(a.value);
  }
  attrFloat(name: string, dflt: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, dflt?: number): number | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return dflt;
    if (a.type === 'int') return int64ToNumber(a.value);
    if (a.type !== 'float') throw badAttr(this, name, 'float', a.type);
    return a.value;
  }
  attrInts(name: string): number[] | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return undefined;
    if (a.type !== 'ints') throw badAttr(this, name, 'ints', a.type);
    return a.value.map(int64ToNumber);
  }
  attrFloats(name: string): readonly number[] | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return undefined;
    if (a.type !== 'floats') throw badAttr(this, name, 'floats', a.type);
    return a.value;
  }
  attrString(name: string, dflt: string): string;
  attrString(name: string): string | undefined;
  attrString(name: string, dflt?: string): string | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return dflt;
    if (a.type !== 'string') throw badAttr(this, name, 'string', a.type);
    return td.decode(a.value);
  }
  attrTensor(name: string): Tensor | undefined {
    const a = this._attrs.get(name);
    if (a === undefined) return undefined;
    if (a.type !== 'tensor') throw badAttr(this, name, 'tensor', a.type);
    return a.value;
  }
  /** Subgraphs held in graph / graphs attributes. */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this._attrs.values()) {
      if (a.type === 'graph') out.push(a.value);
      else if (a.type === 'graphs') out.push(...a.value);
    }
    return out;
  }
  /** The opset version of this node's domain in the enclosing model (0 if unknown). */
  get opsetVersion(): number {
    return this._graph?.model?.opsetImports.get(this.domain === 'ai.onnx' ? '' : this.domain) ?? 0;
  }
  toString(): string {
    return `${this.domain ? this.domain + '.' : ''}${this.opType}(${this._name})`;
  }
}

function badAttr(n: Node, name: string, want: string, got: string): QccError {
  return new QccError('E_MODEL_ATTRIBUTE', `attribute '${name}' is ${got}, expected ${want}`, { node: n.name });
}

export class Graph {
  /** @internal */ _first: Node | null = null;
  /** @internal */ _last: Node | null = null;
  /** @internal */ _nodeCount = 0;
  /** @internal */ readonly _inputs: Value[] = [];
  /** @internal */ readonly _outputs: Value[] = [];
  /** @internal */ readonly _initializers: Value[] = [];
  /** GraphProto fields the IR does not model (doc_string, quantization_annotation, metadata_props, unknown). */
  /** @internal */ _proto: Msg | undefined;
  /** @internal */ _model: Model | undefined;
  name: string;

  constructor(
    name: string,
    /** The node whose attribute holds this graph (null for the main graph). */
    readonly parent: Node | null = null,
  ) {
    this.name = name;
  }

  get model(): Model | undefined {
    if (this._model) return this._model;
    return this.parent?.graph?.model;
  }
  get inputs(): readonly Value[] {
    return this._inputs;
  }
  get outputs(): readonly Value[] {
    return this._outputs;
  }
  get initializers(): readonly Value[] {
    return this._initializers;
  }
  get nodeCount(): number {
    return this._nodeCount;
  }
  get first(): Node | null {
    return this._first;
  }

  /** Nodes in order. Safe against erasing the current node while iterating. */
  *nodes(): IterableIterator<Node> {
    let n = this._first;
    while (n) {
      const next = n._next;
      yield n;
      n = next;
    }
  }

  nodeArray(): Node[] {
    return [...this.nodes()];
  }

  /** This graph's nodes and, recursively, its subgraphs' nodes (pre-order). */
  *allNodes(): IterableIterator<Node> {
    for (const n of this.nodes()) {
      yield n;
      for (const g of n.subgraphs()) yield* g.allNodes();
    }
  }

  /** Every value defined in this graph: inputs, initializers, node outputs. */
  *values(): IterableIterator<Value> {
    const seen = new Set<Value>();
    for (const v of this._inputs) if (!seen.has(v)) (seen.add(v), yield v);
    for (const v of this._initializers) if (!seen.has(v)) (seen.add(v), yield v);
    for (const n of this.nodes()) for (const v of n._outputs) if (v && !seen.has(v)) (seen.add(v), yield v);
  }

  /** The value with this name defined here or in an enclosing graph. O(n): for tests and tools, not hot loops. */
  findValue(name: string): Value | undefined {
    for (const v of this.values()) if (v.name === name) return v;
    return this.parent?.graph?.findValue(name);
  }

  findNode(name: string): Node | undefined {
    for (const n of this.allNodes()) if (n.name === name) return n;
    return undefined;
  }
}

/** ModelProto-level data. */
export class Model {
  irVersion: Int64;
  /** domain ('' for ai.onnx) -> version, in file order. */
  readonly opsetImports: Map<string, number>;
  producerName: string | undefined;
  producerVersion: string | undefined;
  domain: string | undefined;
  modelVersion: Int64 | undefined;
  docString: string | undefined;
  readonly metadataProps: [string, string][];
  /** Model-local functions (FunctionProto), kept as read: not modelled by the IR, never dropped. */
  readonly functions: Msg[];
  /** ModelProto fields the IR does not model (training_info, configuration, unknown fields). */
  /** @internal */ _proto: Msg | undefined;
  /** Folder external data locations are relative to (set by the loader). */
  baseDir: string | undefined;

  constructor(
    readonly graph: Graph,
    init: { irVersion?: Int64; opsetImports?: Map<string, number>; producerName?: string; producerVersion?: string } = {},
  ) {
    this.irVersion = init.irVersion ?? 10;
    this.opsetImports = init.opsetImports ?? new Map([['', 21]]);
    this.producerName = init.producerName ?? 'qcc';
    this.producerVersion = init.producerVersion;
    this.domain = undefined;
    this.modelVersion = undefined;
    this.docString = undefined;
    this.metadataProps = [];
    this.functions = [];
    graph._model = this;
  }

  /** The default-domain opset version. */
  get opset(): number {
    return this.opsetImports.get('') ?? this.opsetImports.get('ai.onnx') ?? 0;
  }
}
