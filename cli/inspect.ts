// `qcc inspect`: a model's interface, op histogram and parameter statistics, as an aligned table or one JSON object.
//
// JSON fields (`qcc inspect MODEL --json`):
//   file            the path as given
//   format          "onnx" | "qir"
//   irVersion       number (a string when it does not fit a double)
//   opsetImports    { domain: version } in file order; the default domain is written "ai.onnx"
//   producer        { name, version } (null when absent)
//   graph           main graph name
//   inputs/outputs  [{ name, dtype, shape }]: dtype null when unknown; shape null when the rank is unknown, else
//                   an array of numbers (static), strings (symbolic dims, by name) and null (unknown dims).
//                   Default-valued inputs (inputs that also have an initializer) are listed with
//                   `"hasDefault": true`.
//   nodeCount       nodes in the main graph and every subgraph
//   subgraphCount   graphs held in node attributes (If/Loop/Scan bodies), at any depth
//   ops             [{ op, count }] over all graphs, sorted by count (descending) then name; ops outside the
//                   default domain are domain-qualified ("com.microsoft.MatMulNBits")
//   parameters      learnable: countParams() (initializers minus BN statistics, Q/DQ parameters, shape constants);
//                   the rest describes all constant tensors: initializers of every graph plus the tensors of ai.onnx Constant nodes
//                   (value / value_float(s) / value_int(s) / value_string(s)):
//     count, bytes, tensors     totals (elements, raw bytes (strings: their byte lengths), tensor count)
//     externalBytes             bytes stored in external data files (counted from the declared length, not read)
//     byDtype                   [{ dtype, tensors, count, bytes }] sorted by bytes (descending) then dtype
//     initializers, constants   { tensors, count, bytes } for each source

import type { Graph, Model, Shape, Tensor, Value } from '../ir/ir.js';
import { countParams } from '../ir/params.js';
import { formatType } from '../ir/print.js';
import { constantTensor } from '../passes/constant-to-initializer.js';

export interface IoInfo {
  readonly name: string;
  readonly dtype: string | null;
  readonly shape: (number | string | null)[] | null;
  readonly hasDefault?: true;
}

export interface TensorTotals {
  tensors: number;
  count: number;
  bytes: number;
}

export interface InspectReport {
  readonly file: string;
  readonly format: 'onnx' | 'qir';
  readonly irVersion: number | string;
  readonly opsetImports: Record<string, number>;
  readonly producer: { readonly name: string | null; readonly version: string | null };
  readonly graph: string;
  readonly inputs: IoInfo[];
  readonly outputs: IoInfo[];
  readonly nodeCount: number;
  readonly subgraphCount: number;
  readonly ops: { op: string; count: number }[];
  readonly parameters: TensorTotals & {
    /** learnable parameters (ir/params.ts countParams): no BN running statistics, Q/DQ parameters or shape constants */
    learnable: number;
    externalBytes: number;
    byDtype: ({ dtype: string } & TensorTotals)[];
    initializers: TensorTotals;
    constants: TensorTotals;
  };
}

function shapeJson(s: Shape | undefined): (number | string | null)[] | null {
  if (s === undefined) return null;
  return s.map((d) => (typeof d === 'number' ? d : d.param));
}

function ioInfo(v: Value, isInput: boolean): IoInfo {
  const t = v.type;
  const info: IoInfo = {
    name: v.name,
    dtype: (t?.kind === 'tensor' ? t.dtype : v.dtype) ?? null,
    shape: t?.kind === 'tensor' ? shapeJson(t.shape) : shapeJson(v.shape),
  };
  return isInput && v.initializer ? { ...info, hasDefault: true } : info;
}

/** Byte size without reading data: raw size from dims, external from the declared length, strings by length. */
function tensorBytes(t: Tensor): number {
  if (t.dtype === 'string') return t.strings().reduce((a, s) => a + s.length, 0);
  return t.data.kind === 'external' ? t.data.length : t.byteLength;
}

