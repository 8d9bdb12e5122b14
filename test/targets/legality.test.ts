// Legality tables of both targets: accepted requests, each refusal with its backend limit, and fallbacks that are themselves legal.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import type { Node } from '../../ir/ir.js';
import type { Granularity, QDType, TensorQuant } from '../../passes/quant/types.js';
import { ORT_LIMITS } from '../../targets/ort/legality.js';
import { getTarget, type LayerRequest, type Reason } from '../../targets/target.js';
import { TRT_LIMITS } from '../../targets/tensorrt/legality.js';

const trt = getTarget('tensorrt');
const ort = getTarget('ort');

/** Weighted nodes with constant weights: conv [8,4,3,3], convT [4,8,2,2], matmul B [64,32], gemm transB B [32,64], gemm B [64,32], matmul B3 [2,64,32], relu. */
function nodes(): Record<string, Node> {
  const b = new GraphBuilder();
  const x = b.input('x', 'f32', [1, 4, 8, 8]);
  const a = b.input('a', 'f32', [4, 64]);
  const a3 = b.input('a3', 'f32', [2, 4, 64]);
  const c = b.op('Conv', [x, b.f32('wc', [8, 4, 3, 3], new Float32Array(288))], { name: 'conv', attrs: { kernel_shape: [3, 3] } });
  b.op('ConvTranspose', [c, b.f32('wt', [8, 4, 2, 2], new Float32Array(128))], { name: 'convT', attrs: { kernel_shape: [2, 2] } });
  b.op('MatMul', [a, b.f32('wm', [64, 32], new Float32Array(2048))], { name: 'matmul' });
  b.op('MatMul', [a3, b.f32('wm3', [2, 64, 32], new Float32Array(4096))], { name: 'matmul3' });
  b.op('MatMul', [a, b.f32('wodd', [64, 31], new Float32Array(64 * 31))], { name: 'matmulOdd' });
  b.op('Gemm', [a, b.f32('wg', [32, 64], new Float32Array(2048)), b.f32('bg', [32], new Float32Array(32))], { name: 'gemmT', attrs: { transB: 1 } });
  b.op('Gemm', [a, b.f32('wg0', [64, 32], new Float32Array(2048))], { name: 'gemm' });
  b.op('MatMul', [a, b.op('Transpose', [a], { name: 'at' })], { name: 'actact' });
  b.op('Relu', [c], { name: 'relu' });
  const m = b.build();
  return Object.fromEntries(m.graph.nodeArray().map((n) => [n.name, n]));
}
const N = nodes();

const q = (dtype: QDType, g: Granularity = { kind: 'per-tensor' }, symmetric = true): TensorQuant => ({ dtype, granularity: g, symmetric });
const pc = (axis: number): Granularity => ({ kind: 'per-channel', axis });
const blk = (axis: number, size = 32): Granularity => ({ kind: 'blocked', axis, size });
const req = (w: TensorQuant | undefined, a: TensorQuant | undefined, wi = 1): LayerRequest => ({
  weights: w ? [{ input: wi, quant: w }] : [],
  activations: a ? [{ input: 0, quant: a }] : [],
});
const I8 = q('i8');
const U8 = q('u8', { kind: 'per-tensor' }, false);
const FP8 = q('fp8e4m3');

function refused(r: true | Reason): Reason {
  assert.notEqual(r, true, 'expected a refusal');
  return r as Reason;
}

