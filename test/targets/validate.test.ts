// validate.ts: SQNR / cosine / max-abs / top-1 against float64 formulas on known vectors, and validate() on ORT models.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { ort, type Feeds } from '../../ir/ort.js';
import { mulberry32 } from '../../ir/random.js';
import { cosineSimilarity, maxAbsError, MetricAccumulator, sqnrDb, top1Agreement, validate, type InputBatches } from '../../targets/validate.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe('metrics on known vectors', () => {
  const y = [1, 2, 3, 4];
  const yq = [1.1, 1.9, 3, 4.2];
  test('SQNR = 10 log10(sum y^2 / sum (y-yq)^2): 30 / 0.06 -> 26.9897 dB', () => {
    close(sqnrDb(y, yq), 10 * Math.log10(30 / 0.06), 1e-9, 'sqnr');
    close(sqnrDb(y, yq), 26.98970004336019, 1e-9, 'sqnr literal');
    assert.equal(sqnrDb(y, y), Infinity);
  });
  test('cosine similarity and max abs error', () => {
    close(cosineSimilarity(y, yq), 30.7 / Math.sqrt(30 * 31.46), 1e-12, 'cosine');
    close(cosineSimilarity(y, y.map((v) => -2 * v)), -1, 1e-12, 'anti-parallel');
    assert.equal(cosineSimilarity([0, 0], [0, 0]), 1);
    close(maxAbsError(y, yq), 0.2, 1e-12, 'max abs');
  });
  test('top-1 agreement over rows of [N, C]; ties take the first maximum', () => {
    // rows: argmax 2|2, 0|1, 1|1 (tie 5,5 in yq -> index 1 first), so 2 of 3 agree
    const a = [0, 1, 9, 7, 1, 2, 0, 5, 1];
    const b = [0, 1, 8, 1, 7, 2, 0, 5, 5];
    close(top1Agreement(a, b, 3, 3), 2 / 3, 1e-12, 'top1');
  });
  test('accumulating batch by batch equals one pass over the concatenation', () => {
    const rnd = mulberry32(7);
    const Y = Float32Array.from({ length: 600 }, () => rnd() * 4 - 2);
    const Q = Y.map((v) => v + (rnd() - 0.5) * 0.05);
    const acc = new MetricAccumulator('o', 'float');
    for (let i = 0; i < 6; i++) acc.add(Y.subarray(i * 100, i * 100 + 100), Q.subarray(i * 100, i * 100 + 100), [10, 10]);
    const r = acc.result();
    let s = 0;
    let e = 0;
    let rowsAgree = 0;
    for (let i = 0; i < 600; i++) (s += Y[i]! ** 2), (e += (Y[i]! - Q[i]!) ** 2);
    for (let r0 = 0; r0 < 60; r0++) {
      const row = (v: Float32Array) => [...v.subarray(r0 * 10, r0 * 10 + 10)].reduce((bi, x, i, arr) => (x > arr[bi]! ? i : bi), 0);
      if (row(Y) === row(Q)) rowsAgree++;
    }
    close(r.sqnrDb, 10 * Math.log10(s / e), 1e-9, 'sqnr');
    close(r.top1Agreement!, rowsAgree / 60, 1e-12, 'top1');
    assert.equal(r.elements, 600);
  });
  test('NaN in the quantized output makes SQNR NaN and is counted', () => {
    const acc = new MetricAccumulator('o', 'float');
    acc.add([1, 2], [1, NaN], [2]);
    const r = acc.result();
    assert.ok(Number.isNaN(r.sqnrDb));
    assert.equal(r.nonFinite, 1);
  });
});

function scaleModel(name: string, k: readonly number[]) {
  const b = new GraphBuilder(name, { opset: 17 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 3]);
  const y = b.op('Mul', [x, b.f32('k', [3], k)], { name: 'mul' });
  b.output(y);
  return b.build();
}

function batches(data: Float32Array[]): InputBatches {
  return {
    samples: data.reduce((s, d) => s + d.length / 3, 0),
    async *batches(): AsyncIterable<Feeds> {
      for (const d of data) yield { x: new ort.Tensor('float32', d, [d.length / 3, 3]) };
    },
  };
}

describe('validate() in onnxruntime-node', () => {
  test('a 1% gain error is 40 dB; top-1 agreement matches the float64 argmax', async () => {
    const fp = scaleModel('fp', [1, 1, 1]);
    const q = scaleModel('q', [1.01, 1.01, 1.5]);
    const rnd = mulberry32(3);
    const data = [0, 1].map(() => Float32Array.from({ length: 3 * 8 }, () => rnd() * 2 - 1));
    const r = await validate(fp, q, batches(data));
    assert.equal(r.samples, 16);
    assert.equal(r.outputs.length, 1);
    const o = r.outputs[0]!;
    // reference in float64 from the same inputs (ORT multiplies in float32)
    let s = 0;
    let e = 0;
    let agree = 0;
    let mx = 0;
    for (const d of data) {
      for (let row = 0; row < d.length / 3; row++) {
        const a = [0, 1, 2].map((j) => d[row * 3 + j]!);
        const bq = a.map((v, j) => Math.fround(v * Math.fround([1.01, 1.01, 1.5][j]!)));
        a.forEach((v, j) => ((s += v * v), (e += (v - bq[j]!) ** 2), (mx = Math.max(mx, Math.abs(v - bq[j]!)))));
        const am = (v: number[]) => v.indexOf(Math.max(...v));
        if (am(a) === am(bq)) agree++;
      }
    }
    close(o.sqnrDb, 10 * Math.log10(s / e), 1e-6, 'sqnr');
    close(o.maxAbsErr, mx, 1e-7, 'max abs');
    close(o.top1Agreement!, agree / 16, 1e-12, 'top1');
    assert.ok(o.top1Agreement! < 1, 'the 1.5 gain on class 2 flips some rows');
    const same = await validate(fp, scaleModel('q2', [1.01, 1.01, 1.01]), batches(data));
    close(same.outputs[0]!.sqnrDb, 40, 0.01, '1% error');
    assert.equal(same.outputs[0]!.top1Agreement, 1);
  });
});
