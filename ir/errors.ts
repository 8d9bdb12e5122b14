// QccError: every user-visible failure carries a stable code, a message and a location.

/** Where a problem is: a model file, a byte offset, a node, a tensor, a pass. */
export interface Loc {
  readonly file?: string;
  readonly byteOffset?: number;
  /** protobuf field path, e.g. `ModelProto.graph.initializer[3].raw_data` */
  readonly path?: string;
  readonly node?: string;
  readonly tensor?: string;
  readonly pass?: string;
}

export type ErrorCode =
  // reading ONNX bytes
  | 'E_ONNX_EMPTY'
  | 'E_ONNX_TRUNCATED'
  | 'E_ONNX_WIRE_TYPE'
  | 'E_ONNX_VARINT'
  | 'E_ONNX_NESTING'
  | 'E_ONNX_NOT_ONNX'
  // model semantics
  | 'E_MODEL_DIM'
  | 'E_MODEL_DTYPE'
  | 'E_MODEL_DATA_SIZE'
  | 'E_MODEL_TOO_LARGE'
  | 'E_MODEL_CYCLE'
  | 'E_MODEL_DUPLICATE_PRODUCER'
  | 'E_MODEL_DANGLING_INPUT'
  | 'E_MODEL_ATTRIBUTE'
  | 'E_MODEL_INVALID'
  | 'E_MODEL_OPSET'
  | 'E_EXTERNAL_PATH'
  | 'E_EXTERNAL_MISSING'
  | 'E_EXTERNAL_RANGE'
  | 'E_EXTERNAL_CHANGED'
  // IR / passes
  | 'E_IR_VERIFY'
  | 'E_IR_MUTATION'
  | 'E_IR_PARSE'
  | 'E_PASS_FAILED'
  | 'E_PASS_UNKNOWN'
  | 'E_PASS_OPTION'
  | 'E_SHAPE_INFERENCE'
  | 'E_UNSUPPORTED'
  | 'E_ORT'
  // CLI / files
  | 'E_USAGE'
  | 'E_IO';

export class QccError extends Error {
  readonly code: ErrorCode;
  readonly loc: Loc;
  constructor(code: ErrorCode, message: string, loc: Loc = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QccError';
    this.code = code;
    this.loc = loc;
  }
  /** A one-line human description: `E_CODE: message (at file, byte N, node X)`. */
  describe(): string {
    return `${this.code}: ${this.message}${formatLoc(this.loc)}`;
  }
}

export function formatLoc(loc: Loc): string {
  const parts: string[] = [];
  if (loc.file !== undefined) parts.push(loc.file);
  if (loc.byteOffset !== undefined) parts.push(`byte ${loc.byteOffset}`);
  if (loc.path !== undefined) parts.push(loc.path);
  if (loc.node !== undefined) parts.push(`node '${loc.node}'`);
  if (loc.tensor !== undefined) parts.push(`tensor '${loc.tensor}'`);
  if (loc.pass !== undefined) parts.push(`pass ${loc.pass}`);
  return parts.length ? ` (at ${parts.join(', ')})` : '';
}

export function isQccError(e: unknown): e is QccError {
  return e instanceof QccError;
}

/** Exhaustiveness guard for `switch` over unions. */
export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x)}`);
}
