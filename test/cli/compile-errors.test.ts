// qcc compile: inputs it cannot calibrate and config files it cannot read exit non-zero with `qcc: E_CODE: what and where`, no stack, no output file.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseModel } from '../../ir/parse.js';
import { saveModel } from '../../ir/onnx/writer.js';
import { cleanup, qcc, tempDir, type QccRun } from './helpers.js';
import { npy } from '../util/npy.js';

after(cleanup);

const STACK = /^\s+at .+\(.+:\d+:\d+\)$/m;

/** Conv -> Relu on a fixed [1,2,4,4] input (quantizable, tiny). */
const CONV = `
graph main(%x: f32[1,2,4,4]) -> (%y: f32[1,2,4,4]) {
  %w = const f32[2,2,1,1] [1, -2, 0.5, 4]
  %h = Conv(%x, %w) {kernel_shape=[1,1]} @conv
  %y = Relu(%h) @relu
}`;

/** MatMul on an input whose feature dim C is symbolic (not the batch): random inputs cannot be made without --dim. */
const SYMBOLIC = `
graph main(%x: f32[N,C]) -> (%y: f32[N,2]) {
  %w = const f32[4,2] [1, -2, 0.5, 4, 1, 1, -1, 0.25]
  %m = MatMul(%x, %w) @mm
  %y = Relu(%m) @relu
}`;


