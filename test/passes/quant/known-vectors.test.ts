// SPEC §9 quantizer vectors three ways: ir/numerics (QuantizeLinear semantics), qdq-math (weights) and onnxruntime's own QuantizeLinear / DequantizeLinear (incl. INT4 nibble order).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../../ir/builder.js';
import type { DType } from '../../../ir/dtype.js';
import type { Model } from '../../../ir/ir.js';
import { decodeFp8, packNibbles, quantizeInt, type IntQuantDType } from '../../../ir/numerics.js';
import { createSession, ort, run } from '../../../ir/ort.js';
import { groupLayout, quantizeWithScales, type WeightQDType } from '../../../passes/quant/qdq-math.js';

/**
 * The vectors. SPEC §9: "Q(2.5,1,0)=2, Q(3.5)=4, Q(−2.5)=−2, Q(300)→127 int8; int4 pack(1,−1)=0xF1"; QuantizeLinear is
 * y = saturate(round_half_even(x / scale) + zero_point) with int8 [-128, 127], uint8 [0, 255], int4 [-8, 7].
 */
const VECTORS: { dtype: 'i8' | 'u8' | 'i4'; scale: number; zp: number; x: number[]; q: number[] }[] = [
  { dtype: 'i8', scale: 1, zp: 0, x: [2.5, 3.5, -2.5, 300, -300, 0.5, 1.5, -0.5, 126.5, -127.5], q: [2, 4, -2, 127, -128, 0, 2, 0, 126, -128] },
  // scale 0.5: x / scale = [5, 1.5, -0.5, 255] -> ties to even 2 and 0; 127.5 saturates
  { dtype: 'i8', scale: 0.5, zp: 0, x: [2.5, 0.75, -0.25, 127.5], q: [5, 2, 0, 127] },
  // zero point 128: 2.5 -> 2 + 128; -300 and 300 saturate; -0.5 -> -0 + 128; 1.5 -> 2 + 128
  { dtype: 'u8', scale: 1, zp: 128, x: [2.5, -300, 300, -0.5, 1.5, 126.5], q: [130, 0, 255, 128, 130, 254] },
  // int4: ties to even, saturation to [-8, 7] (SPEC: int4 [-8, 7])
  { dtype: 'i4', scale: 1, zp: 0, x: [1, -1, 2.5, 100, -100, -7.5, 6.5, -3.5], q: [1, -1, 2, 7, -8, -8, 6, -4] },
];

const ORT_TYPE: Record<'i8' | 'u8' | 'i4', DType> = { i8: 'i8', u8: 'u8', i4: 'i4' };

function zpInit(dtype: 'i8' | 'u8' | 'i4', zp: number): Int8Array | Uint8Array {
  if (dtype === 'i8') return Int8Array.of(zp);
  if (dtype === 'u8') return Uint8Array.of(zp);
  return packNibbles([zp]);
}

/** x -> QuantizeLinear -> DequantizeLinear -> y with scalar scale and zero point: y = (q - zp) * scale. */
function qdqModel(dtype: 'i8' | 'u8' | 'i4', scale: number, zp: number, n: number): Model {
  const b = new GraphBuilder('g', { opset: 21 });
  const x = b.input('x', 'f32', [n]);
  const s = b.f32('s', [], [scale]);
  const z = b.init('z', ORT_TYPE[dtype], [], zpInit(dtype, zp));
  const q = b.op('QuantizeLinear', [x, s, z], { name: 'q' });
  b.output(b.op('DequantizeLinear', [q, s, z], { name: 'dq' }));
  return b.build();
}

