// upgrade-opset: every converted change checked in ORT (small models at old opsets, and the ONNX backend corpus).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import { attr, type Graph, type Model } from '../../ir/ir.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { ort, toOrt } from '../../ir/ort.js';
import { verify } from '../../ir/verify.js';
import { PassManager, verifyInstrument } from '../../passes/manager.js';
import { HISTORY, upgradeOpset } from '../../passes/upgrade-opset.js';
import { feedsFor, hasTestdata, listTestDirs, loadTestDir } from '../util/testdata.js';
import { mulberry32 as prng } from '../../ir/random.js';
import { graphText } from '../util/graph.js';

/** Converted model vs reference: |got - want| <= RTOL*|want| + ATOL elementwise (ATOL covers values near 0). */
const RTOL = 1e-5;
const ATOL = 1e-6;



async function session(bytes: Uint8Array): Promise<ort.InferenceSession | string> {
  try {
    return await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, logSeverityLevel: 4 });
  } catch (e) {
    return String((e as Error).message).split('\n')[0]!;
  }
}

/** Worst |a-b| / (RTOL*|b| + ATOL) over all outputs (<= 1 means within tolerance); Infinity on a shape mismatch. */
function worst(got: Record<string, ort.Tensor>, want: Record<string, ort.Tensor>): number {
  let w = 0;
  for (const [k, b] of Object.entries(want)) {
    const a = got[k];
    if (!a || a.dims.join() !== b.dims.join() || a.type !== b.type) return Infinity;
    const x = a.data as ArrayLike<number | bigint | string>;
    const y = b.data as ArrayLike<number | bigint | string>;
    for (let i = 0; i < y.length; i++) {
      if (typeof y[i] === 'string') {
        if (x[i] !== y[i]) return Infinity;
        continue;
      }
      const p = Number(x[i]);
      const q = Number(y[i]);
      if (Number.isNaN(p) && Number.isNaN(q)) continue;
      if (p === q) continue;
      w = Math.max(w, Math.abs(p - q) / (RTOL * Math.abs(q) + ATOL));
    }
  }
  return w;
}

async function convert(m: Model, to: number): Promise<Readonly<Record<string, number>>> {
  const r = await new PassManager([upgradeOpset]).run(m, { options: { 'upgrade-opset': { to } }, instruments: [verifyInstrument()] });
  assert.equal(m.opset, to);
  return r.perPass[0]!.stats;
}

// ---------------------------------------------------------------------------------------------------------------
// Small models: one converted change each, original (old opset) vs converted (13 and 21) in ORT

interface Case {
  name: string;
  opset: number;
  build(b: GraphBuilder): void;
  /** op types of the whole graph after conversion to 13 and to 21 */
  after13: string[];
  after21?: string[];
  /** attributes that must be gone after conversion (node name -> attribute names) */
  gone?: Record<string, string[]>;
}

const f32 = (b: GraphBuilder, name: string, dims: number[], seed = 1): ReturnType<GraphBuilder['input']> => {
  const r = prng(seed);
  return b.f32(name, dims, Array.from({ length: dims.reduce((p, q) => p * q, 1) }, () => r() * 2 - 1));
};

