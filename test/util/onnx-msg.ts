// Test helper: hand-made ONNX messages (ModelProto as plain Msg objects), encoded with the wire codec, and round-trip checks.

import assert from 'node:assert/strict';
import type { Model } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { encodeMessage, type Msg } from '../../ir/onnx/wire.js';

/** ONNX TensorProto.DataType codes, spelled as in onnx.proto (independent of ir/dtype.ts on purpose). */
export const ONNX = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11,
  UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16, FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20, UINT4: 21, INT4: 22, FLOAT4E2M1: 23, FLOAT8E8M0: 24, UINT2: 25, INT2: 26,
} as const;

/** AttributeProto.AttributeType codes. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, TYPE_PROTO: 13 } as const;

const te = new TextEncoder();
export const utf8 = (s: string): Uint8Array => te.encode(s);

/** A ValueInfoProto for a tensor; string dims are dim_param, null an unknown dim. */
export function vi(name: string, elemType: number, dims?: readonly (number | string | null)[]): Msg {
  const tt: Msg = { elem_type: elemType };
  if (dims) tt.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : d === null ? {} : { dim_param: d })) };
  return { name, type: { tensor_type: tt } };
}

export function node(opType: string, input: string[], output: string[], extra: Msg = {}): Msg {
  return { input, output, op_type: opType, ...extra };
}

/** A ModelProto message around `graph` (opset 21, IR 10 unless overridden). */
export function modelMsg(graph: Msg, extra: Msg = {}): Msg {
  return { ir_version: 10, opset_import: [{ domain: '', version: 21 }], graph: { name: 'g', ...graph }, ...extra };
}

export function modelBytes(graph: Msg, extra: Msg = {}): Uint8Array {
  return encodeMessage(modelMsg(graph, extra), 'ModelProto');
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** decode -> encode -> decode -> encode; asserts the second encoding equals the first (fixed point). */
export function roundTrip(bytes: Uint8Array): { m: Model; out: Uint8Array; m2: Model } {
  const m = decodeModel(bytes);
  const out = encodeModel(m);
  const m2 = decodeModel(out);
  const again = encodeModel(m2);
  assert.ok(bytesEqual(out, again), 'encode(decode(encode(decode(x)))) differs from encode(decode(x))');
  return { m, out, m2 };
}

/** Little-endian bytes of a typed array (a copy). */
export function le(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}
