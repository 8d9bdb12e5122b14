// compile(): end to end on a small residual CNN (fast) and on zoo resnet18 (both targets): runs in ORT, SQNR floors,
// fallbacks listed, held-out validation inputs, report content, clear errors.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { isQccError } from '../../ir/errors.js';
import type { Model } from '../../ir/ir.js';
import { createSession, ort, run, type Feeds } from '../../ir/ort.js';
import { mulberry32 } from '../../ir/random.js';
import { verify } from '../../ir/verify.js';
import { buildZooModel } from '../../models/index.js';
import type { CalibrationData } from '../../passes/quant/calib-data.js';
import { compile, LATENCY_MIN_MS, sampleRange, type CompileResult } from '../../targets/compile.js';
import { presetConfig } from '../../targets/config.js';
import { RANDOM_CALIBRATION_WARNING } from '../../targets/report.js';
import { tinyCnn } from '../util/tiny-cnn.js';
import { npy } from '../util/npy.js';



function weightedOps(m: Model): string[] {
  return [...m.graph.nodes()].filter((n) => ['Conv', 'MatMul', 'Gemm'].includes(n.opType)).map((n) => n.name);
}

describe('compile() on a small residual CNN', () => {
  const results = new Map<string, CompileResult>();
  before(async () => {
    for (const [target, preset] of [['tensorrt', 'w8a8'], ['ort', 'w8a8'], ['tensorrt', 'w4a8']] as const) {
      const m = tinyCnn();
      results.set(`${target}/${preset}`, await compile(m, { target, config: presetConfig(preset, { blockSize: 16 }), calibSamples: 16, validationSamples: 8, latencyRuns: 3 }));
    }
  });

  test('bias correction (default on): every layer gets a corrected bias from the calibration means; off on request', async () => {
    const on = results.get('tensorrt/w8a8')!;
    const off = await compile(tinyCnn(), { target: 'tensorrt', config: { ...presetConfig('w8a8'), biasCorrection: false }, calibSamples: 16, validationSamples: 8, ortCheck: false });
    const layers = weightedOps(on.model);
    assert.ok(layers.length >= 5);
    assert.match(on.report.notes.join('\n'), new RegExp(`bias correction: ${layers.length} layers`));
    assert.ok(!off.report.notes.some((n) => n.startsWith('bias correction')));
    for (const name of layers) {
      const n = on.model.graph.findNode(name)!;
      const bias = n.op === 'MatMul' ? n.outputs[0]!.uses[0]!.node.inputs[1]! : n.inputs[2]!;
      assert.match(bias.name, /_bias_corrected/, `${name} reads a corrected bias`);
    }
    // same calibration, same weights: only the biases differ, and the held-out error does not grow
    const sq = (r: CompileResult) => r.report.validation.outputs[0]!.sqnrDb;
    assert.ok(sq(on) >= sq(off) - 0.5, `SQNR with ${sq(on).toFixed(2)} vs without ${sq(off).toFixed(2)}`);
  });

  test('an unbatched static input listed before the batched image: calibration, validation and the ORT check slice only the image', async () => {
    const b = new GraphBuilder('mixed', { opset: 17 });
    const q = b.input('q', 'f32', [2]);
    const x = b.input('x', 'f32', [{ param: 'N' }, 2, 4, 4]);
    const w = b.f32('w', [2, 2, 1, 1], [1, -0.5, 0.25, 2]);
    const c = b.op('Conv', [x, w], { name: 'conv', attrs: { kernel_shape: [1, 1] } });
    const s = b.op('Reshape', [q, b.i64('shape', [1, 2, 1, 1])], { name: 'rs' });
    b.output(b.op('Add', [b.op('Relu', [c], { name: 'relu' }), s], { name: 'add' }));
    const r = await compile(b.build(), { target: 'ort', config: presetConfig('w8a8'), calibSamples: 6, validationSamples: 5, batchSize: 2, latencyRuns: 1 });
    assert.equal(r.report.validation.samples, 5);
    assert.ok(r.report.ort && r.report.ort.latencyMs!.batch === 1, JSON.stringify(r.report.ort?.latencyMs));
    assert.ok(r.report.validation.outputs[0]!.sqnrDb > 20, `${r.report.validation.outputs[0]!.sqnrDb}`);
  });

  test('the input model is left unchanged', async () => {
    const m = tinyCnn();
    const before = weightedOps(m).length + m.graph.nodeCount;
    await compile(m, { target: 'tensorrt', config: presetConfig('w8a8'), calibSamples: 4, validationSamples: 2 });
    assert.equal(weightedOps(m).length + m.graph.nodeCount, before);
    assert.ok(![...m.graph.nodes()].some((n) => n.opType === 'QuantizeLinear'));
  });

  for (const key of ['tensorrt/w8a8', 'ort/w8a8']) {
    test(`${key}: verified QDQ model that runs in ORT; every weighted layer quantized; SQNR floor on held-out inputs`, async () => {
      const r = results.get(key)!;
      assert.deepEqual(verify(r.model).filter((d) => d.severity === 'error'), []);
      const ops = [...r.model.graph.nodes()].map((n) => n.opType);
      assert.ok(ops.includes('QuantizeLinear') && ops.includes('DequantizeLinear'));
      const s = await createSession(r.model);
      const y = await run(s, { input: new ort.Tensor('float32', new Float32Array(2 * 3 * 16 * 16).fill(0.5), [2, 3, 16, 16]) });
      const outName = tinyCnn().graph.outputs[0]!.name;
      assert.deepEqual(Object.keys(y), [outName], 'graph outputs keep their names');
      assert.deepEqual(y[outName]!.dims, [2, 10]);
      const rep = r.report;
      assert.equal(rep.counts.layersTotal, 5);
      assert.equal(rep.counts.layersQuantized, 5);
      assert.deepEqual(rep.fallbacks, []);
      assert.equal(rep.calibration.source, 'random');
      assert.equal(rep.calibration.warning, RANDOM_CALIBRATION_WARNING);
      assert.match(r.summary, /WARNING: no calibration data: ranges come from random inputs; quality numbers below are not meaningful for real data/);
      assert.equal(rep.validation.samples, 8);
      assert.notEqual(rep.validationInputs.seed, rep.calibration.seed, 'validation inputs are a different seeded set');
      const o = rep.validation.outputs[0]!;
      assert.ok(o.sqnrDb > 20, `SQNR ${o.sqnrDb}`);
      assert.ok(o.cosine > 0.99, `cosine ${o.cosine}`);
      assert.ok(o.top1Agreement !== undefined);
      for (const l of rep.layers.filter((x) => ['Conv', 'MatMul'].includes(x.op))) {
        assert.equal(l.weights.length, 1, l.node);
        assert.ok(l.weights[0]!.scaleMin > 0 && l.weights[0]!.scaleMax >= l.weights[0]!.scaleMin, l.node);
        assert.ok(l.activations.length >= 1, `${l.node} has a quantized input`);
        assert.ok(l.activations.every((a) => a.scale > 0 && a.range.max >= a.range.min), l.node);
      }
      for (const p of ['canonicalize', 'plan', 'calibrate', 'quantize-weights', 'insert-qdq', 'verify', 'predict-fusion', 'validate']) {
        assert.ok(rep.timings.some((t) => t.phase === p), `timing for ${p}`);
      }
    });
  }

  test('tensorrt: symmetric int8 everywhere (zero points 0), ort: uint8 activations', () => {
    const trt = results.get('tensorrt/w8a8')!.report.layers.flatMap((l) => l.activations);
    assert.ok(trt.length > 0 && trt.every((a) => a.dtype === 'int8' && a.zeroPoint === 0), JSON.stringify(trt.slice(0, 2)));
    const ortActs = results.get('ort/w8a8')!.report.layers.flatMap((l) => l.activations);
    assert.ok(ortActs.length > 0 && ortActs.every((a) => a.dtype === 'uint8'), JSON.stringify(ortActs.slice(0, 2)));
  });

  test('ort: onnxruntime fuses every quantized layer, the final MatMul+bias too (its graph output is read through Q/DQ)', () => {
    const r = results.get('ort/w8a8')!;
    const o = r.report.ort!;
    assert.ok(o, 'ort check ran');
    assert.equal(o.quantizedLayers, 5);
    assert.equal(o.fusedOps.QLinearConv, 4, JSON.stringify(o.fusedOps));
    assert.equal(o.fusedOps.QLinearAdd, 1, 'the residual Add runs quantized');
    // ORT rewrites MatMul+Add into a Gemm, then (its output going to Q) into QGemm; matched back to 'fc' through its DQ inputs
    assert.equal(o.fusedOps.QGemm, 1, JSON.stringify(o.fusedOps));
    assert.deepEqual(o.unfused, []);
    assert.equal(o.fused, 5);
    assert.deepEqual(o.mispredicted, []);
    assert.ok(o.speedup! > 0 && o.latencyMs!.fp32 > 0);
    // a tiny model: the FP32 runs go on until they fill LATENCY_MIN_MS (or the cap), far more than the 7 asked for
    const L = o.latencyMs!;
    assert.ok(L.runs > 7 && (L.runs * L.fp32 >= LATENCY_MIN_MS * 0.5 || L.runs === 1000), JSON.stringify(L));
    assert.match(r.summary, new RegExp(`median of ${L.runs}\\)`));
    assert.match(r.summary, /onnxruntime check \(optimized graph\): 5 \/ 5 quantized Conv\/MatMul\/Gemm fused \(4 QLinearConv, 1 QLinearAdd, 1 QGemm\)/);
    // the graph output keeps its name and reads a DequantizeLinear; the float tensor the layer writes is renamed
    const out = r.model.graph.outputs[0]!;
    assert.equal(out.producer?.opType, 'DequantizeLinear');
    assert.equal(out.producer!.inputs[0]!.producer!.inputs[0]!.name, `${out.name}_float`);
    assert.equal(results.get('tensorrt/w8a8')!.report.ort, undefined, 'no ORT check for tensorrt by default');
  });

  test('tensorrt w4a8: every convolution falls back to INT8 weights, the MatMul keeps INT4 blocked weights (weight-only); reasons listed', () => {
    const r = results.get('tensorrt/w4a8')!;
    const fb = r.report.fallbacks;
    assert.deepEqual(fb.filter((f) => f.op === 'Conv').map((f) => f.node).sort(), ['b1.conv1', 'b1.conv2', 'head', 'stem']);
    for (const f of fb) assert.match(f.reason, /TensorRT: INT4 /);
    for (const f of fb.filter((x) => x.op === 'Conv')) assert.match(f.applied, /i8 per-channel axis 0/);
    const fc = r.report.layers.find((l) => l.node === 'fc')!;
    assert.equal(fc.weights[0]!.dtype, 'i4');
    assert.equal(fc.granularity, 'blocked(axis=0,size=16)');
    const stem = r.report.layers.find((l) => l.node === 'stem')!;
    assert.equal(stem.weights[0]!.dtype, 'i8');
    assert.match(stem.fallback!.reason, /convolutions take INT8 weights/);
    assert.match(r.summary, /Fallbacks \(\d+\):\n  4 x Conv: /);
    const trt = Object.keys(r.extras).find((k) => /trtexec/.test(k));
    assert.ok(trt, JSON.stringify(Object.keys(r.extras)));
    assert.match(r.extras[trt]!, /--stronglyTyped/);
  });
});

