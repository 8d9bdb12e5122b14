// ONNX reader/writer: every TensorProto data type and storage field, sparse/function/subgraph/metadata/unknown-field round trips, lazy views.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { attr, sym, Tensor, type Graph, type Model, type Value } from '../../ir/ir.js';
import { decodeModel, loadModel } from '../../ir/onnx/reader.js';
import { encodeModel, encodeModelChunks } from '../../ir/onnx/writer.js';
import { decodeMessage, encodeMessage, type Msg } from '../../ir/onnx/wire.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { verify } from '../../ir/verify.js';
import { ortResultsIdentical } from '../util/conformance.js';
import { ATTR, bytesEqual, hex, le, modelBytes, modelMsg, node, ONNX, roundTrip, utf8, vi } from '../util/onnx-msg.js';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;
const UINT64_MAX = 18446744073709551615n;

/** Runs ONNX bytes in ORT (optimizations off) and returns the named output. */
async function ortRun(bytes: Uint8Array, feeds: Record<string, ort.Tensor> = {}): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(bytes, { optimization: 'disabled', intraOpThreads: 1 });
  try {
    return await run(s, feeds);
  } finally {
    await s.release();
  }
}

/** ORT outputs of the original bytes and of the round-tripped bytes: bit-identical; returns them. */
async function sameInOrt(orig: Uint8Array, out: Uint8Array, feeds: Record<string, ort.Tensor> = {}): Promise<Record<string, ort.Tensor>> {
  const a = await ortRun(orig, feeds);
  const b = await ortRun(out, feeds);
  assert.ok(ortResultsIdentical(a, b), 'ORT outputs differ between original and round-tripped model');
  return a;
}

function initializer(m: Msg, i = 0): Msg {
  return ((m.graph as Msg).initializer as Msg[])[i]!;
}

const f32 = (xs: number[]): ort.Tensor => new ort.Tensor('float32', Float32Array.from(xs), [xs.length]);
const u16le = (xs: number[]): number[] => [...le(Uint16Array.from(xs))];

// ---------------------------------------------------------------------------------------------------------------
// Every data type in raw_data and (where ONNX allows) int32_data; ORT's Cast is the independent decoder.

interface DTypeCase {
  readonly onnx: keyof typeof ONNX;
  readonly dtype: DType;
  readonly dims: number[];
  readonly raw: number[];
  /** int32_data form (ONNX: one element per int32; 4- and 2-bit types: one packed byte per int32). */
  readonly int32?: number[];
  /** Values ORT's Cast to float gives (hand-computed from the format definitions). */
  readonly expect?: number[];
  /** Opset needed for ORT to accept the type (default 21). */
  readonly opset?: number;
}

const DTYPE_CASES: DTypeCase[] = [
  { onnx: 'FLOAT16', dtype: 'f16', dims: [3], raw: u16le([0x3c00, 0xc000, 0x7bff]), int32: [0x3c00, 0xc000, 0x7bff], expect: [1, -2, 65504] },
  { onnx: 'BFLOAT16', dtype: 'bf16', dims: [3], raw: u16le([0x3f80, 0xc040, 0x3fc0]), int32: [0x3f80, 0xc040, 0x3fc0], expect: [1, -3, 1.5] },
  // E4M3FN bias 7: 0x38 = 1, 0xc0 = -2, 0x7e = 1.75 * 2^8 = 448 (max)
  { onnx: 'FLOAT8E4M3FN', dtype: 'fp8e4m3', dims: [3], raw: [0x38, 0xc0, 0x7e], int32: [0x38, 0xc0, 0x7e], expect: [1, -2, 448] },
  // E4M3FNUZ bias 8: 0x40 = 1, 0xc8 = -2, 0x7f = 1.875 * 2^7 = 240 (max)
  { onnx: 'FLOAT8E4M3FNUZ', dtype: 'fp8e4m3fnuz', dims: [3], raw: [0x40, 0xc8, 0x7f], int32: [0x40, 0xc8, 0x7f], expect: [1, -2, 240] },
  // E5M2 bias 15: 0x3c = 1, 0xc0 = -2, 0x7b = 1.75 * 2^15 = 57344 (max)
  { onnx: 'FLOAT8E5M2', dtype: 'fp8e5m2', dims: [3], raw: [0x3c, 0xc0, 0x7b], int32: [0x3c, 0xc0, 0x7b], expect: [1, -2, 57344] },
  // E5M2FNUZ bias 16: 0x40 = 1, 0xc4 = -2, 0x7f = 1.75 * 2^15 = 57344 (max)
  { onnx: 'FLOAT8E5M2FNUZ', dtype: 'fp8e5m2fnuz', dims: [3], raw: [0x40, 0xc4, 0x7f], int32: [0x40, 0xc4, 0x7f], expect: [1, -2, 57344] },
  // E8M0: 2^(code - 127)
  { onnx: 'FLOAT8E8M0', dtype: 'fp8e8m0', dims: [3], raw: [127, 128, 120], int32: [127, 128, 120], expect: [1, 2, 2 ** -7], opset: 25 },
  // 4-bit: element 0 in the low nibble. UINT4 [1,15,0,7,9] -> 0xf1 0x70 0x09; INT4 [1,-2,7,-8,-1] -> 0xe1 0x87 0x0f
  { onnx: 'UINT4', dtype: 'u4', dims: [5], raw: [0xf1, 0x70, 0x09], int32: [0xf1, 0x70, 0x09], expect: [1, 15, 0, 7, 9] },
  { onnx: 'INT4', dtype: 'i4', dims: [5], raw: [0xe1, 0x87, 0x0f], int32: [0xe1, 0x87, 0x0f], expect: [1, -2, 7, -8, -1] },
  // FLOAT4E2M1 codes 2 (1.0), 1 (0.5), 15 (-6): no ORT kernel reads it, checked structurally
  { onnx: 'FLOAT4E2M1', dtype: 'fp4e2m1', dims: [3], raw: [0x12, 0x0f], int32: [0x12, 0x0f] },
  // 2-bit: element 0 in the low bits. UINT2 [0,1,2,3,3] -> 0xe4 0x03; INT2 [0,1,-2,-1,-2] -> 0xe4 0x02
  { onnx: 'UINT2', dtype: 'u2', dims: [5], raw: [0xe4, 0x03], int32: [0xe4, 0x03], expect: [0, 1, 2, 3, 3], opset: 25 },
  { onnx: 'INT2', dtype: 'i2', dims: [5], raw: [0xe4, 0x02], int32: [0xe4, 0x02], expect: [0, 1, -2, -1, -2], opset: 25 },
  { onnx: 'BOOL', dtype: 'bool', dims: [3], raw: [1, 0, 1], int32: [1, 0, 1], expect: [1, 0, 1] },
  { onnx: 'UINT8', dtype: 'u8', dims: [3], raw: [255, 0, 7], int32: [255, 0, 7], expect: [255, 0, 7] },
  { onnx: 'INT8', dtype: 'i8', dims: [3], raw: [0x80, 0x7f, 0xff], int32: [-128, 127, -1], expect: [-128, 127, -1] },
  { onnx: 'UINT16', dtype: 'u16', dims: [2], raw: u16le([65535, 1]), int32: [65535, 1], expect: [65535, 1] },
  { onnx: 'INT16', dtype: 'i16', dims: [2], raw: [...le(Int16Array.from([-32768, 32767]))], int32: [-32768, 32767], expect: [-32768, 32767] },
  { onnx: 'INT32', dtype: 'i32', dims: [3], raw: [...le(Int32Array.from([-2147483648, 2147483647, -1]))], int32: [-2147483648, 2147483647, -1], expect: [-2147483648, 2147483647, -1] },
  { onnx: 'UINT32', dtype: 'u32', dims: [2], raw: [...le(Uint32Array.from([4294967295, 3]))], expect: [4294967296, 3] },
  { onnx: 'INT64', dtype: 'i64', dims: [2], raw: [...le(BigInt64Array.from([INT64_MIN, 5n]))], expect: [-9223372036854775808, 5] },
  { onnx: 'UINT64', dtype: 'u64', dims: [2], raw: [...le(BigUint64Array.from([UINT64_MAX, 5n]))], expect: [18446744073709551616, 5] },
  { onnx: 'FLOAT', dtype: 'f32', dims: [3], raw: [...le(Float32Array.from([1.5, -0, -Infinity]))], expect: [1.5, -0, -Infinity] },
  { onnx: 'DOUBLE', dtype: 'f64', dims: [2], raw: [...le(Float64Array.from([0.1, -2]))], expect: [0.1, -2] },
  // complex: interleaved (re, im); ORT has no kernels for them
  { onnx: 'COMPLEX64', dtype: 'c64', dims: [2], raw: [...le(Float32Array.from([1, 2, 3, 4]))] },
  { onnx: 'COMPLEX128', dtype: 'c128', dims: [1], raw: [...le(Float64Array.from([1.5, -2.5]))] },
];