describe('tensorrt legality', () => {
  test('accepts INT8 and FP8 W8A8 on every weighted op, INT4 blocked weight-only on Gemm/MatMul', () => {
    assert.equal(trt.legality(N.conv!, req(q('i8', pc(0)), I8)), true);
    assert.equal(trt.legality(N.convT!, req(q('i8', pc(1)), I8)), true);
    assert.equal(trt.legality(N.conv!, req(q('fp8e4m3', pc(0)), FP8)), true);
    assert.equal(trt.legality(N.matmul!, req(q('i8', pc(1)), I8)), true);
    assert.equal(trt.legality(N.gemmT!, req(q('i4', blk(1)), undefined)), true);
    assert.equal(trt.legality(N.matmul!, req(q('i4', blk(0, 128)), undefined)), true);
    assert.equal(trt.legality(N.matmul!, req(q('i8', pc(1)), undefined)), true, 'INT8 weight-only GEMM');
    assert.equal(trt.legality(N.actact!, { weights: [], activations: [{ input: 0, quant: I8 }, { input: 1, quant: I8 }] }), true);
  });

  test('INT4 convolution weights -> INT8 per-channel, citing SPEC §8', () => {
    const r = refused(trt.legality(N.conv!, req(q('i4', blk(1)), I8)));
    assert.equal(r.message, TRT_LIMITS.int4Conv.text);
    assert.match(r.limit, /SPEC §8/);
    assert.deepEqual(r.fallback, req(q('i8', pc(0)), I8));
    const t = refused(trt.legality(N.convT!, req(q('i4', blk(0)), I8)));
    assert.deepEqual(t.fallback, req(q('i8', pc(1)), I8), 'ConvTranspose channels are axis 1');
  });

  test('INT4 with quantized activations -> weight-only', () => {
    const r = refused(trt.legality(N.matmul!, req(q('i4', blk(0)), I8)));
    assert.equal(r.message, TRT_LIMITS.int4WeightOnly.text);
    assert.deepEqual(r.fallback, req(q('i4', blk(0)), undefined));
  });

  test('symmetric only, per-tensor INT8/FP8 activations', () => {
    const r = refused(trt.legality(N.conv!, req(q('i8', pc(0)), U8)));
    assert.equal(r.message, `${TRT_LIMITS.activationDtype.text}; ${TRT_LIMITS.symmetric.text}`);
    assert.deepEqual(r.fallback, req(q('i8', pc(0)), I8));
    const a = refused(trt.legality(N.conv!, req(q('i8', pc(0)), q('i8', pc(1)))));
    assert.equal(a.message, TRT_LIMITS.activationPerTensor.text);
    assert.deepEqual(a.fallback, req(q('i8', pc(0)), I8));
    const w = refused(trt.legality(N.conv!, req(q('i8', pc(0), false), I8)));
    assert.equal(w.message, TRT_LIMITS.symmetric.text);
  });

  test('block quantization is for INT4; INT4 needs blocks on the last two dims and an even last dim', () => {
    assert.deepEqual(refused(trt.legality(N.matmul!, req(q('i8', blk(0)), I8))).fallback, req(q('i8', pc(1)), I8));
    assert.deepEqual(refused(trt.legality(N.matmul!, req(q('i4', pc(1)), undefined))).fallback, req(q('i4', blk(0, 128)), undefined));
    const odd = refused(trt.legality(N.matmulOdd!, req(q('i4', blk(0)), undefined)));
    assert.equal(odd.message, TRT_LIMITS.int4EvenLastDim.text);
    assert.deepEqual(odd.fallback, req(q('i8', pc(1)), undefined));
    const axis = refused(trt.legality(N.matmul3!, req(q('i4', blk(0)), undefined)));
    assert.equal(axis.message, TRT_LIMITS.blockAxis.text);
  });

  test('mixed INT8/FP8 operands take the activation family', () => {
    const r = refused(trt.legality(N.conv!, req(q('fp8e4m3', pc(0)), I8)));
    assert.equal(r.message, TRT_LIMITS.dtypePair.text);
    assert.deepEqual(r.fallback, req(q('i8', pc(0)), I8));
  });

  test('refusals without fallback: non-weighted ops, weight-only convolutions, FP8 weight-only', () => {
    assert.equal(refused(trt.legality(N.relu!, req(undefined, I8))).message, TRT_LIMITS.op.text);
    const c = refused(trt.legality(N.conv!, req(q('i8', pc(0)), undefined)));
    assert.equal(c.message, TRT_LIMITS.weightOnlyConv.text);
    assert.equal(c.fallback, undefined);
    assert.equal(refused(trt.legality(N.matmul!, req(q('fp8e4m3', pc(1)), undefined))).message, TRT_LIMITS.fp8WeightOnly.text);
  });
});

