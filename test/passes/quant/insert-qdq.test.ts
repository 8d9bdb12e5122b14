// insert-qdq: whole-graph structure after quantizeWeights + insertQdq, Q/DQ numerics in ORT against ir/numerics, refusals, opset.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../../ir/builder.js';
import { QccError } from '../../../ir/errors.js';
import type { Model } from '../../../ir/ir.js';
import { decodeFp8, encodeFp8, quantizeInt, type IntQuantDType } from '../../../ir/numerics.js';
import { encodeModel } from '../../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../../ir/ort.js';
import { mulberry32 } from '../../../ir/random.js';
import { verify } from '../../../ir/verify.js';
import { insertQdq } from '../../../passes/quant/insert-qdq.js';
import { quantizeWeights } from '../../../passes/quant/quantize-weights.js';
import type { ActivationPlan, QDType, QParams } from '../../../passes/quant/types.js';
import { graphText } from '../../util/graph.js';

const rnd = mulberry32(99);
const randn = (n: number, sd = 1): Float32Array =>
  Float32Array.from({ length: n }, () => sd * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()));

const act = (tensor: string, dtype: QDType, symmetric: boolean, consumers: { node: string; input: number }[] = []): ActivationPlan => ({
  tensor,
  quant: { dtype, symmetric, granularity: { kind: 'per-tensor' } },
  calibrator: 'minmax',
  consumers,
});

/** `name dtype [dims] = values` of the scale / zero-point initializers a Q or DQ node reads. */
function qparamText(m: Model, opName: string): string[] {
  const n = m.graph.nodeArray().find((x) => x.outputs[0]?.name === opName);
  assert.ok(n, opName);
  return n.inputs.slice(1).map((v) => {
    const t = v!.initializer!;
    const vals = t.dtype === 'fp8e4m3' ? [...t.bytes()].map((c) => decodeFp8('fp8e4m3', c)) : Array.from(t.typed() as unknown as ArrayLike<number>, Number);
    return `${v!.name} ${t.dtype} [${t.dims}] = ${vals.join(',')}`;
  });
}

/** x -> Relu -> Neg, and an i64 input k -> Neg. */
function small(opset = 13): Model {
  const b = new GraphBuilder('g', { opset });
  const x = b.input('x', 'f32', [4]);
  const k = b.input('k', 'i64', [4]);
  const y = b.op('Relu', [x], { name: 'relu' });
  b.output(b.op('Neg', [y], { name: 'neg' }), b.op('Neg', [k], { name: 'negk' }));
  return b.build();
}

async function runOrt(m: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    return await run(s, feeds);
  } finally {
    await s.release();
  }
}

