// Element types of tensors: qcc's names, ONNX TensorProto.DataType codes, storage sizes.

/** qcc's element types. `fp8e4m3` is ONNX FLOAT8E4M3FN (the OCP/TensorRT E4M3). */
export type DType =
  | 'f32' | 'f64' | 'f16' | 'bf16'
  | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64'
  | 'bool' | 'string' | 'c64' | 'c128'
  | 'fp8e4m3' | 'fp8e4m3fnuz' | 'fp8e5m2' | 'fp8e5m2fnuz' | 'fp8e8m0'
  | 'i4' | 'u4' | 'fp4e2m1' | 'i2' | 'u2';

interface DTypeInfo {
  readonly onnx: number; // TensorProto.DataType
  readonly onnxName: string;
  /** bits per element in raw_data (string: 0, variable). */
  readonly bits: number;
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  f32: { onnx: 1, onnxName: 'FLOAT', bits: 32 },
  u8: { onnx: 2, onnxName: 'UINT8', bits: 8 },
  i8: { onnx: 3, onnxName: 'INT8', bits: 8 },
  u16: { onnx: 4, onnxName: 'UINT16', bits: 16 },
  i16: { onnx: 5, onnxName: 'INT16', bits: 16 },
  i32: { onnx: 6, onnxName: 'INT32', bits: 32 },
  i64: { onnx: 7, onnxName: 'INT64', bits: 64 },
  string: { onnx: 8, onnxName: 'STRING', bits: 0 },
  bool: { onnx: 9, onnxName: 'BOOL', bits: 8 },
  f16: { onnx: 10, onnxName: 'FLOAT16', bits: 16 },
  f64: { onnx: 11, onnxName: 'DOUBLE', bits: 64 },
  u32: { onnx: 12, onnxName: 'UINT32', bits: 32 },
  u64: { onnx: 13, onnxName: 'UINT64', bits: 64 },
  c64: { onnx: 14, onnxName: 'COMPLEX64', bits: 64 },
  c128: { onnx: 15, onnxName: 'COMPLEX128', bits: 128 },
  bf16: { onnx: 16, onnxName: 'BFLOAT16', bits: 16 },
  fp8e4m3: { onnx: 17, onnxName: 'FLOAT8E4M3FN', bits: 8 },
  fp8e4m3fnuz: { onnx: 18, onnxName: 'FLOAT8E4M3FNUZ', bits: 8 },
  fp8e5m2: { onnx: 19, onnxName: 'FLOAT8E5M2', bits: 8 },
  fp8e5m2fnuz: { onnx: 20, onnxName: 'FLOAT8E5M2FNUZ', bits: 8 },
  u4: { onnx: 21, onnxName: 'UINT4', bits: 4 },
  i4: { onnx: 22, onnxName: 'INT4', bits: 4 },
  fp4e2m1: { onnx: 23, onnxName: 'FLOAT4E2M1', bits: 4 },
  fp8e8m0: { onnx: 24, onnxName: 'FLOAT8E8M0', bits: 8 },
  u2: { onnx: 25, onnxName: 'UINT2', bits: 2 },
  i2: { onnx: 26, onnxName: 'INT2', bits: 2 },
};

const BY_ONNX: ReadonlyMap<number, DType> = new Map(
  (Object.keys(DTYPES) as DType[]).map((d) => [DTYPES[d].onnx, d]),
);

/** DType for an ONNX data_type code, or undefined for 0/unknown codes. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

export function dtypeToOnnx(d: DType): number {
  return DTYPES[d].onnx;
}

/** Number of bytes `count` elements occupy in ONNX raw_data (sub-byte types are packed, low bits first). */
export function rawByteLength(d: DType, count: number): number {
  const bits = DTYPES[d].bits;
  if (bits === 0) throw new Error(`dtype ${d} has no fixed raw size`);
  return Math.ceil((count * bits) / 8);
}

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'f64' || d === 'f16' || d === 'bf16' || d.startsWith('fp');
}

export function isSubByte(d: DType): boolean {
  return DTYPES[d].bits > 0 && DTYPES[d].bits < 8;
}