const CASES: Case[] = [
  {
    name: 'Clip-6 min/max attributes -> inputs',
    opset: 9,
    build(b) {
      b.output(b.op('Clip', [b.input('x', 'f32', [2, 8])], { name: 'clip', attrs: { min: -0.25, max: 0.5 } }));
    },
    after13: ['Clip'],
    gone: { clip: ['min', 'max'] },
  },
  {
    name: 'Clip-6 with only max',
    opset: 10,
    build(b) {
      b.output(b.op('Clip', [b.input('x', 'f32', [2, 8])], { name: 'clip', attrs: { max: 0.1 } }));
    },
    after13: ['Clip'],
  },
  {
    name: 'Slice-1 attributes -> inputs (INT64_MAX end, negative start)',
    opset: 9,
    build(b) {
      b.output(b.op('Slice', [b.input('x', 'f32', [4, 6, 5])], { name: 'slice', attrs: { starts: attr.ints([1, -4]), ends: attr.ints([9223372036854775807n, -1]), axes: [0, 1] } }));
    },
    after13: ['Slice'],
    gone: { slice: ['starts', 'ends', 'axes'] },
  },
  {
    name: 'Squeeze/Unsqueeze-11 axes -> input (negative axes)',
    opset: 11,
    build(b) {
      const s = b.op('Squeeze', [b.input('x', 'f32', [3, 1, 4, 1])], { name: 'sq', attrs: { axes: [1, -1] } });
      b.output(b.op('Unsqueeze', [s], { name: 'usq', attrs: { axes: [0, -1] } }));
    },
    after13: ['Squeeze', 'Unsqueeze'],
    gone: { sq: ['axes'], usq: ['axes'] },
  },
  {
    name: 'Split-11 split attribute -> input; num_outputs at 18',
    opset: 11,
    build(b) {
      const x = b.input('x', 'f32', [2, 10]);
      const [p, q] = b.opN('Split', [x], { name: 'split', outputs: 2, attrs: { axis: 1, split: [3, 7] } });
      const [r, s] = b.opN('Split', [x], { name: 'even', outputs: 2, attrs: { axis: -1 } });
      b.output(p!, q!, r!, s!);
    },
    after13: ['Split', 'Split'],
  },
  {
    name: 'ReduceMean/Max/Min/Prod/L2/L1/LogSumExp/SumSquare-11 axes -> input at 18; ReduceSum at 13',
    opset: 11,
    build(b) {
      const x = b.input('x', 'f32', [3, 4, 5]);
      for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceL1', 'ReduceLogSumExp', 'ReduceSumSquare', 'ReduceSum']) {
        b.output(b.op(op, [x], { name: op.toLowerCase(), attrs: { axes: [-1, 0], keepdims: op === 'ReduceMax' ? 1 : 0 } }));
      }
      b.output(b.op('ReduceMean', [x], { name: 'all', attrs: { keepdims: 0 } }));
    },
    after13: ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceL1', 'ReduceLogSumExp', 'ReduceSumSquare', 'ReduceSum', 'ReduceMean'],
  },
  {
    name: 'Pad-2 pads/value attributes -> inputs (constant and reflect)',
    opset: 10,
    build(b) {
      const x = b.input('x', 'f32', [1, 2, 4, 4]);
      b.output(b.op('Pad', [x], { name: 'pad', attrs: { pads: [0, 0, 1, 2, 0, 0, 2, 1], value: 1.5 } }));
      b.output(b.op('Pad', [x], { name: 'refl', attrs: { pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: 'reflect' } }));
    },
    after13: ['Pad', 'Pad'],
    gone: { pad: ['pads', 'value'], refl: ['pads'] },
  },
  {
    name: 'TopK-1 k attribute -> input',
    opset: 9,
    build(b) {
      const [v, i] = b.opN('TopK', [b.input('x', 'f32', [3, 7])], { name: 'topk', outputs: 2, attrs: { k: 3, axis: 1 } });
      b.output(v!, i!);
    },
    after13: ['TopK'],
    gone: { topk: ['k'] },
  },
  {
    name: 'Dropout-10 ratio -> input (inference: identity)',
    opset: 11,
    build(b) {
      b.output(b.op('Dropout', [b.input('x', 'f32', [4, 4])], { name: 'drop', attrs: { ratio: attr.float(0.3) } }));
    },
    after13: ['Dropout'],
    gone: { drop: ['ratio'] },
  },
  {
    name: 'BatchNormalization-7 spatial removed (inference: one output)',
    opset: 8,
    build(b) {
      const x = b.input('x', 'f32', [2, 3, 4, 4]);
      const ps = [0.5, 0.1, 0.2, 1.3].map((base, i) => b.f32(`p${i}`, [3], [base, base + 0.1, base + 0.2]));
      const [y] = b.opN('BatchNormalization', [x, ...ps], { name: 'bn', outputs: 1, attrs: { spatial: 1, epsilon: attr.float(1e-3) } });
      b.output(y!);
    },
    after13: ['BatchNormalization'],
    after21: ['BatchNormalization'],
    gone: { bn: ['spatial'] },
  },
  {
    name: 'Upsample-9 nearest -> Resize (asymmetric, floor)',
    opset: 9,
    build(b) {
      const x = b.input('x', 'f32', [1, 2, 3, 4]);
      b.output(b.op('Upsample', [x, b.f32('scales', [4], [1, 1, 2, 3])], { name: 'up', attrs: { mode: 'nearest' } }));
    },
    after13: ['Resize'],
  },
  {
    name: 'Upsample-9 linear -> Resize (asymmetric)',
    opset: 9,
    build(b) {
      const x = b.input('x', 'f32', [1, 2, 3, 4]);
      b.output(b.op('Upsample', [x, b.f32('scales', [4], [1, 1, 2, 2.5])], { name: 'up', attrs: { mode: 'linear' } }));
    },
    after13: ['Resize'],
  },
  {
    name: 'Upsample-7 scales attribute -> input -> Resize',
    opset: 7,
    build(b) {
      b.output(b.op('Upsample', [b.input('x', 'f32', [1, 1, 3, 3])], { name: 'up', attrs: { mode: 'nearest', scales: attr.floats([1, 1, 2, 2]) } }));
    },
    after13: ['Resize'],
  },
  {
    name: 'Resize-10 nearest downsampling (ceil) and linear upsampling gain roi and asymmetric mode',
    opset: 10,
    build(b) {
      const x = b.input('x', 'f32', [1, 2, 8, 7]);
      b.output(b.op('Resize', [x, b.f32('down', [4], [1, 1, 0.5, 0.6])], { name: 'down', attrs: { mode: 'nearest' } }));
      b.output(b.op('Resize', [x, b.f32('up', [4], [1, 1, 1.5, 2])], { name: 'lin', attrs: { mode: 'linear' } }));
    },
    after13: ['Resize', 'Resize'],
  },
  {
    name: 'Softmax-11 axis=1 on rank 4 -> Flatten + Softmax + Reshape',
    opset: 11,
    build(b) {
      b.output(b.op('Softmax', [b.input('x', 'f32', [2, 3, 4, 5])], { name: 'sm', attrs: { axis: 1 } }));
    },
    after13: ['Flatten', 'Softmax', 'Shape', 'Reshape'],
  },
  {
    name: 'LogSoftmax-11 axis=-1 and Hardmax-11 default axis on rank 2 stay single ops',
    opset: 11,
    build(b) {
      b.output(b.op('LogSoftmax', [b.input('x', 'f32', [2, 3, 4])], { name: 'lsm', attrs: { axis: -1 } }));
      b.output(b.op('Hardmax', [b.input('y', 'f32', [5, 6])], { name: 'hm' }));
    },
    after13: ['LogSoftmax', 'Hardmax'],
  },
  {
    name: 'Hardmax-11 axis=1 on rank 3 (rank derived through Transpose and MatMul)',
    opset: 11,
    build(b) {
      const x = b.input('x', 'f32', [2, 3, 4]);
      const t = b.op('Transpose', [x], { name: 't', attrs: { perm: [0, 2, 1] } });
      const mm = b.op('MatMul', [t, f32(b, 'w', [3, 3])], { name: 'mm' });
      b.output(b.op('Hardmax', [mm], { name: 'hm', attrs: { axis: 1 } }), b.op('Softmax', [mm], { name: 'sm', attrs: { axis: 2 } }));
    },
    after13: ['Transpose', 'MatMul', 'Flatten', 'Hardmax', 'Shape', 'Reshape', 'Softmax'],
  },
];