describe('insertQdq: structure', () => {
  test('residual block (TensorRT layout): weights, then Q once per tensor and a DQ per consumer; the whole graph', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 4, 6, 6]);
    const c1 = b.op('Conv', [x, b.f32('w1', [4, 4, 3, 3], randn(144, 0.2))], { name: 'c1', attrs: { pads: [1, 1, 1, 1] } });
    const r1 = b.op('Relu', [c1], { name: 'relu1' });
    const c2 = b.op('Conv', [r1, b.f32('w2', [4, 4, 3, 3], randn(144, 0.2))], { name: 'c2', attrs: { pads: [1, 1, 1, 1] } });
    const add = b.op('Add', [c2, x], { name: 'add' });
    b.output(b.op('Relu', [add], { name: 'relu2' }));
    const m = b.build();
    const xv = randn(144);
    const before = (await runOrt(m, { x: new ort.Tensor('float32', xv, [1, 4, 6, 6]) }))['relu2_out']!.data as Float32Array;

    quantizeWeights(m, [
      { node: 'c1', input: 1, quant: { dtype: 'i8', symmetric: true, granularity: { kind: 'per-channel', axis: 0 } } },
      { node: 'c2', input: 1, quant: { dtype: 'i8', symmetric: true, granularity: { kind: 'per-channel', axis: 0 } } },
    ]);
    assert.deepEqual(graphText(m.graph), [
      'w1_dequantized = DequantizeLinear(w1_quantized, w1_scale, w1_zero_point)',
      'c1_out = Conv(x, w1_dequantized)',
      'relu1_out = Relu(c1_out)',
      'w2_dequantized = DequantizeLinear(w2_quantized, w2_scale, w2_zero_point)',
      'c2_out = Conv(relu1_out, w2_dequantized)',
      'add_out = Add(c2_out, x)',
      'relu2_out = Relu(add_out)',
    ]);
    const params = new Map<string, QParams>([
      ['x', { scale: 4 / 127, zeroPoint: 0 }],
      ['relu1_out', { scale: 3 / 127, zeroPoint: 0 }],
    ]);
    const { inserted } = insertQdq(
      m,
      [act('x', 'i8', true, [{ node: 'c1', input: 0 }, { node: 'add', input: 1 }]), act('relu1_out', 'i8', true)],
      params,
    );
    assert.equal(inserted, 5);
    assert.deepEqual(graphText(m.graph), [
      'x_quantized = QuantizeLinear(x, x_scale, x_zero_point)',
      'w1_dequantized = DequantizeLinear(w1_quantized, w1_scale, w1_zero_point)',
      'x_dequantized = DequantizeLinear(x_quantized, x_scale, x_zero_point)',
      'c1_out = Conv(x_dequantized, w1_dequantized)',
      'relu1_out = Relu(c1_out)',
      'relu1_out_quantized = QuantizeLinear(relu1_out, relu1_out_scale, relu1_out_zero_point)',
      'w2_dequantized = DequantizeLinear(w2_quantized, w2_scale, w2_zero_point)',
      'relu1_out_dequantized = DequantizeLinear(relu1_out_quantized, relu1_out_scale, relu1_out_zero_point)',
      'c2_out = Conv(relu1_out_dequantized, w2_dequantized)',
      'x_dequantized_1 = DequantizeLinear(x_quantized, x_scale, x_zero_point)',
      'add_out = Add(c2_out, x_dequantized_1)',
      'relu2_out = Relu(add_out)',
    ]);
    // attributes: weight DQs carry an explicit axis, activation Q/DQs (scalar scales) carry none
    const attrs = m.graph.nodeArray().filter((n) => n.op === 'QuantizeLinear' || n.op === 'DequantizeLinear').map((n) => `${n.outputs[0]!.name} ${JSON.stringify(Object.fromEntries([...n.attrs].map(([k, a]) => [k, Number(a.value)])))}`);
    assert.deepEqual(attrs, [
      'x_quantized {}',
      'w1_dequantized {"axis":0}',
      'x_dequantized {}',
      'relu1_out_quantized {}',
      'w2_dequantized {"axis":0}',
      'relu1_out_dequantized {}',
      'x_dequantized_1 {}',
    ]);
    assert.deepEqual(qparamText(m, 'x_quantized'), [`x_scale f32 [] = ${Math.fround(4 / 127)}`, 'x_zero_point i8 [] = 0']);
    assert.deepEqual(qparamText(m, 'relu1_out_dequantized'), [`relu1_out_scale f32 [] = ${Math.fround(3 / 127)}`, 'relu1_out_zero_point i8 [] = 0']);
    assert.deepEqual(verify(m), []);
    assert.deepEqual(m.graph.outputs.map((v) => v.name), ['relu2_out']);
    const after = (await runOrt(m, { x: new ort.Tensor('float32', xv, [1, 4, 6, 6]) }))['relu2_out']!.data as Float32Array;
    let s = 0;
    let e = 0;
    for (let i = 0; i < before.length; i++) {
      s += before[i]! ** 2;
      e += (before[i]! - after[i]!) ** 2;
    }
    assert.ok(10 * Math.log10(s / e) > 25, `W8A8 block SQNR ${10 * Math.log10(s / e)} dB`);
  });

  test('listed consumers only: an unlisted reader keeps the float tensor; a graph output keeps its name and value', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [8]);
    const y = b.op('Relu', [x], { name: 'relu' });
    const a = b.op('Add', [y, x], { name: 'a' });
    const s = b.op('Sigmoid', [y], { name: 'sig' });
    const n = b.op('Neg', [y], { name: 'neg' });
    b.output(y, a, s, n);
    const m = b.build();
    const { inserted } = insertQdq(m, [act('relu_out', 'u8', false, [{ node: 'a', input: 0 }, { node: 'neg', input: 0 }])], new Map([['relu_out', { scale: 0.05, zeroPoint: 3 }]]));
    assert.equal(inserted, 3);
    assert.deepEqual(graphText(m.graph), [
      'relu_out = Relu(x)',
      'relu_out_quantized = QuantizeLinear(relu_out, relu_out_scale, relu_out_zero_point)',
      'relu_out_dequantized = DequantizeLinear(relu_out_quantized, relu_out_scale, relu_out_zero_point)',
      'a_out = Add(relu_out_dequantized, x)',
      'sig_out = Sigmoid(relu_out)',
      'relu_out_dequantized_1 = DequantizeLinear(relu_out_quantized, relu_out_scale, relu_out_zero_point)',
      'neg_out = Neg(relu_out_dequantized_1)',
    ]);
    assert.deepEqual(m.graph.outputs.map((v) => v.name), ['relu_out', 'a_out', 'sig_out', 'neg_out']);
    assert.deepEqual(qparamText(m, 'relu_out_quantized'), [`relu_out_scale f32 [] = ${Math.fround(0.05)}`, 'relu_out_zero_point u8 [] = 3']);
    assert.deepEqual(verify(m), []);
    const xv = Float32Array.of(-1, 0.123, 0.5, 2, 3.3, -0.2, 7.77, 100);
    const out = await runOrt(m, { x: new ort.Tensor('float32', xv, [8]) });
    assert.deepEqual([...(out['relu_out']!.data as Float32Array)], [...xv].map((v) => Math.max(v, 0)), 'the graph output stays float');
    const dq = [...xv].map((v) => Math.fround((quantizeInt(Math.max(v, 0), Math.fround(0.05), 3, 'u8', true) - 3) * Math.fround(0.05)));
    assert.deepEqual([...(out['neg_out']!.data as Float32Array)], dq.map((v) => -v));
    assert.deepEqual([...(out['sig_out']!.data as Float32Array)].map((v, i) => Math.abs(v - 1 / (1 + Math.exp(-Math.max(xv[i]!, 0)))) < 1e-6), Array(8).fill(true));
  });

  test('graphOutput: the graph output reads its own DQ and keeps its name; the float tensor becomes <t>_float', async () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [6]);
    const y = b.op('Relu', [x], { name: 'relu' });
    b.output(y, b.op('Neg', [y], { name: 'neg' }));
    const m = b.build();
    const { inserted } = insertQdq(m, [{ ...act('relu_out', 'u8', false), graphOutput: true }], new Map([['relu_out', { scale: 0.03, zeroPoint: 0 }]]));
    assert.equal(inserted, 3);
    assert.deepEqual(graphText(m.graph), [
      'relu_out_float = Relu(x)',
      'relu_out_quantized = QuantizeLinear(relu_out_float, relu_out_scale, relu_out_zero_point)',
      'relu_out = DequantizeLinear(relu_out_quantized, relu_out_scale, relu_out_zero_point)',
      'relu_out_dequantized = DequantizeLinear(relu_out_quantized, relu_out_scale, relu_out_zero_point)',
      'neg_out = Neg(relu_out_dequantized)',
    ]);
    assert.deepEqual(m.graph.outputs.map((v) => v.name), ['relu_out', 'neg_out']);
    assert.deepEqual(verify(m), []);
    const xv = Float32Array.of(-1, 0.01, 0.5, 2, 7.7, 100);
    const out = await runOrt(m, { x: new ort.Tensor('float32', xv, [6]) });
    const dq = [...xv].map((v) => Math.fround(quantizeInt(Math.max(v, 0), Math.fround(0.03), 0, 'u8', true) * Math.fround(0.03)));
    assert.deepEqual([...(out['relu_out']!.data as Float32Array)], dq, 'the graph output is the dequantized value (7.65 saturates)');
    assert.deepEqual([...(out['neg_out']!.data as Float32Array)], dq.map((v) => -v));
    // without graphOutput, a tensor read only by the graph output gets nothing (see the next tests)
    const b2 = new GraphBuilder('g', { opset: 13 });
    b2.output(b2.op('Relu', [b2.input('x', 'f32', [6])], { name: 'relu' }));
    const m2 = b2.build();
    assert.equal(insertQdq(m2, [act('relu_out', 'u8', false)], new Map([['relu_out', { scale: 0.03, zeroPoint: 0 }]])).inserted, 0);
  });

  test('empty consumers = every node input: Mul(y, y) gets two DQs; a graph input is quantized at the top', () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [4]);
    const e = b.op('Exp', [x], { name: 'exp' });
    b.output(b.op('Mul', [x, x], { name: 'sq' }), e);
    const m = b.build();
    const { inserted } = insertQdq(m, [act('x', 'i8', true)], new Map([['x', { scale: 0.1, zeroPoint: 0 }]]));
    assert.equal(inserted, 4);
    assert.deepEqual(graphText(m.graph), [
      'x_quantized = QuantizeLinear(x, x_scale, x_zero_point)',
      'x_dequantized = DequantizeLinear(x_quantized, x_scale, x_zero_point)',
      'exp_out = Exp(x_dequantized)',
      'x_dequantized_1 = DequantizeLinear(x_quantized, x_scale, x_zero_point)',
      'x_dequantized_2 = DequantizeLinear(x_quantized, x_scale, x_zero_point)',
      'sq_out = Mul(x_dequantized_1, x_dequantized_2)',
    ]);
    assert.deepEqual(verify(m), []);
  });

  test('a plan with sameAs and no parameters of its own uses the other tensor\'s scale and zero point', () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [1, 2, 4, 4]);
    const p = b.op('MaxPool', [x], { name: 'pool', attrs: { kernel_shape: [2, 2] } });
    b.output(b.op('Neg', [p], { name: 'neg' }));
    const m = b.build();
    insertQdq(m, [act('x', 'u8', false), { ...act('pool_out', 'u8', false), sameAs: 'x' }], new Map([['x', { scale: 0.02, zeroPoint: 100 }]]));
    assert.deepEqual(qparamText(m, 'pool_out_quantized'), [`pool_out_scale f32 [] = ${Math.fround(0.02)}`, 'pool_out_zero_point u8 [] = 100']);
    assert.deepEqual(verify(m), []);
    assert.throws(() => insertQdq(small(), [{ ...act('relu_out', 'i8', true), sameAs: 'x' }], new Map()), /no scale \/ zero point for activation 'relu_out' nor for 'x'/);
  });

  test('duplicate plans for one tensor merge their consumers; a tensor read only by a graph output gets nothing', () => {
    const b = new GraphBuilder('g', { opset: 13 });
    const x = b.input('x', 'f32', [4]);
    const y = b.op('Relu', [x], { name: 'r' });
    b.output(b.op('Neg', [y], { name: 'n1' }), b.op('Abs', [y], { name: 'n2' }), b.op('Exp', [y], { name: 'n3' }), b.op('Tanh', [x], { name: 'only_out' }));
    const m = b.build();
    const params = new Map([
      ['r_out', { scale: 0.1, zeroPoint: 0 }],
      ['only_out_out', { scale: 0.1, zeroPoint: 0 }],
    ]);
    const { inserted } = insertQdq(m, [act('r_out', 'i8', true, [{ node: 'n1', input: 0 }]), act('r_out', 'i8', true, [{ node: 'n3', input: 0 }]), act('only_out_out', 'i8', true)], params);
    assert.equal(inserted, 3);
    assert.deepEqual(graphText(m.graph), [
      'r_out = Relu(x)',
      'r_out_quantized = QuantizeLinear(r_out, r_out_scale, r_out_zero_point)',
      'r_out_dequantized = DequantizeLinear(r_out_quantized, r_out_scale, r_out_zero_point)',
      'n1_out = Neg(r_out_dequantized)',
      'n2_out = Abs(r_out)',
      'r_out_dequantized_1 = DequantizeLinear(r_out_quantized, r_out_scale, r_out_zero_point)',
      'n3_out = Exp(r_out_dequantized_1)',
      'only_out_out = Tanh(x)',
    ]);
    assert.deepEqual(verify(m), []);
  });
});

