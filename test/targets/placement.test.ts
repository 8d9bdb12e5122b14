// Q/DQ placement per pattern (conv-relu, residual add, depthwise conv, attention, DiT adaLN) for both targets: the exact plan, each with a negative twin.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { printModel } from '../../ir/print.js';
import { getTarget } from '../../targets/target.js';
import { resolveChoices } from '../../targets/shared-plan.js';
import { adaLN, attention, config, convRelu, depthwise, linesOf, planText, prepare, residual } from './helpers.js';

const trt = getTarget('tensorrt');
const ort = getTarget('ort');

describe('conv-relu', () => {
  test('tensorrt: every Conv input quantized, symmetric int8, nothing on the Conv outputs, Relu range as clamp', async () => {
    const m = await prepare(convRelu());
    assert.deepEqual(planText(trt.plan(m, config())), [
      'act %x i8 -> conv1#0',
      'act %r i8 -> conv2#0 clamp[0,]',
      'w conv1#1 i8 ch0',
      'w conv2#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('ort: uint8 asymmetric activations, and the Conv outputs quantized after the Relu for every consumer', async () => {
    const m = await prepare(convRelu());
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %x u8 asym -> conv1#0',
      'act %r u8 asym -> * clamp[0,]',
      'act %y u8 asym -> *',
      'w conv1#1 i8 ch0',
      'w conv2#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('negative twin: a Conv whose weight is not constant gets no WeightPlan and no input Q/DQ', async () => {
    const m = await prepare(convRelu({ dynamicWeight: true }));
    assert.deepEqual(planText(trt.plan(m, config())), [
      'act %x i8 -> conv1#0',
      'w conv1#1 i8 ch0',
      "float conv2: weight input 'w2' is not a constant initializer",
      'opset 13',
    ]);
    // ORT still quantizes conv1's output (QLinearConv needs its Q) but conv2 reads it through a DQ in float
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %x u8 asym -> conv1#0',
      'act %r u8 asym -> * clamp[0,]',
      'w conv1#1 i8 ch0',
      "float conv2: weight input 'w2' is not a constant initializer",
      'opset 13',
    ]);
  });

  test('planning leaves the model unchanged', async () => {
    const m = await prepare(convRelu());
    const before = printModel(m);
    trt.plan(m, config());
    ort.plan(m, config('w4a8'));
    assert.equal(printModel(m), before);
  });
});