describe('calibration and held-out data', () => {
  function counting(n: number, batch: number): CalibrationData {
    return {
      source: 'npy',
      samples: n,
      async *batches(): AsyncIterable<Feeds> {
        for (let i = 0; i < n; i += batch) {
          const k = Math.min(batch, n - i);
          yield { x: new ort.Tensor('float32', Float32Array.from({ length: 2 * k }, (_, j) => i + Math.floor(j / 2)), [k, 2]) };
        }
      },
    };
  }
  async function ids(d: CalibrationData): Promise<number[]> {
    const out: number[] = [];
    for await (const f of d.batches()) {
      const a = f.x!.data as Float32Array;
      for (let j = 0; j < a.length; j += 2) out.push(a[j]!);
    }
    return out;
  }
  test('sampleRange slices across batch boundaries; calibration and validation ranges are disjoint', async () => {
    const all = counting(10, 4);
    assert.deepEqual(await ids(sampleRange(all, 0, 7)), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await ids(sampleRange(all, 7, 16)), [7, 8, 9]);
    assert.equal(sampleRange(all, 7, 16).samples, 3);
    assert.deepEqual(await ids(sampleRange(all, 5, 2)), [5, 6]);
  });

  test('--calib DIR of .npy files: the validation samples are the files after the calibration ones', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-npy-'));
    try {
      const rnd = mulberry32(9);
      for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(dir, `s${String(i).padStart(2, '0')}.npy`), npy([1, 3, 16, 16], Float32Array.from({ length: 768 }, () => rnd() * 2 - 1)));
      const r = await compile(tinyCnn(), { target: 'ort', config: presetConfig('w8a8'), calib: { dir }, calibSamples: 8, ortCheck: false });
      assert.equal(r.report.calibration.source, 'npy');
      assert.equal(r.report.calibration.samples, 8);
      assert.equal(r.report.calibration.warning, undefined, 'no random-data warning with real files');
      assert.doesNotMatch(r.summary, /WARNING/);
      assert.equal(r.report.validationInputs.source, 'npy');
      assert.equal(r.report.validation.samples, 2, 'files 9 and 10 are held out');
      // only 4 files for 8 requested samples: the last quarter (1 file) is held out
      for (const f of fs.readdirSync(dir).slice(4)) fs.rmSync(path.join(dir, f));
      const r2 = await compile(tinyCnn(), { target: 'ort', config: presetConfig('w8a8'), calib: { dir }, calibSamples: 8, ortCheck: false });
      assert.equal(r2.report.calibration.samples, 3);
      assert.equal(r2.report.validation.samples, 1);
      assert.match(r2.report.validationInputs.note!, /4 samples given: calibrating on 3, holding out 1/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a string input cannot be calibrated: a clear error naming the input', async () => {
    const b = new GraphBuilder('s', { opset: 17 });
    const t = b.input('text', 'string', [1]);
    b.output(b.op('Identity', [t], { name: 'id' }));
    await assert.rejects(compile(b.build(), { target: 'ort', config: presetConfig('w8a8') }), (e: unknown) => isQccError(e) && /cannot calibrate input 'text': string tensors/.test(e.message));
  });
});

