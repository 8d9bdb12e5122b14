// The bad-model corpus: each case builds one malformed ONNX file (Msg objects + byte surgery), its error code and location.

import type { ErrorCode } from '../../ir/errors.js';
import { encodeMessage, type Msg } from '../../ir/onnx/wire.js';

/** Location fields the QccError must carry, exactly (fields left out are not checked). */
export interface Where {
  readonly byteOffset?: number;
  readonly node?: string;
  readonly tensor?: string;
  readonly path?: string;
}

export interface Built {
  readonly bytes: Uint8Array;
  readonly at?: Where;
  /** The same file without the defect: it must decode and verify cleanly, so the error is the defect's own. */
  readonly twin?: Uint8Array;
}

export interface InvalidCase {
  /** File name under test/invalid/. */
  readonly file: string;
  readonly error: ErrorCode;
  readonly issue: string;
  /** What is wrong with the file (test name). */
  readonly what: string;
  build(): Built;
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level helpers (protobuf wire format)

/** Protobuf base-128 varint of a non-negative integer. */
export function varint(v: number | bigint): number[] {
  let x = BigInt(v);
  if (x < 0n) x &= 0xffffffffffffffffn;
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A top-level field of an encoded message: tag at `start`, payload [payloadStart, end). */
export interface FieldSpan {
  readonly id: number;
  readonly wire: number;
  readonly start: number;
  readonly payloadStart: number;
  readonly end: number;
}

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++]!;
    v += (x & 0x7f) * mul;
    mul *= 128;
    if (x < 0x80) return [v, pos];
  }
}

/** Splits well-formed message bytes into their top-level fields (test-side, independent of ir/onnx/wire.ts). */
export function topFields(b: Uint8Array): FieldSpan[] {
  const out: FieldSpan[] = [];
  let p = 0;
  while (p < b.length) {
    const start = p;
    const [tag, q] = readVarint(b, p);
    p = q;
    const wire = tag & 7;
    let payloadStart = p;
    if (wire === 0) p = readVarint(b, p)[1];
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const [len, r] = readVarint(b, p);
      payloadStart = r;
      p = r + len;
    } else throw new Error(`topFields: wire type ${wire}`);
    out.push({ id: Math.floor(tag / 8), wire, start, payloadStart, end: p });
  }
  return out;
}

export function field(b: Uint8Array, id: number): FieldSpan {
  const f = topFields(b).find((x) => x.id === id);
  if (!f) throw new Error(`no field #${id}`);
  return f;
}

/** Offset of `needle` in `hay` (exactly one occurrence required). */
export function find(hay: Uint8Array, needle: Uint8Array): number {
  const h = Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength);
  const at = h.indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength));
  if (at < 0 || h.indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength), at + 1) >= 0) throw new Error('find: needle must occur exactly once');
  return at;
}

/** Copy of `b` with the tag at `at` (a one-byte tag) given wire type `wire`. */
export function withWireType(b: Uint8Array, at: number, wire: number): Uint8Array {
  const out = Uint8Array.from(b);
  if (out[at]! >= 0x80) throw new Error('withWireType: one-byte tags only');
  out[at] = (out[at]! & ~7) | wire;
  return out;
}

/** Replaces the length prefix of the LEN field `f` (top level of `b`) by `len`, keeping its payload. */
export function withLength(b: Uint8Array, f: FieldSpan, len: number | bigint): Uint8Array {
  const [tag] = readVarint(b, f.start);
  return concat(b.subarray(0, f.start), varint(tag), varint(len), b.subarray(f.payloadStart));
}