/** A model: initializer w (the case's tensor) -> Cast(to FLOAT) -> y; or w itself as the output when ORT cannot read it. */
function dtypeModel(c: DTypeCase, data: Msg): Uint8Array {
  const w: Msg = { dims: c.dims, data_type: ONNX[c.onnx], name: 'w', ...data };
  const opset = c.opset ?? 21;
  const extra = { ir_version: opset >= 25 ? 12 : 10, opset_import: [{ domain: '', version: opset }] };
  if (c.expect === undefined) return modelBytes({ initializer: [w], output: [vi('w', ONNX[c.onnx], c.dims)] }, extra);
  return modelBytes({ node: [node('Cast', ['w'], ['y'], { attribute: [{ name: 'to', type: ATTR.INT, i: ONNX.FLOAT }] })], initializer: [w], output: [vi('y', ONNX.FLOAT, c.dims)] }, extra);
}

async function checkCastInOrt(c: DTypeCase, orig: Uint8Array, out: Uint8Array): Promise<void> {
  if (c.expect === undefined) return;
  const r = await sameInOrt(orig, out);
  assert.deepEqual([...(r.y!.data as Float32Array)], c.expect.map((x) => Math.fround(x)));
}

describe('every TensorProto data type', () => {
  test('the table covers every data type ONNX defines', () => {
    const covered = new Set(DTYPE_CASES.map((c) => ONNX[c.onnx]));
    const missing = Object.entries(ONNX).filter(([k, v]) => !covered.has(v) && k !== 'STRING').map(([k]) => k);
    assert.deepEqual(missing, []); // STRING has its own test (no raw_data form)
  });

  for (const c of DTYPE_CASES) {
    test(`${c.onnx} in raw_data: exact bytes through decode -> encode${c.expect ? ', ORT reads the same values' : ''}`, async () => {
      const raw = Uint8Array.from(c.raw);
      const bytes = dtypeModel(c, { raw_data: raw });
      const { m, out, m2 } = roundTrip(bytes);
      for (const model of [m, m2]) {
        const t = model.graph.initializers[0]!.initializer!;
        assert.equal(t.dtype, c.dtype);
        assert.deepEqual(t.dims, c.dims);
        assert.equal(t.data.kind, 'raw');
        assert.equal(hex(t.bytes()), hex(raw));
      }
      assert.ok(bytesEqual(out, bytes), 'canonical input re-encodes byte-for-byte');
      const w = initializer(decodeMessage(out, 'ModelProto'));
      assert.equal(w.data_type, ONNX[c.onnx]);
      assert.equal(hex(w.raw_data as Uint8Array), hex(raw));
      await checkCastInOrt(c, bytes, out);
    });

    if (c.int32) {
      test(`${c.onnx} in int32_data: field kept, bytes() gives the raw layout${c.expect ? ', ORT reads the same values' : ''}`, async () => {
        const bytes = dtypeModel(c, { int32_data: c.int32 });
        const { m, out } = roundTrip(bytes);
        const t = m.graph.initializers[0]!.initializer!;
        assert.equal(t.dtype, c.dtype);
        assert.deepEqual(t.data, { kind: 'fields', field: 'int32_data', values: c.int32 });
        assert.equal(hex(t.bytes()), hex(Uint8Array.from(c.raw)));
        assert.ok(bytesEqual(out, bytes));
        assert.deepEqual(initializer(decodeMessage(out, 'ModelProto')).int32_data, c.int32);
        await checkCastInOrt(c, bytes, out);
      });
    }

    test(`${c.onnx} from GraphBuilder: encodes as raw_data with data_type ${ONNX[c.onnx]}`, async () => {
      const opset = c.opset ?? 21;
      const b = new GraphBuilder('g', { opset, irVersion: opset >= 25 ? 12 : 10 });
      const w = b.init('w', c.dtype, c.dims, Uint8Array.from(c.raw));
      b.output(c.expect ? b.op('Cast', [w], { attrs: { to: ONNX.FLOAT } }) : w);
      const m = b.build();
      const bytes = encodeModel(m);
      const msg = decodeMessage(bytes, 'ModelProto');
      const t = initializer(msg);
      assert.equal(t.data_type, ONNX[c.onnx]);
      assert.deepEqual(t.dims, c.dims);
      assert.equal(hex(t.raw_data as Uint8Array), hex(Uint8Array.from(c.raw)));
      const { out } = roundTrip(bytes);
      assert.ok(bytesEqual(out, bytes));
      if (c.expect) {
        const r = await sameInOrt(bytes, out);
        assert.deepEqual([...(Object.values(r)[0]!.data as Float32Array)], c.expect.map((x) => Math.fround(x)));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Typed repeated fields other than int32_data

describe('typed fields: float_data, int64_data, double_data, uint64_data, string_data', () => {
  const nanBits = 0x7fc12345; // a quiet NaN with a payload
  const floats = new Float32Array(Uint32Array.from([0x3fc00000, 0x80000000, 0x7f800000, nanBits, 0x00000001]).buffer); // 1.5, -0, inf, NaN, min subnormal
  const doubles = [0.1, -0, 1e308, -Infinity, 5e-324];
  const cases: { name: string; code: number; dims: number[]; field: string; values: (number | bigint)[]; raw: Uint8Array; ortType?: string }[] = [
    { name: 'FLOAT float_data', code: ONNX.FLOAT, dims: [5], field: 'float_data', values: [...floats], raw: le(floats), ortType: 'float32' },
    { name: 'COMPLEX64 float_data (re, im pairs)', code: ONNX.COMPLEX64, dims: [2], field: 'float_data', values: [1, 2, 3, 4], raw: le(Float32Array.from([1, 2, 3, 4])) },
    { name: 'DOUBLE double_data', code: ONNX.DOUBLE, dims: [5], field: 'double_data', values: doubles, raw: le(Float64Array.from(doubles)), ortType: 'float64' },
    { name: 'COMPLEX128 double_data', code: ONNX.COMPLEX128, dims: [1], field: 'double_data', values: [0.5, -0.25], raw: le(Float64Array.from([0.5, -0.25])) },
    {
      name: 'INT64 int64_data beyond 2^53',
      code: ONNX.INT64,
      dims: [6],
      field: 'int64_data',
      values: [INT64_MAX, INT64_MIN, -1, 9007199254740993n, 9007199254740991, 0],
      raw: le(BigInt64Array.from([INT64_MAX, INT64_MIN, -1n, 9007199254740993n, 9007199254740991n, 0n])),
      ortType: 'int64',
    },
    { name: 'UINT64 uint64_data', code: ONNX.UINT64, dims: [4], field: 'uint64_data', values: [UINT64_MAX, 9223372036854775808n, 9007199254740993n, 1], raw: le(BigUint64Array.from([UINT64_MAX, 2n ** 63n, 9007199254740993n, 1n])), ortType: 'uint64' },
    { name: 'UINT32 uint64_data', code: ONNX.UINT32, dims: [3], field: 'uint64_data', values: [4294967295, 0, 7], raw: le(Uint32Array.from([4294967295, 0, 7])), ortType: 'uint32' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const w = { name: 'w', dims: c.dims, data_type: c.code, [c.field]: c.values };
      const bytes = modelBytes({ node: c.ortType ? [node('Identity', ['w'], ['y'])] : [], initializer: [w], output: [c.ortType ? vi('y', c.code, c.dims) : vi('w', c.code, c.dims)] });
      const { m, m2, out } = roundTrip(bytes);
      for (const model of [m, m2]) {
        const t = model.graph.initializers[0]!.initializer!;
        assert.equal(t.data.kind, 'fields');
        assert.equal(t.data.kind === 'fields' && t.data.field, c.field);
        assert.deepEqual(t.data.kind === 'fields' && t.data.values, c.values); // deepEqual: Object.is, so -0 and NaN are exact
        assert.equal(hex(t.bytes()), hex(c.raw));
      }
      assert.ok(bytesEqual(out, bytes));
      assert.deepEqual(initializer(decodeMessage(out, 'ModelProto'))[c.field], c.values);
      if (c.ortType) {
        const r = await sameInOrt(bytes, out);
        assert.equal(r.y!.type, c.ortType);
        assert.equal(hex(le(r.y!.data as ArrayBufferView)), hex(c.raw)); // ORT read the same bits we wrote
      }
    });
  }

  test('STRING string_data, including bytes that are not UTF-8', async () => {
    const values = [utf8(''), utf8('héllo ∑'), Uint8Array.from([0xff, 0xfe, 0x00])];
    const bytes = modelBytes({ initializer: [{ name: 'w', dims: [3], data_type: ONNX.STRING, string_data: values }], output: [vi('w', ONNX.STRING, [3])] });
    const { m, out } = roundTrip(bytes);
    const t = m.graph.initializers[0]!.initializer!;
    assert.equal(t.dtype, 'string');
    assert.deepEqual(t.strings().map(hex), values.map(hex));
    assert.ok(bytesEqual(out, bytes));
    // ORT: a UTF-8 string tensor through Identity
    const ok = modelBytes({ node: [node('Identity', ['w'], ['y'])], initializer: [{ name: 'w', dims: [2], data_type: ONNX.STRING, string_data: values.slice(0, 2) }], output: [vi('y', ONNX.STRING, [2])] });
    const r = await sameInOrt(ok, roundTrip(ok).out);
    assert.deepEqual(r.y!.data, ['', 'héllo ∑']);
  });

  test('empty tensors and scalars', () => {
    const bytes = modelBytes({
      initializer: [
        { name: 'e', dims: [0, 3], data_type: ONNX.FLOAT },
        { name: 's', dims: [], data_type: ONNX.INT64, int64_data: [-7] },
        { name: 'r', dims: [], data_type: ONNX.FLOAT, raw_data: le(Float32Array.from([2.5])) },
      ],
      output: [vi('e', ONNX.FLOAT, [0, 3]), vi('s', ONNX.INT64, []), vi('r', ONNX.FLOAT, [])],
    });
    const { m, out } = roundTrip(bytes);
    const [e, s, r] = m.graph.initializers.map((v) => v.initializer!);
    assert.deepEqual([e!.dims, e!.size, e!.bytes().length], [[0, 3], 0, 0]);
    assert.deepEqual([s!.dims, [...(s!.typed() as BigInt64Array)]], [[], [-7n]]);
    assert.deepEqual([...(r!.typed() as Float32Array)], [2.5]);
    assert.ok(bytesEqual(out, bytes));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Sparse initializers, model-local functions, subgraphs

test('sparse initializer survives and ORT densifies it the same way', async () => {
  const sparse = {
    values: { name: 'sp', dims: [2], data_type: ONNX.FLOAT, float_data: [5, 7] },
    indices: { name: 'sp_idx', dims: [2], data_type: ONNX.INT64, int64_data: [1, 4] },
    dims: [2, 3],
  };
  const bytes = modelBytes({ node: [node('Add', ['x', 'sp'], ['y'])], sparse_initializer: [sparse], input: [vi('x', ONNX.FLOAT, [2, 3])], output: [vi('y', ONNX.FLOAT, [2, 3])] });
  const { m, out } = roundTrip(bytes);
  const sp = m.graph.nodeArray()[0]!.inputs[1]!; // values() lists inputs, initializers and node outputs, not sparse initializers
  assert.equal(sp.isInitializer, false);
  assert.deepEqual(sp.sparseInitializer?.dims, [2, 3]);
  assert.deepEqual(sp.uses.map((u) => [u.node.opType, u.index]), [['Add', 1]]);
  assert.ok(bytesEqual(out, bytes));
  const written = ((decodeMessage(out, 'ModelProto').graph as Msg).sparse_initializer as Msg[])[0]!;
  assert.deepEqual([written.dims, (written.values as Msg).float_data, (written.indices as Msg).int64_data], [[2, 3], [5, 7], [1, 4]]);
  const x = new ort.Tensor('float32', Float32Array.from([1, 1, 1, 1, 1, 1]), [2, 3]);
  const r = await sameInOrt(bytes, out, { x });
  assert.deepEqual([...(r.y!.data as Float32Array)], [1, 6, 1, 1, 8, 1]);
});

test('model-local function: kept as written, ORT calls it the same way', async () => {
  const fn: Msg = {
    name: 'AddMul',
    domain: 'local.fn',
    input: ['a', 'b'],
    output: ['c'],
    node: [node('Add', ['a', 'b'], ['t']), node('Mul', ['t', 'b'], ['c'])],
    opset_import: [{ domain: '', version: 21 }],
    doc_string: '(a + b) * b',
  };
  const bytes = encodeMessage(
    modelMsg(
      { node: [node('AddMul', ['x', 'y'], ['z'], { domain: 'local.fn' })], input: [vi('x', ONNX.FLOAT, [3]), vi('y', ONNX.FLOAT, [3])], output: [vi('z', ONNX.FLOAT, [3])] },
      { opset_import: [{ domain: '', version: 21 }, { domain: 'local.fn', version: 1 }], functions: [fn] },
    ),
    'ModelProto',
  );
  const { m, out } = roundTrip(bytes);
  assert.equal(m.functions.length, 1);
  assert.equal(m.functions[0]!.name, 'AddMul');
  assert.equal(m.opsetImports.get('local.fn'), 1);
  const call = m.graph.nodeArray()[0]!;
  assert.deepEqual([call.op, call.domain, call.opType], ['opaque', 'local.fn', 'AddMul']);
  assert.ok(bytesEqual(out, bytes));
  const r = await sameInOrt(bytes, out, { x: f32([1, 2, 3]), y: f32([10, 20, 30]) });
  assert.deepEqual([...(r.z!.data as Float32Array)], [110, 440, 990]);
});

describe('subgraphs capture outer values', () => {
  // outer: x (input), w (initializer), k (initializer)
  const outer = {
    input: [vi('cond', ONNX.BOOL, []), vi('x', ONNX.FLOAT, [3])],
    initializer: [
      { name: 'w', dims: [3], data_type: ONNX.FLOAT, raw_data: le(Float32Array.from([1, 2, 3])) },
      { name: 'k', dims: [], data_type: ONNX.FLOAT, float_data: [10] },
      { name: 'trip', dims: [], data_type: ONNX.INT64, int64_data: [3] },
    ],
  };
  const ifNode = node('If', ['cond'], ['y_if'], {
    attribute: [
      { name: 'then_branch', type: ATTR.GRAPH, g: { name: 'then', node: [node('Add', ['x', 'w'], ['t_out'])], output: [vi('t_out', ONNX.FLOAT, [3])] } },
      { name: 'else_branch', type: ATTR.GRAPH, g: { name: 'else', node: [node('Sub', ['x', 'w'], ['e_out'])], output: [vi('e_out', ONNX.FLOAT, [3])] } },
    ],
  });
  // Loop: v <- v + w, three times
  const loopNode = node('Loop', ['trip', '', 'x'], ['y_loop'], {
    attribute: [
      {
        name: 'body',
        type: ATTR.GRAPH,
        g: {
          name: 'body',
          input: [vi('i', ONNX.INT64, []), vi('c_in', ONNX.BOOL, []), vi('v_in', ONNX.FLOAT, [3])],
          node: [node('Identity', ['c_in'], ['c_out']), node('Add', ['v_in', 'w'], ['v_out'])],
          output: [vi('c_out', ONNX.BOOL, []), vi('v_out', ONNX.FLOAT, [3])],
        },
      },
    ],
  });
  // Scan over x (running sum s), scan output s * k
  const scanNode = node('Scan', ['k', 'x'], ['s_final', 'ys'], {
    attribute: [
      { name: 'num_scan_inputs', type: ATTR.INT, i: 1 },
      {
        name: 'body',
        type: ATTR.GRAPH,
        g: {
          name: 'scan_body',
          input: [vi('s_in', ONNX.FLOAT, []), vi('x_t', ONNX.FLOAT, [])],
          node: [node('Add', ['s_in', 'x_t'], ['s_out']), node('Mul', ['s_out', 'k'], ['y_t'])],
          output: [vi('s_out', ONNX.FLOAT, []), vi('y_t', ONNX.FLOAT, [])],
        },
      },
    ],
  });
  const bytes = modelBytes({
    ...outer,
    node: [ifNode, loopNode, scanNode],
    output: [vi('y_if', ONNX.FLOAT, [3]), vi('y_loop', ONNX.FLOAT, [3]), vi('s_final', ONNX.FLOAT, []), vi('ys', ONNX.FLOAT, [3])],
  });

  test('IR: subgraph nodes use the outer Value objects, and those values list the uses', () => {
    const { m } = roundTrip(bytes);
    assert.deepEqual(verify(m), []);
    const x = m.graph.inputs[1]!;
    const w = m.graph.findValue('w')!;
    const k = m.graph.findValue('k')!;
    const [ifN, loopN, scanN] = m.graph.nodeArray();
    const thenAdd = ifN!.attrs.get('then_branch')!.value as Graph;
    const tAdd = thenAdd.nodeArray()[0]!;
    assert.equal(thenAdd.parent, ifN);
    assert.equal(tAdd.inputs[0], x);
    assert.equal(tAdd.inputs[1], w);
    const body = (loopN!.attr('body')!.value as Graph).nodeArray()[1]!;
    assert.equal(body.inputs[1], w);
    const scanMul = (scanN!.attr('body')!.value as Graph).nodeArray()[1]!;
    assert.equal(scanMul.inputs[1], k);
    const users = (v: Value): string[] => v.uses.map((u) => `${u.node.graph!.name}/${u.node.opType}#${u.index}`).sort();
    assert.deepEqual(users(w), ['body/Add#1', 'else/Sub#1', 'then/Add#1']);
    assert.deepEqual(users(x), ['else/Sub#0', 'g/Loop#2', 'g/Scan#1', 'then/Add#0']);
    assert.deepEqual(users(k), ['g/Scan#0', 'scan_body/Mul#1']);
  });

  test('round trip is byte-identical and ORT computes the same (and the right) values', async () => {
    const { out } = roundTrip(bytes);
    assert.ok(bytesEqual(out, bytes));
    for (const c of [true, false]) {
      const feeds = { cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []), x: f32([1, 2, 3]) };
      const r = await sameInOrt(bytes, out, feeds);
      assert.deepEqual([...(r.y_if!.data as Float32Array)], c ? [2, 4, 6] : [0, 0, 0]);
      assert.deepEqual([...(r.y_loop!.data as Float32Array)], [4, 8, 12]);
      assert.deepEqual([...(r.s_final!.data as Float32Array)], [16]);
      assert.deepEqual([...(r.ys!.data as Float32Array)], [110, 130, 160]);
    }
  });

  test('a subgraph value shadowing an outer name refers to the inner value', () => {
    const shadow = modelBytes({
      input: [vi('cond', ONNX.BOOL, []), vi('x', ONNX.FLOAT, [1])],
      node: [
        node('If', ['cond'], ['y'], {
          attribute: [
            { name: 'then_branch', type: ATTR.GRAPH, g: { name: 't', node: [node('Neg', ['x'], ['x_inner']), node('Abs', ['x_inner'], ['o'])], output: [vi('o', ONNX.FLOAT, [1])] } },
            { name: 'else_branch', type: ATTR.GRAPH, g: { name: 'e', node: [node('Identity', ['x'], ['o2'])], output: [vi('o2', ONNX.FLOAT, [1])] } },
          ],
        }),
      ],
      output: [vi('y', ONNX.FLOAT, [1])],
    });
    const { m, out } = roundTrip(shadow);
    const t = m.graph.nodeArray()[0]!.attr('then_branch')!.value as Graph;
    const [neg, abs] = t.nodeArray();
    assert.equal(abs!.inputs[0], neg!.outputs[0]);
    assert.equal(neg!.inputs[0], m.graph.inputs[1]);
    assert.ok(bytesEqual(out, shadow));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Metadata, doc strings, value_info, unknown fields, unknown ops

test('metadata_props and doc strings at every level survive', () => {
  const md = (k: string): Msg[] => [{ key: `${k}.key`, value: `${k} value` }];
  const bytes = encodeMessage(
    modelMsg(
      {
        doc_string: 'graph doc',
        metadata_props: md('graph'),
        input: [{ ...vi('x', ONNX.FLOAT, [2]), doc_string: 'input doc', metadata_props: md('input') }],
        output: [{ ...vi('y', ONNX.FLOAT, [2]), doc_string: 'output doc' }],
        value_info: [{ ...vi('t', ONNX.FLOAT, [2]), doc_string: 'value_info doc', metadata_props: md('vi') }],
        initializer: [{ name: 'w', dims: [2], data_type: ONNX.FLOAT, float_data: [1, 2], doc_string: 'tensor doc', metadata_props: md('tensor') }],
        node: [
          node('Add', ['x', 'w'], ['t'], { name: 'add', doc_string: 'node doc', metadata_props: md('node') }),
          node('LeakyRelu', ['t'], ['y'], { name: 'lrelu', attribute: [{ name: 'alpha', type: ATTR.FLOAT, f: 0.25, doc_string: 'attribute doc' }] }),
        ],
        quantization_annotation: [{ tensor_name: 't', quant_parameter_tensor_names: [{ key: 'SCALE_TENSOR', value: 'w' }] }],
      },
      {
        producer_name: 'hand',
        producer_version: '1.0',
        domain: 'com.example',
        model_version: 42,
        doc_string: 'model doc',
        metadata_props: md('model'),
        training_info: [{ initialization_binding: [{ key: 'a', value: 'b' }] }],
      },
    ),
    'ModelProto',
  );
  const { m, out } = roundTrip(bytes);
  assert.deepEqual([m.producerName, m.producerVersion, m.domain, m.modelVersion, m.docString], ['hand', '1.0', 'com.example', 42, 'model doc']);
  assert.deepEqual(m.metadataProps, [['model.key', 'model value']]);
  assert.equal(m.graph.initializers[0]!.initializer!.proto?.doc_string, 'tensor doc');
  assert.ok(bytesEqual(out, bytes), 'every doc string and metadata entry is written back in place');
});

test('value_info: symbolic dims, unknown dims, denotations; IR shapes', () => {
  const x: Msg = {
    name: 'x',
    type: {
      tensor_type: { elem_type: ONNX.FLOAT, shape: { dim: [{ dim_param: 'N', denotation: 'DATA_BATCH' }, { dim_value: 3, denotation: 'DATA_CHANNEL' }, {}] } },
      denotation: 'TENSOR',
    },
  };
  const bytes = modelBytes({
    input: [x],
    node: [node('Relu', ['x'], ['r']), node('Identity', ['r'], ['y'])],
    value_info: [vi('r', ONNX.FLOAT, ['N', 3, null])],
    output: [vi('y', ONNX.FLOAT, ['N', 3, 'W'])],
  });
  const { m, out } = roundTrip(bytes);
  const shape = (name: string) => {
    const t = m.graph.findValue(name)!.type;
    return t?.kind === 'tensor' ? [t.dtype, t.shape] : undefined;
  };
  assert.deepEqual(shape('x'), ['f32', [sym('N'), 3, sym(null)]]);
  assert.deepEqual(shape('r'), ['f32', [sym('N'), 3, sym(null)]]);
  assert.deepEqual(shape('y'), ['f32', [sym('N'), 3, sym('W')]]);
  assert.ok(bytesEqual(out, bytes));
  const xi = ((decodeMessage(out, 'ModelProto').graph as Msg).input as Msg[])[0]!;
  assert.equal((xi.type as Msg).denotation, 'TENSOR');
  const dims = ((((xi.type as Msg).tensor_type as Msg).shape as Msg).dim as Msg[]).map((d) => [d.dim_value, d.dim_param, d.denotation]);
  assert.deepEqual(dims, [[undefined, 'N', 'DATA_BATCH'], [3, undefined, 'DATA_CHANNEL'], [undefined, undefined, undefined]]);
});

test('value_info entries that repeat a graph input or output do not override its declaration', async () => {
  const bytes = modelBytes({
    input: [{ ...vi('x', ONNX.FLOAT, ['N', 3]), doc_string: 'input doc' }],
    node: [node('Relu', ['x'], ['y'])],
    value_info: [vi('x', ONNX.FLOAT, [1, 3]), vi('y', ONNX.FLOAT, [7, 3])],
    output: [{ ...vi('y', ONNX.FLOAT, ['N', 3]), doc_string: 'output doc' }],
  });
  const { m, out } = roundTrip(bytes);
  assert.deepEqual(m.graph.inputs[0]!.type, { kind: 'tensor', dtype: 'f32', shape: [sym('N'), 3] });
  assert.deepEqual(m.graph.outputs[0]!.type, { kind: 'tensor', dtype: 'f32', shape: [sym('N'), 3] });
  const g = decodeMessage(out, 'ModelProto').graph as Msg;
  const decl = (v: Msg) => [v.name, v.doc_string, ((((v.type as Msg).tensor_type as Msg).shape as Msg).dim as Msg[]).map((d) => d.dim_value ?? d.dim_param)];
  assert.deepEqual((g.input as Msg[]).map(decl), [['x', 'input doc', ['N', 3]]]);
  assert.deepEqual((g.output as Msg[]).map(decl), [['y', 'output doc', ['N', 3]]]);
  // still runs with a batch of 2 (a [1,3] input declaration would make ORT refuse it)
  const r = await sameInOrt(bytes, out, { x: new ort.Tensor('float32', Float32Array.from([-1, 2, -3, 4, -5, 6]), [2, 3]) });
  assert.deepEqual([...(r.y!.data as Float32Array)], [0, 2, 0, 4, 0, 6]);
});

describe('unknown fields survive byte-for-byte', () => {
  // records of fields no ONNX version defines, one per wire type
  const varint = Uint8Array.from([0xc8, 0x3e, 0xac, 0x02]); // field 1001, varint 300
  const fixed64 = Uint8Array.from([0xd1, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8]); // field 1002, fixed64
  const len = Uint8Array.from([0xda, 0x3e, 5, ...utf8('hello')]); // field 1003, length-delimited
  const fixed32 = Uint8Array.from([0xe5, 0x3e, 9, 8, 7, 6]); // field 1004, fixed32
  const records = [varint, fixed64, len, fixed32];
  const unk = (i: number): Uint8Array[] => [records[i % 4]!];

  test('appended to a ModelProto file', () => {
    const base = modelBytes({ input: [vi('x', ONNX.FLOAT, [1])], node: [node('Relu', ['x'], ['y'])], output: [vi('y', ONNX.FLOAT, [1])] });
    for (const r of records) {
      const bytes = Buffer.concat([base, r]);
      const { out } = roundTrip(bytes);
      assert.equal(hex(out), hex(bytes));
    }
  });

  test('inside every nested message type', async () => {
    const tensorType = (dims: number[], i: number): Msg => ({ tensor_type: { elem_type: ONNX.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d, $unknown: unk(i) })), $unknown: unk(i + 1) }, $unknown: unk(i + 2) }, $unknown: unk(i + 3) });
    const msg = modelMsg(
      {
        input: [{ name: 'x', type: tensorType([2], 0), $unknown: unk(1) }],
        output: [{ name: 'y', type: tensorType([2], 1), $unknown: unk(2) }],
        value_info: [{ name: 't', type: tensorType([2], 2), $unknown: unk(3) }],
        initializer: [{ name: 'w', dims: [2], data_type: ONNX.FLOAT, raw_data: le(Float32Array.from([1, 2])), $unknown: unk(0) }],
        sparse_initializer: [{ values: { name: 'sp', dims: [1], data_type: ONNX.FLOAT, float_data: [3], $unknown: unk(1) }, indices: { name: 'i', dims: [1], data_type: ONNX.INT64, int64_data: [0] }, dims: [2], $unknown: unk(2) }],
        node: [
          node('Add', ['x', 'w'], ['t'], { name: 'add', $unknown: unk(3) }),
          node('Add', ['t', 'sp'], ['u'], { name: 'add2' }),
          node('LeakyRelu', ['u'], ['y'], { name: 'lrelu', attribute: [{ name: 'alpha', type: ATTR.FLOAT, f: 0.5, $unknown: unk(0) }] }),
        ],
        metadata_props: [{ key: 'k', value: 'v', $unknown: unk(1) }],
        $unknown: unk(2),
      },
      { opset_import: [{ domain: '', version: 21, $unknown: unk(3) }], $unknown: unk(0) },
    );
    const bytes = encodeMessage(msg, 'ModelProto');
    for (const r of records) assert.ok(Buffer.from(bytes).includes(Buffer.from(r)));
    const { out } = roundTrip(bytes);
    assert.equal(hex(out), hex(bytes));
    const r = await sameInOrt(bytes, out, { x: f32([1, 1]) });
    assert.deepEqual([...(r.y!.data as Float32Array)], [5, 3]);
  });

  test('inside a Constant tensor attribute and a subgraph', () => {
    const bytes = modelBytes({
      input: [vi('c', ONNX.BOOL, [])],
      node: [
        node('Constant', [], ['k'], { attribute: [{ name: 'value', type: ATTR.TENSOR, t: { dims: [1], data_type: ONNX.FLOAT, float_data: [2], $unknown: unk(0) } }] }),
        node('If', ['c'], ['y'], {
          attribute: [
            { name: 'then_branch', type: ATTR.GRAPH, g: { name: 't', node: [node('Identity', ['k'], ['a'], { $unknown: unk(1) })], output: [vi('a', ONNX.FLOAT, [1])], $unknown: unk(2) } },
            { name: 'else_branch', type: ATTR.GRAPH, g: { name: 'e', node: [node('Neg', ['k'], ['b'])], output: [vi('b', ONNX.FLOAT, [1])] } },
          ],
        }),
      ],
      output: [vi('y', ONNX.FLOAT, [1])],
    });
    const { out } = roundTrip(bytes);
    assert.equal(hex(out), hex(bytes));
  });
});

test('unknown domains and ops pass through with every attribute kind', () => {
  const sub: Msg = { name: 'inner', node: [node('Gizmo', ['x'], ['z'], { domain: 'com.example.custom' })], output: [vi('z', ONNX.FLOAT, [2])] };
  const attrs: Msg[] = [
    { name: 'f', type: ATTR.FLOAT, f: -0 },
    { name: 'i', type: ATTR.INT, i: INT64_MAX },
    { name: 'i_min', type: ATTR.INT, i: INT64_MIN },
    { name: 's', type: ATTR.STRING, s: Uint8Array.from([0xff, 0x00, 0x41]) },
    { name: 't', type: ATTR.TENSOR, t: { dims: [2], data_type: ONNX.INT4, raw_data: Uint8Array.from([0x7f]) } },
    { name: 'g', type: ATTR.GRAPH, g: sub },
    { name: 'floats', type: ATTR.FLOATS, floats: [1.5, -0, Infinity] },
    { name: 'ints', type: ATTR.INTS, ints: [-1, INT64_MIN, 9007199254740993n, 0] },
    { name: 'strings', type: ATTR.STRINGS, strings: [utf8('a'), utf8('')] },
    { name: 'tensors', type: ATTR.TENSORS, tensors: [{ dims: [1], data_type: ONNX.FLOAT16, int32_data: [0x3c00] }] },
    { name: 'graphs', type: ATTR.GRAPHS, graphs: [sub] },
    { name: 'sparse', type: ATTR.SPARSE_TENSOR, sparse_tensor: { values: { dims: [1], data_type: ONNX.FLOAT, float_data: [1] }, indices: { dims: [1], data_type: ONNX.INT64, int64_data: [0] }, dims: [4] } },
    { name: 'tp', type: ATTR.TYPE_PROTO, tp: { sequence_type: { elem_type: { tensor_type: { elem_type: ONNX.FLOAT } } } } },
    { name: 'empty_ints', type: ATTR.INTS },
  ];
  const bytes = encodeMessage(
    modelMsg(
      { input: [vi('x', ONNX.FLOAT, [2])], node: [node('Frobnicate', ['x', '', 'x'], ['y', '', 'y2'], { name: 'frob', domain: 'com.example.custom', attribute: attrs, doc_string: 'custom' })], output: [vi('y', ONNX.FLOAT, ['N']), vi('y2', ONNX.UINT8, [])] },
      { opset_import: [{ domain: '', version: 21 }, { domain: 'com.example.custom', version: 3 }] },
    ),
    'ModelProto',
  );
  const { m, out } = roundTrip(bytes);
  const n = m.graph.findNode('frob')!;
  assert.deepEqual([n.op, n.domain, n.opType], ['opaque', 'com.example.custom', 'Frobnicate']);
  assert.deepEqual(n.inputs.map((v) => v?.name ?? null), ['x', null, 'x']);
  assert.deepEqual(n.outputs.map((v) => v?.name ?? null), ['y', null, 'y2']);
  assert.deepEqual([...n.attrs.keys()], attrs.map((a) => a.name));
  assert.ok(Object.is(n.attrFloat('f'), -0));
  assert.deepEqual(n.attr('i'), attr.int(INT64_MAX));
  assert.deepEqual(n.attr('i_min'), attr.int(INT64_MIN));
  assert.deepEqual(n.attr('ints')?.value, [-1, INT64_MIN, 9007199254740993n, 0]);
  assert.equal(hex((n.attr('s')!.value as Uint8Array)), 'ff0041');
  assert.equal(n.attrTensor('t')?.dtype, 'i4');
  assert.deepEqual((n.attr('tensors')!.value as Tensor[])[0]!.typed(), Uint16Array.from([0x3c00]));
  assert.equal(m.opsetImports.get('com.example.custom'), 3);
  assert.ok(bytesEqual(out, bytes));
});

/** Replaces the one occurrence of `from` in `bytes` (asserts there is exactly one). */
function patch(bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  const b = Buffer.from(bytes);
  const i = b.indexOf(from);
  assert.ok(i >= 0 && b.indexOf(from, i + 1) < 0, `pattern ${hex(from)} occurs exactly once`);
  const out = Uint8Array.from(b);
  out.set(to, i);
  return out;
}
const u32le = (x: number): Uint8Array => le(Uint32Array.from([x]));
const u64le = (x: bigint): Uint8Array => le(BigUint64Array.from([x]));

test('signaling NaNs (which a JS number cannot hold) keep their bits in float_data, double_data and float attributes', async () => {
  // placeholders with unique encodings, patched to signaling NaNs in the bytes (a JS number would quiet them)
  const base = modelBytes({
    input: [vi('x', ONNX.FLOAT, [2])],
    initializer: [
      { name: 'w', dims: [3], data_type: ONNX.FLOAT, float_data: [1.25, 3, 2.75] },
      { name: 'd', dims: [2], data_type: ONNX.DOUBLE, double_data: [1.125, 7] },
    ],
    node: [
      node('Add', ['x', 'x'], ['s']),
      node('Op', ['s'], ['z'], { domain: 'x.y', attribute: [{ name: 'a', type: ATTR.FLOAT, f: 5.5 }, { name: 'b', type: ATTR.FLOATS, floats: [6.5, 0] }] }),
    ],
    output: [vi('w', ONNX.FLOAT, [3]), vi('d', ONNX.DOUBLE, [2]), vi('z', ONNX.FLOAT, [2])],
  });
  let bytes = patch(base, u32le(0x3fa00000), u32le(0x7f800001)); // 1.25 -> sNaN
  bytes = patch(bytes, u32le(0x40300000), u32le(0xff80abcd)); // 2.75 -> negative sNaN with payload
  bytes = patch(bytes, u64le(0x3ff2000000000000n), u64le(0x7ff0000000000001n)); // 1.125 -> double sNaN
  bytes = patch(bytes, u32le(0x40b00000), u32le(0x7f800002)); // attribute f 5.5 -> sNaN
  bytes = patch(bytes, u32le(0x40d00000), u32le(0xff800003)); // attribute floats[0] 6.5 -> sNaN
  const { m, out } = roundTrip(bytes);
  assert.equal(hex(out), hex(bytes));
  const w = m.graph.findValue('w')!.initializer!;
  assert.equal(hex(w.bytes()), hex(le(Uint32Array.from([0x7f800001, 0x40400000, 0xff80abcd]))), 'Tensor.bytes() has the signaling NaNs too');
  const d = m.graph.findValue('d')!.initializer!;
  assert.equal(hex(d.bytes()), hex(le(BigUint64Array.from([0x7ff0000000000001n, 0x401c000000000000n]))));
});

test('attributes: float sign and NaN payload, int64 extremes', () => {
  const nan = new Float32Array(Uint32Array.from([0x7fc00abc]).buffer)[0]!;
  const bytes = modelBytes({
    input: [vi('x', ONNX.FLOAT, [1])],
    node: [node('Op', ['x'], ['y'], { domain: 'x.y', attribute: [{ name: 'a', type: ATTR.FLOAT, f: nan }, { name: 'b', type: ATTR.FLOATS, floats: [nan, -0] }, { name: 'c', type: ATTR.INTS, ints: [INT64_MAX, INT64_MIN] }] })],
    output: [vi('y', ONNX.FLOAT, [1])],
  });
  const { out } = roundTrip(bytes);
  assert.equal(hex(out), hex(bytes));
});

test('initializers listed as graph inputs (IR < 4 style) stay both', async () => {
  const bytes = modelBytes(
    {
      input: [vi('x', ONNX.FLOAT, [2]), vi('w', ONNX.FLOAT, [2])],
      initializer: [{ name: 'w', dims: [2], data_type: ONNX.FLOAT, float_data: [3, 4] }],
      node: [node('Mul', ['x', 'w'], ['y'])],
      output: [vi('y', ONNX.FLOAT, [2])],
    },
    { ir_version: 3, opset_import: [{ domain: '', version: 9 }] },
  );
  const { m, out } = roundTrip(bytes);
  const w = m.graph.findValue('w')!;
  assert.ok(m.graph.inputs.includes(w) && w.isInitializer);
  assert.ok(bytesEqual(out, bytes));
  const r = await sameInOrt(bytes, out, { x: f32([1, 2]) });
  assert.deepEqual([...(r.y!.data as Float32Array)], [3, 8]);
});

test('nodes in non-topological file order are reordered, and the result runs the same', async () => {
  const bytes = modelBytes({
    input: [vi('x', ONNX.FLOAT, [2])],
    node: [node('Neg', ['a'], ['y'], { name: 'second' }), node('Relu', ['x'], ['a'], { name: 'first' })],
    output: [vi('y', ONNX.FLOAT, [2])],
  });
  const { m, out } = roundTrip(bytes);
  assert.deepEqual(m.graph.nodeArray().map((n) => n.name), ['first', 'second']);
  const r = await sameInOrt(bytes, out, { x: f32([-1, 2]) });
  assert.deepEqual([...(r.y!.data as Float32Array)], [-0, -2]);
});

test('unnamed nodes stay unnamed; renamed ones are written with their new name', () => {
  const bytes = modelBytes({ input: [vi('x', ONNX.FLOAT, [1])], node: [node('Relu', ['x'], ['a']), node('Neg', ['a'], ['y'], { name: '' })], output: [vi('y', ONNX.FLOAT, [1])] });
  const { m, out } = roundTrip(bytes);
  const names = m.graph.nodeArray().map((n) => n.name);
  assert.equal(new Set(names).size, 2, 'the IR names every node, uniquely');
  assert.ok(bytesEqual(out, bytes));
  const nodes = ((decodeMessage(out, 'ModelProto').graph as Msg).node as Msg[]).map((n) => n.name);
  assert.deepEqual(nodes, [undefined, '']);
});

// ---------------------------------------------------------------------------------------------------------------
// GraphBuilder models and lazy views

function builtModel(): Model {
  const b = new GraphBuilder('net', { opset: 17 });
  const x = b.input('x', 'f32', [sym('N'), 2, 4, 4]);
  const w = b.f32('w', [3, 2, 3, 3], Array.from({ length: 54 }, (_, i) => Math.sin(i)));
  const bias = b.f32('bias', [3], [0.1, -0.2, 0.3]);
  const c = b.op('Conv', [x, w, bias], { name: 'conv', attrs: { pads: [1, 1, 1, 1], strides: [1, 1], kernel_shape: [3, 3] } });
  const r = b.op('Relu', [c], { name: 'relu' });
  const shape = b.i64('shape', [0, -1]);
  const f = b.op('Reshape', [r, shape], { name: 'flat' });
  b.output(f);
  const m = b.build();
  m.docString = 'built by GraphBuilder';
  m.metadataProps.push(['author', 'qcc tests']);
  return m;
}

test('GraphBuilder model: encode -> decode gives the same graph, values and ORT outputs', async () => {
  const m = builtModel();
  const bytes = encodeModel(m);
  const { m: m2, out } = roundTrip(bytes);
  assert.ok(bytesEqual(out, bytes));
  const sig = (mm: Model) => mm.graph.nodeArray().map((n) => [n.name, n.opType, n.inputs.map((v) => v?.name), n.outputs.map((v) => v?.name), [...n.attrs.entries()].map(([k, a]) => [k, a.type, a.value])]);
  assert.deepEqual(sig(m2), sig(m));
  for (const v of m.graph.initializers) {
    const t2 = m2.graph.findValue(v.name)!.initializer!;
    assert.equal(t2.dtype, v.initializer!.dtype);
    assert.deepEqual(t2.dims, v.initializer!.dims);
    assert.equal(hex(t2.bytes()), hex(v.initializer!.bytes()));
  }
  assert.deepEqual(m2.graph.inputs[0]!.type, m.graph.inputs[0]!.type);
  assert.deepEqual([m2.docString, m2.metadataProps, m2.opset], ['built by GraphBuilder', [['author', 'qcc tests']], 17]);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)), [2, 2, 4, 4]);
  const r = await sameInOrt(bytes, out, { x });
  assert.deepEqual(Object.values(r)[0]!.dims, [2, 48]);
});

describe('lazy views: tensor payloads alias the loaded buffer', () => {
  test('decodeModel: raw_data initializers and Constant tensors are views into the input bytes', () => {
    const w = Float32Array.from({ length: 256 }, (_, i) => i);
    const bytes = modelBytes({
      input: [vi('x', ONNX.FLOAT, [256])],
      initializer: [{ name: 'w', dims: [256], data_type: ONNX.FLOAT, raw_data: le(w) }],
      node: [node('Constant', [], ['k'], { attribute: [{ name: 'value', type: ATTR.TENSOR, t: { dims: [256], data_type: ONNX.FLOAT, raw_data: le(w) } }] }), node('Add', ['x', 'w'], ['a']), node('Add', ['a', 'k'], ['y'])],
      output: [vi('y', ONNX.FLOAT, [256])],
    });
    const m = decodeModel(bytes);
    const wt = m.graph.initializers[0]!.initializer!;
    const kt = m.graph.nodeArray()[0]!.attrTensor('value')!;
    for (const t of [wt, kt]) {
      const b = t.bytes();
      assert.equal(b.buffer, bytes.buffer, 'same ArrayBuffer as the input');
      assert.equal(hex(bytes.subarray(b.byteOffset - bytes.byteOffset, b.byteOffset - bytes.byteOffset + b.length)), hex(le(w)));
    }
    assert.notEqual(wt.bytes().byteOffset, kt.bytes().byteOffset);
    // writing into the input is visible through the tensor: no copy was made
    const off = wt.bytes().byteOffset - bytes.byteOffset;
    bytes[off] = 0x7f;
    assert.equal(wt.bytes()[0], 0x7f);
  });

  test('loadModel: every raw initializer is a view into the one file buffer; typed() aliases it when aligned', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-lazy-'));
    try {
      const file = path.join(dir, 'm.onnx');
      // a larger weight so the file is not read into Node's shared small-buffer pool
      const b = new GraphBuilder('big');
      const x = b.input('x', 'f32', [4096]);
      const big = b.f32('big', [4096], Array.from({ length: 4096 }, (_, i) => i / 7));
      const small = b.f32('small', [4096], Array.from({ length: 4096 }, (_, i) => -i));
      b.output(b.op('Add', [b.op('Mul', [x, big]), small]));
      fs.writeFileSync(file, encodeModel(b.build()));
      const file2 = fs.readFileSync(file);
      const loaded = loadModel(file);
      const views = loaded.graph.initializers.map((v) => v.initializer!.bytes());
      assert.equal(views.length, 2);
      const buf = views[0]!.buffer;
      assert.ok(views.every((v) => v.buffer === buf), 'all payloads share one ArrayBuffer');
      assert.ok(buf.byteLength >= file2.length);
      // the ArrayBuffer is the file as read, and each view sits exactly where its raw_data is in the file
      const whole = Buffer.from(buf, 0, file2.length);
      assert.ok(whole.equals(file2), 'the ArrayBuffer holds the file bytes');
      for (const v of views) assert.equal(file2.indexOf(Buffer.from(v.buffer, v.byteOffset, v.byteLength)), v.byteOffset);
      const t = loaded.graph.findValue('big')!.initializer!;
      const typed = t.typed() as Float32Array;
      assert.equal(typed[7], 1);
      if (t.bytes().byteOffset % 4 === 0) assert.equal(typed.buffer, buf);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('encode aliases large payloads instead of copying them into the output', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', [8192]);
    const w = b.f32('w', [8192], new Float32Array(8192).fill(1.25));
    b.output(b.op('Add', [x, w]));
    const m = b.build();
    const payload = m.graph.initializers[0]!.initializer!.bytes();
    const { chunks } = encodeModelChunks(m);
    assert.ok(chunks.some((c) => c === payload), 'the initializer bytes are one of the output chunks');
  });
});