describe('compile() on zoo resnet18', () => {
  let m: Model;
  before(async () => {
    m = await buildZooModel('resnet18', { opset: 17 });
  });
  for (const target of ['tensorrt', 'ort'] as const) {
    test(`${target} w8a8: runs in ORT, held-out SQNR above the observed floor`, async () => {
      const r = await compile(m, { target, config: presetConfig('w8a8'), calibSamples: 16, validationSamples: 8, latencyRuns: 3 });
      const o = r.report.validation.outputs[0]!;
      assert.equal(r.report.counts.layersTotal, 21);
      assert.equal(r.report.counts.layersQuantized, 21);
      assert.ok(o.sqnrDb > FLOOR[target], `${target} SQNR ${o.sqnrDb.toFixed(2)} dB`);
      if (target === 'ort') {
        // every Conv fuses, and the classifier Gemm too (its graph output is read through Q/DQ, so ORT builds QGemm)
        const o = r.report.ort!;
        assert.equal(o.fusedOps.QLinearConv, 20);
        assert.equal(o.fusedOps.QGemm, 1);
        assert.deepEqual(o.unfused, []);
        assert.deepEqual(o.mispredicted, []);
      }
    });
  }
});

/** Observed resnet18 w8a8 SQNR (16 random calibration samples, 8 held-out) minus a margin; see bench/RESULTS.md. */
const FLOOR = { tensorrt: 25, ort: 25 };
