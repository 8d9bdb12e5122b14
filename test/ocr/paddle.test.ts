// PaddleOCR models on rendered text: FP32 recognizer/classifier accuracy (the whole task pipeline) and W8A8 (--target ort) within a bound of FP32.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { loadModel } from '../../ir/onnx/reader.js';
import { createSession } from '../../ir/ort.js';
import { compile } from '../../targets/compile.js';
import { presetConfig } from '../../targets/config.js';
import { clsItems, dictionarySet, evalCls, evalRec, itemsAsCalibration, loadCharset, OCR_MODEL_FILES, ocrAssets, recItems, type RecItem, type RecResult } from '../../bench/ocr/task.js';

const charset = loadCharset();
const allowed = dictionarySet(charset);
const LINES = 40;
const CALIB = 16;

describe('PaddleOCR on rendered text', () => {
  let lines: RecItem[];
  let fp32: RecResult;
  const recModel = loadModel(path.join(ocrAssets(), OCR_MODEL_FILES.rec));

  before(async () => {
    lines = await recItems(2, LINES, { allowed });
    const s = await createSession(recModel);
    fp32 = await evalRec(s, lines, charset);
    await s.release();
  });

  test('FP32 recognizer reads the rendered lines (exact match >= 90 %)', () => {
    const wrong = fp32.predictions.map((p, i) => [lines[i]!.label, p] as const).filter(([l, p]) => l.replace(/ /g, '') !== p.replace(/ /g, ''));
    assert.ok(fp32.exact >= 0.9, `FP32 exact match ${(100 * fp32.exact).toFixed(1)} %; misread: ${JSON.stringify(wrong)}`);
    assert.ok(fp32.charAcc >= 0.98, `FP32 character accuracy ${(100 * fp32.charAcc).toFixed(2)} %`);
  });

  test('FP32 classifier tells upright from 180-degree-rotated lines (>= 95 %)', async () => {
    const items = await clsItems(2, LINES, { allowed });
    assert.equal(items.filter((x) => x.label === 1).length, LINES / 2);
    const s = await createSession(loadModel(path.join(ocrAssets(), OCR_MODEL_FILES.cls)));
    const r = await evalCls(s, items);
    await s.release();
    assert.ok(r.accuracy >= 0.95, `classifier accuracy ${(100 * r.accuracy).toFixed(1)} %`);
  });

  test('W8A8 --target ort, calibrated on rendered lines, stays within 5 points of FP32 exact match and 1 point of character accuracy', async (t) => {
    // measured: on these 40 lines 100 % -> 97.5 % (one line); on bench/ocr.ts's 500 held-out lines 2.2 points under
    // the default percentile calibrator, 0.4 with mse; ORT's own quantizer loses 34 to 64 points on this model.
    // The bound catches broken pipelines and calibrators (entropy: 10 % exact match, random calibration: 61 %)
    const calib = await recItems(1, CALIB, { allowed });
    const res = await compile(recModel, {
      target: 'ort',
      config: presetConfig('w8a8'),
      calib: itemsAsCalibration(calib, 'x', 'rendered lines'),
      calibSamples: CALIB,
      validation: itemsAsCalibration(lines.slice(0, 4), 'x', 'held-out rendered lines'),
      ortCheck: false,
    });
    assert.equal(res.report.calibration.source, 'images');
    assert.equal(res.report.counts.layersQuantized, res.report.counts.layersTotal);
    const s = await createSession(res.model);
    const q = await evalRec(s, lines, charset);
    await s.release();
    const msg = `FP32 ${(100 * fp32.exact).toFixed(1)} % / ${(100 * fp32.charAcc).toFixed(2)} %, W8A8 ${(100 * q.exact).toFixed(1)} % / ${(100 * q.charAcc).toFixed(2)} %`;
    t.diagnostic(msg);
    assert.ok(q.exact >= fp32.exact - 0.05 - 1e-9, msg);
    assert.ok(q.charAcc >= fp32.charAcc - 0.01, msg);
  });
});
