// onnxruntime-node as the reference executor: sessions from IR models or bytes, tensors to and from IR Tensors.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { DType } from './dtype.js';
import { QccError } from './errors.js';
import { Tensor as IrTensor, bytesToTyped, type AnyTypedArray, type Model } from './ir.js';
import type { ScratchData } from './onnx/scratch.js';
import { encodeModel, saveModel } from './onnx/writer.js';

export type OrtTensor = ort.Tensor;
export type Feeds = Record<string, ort.Tensor>;

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  f32: 'float32', f64: 'float64', f16: 'float16', i8: 'int8', u8: 'uint8', i16: 'int16', u16: 'uint16',
  i32: 'int32', u32: 'uint32', i64: 'int64', u64: 'uint64', bool: 'bool', string: 'string',
  i4: 'int4', u4: 'uint4',
};

const FROM_ORT: Record<string, DType> = Object.fromEntries(Object.entries(ORT_TYPE).map(([k, v]) => [v, k as DType]));

export interface SessionOptions {
  /** ORT graph optimization level; 'disabled' gives bit-exact reference behaviour. Default 'all'. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write ORT's optimized graph here (to count fused ops). */
  optimizedModelFilePath?: string;
  intraOpThreads?: number;
  /** A scratch folder holding the model's external weights: onnxruntime then reads them from there in place. */
  scratch?: ScratchData;
}

/**
 * Models with at least this many initializer bytes reach onnxruntime as a temporary file with external data
 * (written tensor by tensor) instead of one serialized buffer: onnxruntime then reads the weights from the data
 * file, and neither the concatenated protobuf nor onnxruntime's parsed copy of it exist (ResNet-50: peak memory of
 * session creation 395 MB -> 280 MB over the process before, for a 102 MB model).
 */
export const FILE_SESSION_BYTES = 16 << 20;

/** Bytes of the main graph's initializers. */
export function initializerBytes(m: Model): number {
  let n = 0;
  for (const v of m.graph.initializers) n += v.initializer?.byteLength ?? 0;
  return n;
}

/** Creates an ORT session from an IR model or ONNX bytes; ORT's failure becomes E_ORT. */
export async function createSession(model: Model | Uint8Array, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.optimization ?? 'all',
    intraOpNumThreads: opts.intraOpThreads ?? 0,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
    ...(opts.optimizedModelFilePath ? { optimizedModelFilePath: opts.optimizedModelFilePath } : {}),
  };
  const load = async (src: string | Uint8Array): Promise<ort.InferenceSession> => {
    try {
      return await (typeof src === 'string' ? ort.InferenceSession.create(src, options) : ort.InferenceSession.create(src, options));
    } catch (e) {
      throw new QccError('E_ORT', `onnxruntime could not load the model: ${firstLine(e)}`);
    }
  };
  // from a file (never when onnxruntime writes its optimized graph: that file would point at the temporary data file)
  if (!(model instanceof Uint8Array) && !opts.optimizedModelFilePath) {
    // weights already in a scratch folder: onnxruntime reads them from there (only the graph is written)
    const inPlace = opts.scratch?.sessionFile(model);
    if (inPlace) {
      try {
        return await load(inPlace);
      } finally {
        fs.rmSync(inPlace, { force: true });
      }
    }
    if (initializerBytes(model) >= FILE_SESSION_BYTES) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-session-'));
      try {
        const file = path.join(dir, 'model.onnx');
        saveModel(model, file, { externalData: { align: 4096 } });
        return await load(file);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return load(model instanceof Uint8Array ? model : encodeModel(model));
}

export async function run(session: ort.InferenceSession, feeds: Feeds, outputs?: readonly string[]): Promise<Record<string, ort.Tensor>> {
  try {
    return (await (outputs ? session.run(feeds, outputs as string[]) : session.run(feeds))) as Record<string, ort.Tensor>;
  } catch (e) {
    throw new QccError('E_ORT', `onnxruntime failed to run the model: ${firstLine(e)}`);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!.slice(0, 500);
}

/** An ORT tensor holding an IR tensor's data (shares the bytes when aligned). */
export function toOrt(t: IrTensor): ort.Tensor {
  const type = ORT_TYPE[t.dtype];
  if (!type) throw new QccError('E_UNSUPPORTED', `onnxruntime-node tensors cannot hold ${t.dtype}`, { tensor: t.name });
  if (t.dtype === 'string') return new ort.Tensor('string', t.strings().map((b) => new TextDecoder().decode(b)), [...t.dims]);
  let data: AnyTypedArray = t.typed();
  if (t.dtype === 'bool') data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new ort.Tensor(type, data as never, [...t.dims]);
}

/** An IR tensor from an ORT tensor (raw little-endian bytes). */
export function fromOrt(name: string, t: ort.Tensor): IrTensor {
  const dtype = FROM_ORT[t.type];
  if (!dtype) throw new QccError('E_UNSUPPORTED', `ORT tensor type ${t.type} has no qcc dtype`, { tensor: name });
  const dims = t.dims.map(Number);
  if (dtype === 'string') {
    const enc = new TextEncoder();
    return new IrTensor(name, 'string', dims, { kind: 'fields', field: 'string_data', values: (t.data as string[]).map((s) => enc.encode(s)) });
  }
  const d = t.data as AnyTypedArray;
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return new IrTensor(name, dtype, dims, { kind: 'raw', bytes });
}

export function ortTypeOf(d: DType): ort.Tensor.Type | undefined {
  return ORT_TYPE[d];
}

export { bytesToTyped, ort };