/** The run failed with `code`, exit status `exit`, a one-line `qcc: CODE: ...` error matching `re`, no stack, nothing on stdout. */
function failed(r: QccRun, exit: number, code: string, re: RegExp): void {
  assert.equal(r.code, exit, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^qcc: ${code}: `), r.stderr);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, STACK);
  assert.equal(r.stdout, '');
}

describe('qcc compile: uncalibratable inputs and broken config files', () => {
  let dir: string;
  let conv: string;
  before(() => {
    dir = tempDir();
    conv = path.join(dir, 'conv.onnx');
    saveModel(parseModel(CONV), conv);
  });

  test('a symbolic non-batch input dim is E_USAGE (exit 2) naming the input, the dim and its axis; --dim C=4 resolves it', async () => {
    const d = tempDir();
    const f = path.join(d, 'sym.onnx');
    saveModel(parseModel(SYMBOLIC), f);
    const out = path.join(d, 'sym.q.onnx');
    const r = await qcc(['compile', f, '--target', 'ort', '--w8a8', '-o', out, '--calib-samples', '2', '--validation-samples', '1']);
    failed(r, 2, 'E_USAGE', /input 'x' \[N,C\] has the symbolic dimension 'C' at axis 1: give its value with --dim C=N \(library: dims: \{C: N\}\)/);
    assert.deepEqual(fs.readdirSync(d), ['sym.onnx']);
    const ok = await qcc(['compile', f, '--target', 'ort', '--w8a8', '-o', out, '--calib-samples', '2', '--validation-samples', '1', '--dim', 'C=4', '--no-ort-check']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.existsSync(out));
  });

  test('a negative --segment-mb is E_USAGE (exit 2); --segment-mb 0 compiles in one session', async () => {
    const d = tempDir();
    const out = path.join(d, 'c.onnx');
    const r = await qcc(['compile', conv, '--target', 'tensorrt', '--w8a8', '-o', out, '--segment-mb', '-1']);
    failed(r, 2, 'E_USAGE', /--segment-mb must be a number >= 0, got -1/);
    assert.deepEqual(fs.readdirSync(d), []);
    const ok = await qcc(['compile', conv, '--target', 'tensorrt', '--w8a8', '-o', out, '--segment-mb', '0', '--calib-samples', '2', '--validation-samples', '1']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.existsSync(out));
  });

  test('a --calib dir whose .npy shape does not match the input is E_USAGE (exit 2) naming the file, the input and the axis', async () => {
    const d = tempDir();
    const calib = path.join(d, 'calib');
    fs.mkdirSync(calib);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(calib, `s${i}.npy`), npy([1, 2, 4, 4], new Float32Array(32).fill(0.5)));
    fs.writeFileSync(path.join(calib, 's3.npy'), npy([1, 2, 4, 5], new Float32Array(40).fill(0.5)));
    const r = await qcc(['compile', conv, '--target', 'tensorrt', '--w8a8', '--calib', calib, '-o', path.join(d, 'x.onnx')]);
    failed(r, 2, 'E_USAGE', /s3\.npy: shape \(1, 2, 4, 5\) does not match input 'x' \[1,2,4,4\] at axis 3/);
    assert.deepEqual(fs.readdirSync(d), ['calib']);
  });

  test('a string input is E_USAGE (exit 2, bad input) naming the input', async () => {
    const d = tempDir();
    const f = path.join(d, 'str.onnx');
    saveModel(parseModel('graph main(%text: string[1], %x: f32[1,2]) -> (%y: f32[1,2], %t: string[1]) {\n  %y = Relu(%x) @relu\n  %t = Identity(%text) @id\n}'), f);
    const r = await qcc(['compile', f, '--target', 'ort', '--w8a8']);
    failed(r, 2, 'E_USAGE', /cannot calibrate input 'text': string tensors have no numeric range .*\(at tensor 'text'\)/);
    assert.deepEqual(fs.readdirSync(d), ['str.onnx']);
  });

  test('a config file that is not JSON is E_USAGE (exit 2) with the line and column', async () => {
    const d = tempDir();
    const cfg = path.join(d, 'c.json');
    fs.writeFileSync(cfg, '{\n  "keepFp": ["head"],\n  "calibrator": "entropy",\n}\n');
    const r = await qcc(['compile', conv, '--target', 'ort', '--w8a8', '--config', cfg, '-o', path.join(d, 'x.onnx')]);
    failed(r, 2, 'E_USAGE', /config file .*c\.json is not valid JSON: .*\(line 4, column 1\)/);
    assert.deepEqual(fs.readdirSync(d), ['c.json']);
  });

  // V8 reports an unexpected token without a position and quotes the text instead ("Unexpected token 'e',
  // ..."ibrator": entropy\n}\n" is not valid JSON"): qcc finds the position itself and quotes one short excerpt
  test('a config file with an unquoted value: E_USAGE with the line and column, on one line', async () => {
    const d = tempDir();
    const cfg = path.join(d, 'c.json');
    fs.writeFileSync(cfg, '{\n  "keepFp": ["head"],\n  "calibrator": entropy\n}\n');
    const r = await qcc(['compile', conv, '--target', 'ort', '--w8a8', '--config', cfg, '-o', path.join(d, 'x.onnx')]);
    failed(r, 2, 'E_USAGE', /config file .*c\.json is not valid JSON: /);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /is not valid JSON: Unexpected token 'e' \(line 3, column 17\) near 'entropy' \(at .*c\.json\)/);
  });

  test('a config file with an unknown preset or key is E_USAGE (exit 2) naming the JSON path', async () => {
    const d = tempDir();
    const cfg = path.join(d, 'c.json');
    fs.writeFileSync(cfg, JSON.stringify({ preset: 'w3a8' }));
    failed(await qcc(['compile', conv, '--target', 'ort', '--config', cfg, '-o', path.join(d, 'x.onnx')]), 2, 'E_USAGE', /\$\.preset must be a preset \(known: w8a8, w4a8, w4a16, w8a16, fp8\), got "w3a8"/);
    fs.writeFileSync(cfg, JSON.stringify({ keepfp: ['head'] }));
    failed(await qcc(['compile', conv, '--target', 'ort', '--w8a8', '--config', cfg, '-o', path.join(d, 'x.onnx')]), 2, 'E_USAGE', /\$\.keepfp is not a known key/);
    assert.deepEqual(fs.readdirSync(d), ['c.json']);
  });

  test('a missing config file is E_IO (exit 2)', async () => {
    const d = tempDir();
    const r = await qcc(['compile', conv, '--target', 'ort', '--w8a8', '--config', path.join(d, 'nope.json'), '-o', path.join(d, 'x.onnx')]);
    failed(r, 2, 'E_IO', /cannot read config file .*nope\.json/);
    assert.deepEqual(fs.readdirSync(d), []);
  });

  test('an unknown --preset is E_USAGE (exit 2) listing the presets', async () => {
    const d = tempDir();
    failed(await qcc(['compile', conv, '--target', 'tensorrt', '--preset', 'int3', '-o', path.join(d, 'x.onnx')]), 2, 'E_USAGE', /unknown preset 'int3' \(known: w8a8, w4a8, w4a16, w8a16, fp8\)/);
    assert.deepEqual(fs.readdirSync(d), []);
  });
});