for (const c of CASES) {
  test(`upgrade-opset ${c.name}`, async (t) => {
    const b0 = new GraphBuilder('g', { opset: c.opset, irVersion: 7 });
    c.build(b0);
    const original = encodeModel(b0.build());
    const so = await session(original);
    assert.equal(typeof so, 'object', `ORT loads the opset-${c.opset} original: ${String(so)}`);
    const s0 = so as ort.InferenceSession;
    const rnd = prng(7);
    const feeds: Record<string, ort.Tensor> = {};
    for (const v of b0.graph.inputs) {
      const dims = v.shape as number[];
      feeds[v.name] = new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((p, q) => p * q, 1) }, () => rnd() * 4 - 2), dims);
    }
    const want = await s0.run(feeds);
    for (const to of [13, 21]) {
      const m = decodeModel(original);
      const stats = await convert(m, to);
      assert.ok(stats.rewritten! > 0 || c.opset >= to, 'something was converted');
      assert.deepEqual(m.graph.nodeArray().map((n) => n.opType), to === 21 && c.after21 ? c.after21 : c.after13);
      assert.ok(Number(m.irVersion) >= (to === 13 ? 7 : 10), `ir_version ${m.irVersion}`);
      for (const [node, names] of Object.entries(c.gone ?? {})) for (const a of names) assert.equal(m.graph.findNode(node)?.attr(a), undefined, `${node}.${a} is gone at ${to}`);
      const sc = await session(encodeModel(m));
      assert.equal(typeof sc, 'object', `ORT loads the opset-${to} model: ${String(sc)}`);
      const got = await (sc as ort.InferenceSession).run(feeds);
      const w = worst(got, want);
      t.diagnostic(`opset ${c.opset} -> ${to}: worst error ${w.toFixed(3)} x (rtol ${RTOL}, atol ${ATOL})`);
      assert.ok(w <= 1, `outputs differ after conversion to ${to}: ${w}`);
    }
  });
}