describe('ort legality', () => {
  test('accepts U8S8 on Conv/Gemm/MatMul, uint8 activation x activation, INT4/INT8 MatMulNBits weight-only, FP8 weight-only', () => {
    assert.equal(ort.legality(N.conv!, req(q('i8', pc(0)), U8)), true);
    assert.equal(ort.legality(N.gemmT!, req(q('i8', pc(0)), U8)), true);
    assert.equal(ort.legality(N.matmul!, req(q('i8', pc(1)), U8)), true);
    assert.equal(ort.legality(N.actact!, { weights: [], activations: [{ input: 0, quant: U8 }, { input: 1, quant: U8 }] }), true);
    assert.equal(ort.legality(N.matmul!, req(q('i4', blk(0, 128)), undefined)), true);
    assert.equal(ort.legality(N.matmul!, req(q('i8', pc(1)), undefined)), true);
    assert.equal(ort.legality(N.gemm!, req(q('i4', blk(0, 16)), undefined)), true);
    assert.equal(ort.legality(N.conv!, req(q('fp8e4m3', pc(0)), undefined)), true);
  });

  test('ConvTranspose has no quantized CPU kernel: no fallback, the layer stays float', () => {
    const r = refused(ort.legality(N.convT!, req(q('i8', pc(1)), U8)));
    assert.equal(r.message, ORT_LIMITS.op.text);
    assert.equal(r.fallback, undefined);
  });

  test('symmetric int8 activations -> asymmetric uint8 (Relu absorption needs the zero point at the type minimum)', () => {
    const r = refused(ort.legality(N.conv!, req(q('i8', pc(0)), I8)));
    assert.equal(r.message, ORT_LIMITS.activationDtype.text);
    assert.match(r.limit, /IsClipMadeRedundantByQ/);
    assert.deepEqual(r.fallback, req(q('i8', pc(0)), U8));
  });

  test('INT4: Conv -> INT8; MatMul with activations -> weight-only MatMulNBits; transB Gemm -> INT8 (or float when weight-only)', () => {
    assert.deepEqual(refused(ort.legality(N.conv!, req(q('i4', blk(1)), U8))).fallback, req(q('i8', pc(0)), U8));
    const mm = refused(ort.legality(N.matmul!, req(q('i4', blk(0, 128)), U8)));
    assert.equal(mm.message, ORT_LIMITS.int4WithActivation.text);
    assert.deepEqual(mm.fallback, req(q('i4', blk(0, 128)), undefined));
    assert.deepEqual(refused(ort.legality(N.gemmT!, req(q('i4', blk(1)), U8))).fallback, req(q('i8', pc(0)), U8));
    const g = refused(ort.legality(N.gemmT!, req(q('i4', blk(1)), undefined)));
    assert.equal(g.message, ORT_LIMITS.weightOnlyGemm.text);
    assert.equal(g.fallback, undefined);
  });

  test('MatMulNBits: power-of-two blocks of at least 16 along K, 2-D weights only', () => {
    assert.deepEqual(refused(ort.legality(N.matmul!, req(q('i4', blk(0, 100)), undefined))).fallback, req(q('i4', blk(0, 64)), undefined));
    assert.deepEqual(refused(ort.legality(N.matmul!, req(q('i4', blk(0, 8)), undefined))).fallback, req(q('i4', blk(0, 16)), undefined));
    assert.equal(refused(ort.legality(N.matmul3!, req(q('i4', blk(1)), undefined))).message, ORT_LIMITS.nbitsShape.text);
    assert.equal(refused(ort.legality(N.conv!, req(q('i8', pc(0)), undefined))).message, ORT_LIMITS.weightOnlyConv.text);
  });

  test('FP8 activations -> FP8 weight-only (ORT 1.30 cannot load FP8 activation Q/DQ after its fusions)', () => {
    const r = refused(ort.legality(N.matmul!, req(q('fp8e4m3', pc(1)), FP8)));
    assert.equal(r.message, ORT_LIMITS.fp8Activations.text);
    assert.deepEqual(r.fallback, req(q('fp8e4m3', pc(1)), undefined));
    assert.equal(refused(ort.legality(N.actact!, { weights: [], activations: [{ input: 0, quant: FP8 }, { input: 1, quant: FP8 }] })).fallback, undefined);
  });
});

describe('legality is a closure', () => {
  const dtypes: QDType[] = ['i8', 'u8', 'i4', 'fp8e4m3', 'i16'];
  const grans: Granularity[] = [{ kind: 'per-tensor' }, pc(0), pc(1), blk(0), blk(1, 128), blk(0, 100)];
  const acts: (TensorQuant | undefined)[] = [undefined, I8, U8, FP8, q('u16'), q('i8', pc(1))];
  for (const t of [trt, ort]) {
    test(`${t.name}: every fallback is legal, every refusal cites a limit`, () => {
      let fallbacks = 0;
      let refusals = 0;
      for (const n of Object.values(N)) {
        for (const d of dtypes) {
          for (const g of grans) {
            for (const a of acts) {
              for (const sym of [true, false]) {
                const r = t.legality(n, req(q(d, g, sym), a));
                if (r === true) continue;
                assert.ok(r.message.length > 0 && r.limit.length > 0, `${n.name}: empty refusal`);
                if (!r.fallback) {
                  refusals++;
                  continue;
                }
                fallbacks++;
                assert.equal(t.legality(n, r.fallback), true, `${t.name} ${n.name} ${d} ${JSON.stringify(g)} ${a?.dtype}: fallback not legal: ${JSON.stringify(r.fallback)}`);
              }
            }
          }
        }
      }
      assert.ok(fallbacks > 100 && refusals > 10, `${fallbacks} fallbacks, ${refusals} refusals`);
    });
  }
});
