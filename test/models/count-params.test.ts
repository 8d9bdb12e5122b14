// countParams rules on small hand-built graphs; the ZOO table's published parameter counts; option and name errors of the zoo API.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import { buildZooModel, countParams, writeZooModel, ZOO } from '../../models/index.js';

function code(e: unknown): string | undefined {
  return e instanceof QccError ? e.code : undefined;
}

describe('countParams', () => {
  test('counts weights once; skips scalars, shapes, BN statistics, Q/DQ parameters and affine-free LayerNorm scales', () => {
    const b = new GraphBuilder('p', { opset: 21 });
    const x = b.input('x', 'f32', [1, 4, 8, 8]);
    const w = b.f32('w', [4, 4, 1, 1], new Array(16).fill(0.1)); // 16
    const c1 = b.op('Conv', [x, w]);
    const c2 = b.op('Conv', [c1, w]); // shared: counted once
    const bn = b.op('BatchNormalization', [c2, b.f32('g', [4], [1, 1, 1, 1]), b.f32('be', [4], [0, 0, 0, 0]), b.f32('rm', [4], [0, 0, 0, 0]), b.f32('rv', [4], [1, 1, 1, 1])]); // 8 (+8 statistics not counted)
    const half = b.op('Mul', [bn, b.f32('half', [], [0.5])]); // scalar: not counted
    const r = b.op('Reshape', [half, b.i64('shape', [1, 4, 64])]); // i64 shape: not counted
    const ln = b.op('LayerNormalization', [r, b.f32('ones', [64], new Array(64).fill(1))], { attrs: { axis: -1 } }); // affine-free: not counted
    const ln2 = b.op('LayerNormalization', [ln, b.f32('ones2', [64], new Array(64).fill(1)), b.f32('zeros', [64], new Array(64).fill(0))], { attrs: { axis: -1 } }); // with bias: 128
    const ln3 = b.op('LayerNormalization', [ln2, b.f32('gamma', [64], new Array(64).fill(2))], { attrs: { axis: -1 } }); // trained scale, no bias: 64
    const qw = b.init('qw', 'i8', [64, 16], new Int8Array(64 * 16)); // 1024
    const dq = b.op('DequantizeLinear', [qw, b.f32('s', [16], new Array(16).fill(0.1)), b.init('zp', 'i8', [16], new Int8Array(16))], { attrs: { axis: 1 } });
    const y = b.op('MatMul', [ln3, dq]);
    b.output(y);
    assert.equal(countParams(b.build()), 16 + 8 + 128 + 64 + 1024);
  });
});

describe('ZOO', () => {
  test('lists the seven models with the reference implementations\' parameter counts', () => {
    assert.deepEqual(
      ZOO.map((z) => [z.name, z.params]),
      [
        ['resnet18', 11_689_512],
        ['resnet50', 25_557_032],
        ['mobilenetv2', 3_504_872],
        ['vit-ti16', 5_717_416],
        ['vit-b16', 86_567_656],
        ['dit-s2', 32_963_360],
        ['dit-xl2', 675_129_632],
      ],
    );
    for (const z of ZOO) assert.ok(z.summary.length > 10 && z.inputs.includes('[N,'), z.name);
  });

  test('DiT counts follow the repo formula: trainable parameters plus the fixed pos_embed; S/2 rounds to the paper\'s 33.0M', () => {
    // DiT-S/2 by hand: patch conv, timestep MLP, label table (1001 rows), 12 blocks (qkv, proj, fc1, fc2, adaLN), final layer
    const D = 384;
    const lin = (i: number, o: number): number => i * o + o;
    const block = lin(D, 3 * D) + lin(D, D) + lin(D, 4 * D) + lin(4 * D, D) + lin(D, 6 * D);
    const trainable = 4 * D * 4 + D + lin(256, D) + lin(D, D) + 1001 * D + 12 * block + lin(D, 2 * 2 * 8) + lin(D, 2 * D);
    assert.equal(trainable, 32_865_056);
    assert.equal(trainable + 256 * D, ZOO.find((z) => z.name === 'dit-s2')!.params);
    assert.equal((trainable + 256 * D) / 1e6 < 33.05 && (trainable + 256 * D) / 1e6 >= 32.95, true);
  });
});

describe('zoo API errors', () => {
  test('unknown names, opsets outside the supported range, bad seeds and batches are refused with a code', async () => {
    await assert.rejects(buildZooModel('resnet19'), (e) => code(e) === 'E_USAGE' && /known: resnet18/.test((e as Error).message));
    await assert.rejects(buildZooModel('vit-ti16', { opset: 16 }), (e) => code(e) === 'E_MODEL_OPSET' && /LayerNormalization/.test((e as Error).message));
    await assert.rejects(buildZooModel('resnet18', { opset: 12 }), (e) => code(e) === 'E_MODEL_OPSET');
    await assert.rejects(buildZooModel('resnet18', { opset: 22 }), (e) => code(e) === 'E_MODEL_OPSET');
    await assert.rejects(buildZooModel('resnet18', { seed: -1 }), (e) => code(e) === 'E_USAGE');
    await assert.rejects(buildZooModel('resnet18', { batch: 0 }), (e) => code(e) === 'E_USAGE');
    await assert.rejects(writeZooModel('dit-xl2', '/nonexistent/x.onnx', { externalData: false }), (e) => code(e) === 'E_MODEL_TOO_LARGE');
  });
});