test('Upsample-9 conversion is the Resize the spec asks for: asymmetric coordinates, floor rounding', async () => {
  const b = new GraphBuilder('g', { opset: 9 });
  b.output(b.op('Upsample', [b.input('x', 'f32', [1, 1, 2, 2]), b.f32('s', [4], [1, 1, 2, 2])], { name: 'up' }));
  const m = b.build();
  await convert(m, 13);
  const r = m.graph.nodeArray()[0]!;
  assert.equal(r.opType, 'Resize');
  assert.equal(r.attrString('coordinate_transformation_mode'), 'asymmetric');
  assert.equal(r.attrString('nearest_mode'), 'floor');
  assert.equal(r.attrString('mode'), 'nearest');
  assert.deepEqual(r.inputs.map((v) => v?.initializer?.dims), [undefined, [0], [4]]); // x, empty roi, scales
});

test('legacy broadcast (opset 6 Add with axis) becomes numpy broadcasting with a reshaped B', async () => {
  const b = new GraphBuilder('g', { opset: 6, irVersion: 3 });
  const x = b.input('x', 'f32', [2, 3, 2, 2]);
  const bias = b.f32('bias', [3], [10, 20, 30]);
  b.output(b.op('Add', [x, bias], { name: 'add', attrs: { broadcast: 1, axis: 1 } }));
  const m = b.build();
  await convert(m, 13);
  const add = m.graph.findNode('add')!;
  assert.equal(add.attr('broadcast'), undefined);
  assert.equal(add.attr('axis'), undefined);
  assert.deepEqual(add.input(1)!.initializer!.dims, [3, 1, 1]);
  assert.equal(m.graph.findValue('bias')!.initializer!.dims.length, 1, 'the original initializer is not mutated');
  // independent reference: x + bias[c]
  const xs = Float32Array.from({ length: 24 }, (_, i) => i / 7);
  const s = await session(encodeModel(m));
  const out = (await (s as ort.InferenceSession).run({ x: new ort.Tensor('float32', xs, [2, 3, 2, 2]) }))[m.graph.outputs[0]!.name]!.data as Float32Array;
  out.forEach((v, i) => assert.equal(v, Math.fround(xs[i]! + [10, 20, 30][Math.floor(i / 4) % 3]!)));
});

test('refusals: E_UNSUPPORTED with op and versions, and the model is left untouched', async () => {
  // Scan-8 -> 9 changed its batch semantics: no converter
  const body = new GraphBuilder('body', { opset: 8 });
  const s0 = body.input('s', 'f32', [2]);
  const e = body.input('e', 'f32', [2]);
  const sum = body.op('Add', [s0, e], { name: 'acc' });
  body.output(sum, body.op('Identity', [sum], { name: 'id' }));
  const b = new GraphBuilder('g', { opset: 8 });
  const init = b.input('init', 'f32', [1, 2]);
  const seq = b.input('seq', 'f32', [1, 3, 2]);
  const [fin, ys] = b.opN('Scan', [null, init, seq], { name: 'scan', outputs: 2, attrs: { body: body.graph, num_scan_inputs: 1 } });
  b.output(fin!, ys!);
  const m = b.build();
  const before = encodeModel(m);
  await assert.rejects(convert(m, 13), (err: unknown) => {
    assert.ok(err instanceof QccError);
    assert.equal(err.code, 'E_UNSUPPORTED');
    assert.match(err.message, /cannot convert Scan from opset 8 to 13: its change at opset 9 has no converter/);
    assert.equal(err.loc.node, 'scan');
    return true;
  });
  assert.ok(Buffer.from(encodeModel(m)).equals(Buffer.from(before)), 'a refused model is not modified');

  // Clip-6 on a value whose element type nothing tells
  const c = new GraphBuilder('g', { opset: 9, opsets: { 'com.example': 1 } });
  const y = c.op('Mystery', [c.input('x', 'f32', [2])], { name: 'mystery', domain: 'com.example' });
  c.output(c.op('Clip', [y], { name: 'clip', attrs: { min: 0, max: attr.float(1) } }));
  await assert.rejects(convert(c.build(), 13), /cannot convert Clip from opset 9 to 13: the element type of mystery_out is unknown/);

  // BatchNormalization-9 declaring its statistics outputs runs in training mode: not converted across 14
  const t = new GraphBuilder('g', { opset: 9 });
  const ps = [0, 1, 2, 3].map((i) => t.f32(`p${i}`, [2], [1, 1]));
  const outs = t.opN('BatchNormalization', [t.input('x', 'f32', [1, 2, 2, 2]), ...ps], { name: 'bn', outputs: 5 });
  t.output(outs[0]!);
  await convert(t.build(), 13); // unchanged up to 13
  await assert.rejects(convert(t.build(), 14), /cannot convert BatchNormalization from opset 13 to 14: BatchNormalization with training outputs/);

  // downgrades and unknown ops
  const d = new GraphBuilder('g', { opset: 13 });
  d.output(d.op('Relu', [d.input('x', 'f32', [1])]));
  await assert.rejects(convert(d.build(), 11), /only upward conversion/);
  const u = new GraphBuilder('g', { opset: 11 });
  u.output(u.op('NotAnOnnxOp', [u.input('x', 'f32', [1])], { name: 'odd' }));
  await assert.rejects(convert(u.build(), 13), /cannot convert NotAnOnnxOp from opset 11 to 13: unknown ai.onnx op/);
});