async function ortRun(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await createSession(m, { optimization: 'disabled' });
  try {
    const out = await run(s, feeds);
    return Object.values(out)[0]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('SPEC §9 vectors: round half to even, saturation', () => {
  for (const v of VECTORS) {
    const title = `${v.dtype} scale ${v.scale} zero point ${v.zp}: [${v.x.join(', ')}] -> [${v.q.join(', ')}]`;
    test(`ir/numerics quantizeInt: ${title}`, () => {
      assert.deepEqual(
        v.x.map((x) => quantizeInt(x, v.scale, v.zp, v.dtype as IntQuantDType) + 0),
        v.q,
      );
    });
    test(`qdq-math quantizeWithScales (weights): ${title}`, () => {
      const r = quantizeWithScales(Float64Array.from(v.x), groupLayout([v.x.length], { kind: 'per-tensor' }), v.dtype as WeightQDType, Float32Array.of(v.scale), Int32Array.of(v.zp));
      const got = v.dtype === 'i4' ? [...r.data].flatMap((byte) => [((byte & 0xf) << 28) >> 28, (byte << 24) >> 28]).slice(0, v.x.length) : [...r.data];
      assert.deepEqual(got, v.q);
    });
    test(`onnxruntime QuantizeLinear -> DequantizeLinear: ${title}`, async () => {
      const y = await ortRun(qdqModel(v.dtype, v.scale, v.zp, v.x.length), { x: new ort.Tensor('float32', Float32Array.from(v.x), [v.x.length]) });
      assert.deepEqual([...y], v.q.map((q) => (q - v.zp) * v.scale));
    });
  }

  test('fp8 e4m3 (saturate=1): ±1e6 -> ±448, 17 -> 16 and 19 -> 20 (ties to even mantissa), in qdq-math and onnxruntime', async () => {
    const x = [1e6, -1e6, 17, 19, 448, -0.5];
    const want = [448, -448, 16, 20, 448, -0.5];
    const r = quantizeWithScales(Float64Array.from(x), groupLayout([x.length], { kind: 'per-tensor' }), 'fp8e4m3', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r.data].map((c) => decodeFp8('fp8e4m3', c)), want);
    const b = new GraphBuilder('g', { opset: 21 });
    const xv = b.input('x', 'f32', [x.length]);
    const s = b.f32('s', [], [1]);
    const z = b.init('z', 'fp8e4m3', [], Uint8Array.of(0));
    b.output(b.op('DequantizeLinear', [b.op('QuantizeLinear', [xv, s, z], { name: 'q' }), s, z], { name: 'dq' }));
    assert.deepEqual([...(await ortRun(b.build(), { x: new ort.Tensor('float32', Float32Array.from(x), [x.length]) }))], want);
  });
});

describe('SPEC §9 INT4 packing: 2 per byte, element 0 in the low nibble, odd counts padded', () => {
  test('packNibbles(1, -1) = 0xF1; [1, -1, 7, -8, 3] = F1 87 03; qdq-math stores the same bytes', () => {
    assert.deepEqual([...packNibbles([1, -1])], [0xf1]);
    assert.deepEqual([...packNibbles([1, -1, 7, -8, 3])], [0xf1, 0x87, 0x03]);
    const r = quantizeWithScales(Float64Array.of(1, -1, 7, -8, 3), groupLayout([5], { kind: 'per-tensor' }), 'i4', Float32Array.of(1), Int32Array.of(0));
    assert.deepEqual([...r.data], [0xf1, 0x87, 0x03]);
  });

  test('onnxruntime reads those bytes as [1, -1, 7, -8, 3] (int4) and [1, 15, 7, 8, 3] (uint4) through DequantizeLinear', async () => {
    for (const [dtype, want] of [
      ['i4', [1, -1, 7, -8, 3]],
      ['u4', [1, 15, 7, 8, 3]],
    ] as const) {
      const b = new GraphBuilder('g', { opset: 21 });
      const x = b.input('x', 'f32', [1]);
      const w = b.init('w', dtype, [5], Uint8Array.of(0xf1, 0x87, 0x03));
      const s = b.f32('s', [], [1]);
      const z = b.init('z', dtype, [], Uint8Array.of(0));
      const dq = b.op('DequantizeLinear', [w, s, z], { name: 'dq' });
      b.output(b.op('Add', [dq, x], { name: 'add' }));
      assert.deepEqual([...(await ortRun(b.build(), { x: new ort.Tensor('float32', Float32Array.of(0), [1]) }))], want, dtype);
    }
  });
});