/** Computes the report (pure: reads structure and sizes, never tensor payloads). */
export function inspectModel(m: Model, file: string, format: 'onnx' | 'qir'): InspectReport {
  const ops = new Map<string, number>();
  let nodeCount = 0;
  let subgraphCount = 0;
  const byDtype = new Map<string, TensorTotals>();
  const inits: TensorTotals = { tensors: 0, count: 0, bytes: 0 };
  const consts: TensorTotals = { tensors: 0, count: 0, bytes: 0 };
  let externalBytes = 0;
  const add = (t: Tensor, into: TensorTotals): void => {
    const bytes = tensorBytes(t);
    for (const acc of [into, byDtype.get(t.dtype) ?? (byDtype.set(t.dtype, { tensors: 0, count: 0, bytes: 0 }), byDtype.get(t.dtype)!)]) {
      acc.tensors++;
      acc.count += t.size;
      acc.bytes += bytes;
    }
    if (t.data.kind === 'external') externalBytes += bytes;
  };
  const walk = (g: Graph): void => {
    for (const v of g.initializers) add(v.initializer!, inits);
    for (const n of g.nodes()) {
      nodeCount++;
      const key = n.domain === '' || n.domain === 'ai.onnx' ? n.opType : `${n.domain}.${n.opType}`;
      ops.set(key, (ops.get(key) ?? 0) + 1);
      if (n.op === 'Constant') {
        const t = constantTensor(n);
        if (t) add(t, consts);
      }
      for (const sg of n.subgraphs()) {
        subgraphCount++;
        walk(sg);
      }
    }
  };
  walk(m.graph);
  const opsets: Record<string, number> = {};
  for (const [d, v] of m.opsetImports) opsets[d === '' ? 'ai.onnx' : d] = v;
  const total = (a: TensorTotals, b: TensorTotals): TensorTotals => ({ tensors: a.tensors + b.tensors, count: a.count + b.count, bytes: a.bytes + b.bytes });
  return {
    file,
    format,
    irVersion: typeof m.irVersion === 'bigint' ? String(m.irVersion) : m.irVersion,
    opsetImports: opsets,
    producer: { name: m.producerName ?? null, version: m.producerVersion ?? null },
    graph: m.graph.name,
    inputs: m.graph.inputs.map((v) => ioInfo(v, true)),
    outputs: m.graph.outputs.map((v) => ioInfo(v, false)),
    nodeCount,
    subgraphCount,
    ops: [...ops.entries()].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || (a.op < b.op ? -1 : a.op > b.op ? 1 : 0)),
    parameters: {
      ...total(inits, consts),
      learnable: countParams(m),
      externalBytes,
      byDtype: [...byDtype.entries()].map(([dtype, t]) => ({ dtype, ...t })).sort((a, b) => b.bytes - a.bytes || (a.dtype < b.dtype ? -1 : 1)),
      initializers: inits,
      constants: consts,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Text rendering

const int = (n: number): string => n.toLocaleString('en-US');

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** Rows of cells -> lines with every column padded to its widest cell (numbers right-aligned). */
function table(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : /^[\d,.]+( \w+)?$/.test(c) && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function ioType(io: IoInfo): string {
  const shape = io.shape === null ? undefined : io.shape.map((d) => (typeof d === 'number' ? d : { param: d }));
  return formatType({ kind: 'tensor', dtype: (io.dtype ?? undefined) as never, shape }) + (io.hasDefault ? ' (has default)' : '');
}

/** The human-readable report (ends with a newline). */
export function renderInspect(r: InspectReport): string {
  const p = r.parameters;
  const head: string[][] = [
    ['file', r.file],
    ['format', `${r.format}, IR version ${r.irVersion}`],
    ['opsets', Object.entries(r.opsetImports).map(([d, v]) => `${d} ${v}`).join(', ') || '(none)'],
    ['producer', [r.producer.name, r.producer.version].filter((x) => x).join(' ') || '(none)'],
    ['graph', r.graph],
    ['nodes', `${int(r.nodeCount)}${r.subgraphCount ? ` (${r.subgraphCount} subgraph${r.subgraphCount === 1 ? '' : 's'})` : ', no subgraphs'}`],
    ['parameters', `${int(p.learnable)} learnable (excludes BN running statistics, Q/DQ scales, shape constants)`],
    ['constants', `${int(p.count)} elements, ${humanBytes(p.bytes)} in ${int(p.tensors)} tensors${p.externalBytes ? ` (${humanBytes(p.externalBytes)} external)` : ''}`],
  ];
  const out = table(head);
  const section = (title: string, rows: string[][]): void => {
    out.push('', `${title}:`);
    out.push(...(rows.length ? table(rows, '  ') : ['  (none)']));
  };
  section('inputs', r.inputs.map((io) => [io.name, ioType(io)]));
  section('outputs', r.outputs.map((io) => [io.name, ioType(io)]));
  section('parameters by dtype', [
    ['dtype', 'elements', 'bytes', 'tensors'],
    ...p.byDtype.map((d) => [d.dtype, int(d.count), humanBytes(d.bytes), int(d.tensors)]),
    ['(initializers)', int(p.initializers.count), humanBytes(p.initializers.bytes), int(p.initializers.tensors)],
    ['(Constant nodes)', int(p.constants.count), humanBytes(p.constants.bytes), int(p.constants.tensors)],
  ]);
  section('ops', r.ops.map((o) => [o.op, int(o.count)]));
  return out.join('\n') + '\n';
}
