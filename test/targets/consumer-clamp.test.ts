// Consumer clamps: a quantized tensor whose every reader is blind beyond some bound (hard-swish below -3, HardSigmoid
// outside [-b/a, (1-b)/a], Relu below 0) gets its range cut there. Structure on small graphs for both targets (with
// negative twins), and the premise checked numerically in onnxruntime: through the clamped Q/DQ the hard-swish is
// exact below -3 and within half a step times its slope elsewhere.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import type { Model } from '../../ir/ir.js';
import { inferShapes } from '../../ir/shape-inference.js';
import { canonicalize } from '../../passes/canonicalize.js';
import { computeRange, qparamsFor } from '../../passes/quant/calibration.js';
import { StreamingHistogram } from '../../passes/quant/histogram.js';
import { getTarget } from '../../targets/target.js';
import { ort as ortRt } from '../../ir/ort.js';
import { outputs } from '../util/ort.js';
import { config, planText } from './helpers.js';

const ort = getTarget('ort');
const trt = getTarget('tensorrt');

function weights(n: number, seed: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(seed * 7.1 + i * 1.3) * 0.2;
  return w;
}

/**
 * Conv -> act -> Conv, where act is hard-swish as opset-11 exporters write it (x * Clip(x + 3, 0, 6) / 6), HardSwish,
 * or HardSigmoid(0.2, 0.5); `extra` adds a Conv that reads the first Conv's output directly (negative twin).
 */
async function convAct(act: 'hswish-decomposed' | 'HardSwish' | 'HardSigmoid', o: { extra?: boolean } = {}): Promise<Model> {
  const b = new GraphBuilder('main', { opset: 14 });
  const x = b.input('x', 'f32', [1, 4, 8, 8]);
  const w1 = b.init('w1', 'f32', [4, 4, 3, 3], weights(144, 1));
  const w2 = b.init('w2', 'f32', [4, 4, 3, 3], weights(144, 2));
  const pads = { kernel_shape: [3, 3], pads: [1, 1, 1, 1] };
  const h = b.op('Conv', [x, w1], { name: 'conv1', attrs: pads });
  let a;
  if (act === 'hswish-decomposed') {
    const three = b.init('three', 'f32', [], Float32Array.of(3));
    const zero = b.init('zero', 'f32', [], Float32Array.of(0));
    const six = b.init('six', 'f32', [], Float32Array.of(6));
    const p = b.op('Add', [h, three], { name: 'add3' });
    const c = b.op('Clip', [p, zero, six], { name: 'clip' });
    const m = b.op('Mul', [h, c], { name: 'mul' });
    a = b.op('Div', [m, six], { name: 'div6' });
  } else if (act === 'HardSwish') {
    a = b.op('HardSwish', [h], { name: 'hswish' });
  } else {
    a = b.op('HardSigmoid', [h], { name: 'hsig', attrs: { alpha: 0.2, beta: 0.5 } });
  }
  const y = b.op('Conv', [a, w2], { name: 'conv2', attrs: pads });
  if (o.extra) {
    const w3 = b.init('w3', 'f32', [4, 4, 3, 3], weights(144, 3));
    b.output(y, b.op('Conv', [h, w3], { name: 'conv3', attrs: pads }));
  } else b.output(y);
  const m = b.build();
  await canonicalize(m);
  inferShapes(m);
  return m;
}

/** The plan line of one tensor. */
function actLine(m: Model, target: typeof ort, tensor: string): string | undefined {
  return planText(target.plan(m, config())).find((l) => l.startsWith(`act %${tensor} `));
}