/** Deterministic PRNG (mulberry32) for the random-bytes cases. */
export function prng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export function randomBytes(seed: number, n: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Message helpers (onnx.proto codes spelled out here, independent of ir/dtype.ts)

const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_GRAPH = 5;

const vi = (name: string, dims: number[] = [2]): Msg => ({ name, type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } } });
const node = (op_type: string, input: string[], output: string[], extra: Msg = {}): Msg => ({ input, output, name: extra.name ?? output[0], op_type, ...extra });
const model = (graph: Msg, extra: Msg = {}): Msg => ({ ir_version: 10, opset_import: [{ domain: '', version: 21 }], graph: { name: 'g', ...graph }, ...extra });
const enc = (m: Msg): Uint8Array => encodeMessage(m, 'ModelProto');
const f32 = (xs: number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);

/** y = Add(x, w) with initializer `w` (the tensor under test); `w` valid by default. */
function withInit(w: Msg): Msg {
  return model({ node: [node('Add', ['x', 'w'], ['y'])], initializer: [w], input: [vi('x')], output: [vi('y')] });
}
const goodW: Msg = { name: 'w', data_type: FLOAT, dims: [2], raw_data: f32([1, 2]) };

/** A tensor-level case: the bad tensor, its twin, and the location (tensor name + byte offset of its message). */
function tensorCase(bad: Msg, twin: Msg = goodW): Built {
  const bytes = enc(withInit(bad));
  return { bytes, at: { tensor: 'w', byteOffset: find(bytes, encodeMessage(bad, 'TensorProto')) }, twin: enc(withInit(twin)) };
}

/** A graph-level case: `graph(bad)` with the defect, `graph(false)` without. */
function graphCase(graph: (bad: boolean) => Msg, at: Where): Built {
  return { bytes: enc(model(graph(true))), at, twin: enc(model(graph(false))) };
}

/** Two chained Relus: the valid base of the wire-level cases. */
const chain = (): Msg => model({ node: [node('Relu', ['x'], ['h']), node('Relu', ['h'], ['y'])], input: [vi('x')], output: [vi('y')] });

/** The If node of the subgraph cases: then/else branches each run one node reading outer value `read`. */
function ifNode(read: string, out: string): Msg {
  const branch = (n: string): Msg => ({ name: n, node: [node('Identity', [read], [`${n}_y`])], output: [vi(`${n}_y`)] });
  return node('If', ['c'], [out], {
    attribute: [
      { name: 'then_branch', type: ATTR_GRAPH, g: branch('then') },
      { name: 'else_branch', type: ATTR_GRAPH, g: branch('else') },
    ],
  });
}
const cond: Msg = { name: 'c', type: { tensor_type: { elem_type: 9, shape: { dim: [] } } } };

/** `depth` messages nested graph > node > attribute > graph > ...; built inside out from one-level encodings. */
export function deeplyNested(depth: number): Uint8Array {
  // the path cycles GraphProto.node (1) -> NodeProto.attribute (5) -> AttributeProto.g (6) -> GraphProto ...
  const ids = [1, 5, 6];
  const leaf = encodeMessage({ op_type: 'Relu' }, 'NodeProto');
  // lengths from the inside out: level i wraps level i+1
  const tags: number[][] = [];
  let len = leaf.length;
  for (let i = depth - 1; i >= 0; i--) {
    const id = ids[i % 3]!;
    const prefix = [...varint((id << 3) | 2), ...varint(len)];
    tags.push(prefix);
    len += prefix.length;
  }
  tags.reverse();
  const graph = concat(...tags, leaf);
  const head = encodeMessage({ ir_version: 10, opset_import: [{ domain: '', version: 21 }] }, 'ModelProto');
  return concat(head, varint((7 << 3) | 2), varint(graph.length), graph);
}

const ISSUE = '#2';