describe('insertQdq: ORT QuantizeLinear / DequantizeLinear agree with ir/numerics', () => {
  const cases: { dtype: QDType; symmetric: boolean; scale: number; zp: number; opset: number }[] = [
    { dtype: 'u8', symmetric: false, scale: 0.0173, zp: 117, opset: 13 },
    { dtype: 'i8', symmetric: true, scale: 0.021, zp: 0, opset: 13 },
    { dtype: 'i8', symmetric: false, scale: 0.019, zp: -20, opset: 13 },
    { dtype: 'i16', symmetric: true, scale: 1e-4, zp: 0, opset: 21 },
    { dtype: 'u16', symmetric: false, scale: 7e-5, zp: 30000, opset: 21 },
    { dtype: 'fp8e4m3', symmetric: true, scale: 0.005, zp: 0, opset: 19 },
  ];
  for (const c of cases) {
    test(`${c.dtype} scale ${c.scale} zero point ${c.zp} (saturating, round half to even)`, async () => {
      const b = new GraphBuilder('g', { opset: c.opset });
      const x = b.input('x', 'f32', [4000]);
      b.output(b.op('Identity', [x], { name: 'id' }));
      const m = b.build();
      insertQdq(m, [act('x', c.dtype, c.symmetric)], new Map([['x', { scale: c.scale, zeroPoint: c.zp }]]));
      assert.equal(m.opset, c.opset);
      assert.deepEqual(verify(m), []);
      // values up to well beyond the representable range, plus exact ties
      const s = Math.fround(c.scale);
      const xv = randn(4000, 3);
      for (let i = 0; i < 200; i++) xv[i] = Math.fround((Math.floor(rnd() * 200) - 100 + 0.5) * s);
      const got = (await runOrt(m, { x: new ort.Tensor('float32', xv, [4000]) }))['id_out']!.data as Float32Array;
      let mismatches = 0;
      let nearTies = 0;
      for (let i = 0; i < xv.length; i++) {
        const t = Math.fround(xv[i]! / s);
        let want: number;
        if (c.dtype === 'fp8e4m3') want = Math.fround(decodeFp8('fp8e4m3', encodeFp8('fp8e4m3', t)) * s);
        else want = Math.fround((quantizeInt(xv[i]!, s, c.zp, c.dtype as IntQuantDType, true) - c.zp) * s);
        if (got[i] === want) continue;
        // ORT may compute x·(1/scale) instead of x/scale: only inputs within rounding distance of a tie may differ
        const frac = Math.abs(t - Math.floor(t) - 0.5);
        if (c.dtype !== 'fp8e4m3' && frac < 1e-4) nearTies++;
        else mismatches++;
      }
      assert.equal(mismatches, 0, `${mismatches} elements differ away from ties (${nearTies} near ties)`);
      assert.ok(nearTies <= 5, `${nearTies} near-tie differences`);
    });
  }
});