test('subgraph bodies are converted too (If branches with Unsqueeze-11)', async () => {
  const mk = (name: string, axis: number): Graph => {
    const g = new GraphBuilder(name, { opset: 11 });
    g.output(g.op('Unsqueeze', [g.f32(`${name}_c`, [2], [1, 2])], { name: `${name}_u`, attrs: { axes: [axis] } }));
    return g.graph;
  };
  const b = new GraphBuilder('g', { opset: 11 });
  b.output(b.op('If', [b.input('cond', 'bool', [])], { name: 'if', attrs: { then_branch: mk('then', 0), else_branch: mk('else', 1) } }));
  const m = b.build();
  await convert(m, 21);
  const ifn = m.graph.findNode('if')!;
  for (const sg of ifn.subgraphs()) {
    assert.deepEqual(graphText(sg), [`${sg.name}_u_out = Unsqueeze(${sg.name}_c, ${sg.name}_u_axes)`]);
    assert.ok(sg.initializers.some((v) => v.name === `${sg.name}_u_axes`), 'the axes initializer lives in the branch');
  }
  assert.deepEqual(verify(m), []);
  const s = (await session(encodeModel(m))) as ort.InferenceSession;
  for (const [cond, dims] of [[1, [1, 2]], [0, [2, 1]]] as const) {
    const r = await s.run({ cond: new ort.Tensor('bool', Uint8Array.of(cond), []) });
    assert.deepEqual(r[m.graph.outputs[0]!.name]!.dims, dims);
  }
});

test('HISTORY covers every ai.onnx op the backend corpus uses', () => {
  if (!hasTestdata()) return;
  const missing = new Set<string>();
  for (const dir of listTestDirs()) {
    let m: Model;
    try {
      m = decodeModel(loadTestDir(dir).modelBytes);
    } catch {
      continue;
    }
    for (const n of m.graph.allNodes()) if ((n.domain === '' || n.domain === 'ai.onnx') && !HISTORY[n.opType]) missing.add(n.opType);
  }
  // ops newer than opset 21 (the corpus is ONNX 1.12's; nothing should be missing)
  assert.deepEqual([...missing].sort(), []);
});

// ---------------------------------------------------------------------------------------------------------------
// The ONNX backend corpus: every model below opset 13 that uses an op whose conversion rewrites something

const CONVERTED_OPS = new Set([
  'Clip', 'Slice', 'Squeeze', 'Unsqueeze', 'Split', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2',
  'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare', 'ReduceSum', 'Resize', 'Upsample', 'Pad', 'BatchNormalization',
  'Dropout', 'Softmax', 'LogSoftmax', 'Hardmax', 'TopK',
]);

interface CorpusResult {
  counts: { models: number; conversions: number; matchReference: number; matchOrtOriginal: number; originalNotLoadable: number; ortRejectsBoth: number; refused: number; notFeedable: number };
  failures: string[];
  refused: string[];
}

