// GraphBuilder: build models in TypeScript (tests, the zoo) through the Rewriter, never through protobuf.

import type { DType } from './dtype.js';
import { Graph, Model, Tensor, tensorFromTyped, tensorType, type AnyTypedArray, type Attr, type Int64, type Shape, type Value, attr as A } from './ir.js';
import { Rewriter } from './rewriter.js';

export type AttrInit = number | Int64 | string | readonly number[] | readonly string[] | Tensor | Graph | Attr;

/** Attribute from a JS value: integers -> int, other numbers -> float; use `attr.float(1)` to force a float. */
function toAttr(v: AttrInit): Attr {
  if (typeof v === 'number') return Number.isInteger(v) ? A.int(v) : A.float(v);
  if (typeof v === 'bigint') return A.int(v);
  if (typeof v === 'string') return A.string(v);
  if (v instanceof Tensor) return A.tensor(v);
  if (v instanceof Graph) return A.graph(v);
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return A.strings(v as string[]);
    return (v as number[]).every((x) => Number.isInteger(x)) ? A.ints(v as number[]) : A.floats(v as number[]);
  }
  return v as Attr;
}

export interface OpOptions {
  name?: string;
  domain?: string;
  outputs?: number;
  attrs?: Record<string, AttrInit | undefined>;
}

export class GraphBuilder {
  readonly graph: Graph;
  readonly model: Model;
  readonly rw: Rewriter;

  constructor(name = 'main', opts: { opset?: number; opsets?: Record<string, number>; irVersion?: number } = {}) {
    this.graph = new Graph(name);
    const opsets = new Map<string, number>([['', opts.opset ?? 21], ...Object.entries(opts.opsets ?? {})]);
    this.model = new Model(this.graph, { irVersion: opts.irVersion ?? 10, opsetImports: opsets, producerName: 'qcc' });
    this.rw = new Rewriter(this.graph);
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    return this.rw.addGraphInput(this.graph, name, tensorType(dtype, shape));
  }

  /** A constant initializer from a typed array. */
  init(name: string, dtype: DType, dims: readonly number[], values: AnyTypedArray): Value {
    return this.rw.addInitializer(tensorFromTyped(name, dtype, dims, values));
  }

  f32(name: string, dims: readonly number[], values: ArrayLike<number>): Value {
    return this.init(name, 'f32', dims, Float32Array.from(values));
  }

  i64(name: string, values: readonly number[], dims: readonly number[] = [values.length]): Value {
    return this.init(name, 'i64', dims, BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  /** Appends a node; returns its first output (use `opN` for several). */
  op(opType: string, inputs: readonly (Value | null | undefined)[], opts: OpOptions = {}): Value {
    return this.opN(opType, inputs, opts)[0]!;
  }

  opN(opType: string, inputs: readonly (Value | null | undefined)[], opts: OpOptions = {}): Value[] {
    const attrs: Record<string, Attr> = {};
    for (const [k, v] of Object.entries(opts.attrs ?? {})) if (v !== undefined) attrs[k] = toAttr(v);
    const n = this.rw.createNode(opType, inputs, { name: opts.name ?? opType.toLowerCase(), domain: opts.domain ?? '', attrs, outputs: opts.outputs ?? 1 });
    this.rw.append(this.graph, n);
    return n.outputs.map((o) => o!);
  }

  output(...vs: Value[]): this {
    this.rw.setGraphOutputs(this.graph, [...this.graph.outputs, ...vs]);
    return this;
  }

  build(): Model {
    return this.model;
  }
}