export const CASES: readonly InvalidCase[] = [
  // ---- bytes that are not (whole) protobuf
  { file: 'empty.onnx', error: 'E_ONNX_EMPTY', issue: ISSUE, what: 'a zero-byte file', build: () => ({ bytes: new Uint8Array(0) }) },
  ...[1, 2, 3].map(
    (seed): InvalidCase => ({
      file: `random-bytes-${seed}.onnx`,
      error: 'E_ONNX_WIRE_TYPE',
      issue: ISSUE,
      what: `512 random bytes (mulberry32 seed ${seed})`,
      build: () => ({ bytes: randomBytes(seed, 512) }),
    }),
  ),
  {
    file: 'no-graph.onnx',
    error: 'E_ONNX_NOT_ONNX',
    issue: ISSUE,
    what: 'a ModelProto without a graph',
    build: () => {
      const m = chain();
      return { bytes: enc({ ...m, graph: undefined }), twin: enc(m) };
    },
  },
  {
    file: 'missing-opset-import.onnx',
    error: 'E_MODEL_OPSET',
    issue: ISSUE,
    what: 'IR version 10 without opset_import (also what a file cut right after its graph decodes to)',
    build: () => {
      const m = chain();
      return { bytes: enc({ ...m, opset_import: undefined }), at: { path: 'ModelProto.opset_import' }, twin: enc(m) };
    },
  },
  {
    file: 'opset-negative.onnx',
    error: 'E_MODEL_OPSET',
    issue: ISSUE,
    what: 'an opset_import entry with version -1',
    build: () => {
      const bytes = enc({ ...chain(), opset_import: [{ domain: '', version: -1 }] });
      return { bytes, at: { byteOffset: field(bytes, 8).payloadStart, path: 'ModelProto.opset_import' }, twin: enc(chain()) };
    },
  },

  // ---- wire types
  {
    file: 'wire-type-model-graph-varint.onnx',
    error: 'E_ONNX_WIRE_TYPE',
    issue: ISSUE,
    what: 'ModelProto.graph (#7, length-delimited) written with wire type varint',
    build: () => {
      const ok = enc(chain());
      const g = field(ok, 7);
      return { bytes: withWireType(ok, g.start, 0), at: { byteOffset: g.start, path: 'ModelProto.graph' }, twin: ok };
    },
  },
  {
    file: 'wire-type-tensor-dims-fixed32.onnx',
    error: 'E_ONNX_WIRE_TYPE',
    issue: ISSUE,
    what: 'TensorProto.dims (#1, varint) written with wire type fixed32',
    build: () => {
      const ok = enc(withInit(goodW));
      const t = find(ok, encodeMessage(goodW, 'TensorProto'));
      const at = t + field(encodeMessage(goodW, 'TensorProto'), 1).start;
      return { bytes: withWireType(ok, at, 5), at: { byteOffset: at, path: 'ModelProto.graph.initializer.dims' }, twin: ok };
    },
  },
  {
    file: 'wire-type-node-input-varint.onnx',
    error: 'E_ONNX_WIRE_TYPE',
    issue: ISSUE,
    what: 'NodeProto.input (#1, string) written with wire type varint',
    build: () => {
      const ok = enc(chain());
      const n = encodeMessage(node('Relu', ['h'], ['y']), 'NodeProto');
      const at = find(ok, n) + field(n, 1).start;
      return { bytes: withWireType(ok, at, 0), at: { byteOffset: at, path: 'ModelProto.graph.node.input' }, twin: ok };
    },
  },
  {
    file: 'wire-type-7.onnx',
    error: 'E_ONNX_WIRE_TYPE',
    issue: ISSUE,
    what: 'an unknown NodeProto field #20 with wire type 7 (no such wire type)',
    build: () => {
      const m = chain();
      const g = m.graph as Msg;
      const n = (g.node as Msg[])[1]!;
      const bad = { ...n, $unknown: [Uint8Array.from(varint((20 << 3) | 7))] };
      const bytes = enc({ ...m, graph: { ...g, node: [(g.node as Msg[])[0]!, bad] } });
      const at = find(bytes, encodeMessage(bad, 'NodeProto')) + encodeMessage(n, 'NodeProto').length + varint((20 << 3) | 7).length;
      return { bytes, at: { byteOffset: at }, twin: enc(m) };
    },
  },
  {
    file: 'field-number-zero.onnx',
    error: 'E_ONNX_WIRE_TYPE',
    issue: ISSUE,
    what: 'a GraphProto field with number 0',
    build: () => {
      const m = chain();
      const bad: Msg = { ...(m.graph as Msg), $unknown: [Uint8Array.from([0x02, 0x00])] };
      const bytes = enc({ ...m, graph: bad });
      return { bytes, at: { byteOffset: field(bytes, 7).end - 2, path: 'ModelProto.graph' }, twin: enc(m) };
    },
  },
  {
    file: 'varint-11-bytes.onnx',
    error: 'E_ONNX_VARINT',
    issue: ISSUE,
    what: 'ModelProto.ir_version as an 11-byte varint (the raw bytes are the point)',
    build: () => {
      const ok = enc(chain());
      const irv = field(ok, 1);
      return { bytes: concat([0x08, ...new Array<number>(10).fill(0xff), 0x01], ok.subarray(irv.end)), at: { byteOffset: 1, path: 'ModelProto.ir_version' }, twin: ok };
    },
  },

  // ---- absurd lengths
  {
    file: 'length-2pow31.onnx',
    error: 'E_ONNX_TRUNCATED',
    issue: ISSUE,
    what: 'ModelProto.graph declares 2^31 bytes',
    build: () => {
      const ok = enc(chain());
      const g = field(ok, 7);
      return { bytes: withLength(ok, g, 2 ** 31), at: { byteOffset: g.start, path: 'ModelProto.graph' }, twin: ok };
    },
  },
  {
    file: 'length-2pow32-wraps.onnx',
    error: 'E_ONNX_TRUNCATED',
    issue: ISSUE,
    what: 'ModelProto.graph declares 2^32 + its real length (must not wrap to the real length)',
    build: () => {
      const ok = enc(chain());
      const g = field(ok, 7);
      return { bytes: withLength(ok, g, 2 ** 32 + (g.end - g.payloadStart)), at: { byteOffset: g.start, path: 'ModelProto.graph' }, twin: ok };
    },
  },
  {
    file: 'length-2pow64.onnx',
    error: 'E_ONNX_TRUNCATED',
    issue: ISSUE,
    what: 'ModelProto.graph declares 2^64-1 bytes',
    build: () => {
      const ok = enc(chain());
      const g = field(ok, 7);
      return { bytes: withLength(ok, g, 0xffffffffffffffffn), at: { byteOffset: g.start, path: 'ModelProto.graph' }, twin: ok };
    },
  },
  {
    file: 'length-past-end-of-file.onnx',
    error: 'E_ONNX_TRUNCATED',
    issue: ISSUE,
    what: 'an initializer raw_data declares 16383 bytes in a file of a few hundred',
    build: () => {
      // 50 floats: a 2-byte length prefix (200), rewritten in place to 0xff 0x7f (16383) so no outer length changes
      const w: Msg = { name: 'w', data_type: FLOAT, dims: [50], raw_data: f32(new Array<number>(50).fill(1)) };
      const ok = enc(model({ node: [node('Add', ['x', 'w'], ['y'])], initializer: [w], input: [vi('x', [50])], output: [vi('y', [50])] }));
      const te = encodeMessage(w, 'TensorProto');
      const raw = field(te, 9);
      const at = find(ok, te) + raw.start;
      const bytes = Uint8Array.from(ok);
      bytes.set([0xff, 0x7f], at + 1);
      return { bytes, at: { byteOffset: at, path: 'ModelProto.graph.initializer.raw_data' }, twin: ok };
    },
  },
  {
    file: 'packed-floats-partial.onnx',
    error: 'E_ONNX_TRUNCATED',
    issue: ISSUE,
    what: 'packed float_data of 6 bytes (not a whole number of floats)',
    build: () => {
      const ok = enc(withInit({ name: 'w', data_type: FLOAT, dims: [2], float_data: [1, 2] }));
      const bad: Msg = { name: 'w', data_type: FLOAT, dims: [2], $unknown: [concat(varint((4 << 3) | 2), [6], f32([1]), [0, 0])] };
      return { bytes: enc(withInit(bad)), at: { path: 'ModelProto.graph.initializer.float_data' }, twin: ok };
    },
  },
  {
    file: 'nested-10000.onnx',
    error: 'E_ONNX_NESTING',
    issue: ISSUE,
    what: '10,000 nested messages (graph > node > attribute > graph ...)',
    build: () => ({ bytes: deeplyNested(10_000), twin: deeplyNested(30) }),
  },

  // ---- dims and sizes
  { file: 'dim-negative.onnx', error: 'E_MODEL_DIM', issue: ISSUE, what: 'an initializer with dims [-1]', build: () => tensorCase({ ...goodW, dims: [-1] }) },
  { file: 'dim-int64-max.onnx', error: 'E_MODEL_DIM', issue: ISSUE, what: 'an initializer with dims [2^63-1]', build: () => tensorCase({ ...goodW, dims: [9223372036854775807n] }) },
  {
    file: 'dims-2pow41-elements.onnx',
    error: 'E_MODEL_TOO_LARGE',
    issue: ISSUE,
    what: 'dims [2^20, 2^20, 2] (2^41 elements) over 8 bytes of raw_data',
    build: () => tensorCase({ ...goodW, dims: [2 ** 20, 2 ** 20, 2] }),
  },
  {
    file: 'dims-2pow40-plus-1-elements.onnx',
    error: 'E_MODEL_TOO_LARGE',
    issue: ISSUE,
    what: 'dims [2^40 + 1] with no data at all',
    build: () => tensorCase({ name: 'w', data_type: FLOAT, dims: [2 ** 40 + 1] }),
  },
  {
    file: 'dims-2pow40-elements-8-bytes.onnx',
    error: 'E_MODEL_DATA_SIZE',
    issue: ISSUE,
    what: 'dims [2^40] (at the element limit) over 8 bytes of raw_data: a size mismatch, not an allocation',
    build: () => tensorCase({ ...goodW, dims: [2 ** 40] }),
  },
  {
    file: 'dims-product-overflows.onnx',
    error: 'E_MODEL_TOO_LARGE',
    issue: ISSUE,
    what: '24 dims of 2^53-1 (the product is not even a finite double)',
    build: () => tensorCase({ ...goodW, dims: new Array<number>(24).fill(2 ** 53 - 1) }),
  },
  {
    file: 'external-2pow41-elements.onnx',
    error: 'E_MODEL_TOO_LARGE',
    issue: ISSUE,
    what: 'an external tensor declaring 2^41 elements (refused before the data file is looked at)',
    build: () =>
      tensorCase({ name: 'w', data_type: FLOAT, dims: [2 ** 41], data_location: 1, external_data: [{ key: 'location', value: 'w.bin' }, { key: 'length', value: String(2 ** 43) }] }),
  },

  // ---- data present vs dims
  { file: 'raw-data-size.onnx', error: 'E_MODEL_DATA_SIZE', issue: ISSUE, what: 'dims [2, 3] of float over 20 bytes of raw_data', build: () => tensorCase({ ...goodW, dims: [2, 3], raw_data: new Uint8Array(20) }, { ...goodW, dims: [2, 3], raw_data: new Uint8Array(24) }) },
  {
    file: 'float-data-count.onnx',
    error: 'E_MODEL_DATA_SIZE',
    issue: ISSUE,
    what: 'dims [4] with 3 float_data values',
    build: () => tensorCase({ name: 'w', data_type: FLOAT, dims: [4], float_data: [1, 2, 3] }, { name: 'w', data_type: FLOAT, dims: [4], float_data: [1, 2, 3, 4] }),
  },
  {
    file: 'int64-data-count.onnx',
    error: 'E_MODEL_DATA_SIZE',
    issue: ISSUE,
    what: 'dims [2] of int64 with 5 int64_data values',
    build: () => {
      const shape = (w: Msg): Uint8Array => enc(model({ node: [node('Reshape', ['x', 'w'], ['y'])], initializer: [w], input: [vi('x')], output: [vi('y', [1, 2])] }));
      const bad: Msg = { name: 'w', data_type: INT64, dims: [2], int64_data: [1, 2, 3, 4, 5] };
      const bytes = shape(bad);
      return { bytes, at: { tensor: 'w', byteOffset: find(bytes, encodeMessage(bad, 'TensorProto')) }, twin: shape({ ...bad, int64_data: [1, 2] }) };
    },
  },
  {
    file: 'external-length-mismatch.onnx',
    error: 'E_MODEL_DATA_SIZE',
    issue: ISSUE,
    what: 'an external tensor of 2 floats whose length says 9 bytes',
    build: () => tensorCase({ name: 'w', data_type: FLOAT, dims: [2], data_location: 1, external_data: [{ key: 'location', value: 'w.bin' }, { key: 'length', value: '9' }] }),
  },
  { file: 'dtype-unknown.onnx', error: 'E_MODEL_DTYPE', issue: ISSUE, what: 'an initializer with data_type 999', build: () => tensorCase({ ...goodW, data_type: 999 }) },
  { file: 'dtype-undefined.onnx', error: 'E_MODEL_DTYPE', issue: ISSUE, what: 'an initializer with data_type 0 (UNDEFINED)', build: () => tensorCase({ ...goodW, data_type: 0 }) },

  // ---- attributes
  ...(
    [
      ['attribute-no-type.onnx', 'an attribute with neither a type nor a value', [{ name: 'alpha' }]],
      ['attribute-unknown-type.onnx', 'an attribute with type code 99', [{ name: 'alpha', type: 99, f: 0.5 }]],
      ['attribute-twice.onnx', 'the same attribute twice on one node', [{ name: 'alpha', type: ATTR_FLOAT, f: 0.5 }, { name: 'alpha', type: ATTR_FLOAT, f: 0.25 }]],
    ] as const
  ).map(
    ([file, what, attrs]): InvalidCase => ({
      file,
      error: 'E_MODEL_ATTRIBUTE',
      issue: ISSUE,
      what,
      build: () =>
        graphCase((bad) => ({ node: [node('LeakyRelu', ['x'], ['y'], { name: 'lrelu', attribute: bad ? [...attrs] : [{ name: 'alpha', type: ATTR_FLOAT, f: 0.5 }] })], input: [vi('x')], output: [vi('y')] }), {
          node: 'lrelu',
        }),
    }),
  ),

  // ---- graph structure
  {
    file: 'cycle-two-nodes.onnx',
    error: 'E_MODEL_CYCLE',
    issue: ISSUE,
    what: 'a = Add(x, b), b = Relu(a)',
    build: () =>
      graphCase((bad) => ({ node: [node('Add', ['x', bad ? 'b' : 'x'], ['a']), node('Relu', ['a'], ['b'])], input: [vi('x')], output: [vi('b')] }), { node: 'a' }),
  },
  {
    file: 'cycle-self-loop.onnx',
    error: 'E_MODEL_CYCLE',
    issue: ISSUE,
    what: 'a node reading its own output: y = Add(x, y)',
    build: () => graphCase((bad) => ({ node: [node('Add', ['x', bad ? 'y' : 'x'], ['y'])], input: [vi('x')], output: [vi('y')] }), { node: 'y' }),
  },
  {
    file: 'cycle-through-subgraph.onnx',
    error: 'E_MODEL_CYCLE',
    issue: ISSUE,
    what: "an If whose branches read 'b', and b = Relu(the If's output)",
    build: () =>
      graphCase((bad) => ({ node: [ifNode(bad ? 'b' : 'x', 'r'), node('Relu', ['r'], ['b'])], input: [vi('x'), cond], output: [vi('b')] }), { node: 'r' }),
  },
  {
    file: 'duplicate-producer-nodes.onnx',
    error: 'E_MODEL_DUPLICATE_PRODUCER',
    issue: ISSUE,
    what: "two nodes both producing 'y'",
    build: () =>
      graphCase((bad) => ({ node: [node('Relu', ['x'], ['y'], { name: 'r1' }), node('Sigmoid', ['x'], [bad ? 'y' : 'z'], { name: 'r2' })], input: [vi('x')], output: [vi('y')] }), {
        node: 'r2',
        tensor: 'y',
      }),
  },
  {
    file: 'duplicate-producer-graph-input.onnx',
    error: 'E_MODEL_DUPLICATE_PRODUCER',
    issue: ISSUE,
    what: "a node output named like graph input 'x'",
    build: () => graphCase((bad) => ({ node: [node('Relu', ['x'], [bad ? 'x' : 'y'], { name: 'r' })], input: [vi('x')], output: [vi(bad ? 'x' : 'y')] }), { node: 'r', tensor: 'x' }),
  },
  {
    file: 'duplicate-initializer.onnx',
    error: 'E_MODEL_DUPLICATE_PRODUCER',
    issue: ISSUE,
    what: "two initializers named 'w'",
    build: () => {
      const g = (bad: boolean): Msg => ({ node: [node('Add', ['x', 'w'], ['y'])], initializer: bad ? [goodW, { ...goodW, raw_data: f32([3, 4]) }] : [goodW], input: [vi('x')], output: [vi('y')] });
      return graphCase(g, { tensor: 'w' });
    },
  },
  {
    file: 'dangling-node-input.onnx',
    error: 'E_MODEL_DANGLING_INPUT',
    issue: ISSUE,
    what: "a node reading 'ghost', which nothing defines",
    build: () => graphCase((bad) => ({ node: [node('Add', ['x', bad ? 'ghost' : 'x'], ['y'], { name: 'add' })], input: [vi('x')], output: [vi('y')] }), { node: 'add' }),
  },
  {
    file: 'dangling-graph-output.onnx',
    error: 'E_MODEL_DANGLING_INPUT',
    issue: ISSUE,
    what: "graph output 'ghost', which nothing defines",
    build: () => graphCase((bad) => ({ node: [node('Relu', ['x'], ['y'])], input: [vi('x')], output: [vi(bad ? 'ghost' : 'y')] }), { tensor: 'ghost' }),
  },
  {
    file: 'dangling-subgraph-input.onnx',
    error: 'E_MODEL_DANGLING_INPUT',
    issue: ISSUE,
    what: "If branches reading 'ghost', which no enclosing graph defines",
    build: () => graphCase((bad) => ({ node: [ifNode(bad ? 'ghost' : 'x', 'r')], input: [vi('x'), cond], output: [vi('r')] }), { node: 'then_y' }),
  },

  // ---- external data locations (refused before the file system is touched)
  ...(
    [
      ['external-dotdot.onnx', "external location '../../etc/passwd'", '../../etc/passwd'],
      ['external-absolute.onnx', "external location '/etc/passwd'", '/etc/passwd'],
      ['external-backslash-dotdot.onnx', "external location '..\\\\..\\\\secret.bin'", '..\\..\\secret.bin'],
      ['external-nul.onnx', 'external location with a NUL byte', 'w.bin\0.txt'],
      ['external-no-location.onnx', 'external data with no location entry', undefined],
    ] as const
  ).map(
    ([file, what, location]): InvalidCase => ({
      file,
      error: 'E_EXTERNAL_PATH',
      issue: ISSUE,
      what,
      build: () => {
        const entries = [...(location === undefined ? [] : [{ key: 'location', value: location }]), { key: 'length', value: '8' }];
        const w: Msg = { name: 'w', data_type: FLOAT, dims: [2], data_location: 1, external_data: entries };
        const bytes = enc(withInit(w));
        return { bytes, at: { tensor: 'w', byteOffset: find(bytes, encodeMessage(w, 'TensorProto')) } };
      },
    }),
  ),
];
