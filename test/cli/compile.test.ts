// qcc compile: files written (model, report.json, trtexec command line), summary/JSON on stdout, exit codes of bad input.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { saveModel } from '../../ir/onnx/writer.js';
import { createSession } from '../../ir/ort.js';
import { loadModel } from '../../ir/onnx/reader.js';
import type { Model } from '../../ir/ir.js';
import { parseModel } from '../../ir/parse.js';
import { cleanup, qcc, tempDir } from './helpers.js';
import { tinyCnn } from '../util/tiny-cnn.js';

after(cleanup);

function nodesOf(m: Model, op: string) {
  return [...m.graph.nodes()].filter((n) => n.opType === op);
}

describe('qcc compile', () => {
  let dir: string;
  let model: string;
  before(() => {
    dir = tempDir();
    model = path.join(dir, 'tiny.onnx');
    saveModel(tinyCnn(), model);
  });

  test('--target tensorrt --w4a8: default output names, report.json, trtexec command line, summary on stdout', async () => {
    const r = await qcc(['compile', model, '--target', 'tensorrt', '--w4a8', '--block-size', '16', '--calib-samples', '8', '--validation-samples', '4']);
    assert.equal(r.code, 0, r.stderr);
    const out = path.join(dir, 'tiny.w4a8.tensorrt.onnx');
    const rep = path.join(dir, 'tiny.w4a8.tensorrt.report.json');
    assert.ok(fs.existsSync(out) && fs.existsSync(rep), fs.readdirSync(dir).join(' '));
    const trt = fs.readdirSync(dir).find((f) => /trtexec/.test(f));
    assert.equal(trt, 'tiny.w4a8.tensorrt.trtexec.sh', fs.readdirSync(dir).join(' '));
    assert.match(fs.readFileSync(path.join(dir, trt), 'utf8'), /trtexec .*--onnx=.*tiny\.w4a8\.tensorrt\.onnx.*--stronglyTyped/s);
    await createSession(loadModel(out));
    const j = JSON.parse(fs.readFileSync(rep, 'utf8')) as Record<string, any>;
    assert.equal(j.target, 'tensorrt');
    assert.equal(j.preset, 'w4a8');
    assert.equal(j.config.blockSize, 16);
    assert.equal(j.calibration.source, 'random');
    assert.equal(j.calibration.samples, 8);
    assert.equal(j.counts.layersTotal, 5);
    assert.equal(j.fallbacks.filter((f: any) => f.op === 'Conv').length, 4);
    assert.equal(j.files.model, out);
    assert.equal(j.files.report, rep);
    assert.equal(j.files['trtexec.sh'], path.join(dir, trt));
    const fc = (j.layers as any[]).find((l) => l.node === 'fc');
    assert.equal(fc.op, 'MatMul');
    assert.equal(fc.precision, 'w:int4 a:fp', 'TensorRT INT4 is weight-only');
    assert.ok(fc.weights[0].scaleMax > 0);
    assert.equal(fc.weights[0].granularity, 'blocked(axis=0,size=16)');
    const c1 = (j.layers as any[]).find((l) => l.node === 'b1.conv1');
    assert.equal(c1.precision, 'w:int8 a:int8');
    assert.equal(c1.activations[0].calibrator, 'mse');
    assert.equal(c1.activations[0].zeroPoint, 0);
    const stem = (j.layers as any[]).find((l) => l.node === 'stem');
    assert.match(stem.fallback.reason, /TensorRT/);
    assert.match(r.stdout, /!! WARNING: no calibration data: ranges come from random inputs; quality numbers below are not meaningful for real data/);
    assert.match(r.stdout, /5 \/ 5 weighted layers quantized/);
    assert.match(r.stdout, /Fallbacks \(\d+\):\n  4 x Conv: .* -> .*i8 per-channel axis 0.*: TensorRT: INT4 is weight-only on Gemm\/MatMul; convolutions take INT8 weights/);
    assert.match(r.stdout, /Validation on 4 held-out samples/);
    assert.match(r.stdout, /Output files:/);
  });

  test('--target ort --w8a8 -o OUT --json: the JSON report on stdout with onnxruntime fusion counts', async () => {
    const out = path.join(dir, 'o.onnx');
    const r = await qcc(['compile', model, '--target', 'ort', '--w8a8', '-o', out, '--json', '--calib-samples', '8', '--validation-samples', '4', '--keep-fp', 'head', '--calibrator', 'minmax']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, any>;
    assert.equal(j.files.report, path.join(dir, 'o.report.json'));
    assert.deepEqual(j.config.keepFp, ['head']);
    assert.equal(j.config.calibrator, 'minmax');
    assert.ok(j.keptFloat.some((k: any) => k.node === 'head'), JSON.stringify(j.keptFloat));
    assert.equal(j.counts.layersQuantized, 4);
    assert.equal(j.ort.quantizedLayers, 4, JSON.stringify(j.ort));
    // the classifier's output is read through Q/DQ, so its Gemm fuses too (QGemm)
    assert.equal(j.ort.fused, 4, JSON.stringify(j.ort));
    assert.deepEqual(j.ort.mispredicted, []);
    assert.deepEqual(j.ort.unfused, []);
    assert.ok(j.ort.speedup > 0);
  });

  test('--no-bias-correction keeps the original biases; the default corrects them (a note says so)', async () => {
    const outs: Record<string, any> = {};
    for (const flag of [[], ['--no-bias-correction']]) {
      const out = path.join(dir, `bc${flag.length}.onnx`);
      const r = await qcc(['compile', model, '--target', 'tensorrt', '--w8a8', '-o', out, '--json', '--calib-samples', '4', '--validation-samples', '2', ...flag]);
      assert.equal(r.code, 0, r.stderr);
      outs[flag.length ? 'off' : 'on'] = { j: JSON.parse(r.stdout), m: loadModel(out) };
    }
    assert.ok(outs.on.j.notes.some((n: string) => n.startsWith('bias correction:')));
    assert.ok(!outs.off.j.notes.some((n: string) => n.startsWith('bias correction:')));
    assert.equal(outs.off.j.config.biasCorrection, false);
    const biasNames = (m: any) => nodesOf(m, 'Conv').map((n: any) => n.inputs[2]?.name ?? '');
    assert.ok(biasNames(outs.on.m).every((b: string) => b.endsWith('_bias_corrected')), biasNames(outs.on.m).join());
    assert.ok(biasNames(outs.off.m).every((b: string) => !b.endsWith('_bias_corrected')), biasNames(outs.off.m).join());
  });

  test('--w8a16 is INT8 weight-only: int8 per-channel DequantizeLinear weights, no activation QuantizeLinear, opset not raised past 13', async () => {
    const h = await qcc(['compile', '--help']);
    assert.match(h.stdout.replace(/\s+/g, ' '), /--w8a16 INT8 weights \(per-channel\), activations kept in float \(weight-only\)/);
    for (const target of ['tensorrt', 'ort']) {
      const out = path.join(dir, `w8a16.${target}.onnx`);
      const r = await qcc(['compile', model, '--target', target, '--w8a16', '-o', out, '--json', '--calib-samples', '2', '--validation-samples', '4', '--no-ort-check']);
      assert.equal(r.code, 0, r.stderr);
      const m = loadModel(out);
      assert.equal(m.opset, 17, `${target}: the input's opset 17 is enough (w8a16 used to raise it to 21)`);
      assert.equal(nodesOf(m, 'QuantizeLinear').length, 0, `${target}: no activation is quantized`);
      const dq = nodesOf(m, 'DequantizeLinear');
      assert.ok(dq.length >= 1, target);
      for (const n of dq) {
        assert.equal(n.inputs[0]!.initializer?.dtype, 'i8', `${target}: ${n.name} dequantizes a stored int8 weight`);
        assert.ok(n.inputs[1]!.initializer!.dims[0]! > 1, `${target}: ${n.name} is per-channel`);
      }
      // every weighted layer reads its data input in float
      for (const n of [...nodesOf(m, 'Conv'), ...nodesOf(m, 'MatMul')]) assert.notEqual(n.inputs[0]!.producer?.opType, 'DequantizeLinear', `${target}: ${n.name}`);
      const fc = nodesOf(m, 'MatMul')[0]!;
      assert.equal(fc.inputs[1]!.producer?.opType, 'DequantizeLinear', `${target}: the classifier's weight is quantized`);
      assert.equal(fc.inputs[1]!.producer!.attrInt('axis'), 1);
      const j = JSON.parse(r.stdout) as Record<string, any>;
      assert.deepEqual(j.model.opset, { input: 17, output: 17 });
      assert.equal((j.layers as any[]).find((l) => l.node === 'fc').precision, 'w:int8 a:fp');
      assert.ok((j.layers as any[]).every((l) => !/a:int|a:uint|a:fp8/.test(l.precision)), JSON.stringify(j.layers.map((l: any) => l.precision)));
      assert.ok(j.validation.outputs[0].sqnrDb > 30, JSON.stringify(j.validation));
    }
  });

  test('static inputs beside the batch ([2,2,1,1] Conv weight input, [8] vector, a scalar) are fed whole: compiles for both targets', async () => {
    const f = path.join(dir, 'static-inputs.onnx');
    saveModel(
      parseModel(`
graph main(%x: f32[1,3,8,8], %p: f32[2,2,1,1], %q: f32[8], %s: f32[]) -> (%y: f32[1,2,8,8]) {
  %w = const f32[2,3,1,1] [1, -2, 0.5, 4, 1, 1]
  %h = Conv(%x, %w) {kernel_shape=[1,1]} @conv
  %g = Conv(%h, %p) {kernel_shape=[1,1]} @pconv
  %a = Add(%g, %q) @addq
  %m = Mul(%a, %s) @muls
  %y = Relu(%m) @relu
}`),
      f,
    );
    for (const target of ['tensorrt', 'ort']) {
      const r = await qcc(['compile', f, '--target', target, '--w8a8', '-o', path.join(dir, `static-inputs.${target}.onnx`), '--json', '--calib-samples', '3', '--validation-samples', '2']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as Record<string, any>;
      assert.equal(j.calibration.samples, 3);
      assert.match(j.calibration.description, /x f32 \[1,3,8,8\] ~ N\(0,1\) [^;]*; p f32 \[2,2,1,1\] ~ [^;]*, the same in every batch; q f32 \[8\] ~ [^;]*, the same in every batch; s f32 \[\] ~ /);
      assert.equal(j.validation.samples, 2);
      assert.ok(j.validation.outputs[0].sqnrDb > 20, JSON.stringify(j.validation));
    }
  });

  test('an unknown preset exits 2 listing the presets; no output file', async () => {
    const d = tempDir();
    const r = await qcc(['compile', model, '--target', 'ort', '--preset', 'w3a8', '-o', path.join(d, 'x.onnx')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_USAGE: unknown preset 'w3a8' \(known: w8a8, w4a8, w4a16, w8a16, fp8\)/);
    const r2 = await qcc(['compile', model, '--target', 'ort', '-o', path.join(d, 'x.onnx')]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /give a preset: --w8a8, --w4a8, --w4a16, --w8a16, --fp8/);
    const r3 = await qcc(['compile', model, '--target', 'ort', '--w8a8', '--fp8', '-o', path.join(d, 'x.onnx')]);
    assert.equal(r3.code, 2, r3.stderr);
    assert.match(r3.stderr, /give one preset, not --w8a8 and --fp8/);
    const r4 = await qcc(['compile', model, '--target', 'cuda', '--w8a8']);
    assert.equal(r4.code, 2, r4.stderr);
    assert.deepEqual(fs.readdirSync(d), []);
  });

  test('a broken config file exits 2 naming the JSON path; no output file', async () => {
    const d = tempDir();
    const cfg = path.join(d, 'c.json');
    fs.writeFileSync(cfg, JSON.stringify({ layers: { 'stem': 'fp' }, overrides: [{ match: 'fc', precision: 'int2' }] }));
    const r = await qcc(['compile', model, '--target', 'tensorrt', '--w8a8', '--config', cfg, '-o', path.join(d, 'x.onnx')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_USAGE: config file .*c\.json: \$\.overrides\[0\]\.precision must be one of fp, int8, int4, fp8, got "int2"/);
    assert.deepEqual(fs.readdirSync(d), ['c.json']);
  });

  test('an uncalibratable (string) input is a usage error (exit 2); no output file', async () => {
    const d = tempDir();
    const b = new GraphBuilder('s', { opset: 17 });
    const t = b.input('text', 'string', [1]);
    b.output(b.op('Identity', [t], { name: 'id' }));
    const f = path.join(d, 'str.onnx');
    saveModel(b.build(), f);
    const r = await qcc(['compile', f, '--target', 'ort', '--w8a8']);
    assert.equal(r.code, 2, `bad input exits 2: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /^qcc: E_USAGE: cannot calibrate input 'text': string tensors have no numeric range/);
    assert.deepEqual(fs.readdirSync(d), ['str.onnx']);
  });
});