describe('insertQdq: refusals and opset', () => {
  const ok: QParams = { scale: 0.1, zeroPoint: 0 };
  const refusals: { title: string; plans: ActivationPlan[]; params: [string, QParams][]; msg: RegExp }[] = [
    { title: 'a tensor without calibrated parameters', plans: [act('relu_out', 'i8', true)], params: [], msg: /no scale \/ zero point.*relu_out/ },
    { title: 'an unknown tensor', plans: [act('nope', 'i8', true)], params: [['nope', ok]], msg: /'nope'.*not in the graph/ },
    { title: 'a zero point outside the dtype', plans: [act('relu_out', 'u8', false)], params: [['relu_out', { scale: 0.1, zeroPoint: 300 }]], msg: /zero point 300.*not a u8/ },
    { title: 'a symmetric plan with a non-zero zero point', plans: [act('relu_out', 'i8', true)], params: [['relu_out', { scale: 0.1, zeroPoint: 4 }]], msg: /symmetric.*zero point 4/ },
    { title: 'a zero scale', plans: [act('relu_out', 'i8', true)], params: [['relu_out', { scale: 0, zeroPoint: 0 }]], msg: /positive finite/ },
    { title: 'a scale that underflows float32', plans: [act('relu_out', 'i8', true)], params: [['relu_out', { scale: 1e-50, zeroPoint: 0 }]], msg: /positive finite/ },
    { title: 'an FP8 zero point', plans: [act('relu_out', 'fp8e4m3', true)], params: [['relu_out', { scale: 0.1, zeroPoint: 1 }]], msg: /FP8 zero point/ },
    { title: 'INT4 activations', plans: [act('relu_out', 'i4', true)], params: [['relu_out', ok]], msg: /INT4 is weight-only/ },
    {
      title: 'per-channel activations',
      plans: [{ ...act('relu_out', 'i8', true), quant: { dtype: 'i8', symmetric: true, granularity: { kind: 'per-channel', axis: 0 } } }],
      params: [['relu_out', ok]],
      msg: /per-channel.*per-tensor/,
    },
    { title: 'a listed consumer that does not read the tensor', plans: [act('relu_out', 'i8', true, [{ node: 'negk', input: 0 }])], params: [['relu_out', ok]], msg: /'negk'.*does not read 'relu_out'/ },
    { title: 'an integer tensor', plans: [act('k', 'i8', true)], params: [['k', ok]], msg: /'k' is i64/ },
  ];
  for (const r of refusals) {
    test(`refuses ${r.title} with E_UNSUPPORTED, leaving the model untouched`, () => {
      const m = small();
      const bytes = encodeModel(m);
      assert.throws(
        () => insertQdq(m, r.plans, new Map(r.params)),
        (e: unknown) => e instanceof QccError && e.code === 'E_UNSUPPORTED' && r.msg.test(e.message) && e.loc.tensor !== undefined,
      );
      assert.deepEqual(encodeModel(m), bytes);
    });
  }

  test('opset: FP8 raises 13 -> 19, 16-bit 13 -> 21 (upgrade-opset); 8-bit keeps opset 10 (no axis attribute needed)', () => {
    for (const [from, dtype, to] of [[13, 'fp8e4m3', 19], [13, 'i16', 21], [10, 'u8', 10], [13, 'i8', 13]] as const) {
      const m = small(from);
      insertQdq(m, [act('relu_out', dtype, dtype !== 'u8')], new Map([['relu_out', { scale: 0.1, zeroPoint: dtype === 'u8' ? 128 : 0 }]]));
      assert.equal(m.opset, to, `${dtype} from ${from}`);
      assert.deepEqual(verify(m), []);
    }
  });
});