describe('consumer clamps in the plan', () => {
  test('ort: the Conv output read only by a decomposed hard-swish is clamped at -3', async () => {
    const m = await convAct('hswish-decomposed');
    const h = m.graph.findNode('conv1')!.outputs[0]!.name;
    assert.equal(actLine(m, ort, h), `act %${h} u8 asym -> * clamp[-3,]`);
  });

  test('ort: HardSwish -> [-3, inf); HardSigmoid(0.2, 0.5) -> [-2.5, 2.5]', async () => {
    const hs = await convAct('HardSwish');
    const h1 = hs.graph.findNode('conv1')!.outputs[0]!.name;
    assert.equal(actLine(hs, ort, h1), `act %${h1} u8 asym -> * clamp[-3,]`);
    const sg = await convAct('HardSigmoid');
    const h2 = sg.graph.findNode('conv1')!.outputs[0]!.name;
    assert.equal(actLine(sg, ort, h2), `act %${h2} u8 asym -> * clamp[-2.5,2.5]`);
  });

  test('negative twin: a second reader that sees every value (a Conv) removes the clamp', async () => {
    const m = await convAct('hswish-decomposed', { extra: true });
    const h = m.graph.findNode('conv1')!.outputs[0]!.name;
    const line = actLine(m, ort, h);
    assert.ok(line, 'the Conv output is still quantized');
    assert.ok(!line.includes('clamp'), line);
  });

  test('tensorrt: the hard-swish output feeding the next Conv keeps no consumer clamp (a Conv reads every value)', async () => {
    const m = await convAct('hswish-decomposed');
    const a = m.graph.findNode('conv2')!.inputs[0]!.name;
    const line = actLine(m, trt, a);
    assert.ok(line && !line.includes('clamp'), line);
  });
});

describe('consumer clamps, numerically', () => {
  test('hard-swish through a Q/DQ clamped at -3 equals hard-swish of the float value below -3 and is within slope x step/2 above', async () => {
    // data: N(0, 4^2)-ish, a third of it below -3
    const n = 4096;
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) xs[i] = 8 * Math.sin(i * 12.9898) * Math.cos(i * 0.731);
    const h = new StreamingHistogram();
    h.add(xs);
    let mn = Infinity;
    let mx = -Infinity;
    for (const v of xs) (mn = Math.min(mn, v)), (mx = Math.max(mx, v));
    const stats = { count: n, min: mn, max: mx, nonFinite: 0, histogram: h };
    const quant = { dtype: 'u8' as const, granularity: { kind: 'per-tensor' as const }, symmetric: false };
    const plan = { tensor: 't', quant, calibrator: 'minmax' as const, consumers: [], clamp: { min: -3 } };
    const r = computeRange(stats as never, plan);
    assert.ok(r.min >= -3 - 1e-9 && r.min <= -3 + 1e-9, `range starts at the clamp: ${r.min}`);
    const p = qparamsFor(r, quant);
    const unclamped = qparamsFor(computeRange(stats as never, { ...plan, clamp: undefined } as never), quant);
    assert.ok(p.scale < unclamped.scale * 0.75, `clamped step ${p.scale} is finer than ${unclamped.scale}`);

    // onnxruntime: y_q = hardswish(DQ(Q(x))), y = hardswish(x) in one graph
    const b = new GraphBuilder('main', { opset: 14 });
    const x = b.input('x', 'f32', [n]);
    const s = b.init('s', 'f32', [], Float32Array.of(p.scale));
    const z = b.init('z', 'u8', [], Uint8Array.of(p.zeroPoint));
    const dq = b.op('DequantizeLinear', [b.op('QuantizeLinear', [x, s, z]), s, z]);
    b.output(b.op('HardSwish', [dq]), b.op('HardSwish', [x]));
    const m = b.build();
    const out = await outputs(m, { x: new ortRt.Tensor('float32', xs, [n]) });
    const [yq, y] = m.graph.outputs.map((v) => out[v.name]!.data as Float32Array);
    let below = 0;
    for (let i = 0; i < n; i++) {
      if (xs[i]! <= -3) {
        below++;
        assert.equal(yq![i], y![i], `x = ${xs[i]} below the clamp: exact`);
      } else {
        // |d hardswish / dx| <= 1.5 on [-3, inf); Q/DQ error <= step/2 inside the range, plus float32 rounding
        assert.ok(Math.abs(yq![i]! - y![i]!) <= 1.5 * (p.scale / 2) * (1 + 1e-5) + 1e-6, `x = ${xs[i]}: ${yq![i]} vs ${y![i]}`);
      }
    }
    assert.ok(below > n / 5, `${below} values below -3 exercised`);
  });
});