/** Converts every corpus model below opset 13 that `select` accepts to 13 and 21 and compares with the reference outputs. */
async function corpusCheck(t: { diagnostic(s: string): void }, select: (m: Model) => boolean): Promise<CorpusResult> {
  const counts = { models: 0, conversions: 0, matchReference: 0, matchOrtOriginal: 0, originalNotLoadable: 0, ortRejectsBoth: 0, refused: 0, notFeedable: 0 };
  const failures: string[] = [];
  const refused: string[] = [];
  const ortDisagrees: string[] = [];
  for (const dir of listTestDirs()) {
    const td = loadTestDir(dir);
    let probe: Model;
    try {
      probe = decodeModel(td.modelBytes);
    } catch {
      continue;
    }
    if (probe.opset === 0 || probe.opset >= 13) continue;
    if (!select(probe)) continue;
    counts.models++;
    const so = await session(td.modelBytes);
    const set = td.sets[0]!;
    for (const to of [13, 21]) {
      const m = decodeModel(td.modelBytes);
      try {
        await convert(m, to);
      } catch (e) {
        if (!(e instanceof QccError) || e.code !== 'E_UNSUPPORTED') throw e;
        counts.refused++;
        refused.push(`${td.id}@${to}: ${e.message}`);
        continue;
      }
      counts.conversions++;
      const sc = await session(encodeModel(m));
      if (typeof sc === 'string') {
        if (typeof so === 'string') counts.ortRejectsBoth++; // no kernel for an op, locale missing, training ops...
        else failures.push(`${td.id}@${to}: ORT cannot load the converted model: ${sc}`);
        continue;
      }
      const feeds = feedsFor(sc, set.inputs);
      if (!feeds) {
        counts.notFeedable++;
        continue;
      }
      let got: Record<string, ort.Tensor>;
      try {
        got = await sc.run(feeds);
      } catch (e) {
        failures.push(`${td.id}@${to}: ORT cannot run the converted model: ${String((e as Error).message).split('\n')[0]}`);
        continue;
      }
      const ref: Record<string, ort.Tensor> = {};
      set.outputs.forEach((o, i) => {
        if (o) ref[sc.outputNames[i]!] = toOrt(o);
      });
      if (typeof so === 'string') counts.originalNotLoadable++; // (ORT has no kernels for some opset-6 ops): the reference decides
      if (worst(got, ref) <= 1) {
        counts.matchReference++;
        continue;
      }
      // ORT itself may disagree with the reference on the original (e.g. MaxUnpool): then the original is the bar
      if (typeof so !== 'string') {
        const orig = await so.run(feeds);
        if (worst(orig, ref) > 1 && worst(got, orig) <= 1) {
          counts.matchOrtOriginal++;
          ortDisagrees.push(`${td.id}@${to}`);
          continue;
        }
      }
      failures.push(`${td.id}@${to}: outputs differ from the reference (worst ${worst(got, ref)})`);
    }
  }
  t.diagnostic(`counts ${JSON.stringify(counts)}`);
  if (refused.length) t.diagnostic(`refused: ${refused.join(' | ')}`);
  if (ortDisagrees.length) t.diagnostic(`ORT's original already disagrees with the reference (compared to it instead): ${ortDisagrees.join(', ')}`);
  return { counts, failures, refused };
}

test('libonnx-testdata below opset 13 using converted ops: converted to 13 and 21, ORT matches the reference outputs', { skip: !hasTestdata() }, async (t) => {
  const uses = (m: Model): boolean => [...m.graph.allNodes()].some((n) => (n.domain === '' || n.domain === 'ai.onnx') && CONVERTED_OPS.has(n.opType));
  const { counts, failures, refused } = await corpusCheck(t, uses);
  assert.deepEqual(failures, []);
  assert.deepEqual(refused, []);
  assert.ok(counts.models >= 40, `${counts.models} models`);
  assert.equal(counts.matchReference + counts.matchOrtOriginal, counts.conversions, 'every conversion was checked against the reference');
});

// The whole corpus below opset 13: converted and equal to the reference (or ORT's original), or refused
test('libonnx-testdata: every model below opset 13 is converted correctly or refused with E_UNSUPPORTED', { skip: !hasTestdata() }, async (t) => {
  const { counts, failures, refused } = await corpusCheck(t, () => true);
  assert.deepEqual(failures, []);
  // the only refusal: Scan-8 (its batch axis went away at 9)
  assert.deepEqual(refused.map((r) => r.split(':')[0]), ['node/test_scan_sum@13', 'node/test_scan_sum@21']);
  assert.ok(counts.conversions >= 700, `${counts.conversions} conversions`);
});