describe('residual add', () => {
  test('tensorrt: Q/DQ on the shortcut input of the Add (one Q for x, a DQ for conv1 and one for the Add)', async () => {
    const m = await prepare(residual());
    assert.deepEqual(planText(trt.plan(m, config())), [
      'act %x i8 -> conv1#0 add#1',
      'act %r i8 -> conv2#0 clamp[0,]',
      'w conv1#1 i8 ch0',
      'w conv2#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('ort: both Add inputs and its output after the Relu (QLinearAdd)', async () => {
    const m = await prepare(residual());
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %x u8 asym -> conv1#0 add#1',
      'act %r u8 asym -> * clamp[0,]',
      'act %h2 u8 asym -> *',
      'act %y u8 asym -> * clamp[0,]',
      'w conv1#1 i8 ch0',
      'w conv2#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('negative twin: with the branch Conv kept float the Add is not quantized', async () => {
    const m = await prepare(residual());
    assert.deepEqual(planText(trt.plan(m, config('w8a8', { keepFp: ['conv2'] }))), [
      'act %x i8 -> conv1#0',
      'w conv1#1 i8 ch0',
      "float conv2: keep-fp 'conv2'",
      'opset 13',
    ]);
    assert.deepEqual(planText(ort.plan(m, config('w8a8', { keepFp: ['conv2'] }))), [
      'act %x u8 asym -> conv1#0',
      'act %r u8 asym -> * clamp[0,]',
      'w conv1#1 i8 ch0',
      "float conv2: keep-fp 'conv2'",
      'opset 13',
    ]);
  });

  test('tensorrt: when both Add inputs are Conv outputs (downsample block), both are candidates; the smaller scale is quantized', async () => {
    const m = await prepare(`
graph main(%x: f32[1,8,8,8]) -> (%y: f32[1,8,8,8]) {
  %wd = const f32[8,8,1,1] {sha=0x00000000000000a1, first=[0.1]}
  %w1 = const f32[8,8,3,3] {sha=0x00000000000000a2, first=[0.1]}
  %id = Conv(%x, %wd) {kernel_shape=[1,1]} @downsample
  %h = Conv(%x, %w1) {kernel_shape=[3,3], pads=[1,1,1,1]} @conv1
  %s = Add(%h, %id) @add
  %y = Relu(%s) @relu
}`);
    const plan = trt.plan(m, config());
    assert.deepEqual(linesOf(plan, 'act'), ['act %x i8 -> downsample#0 conv1#0']);
    assert.deepEqual(
      plan.choices?.map((c) => [c.node, c.candidates.map((a) => `${a.tensor} -> ${a.consumers.map((x) => `${x.node}#${x.input}`).join(' ')}`)]),
      [['add', ['id -> add#1', 'h -> add#0']]],
      'candidates in the order their Convs run',
    );
    const params = (id: number, h: number) => new Map([['x', { scale: 0.1, zeroPoint: 0 }], ['id', { scale: id, zeroPoint: 0 }], ['h', { scale: h, zeroPoint: 0 }]]);
    const small = resolveChoices(plan, params(0.5, 0.02));
    assert.deepEqual(linesOf(small.plan, 'act'), ['act %x i8 -> downsample#0 conv1#0', 'act %h i8 -> add#0']);
    assert.equal(small.plan.choices, undefined);
    assert.deepEqual(small.resolved, [{ node: 'add', quantized: 'h', scale: 0.02, others: [{ tensor: 'id', scale: 0.5 }] }]);
    assert.deepEqual(linesOf(resolveChoices(plan, params(0.02, 0.5)).plan, 'act'), ['act %x i8 -> downsample#0 conv1#0', 'act %id i8 -> add#1']);
    assert.deepEqual(linesOf(resolveChoices(plan, params(0.1, 0.1)).plan, 'act'), ['act %x i8 -> downsample#0 conv1#0', 'act %id i8 -> add#1'], 'a tie keeps the first');
    assert.throws(() => resolveChoices(plan, new Map()), /not calibrated/);
    // onnxruntime quantizes both inputs and the output (QLinearAdd): no choice
    assert.equal(ort.plan(m, config()).choices, undefined);
  });
});

describe('depthwise conv', () => {
  test('tensorrt: per-channel weights along the C output channels of the [C,1,3,3] weight; Clip(0,6) range as clamp', async () => {
    const m = await prepare(depthwise());
    assert.deepEqual(planText(trt.plan(m, config())), [
      'act %x i8 -> dw#0',
      'act %r i8 -> pw#0 clamp[0,6]',
      'w dw#1 i8 ch0',
      'w pw#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('ort: the Q goes after the Clip (ORT absorbs it into the [0,6] range)', async () => {
    const m = await prepare(depthwise());
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %x u8 asym -> dw#0',
      'act %r u8 asym -> * clamp[0,6]',
      'act %y u8 asym -> *',
      'w dw#1 i8 ch0',
      'w pw#1 i8 ch0',
      'opset 13',
    ]);
  });

  test('negative twin: a Clip with a computed bound is no epilogue: no clamp, and ORT quantizes the Conv output before it', async () => {
    const m = await prepare(depthwise({ dynamicMax: true }));
    assert.deepEqual(linesOf(trt.plan(m, config()), 'act'), ['act %x i8 -> dw#0', 'act %r i8 -> pw#0']);
    assert.deepEqual(linesOf(ort.plan(m, config()), 'act'), ['act %x u8 asym -> dw#0', 'act %d u8 asym -> *', 'act %r u8 asym -> pw#0', 'act %y u8 asym -> *']);
  });

  test('--per-tensor gives per-tensor weights', async () => {
    const m = await prepare(depthwise());
    assert.deepEqual(linesOf(trt.plan(m, config('w8a8', { perChannel: false })), 'w '), ['w dw#1 i8', 'w pw#1 i8']);
  });
});

describe('attention block', () => {
  test('tensorrt: both operands of QK^T and softmax.V get ActivationPlans; projections per output column', async () => {
    const m = await prepare(attention());
    assert.deepEqual(planText(trt.plan(m, config())), [
      'act %x i8 -> q_proj#0 k_proj#0 v_proj#0',
      'act %q i8 -> qk#0',
      'act %v i8 -> av#1',
      'act %kt i8 -> qk#1',
      'act %p i8 -> av#0',
      'w q_proj#1 i8 ch1',
      'w k_proj#1 i8 ch1',
      'w v_proj#1 i8 ch1',
      'opset 13',
    ]);
  });

  test('ort: MatMul outputs quantized only for a quantized consumer (QLinearMatMul), else MatMulIntegerToFloat', async () => {
    const m = await prepare(attention());
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %x u8 asym -> q_proj#0 k_proj#0 v_proj#0',
      'act %q u8 asym -> *',
      'act %v u8 asym -> *',
      'act %kt u8 asym -> qk#1',
      'act %p u8 asym -> av#0',
      'w q_proj#1 i8 ch1',
      'w k_proj#1 i8 ch1',
      'w v_proj#1 i8 ch1',
      'opset 13',
    ]);
  });

  test('negative twin: a weight-only preset leaves activation x activation MatMuls float and quantizes no activation', async () => {
    const m = await prepare(attention());
    for (const t of [trt, ort]) {
      assert.deepEqual(planText(t.plan(m, config('w8a16'))), [
        'w q_proj#1 i8 ch1',
        'w k_proj#1 i8 ch1',
        'w v_proj#1 i8 ch1',
        'float qk: preset w8a16 quantizes weights only and both operands are activations',
        'float av: preset w8a16 quantizes weights only and both operands are activations',
        'opset 13',
      ]);
    }
  });
});

describe('DiT adaLN block', () => {
  test('tensorrt: SiLU output into the modulation Gemm (transB: per-channel axis 0), modulated LayerNorm into qkv; Mul/Add stay float', async () => {
    const m = await prepare(adaLN());
    assert.deepEqual(planText(trt.plan(m, config())), ['act %silu i8 -> ada#0', 'act %xm i8 -> qkv#0', 'w ada#1 i8 ch0', 'w qkv#1 i8 ch1', 'opset 13']);
  });

  test('ort: the Gemm with bias also quantizes its output (QGemm), read back in float by Unsqueeze/Slice', async () => {
    const m = await prepare(adaLN());
    assert.deepEqual(planText(ort.plan(m, config())), [
      'act %silu u8 asym -> ada#0',
      'act %m u8 asym -> *',
      'act %xm u8 asym -> qkv#0',
      'w ada#1 i8 ch0',
      'w qkv#1 i8 ch1',
      'opset 13',
    ]);
  });

  test('negative twin: keep-fp on the modulation Gemm removes its input Q/DQ too', async () => {
    const m = await prepare(adaLN());
    for (const [t, act] of [
      [trt, 'act %xm i8 -> qkv#0'],
      [ort, 'act %xm u8 asym -> qkv#0'],
    ] as const) {
      assert.deepEqual(planText(t.plan(m, config('w8a8', { keepFp: ['ada'] }))), [act, 'w qkv#1 i8 ch1', "float ada: keep-fp 'ada'", 'opset 13']);
    }
  });

  test('w4a8: INT4 blocks along K (axis 1 of the transB weight, axis 0 of the MatMul weight), weight-only, listed as fallbacks', async () => {
    const m = await prepare(adaLN());
    assert.deepEqual(planText(trt.plan(m, config('w4a8'))), [
      'w ada#1 i4 blk1x128',
      'w qkv#1 i4 blk0x128',
      'fallback ada: weights input 1 i4 blocks of 128 along axis 1; activations input 0 i8 per-tensor => weights input 1 i4 blocks of 128 along axis 1; activations float',
      'fallback qkv: weights input 1 i4 blocks of 128 along axis 0; activations input 0 i8 per-tensor => weights input 1 i4 blocks of 128 along axis 0; activations float',
      'opset 21',
    ]);
    // ORT: MatMulNBits takes the MatMul; the transB Gemm cannot be MatMulNBits and falls back to INT8 (QGemm)
    assert.deepEqual(planText(ort.plan(m, config('w4a8'))), [
      'act %silu u8 asym -> ada#0',
      'act %m u8 asym -> *',
      'w ada#1 i8 ch0',
      'w qkv#1 i4 blk0x128',
      'fallback ada: weights input 1 i4 blocks of 128 along axis 1; activations input 0 u8 per-tensor asymmetric => weights input 1 i8 per-channel axis 0; activations input 0 u8 per-tensor asymmetric',
      'fallback qkv: weights input 1 i4 blocks of 128 along axis 0; activations input 0 u8 per-tensor asymmetric => weights input 1 i4 blocks of 128 along axis 0; activations float',
      'opset 21',
    ]);
  });
});

describe('fallbacks and configuration', () => {
  test('w4a8 on a conv net under tensorrt: INT8 weights for every Conv, each listed with the backend limit', async () => {
    const m = await prepare(convRelu());
    const p = trt.plan(m, config('w4a8'));
    assert.deepEqual(linesOf(p, 'w '), ['w conv1#1 i8 ch0', 'w conv2#1 i8 ch0']);
    assert.deepEqual(linesOf(p, 'act'), ['act %x i8 -> conv1#0', 'act %r i8 -> conv2#0 clamp[0,]']);
    assert.equal(p.fallbacks.length, 2);
    for (const f of p.fallbacks) {
      assert.equal(f.op, 'Conv');
      assert.equal(f.requested, 'weights input 1 i4 blocks of 128 along axis 1; activations input 0 i8 per-tensor');
      assert.equal(f.applied, 'weights input 1 i8 per-channel axis 0; activations input 0 i8 per-tensor');
      assert.match(f.reason, /^TensorRT: INT4 is weight-only on Gemm\/MatMul; convolutions take INT8 weights \[SPEC §8/);
    }
    assert.equal(p.opset, 13);
    // the same request under ORT cites ORT's Conv selector
    assert.match(ort.plan(m, config('w4a8')).fallbacks[0]!.reason, /refuses 4-bit weights.*qdq_selectors\.cc/);
  });

  test('overrides: by op type and by name glob; precision, granularity and calibrator', async () => {
    const m = await prepare(attention());
    const p = trt.plan(
      m,
      config('w8a8', {
        overrides: [
          { match: 'MatMul', op: true, calibrator: 'entropy' },
          { match: 'qk', precision: 'fp' },
          { match: 'v_*', precision: 'fp8' },
          { match: 'k_proj', granularity: 'per-tensor' },
        ],
      }),
    );
    assert.deepEqual(planText(p), [
      'act %x i8 -> q_proj#0 k_proj#0 v_proj#0',
      'act %v i8 -> av#1',
      'act %p i8 -> av#0',
      'w q_proj#1 i8 ch1',
      'w k_proj#1 i8',
      'w v_proj#1 fp8e4m3 ch1',
      // v_proj asked for FP8 activations, but x is already INT8 for q_proj: one Q per tensor
      "fallback v_proj: activation 'x' fp8e4m3 per-tensor => activation 'x' i8 per-tensor",
      'float qk: config override: precision fp',
      'opset 19',
    ]);
    assert.ok(p.activations.every((a) => a.calibrator === 'entropy' && a.percentile === undefined));
    const q = trt.plan(m, config('w8a8', { calibrator: 'percentile', percentile: 99.9 }));
    assert.ok(q.activations.every((a) => a.calibrator === 'percentile' && a.percentile === 99.9));
    assert.ok(trt.plan(m, config('w8a8', { mseClip: true })).weights.every((w) => w.mseClip === true));
    assert.ok(q.weights.every((w) => w.mseClip === undefined));
  });

  test('opset: 13 for per-channel INT8, 19 for FP8, 21 for INT4 blocks', async () => {
    const m = await prepare(adaLN());
    assert.equal(trt.plan(m, config('w8a8')).opset, 13);
    assert.equal(trt.plan(m, config('fp8')).opset, 19);
    assert.equal(trt.plan(m, config('w4a16')).opset, 21);
    assert.deepEqual(linesOf(trt.plan(m, config('fp8')), 'act'), ['act %silu fp8e4m3 -> ada#0', 'act %xm fp8e4m3 -> qkv#0']);
  });

  test('ort fp8: activations stay float (weight-only FP8, emulated), each layer listed with the ORT limit', async () => {
    const m = await prepare(convRelu());
    const p = ort.plan(m, config('fp8'));
    assert.deepEqual(linesOf(p, 'act'), []);
    assert.deepEqual(linesOf(p, 'w '), ['w conv1#1 fp8e4m3 ch0', 'w conv2#1 fp8e4m3 ch0']);
    assert.equal(p.fallbacks.length, 2);
    assert.match(p.fallbacks[0]!.reason, /FP8 stays weight-only/);
  });
});
