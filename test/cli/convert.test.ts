// `qcc convert`: byte-identical re-encoding, canonicalize + opset upgrade checked in ORT, external data, .qir output,
// and no output file at all when the command fails.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { parseModel } from '../../ir/parse.js';
import { printModel } from '../../ir/print.js';
import { cleanup, OCR, qcc, tempDir } from './helpers.js';

after(cleanup);

const CLS = path.join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const haveOcr = fs.existsSync(CLS);

describe('qcc convert', { skip: !haveOcr }, () => {
  test('plain convert writes what the library encodes, byte for byte', async () => {
    const out = path.join(tempDir(), 'cls.onnx');
    const r = await qcc(['convert', CLS, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^qcc: wrote .*cls\.onnx \([\d,]+ bytes\)\n$/);
    assert.deepEqual(fs.readFileSync(out), Buffer.from(encodeModel(loadModel(CLS))));
  });

  test('--canonicalize --opset 13: no Constant or BatchNormalization left, ORT outputs within 1e-5', async () => {
    const out = path.join(tempDir(), 'cls13.onnx');
    const r = await qcc(['convert', CLS, out, '--canonicalize', '--opset', '13']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse((await qcc(['inspect', out, '--json'])).stdout);
    assert.equal(j.opsetImports['ai.onnx'], 13);
    const ops = j.ops.map((o: { op: string }) => o.op);
    assert.ok(!ops.includes('Constant') && !ops.includes('BatchNormalization'), ops.join(','));
    assert.equal(j.parameters.constants.tensors, 0);
    // same function: run both on one deterministic input
    const x = new Float32Array(2 * 3 * 48 * 192).map((_, i) => Math.sin(i * 0.37) * 0.8);
    const feeds = { x: new ort.Tensor('float32', x, [2, 3, 48, 192]) };
    const a = await run(await createSession(fs.readFileSync(CLS)), feeds);
    const b = await run(await createSession(fs.readFileSync(out)), feeds);
    const [ya, yb] = [Object.values(a)[0]!.data as Float32Array, Object.values(b)[0]!.data as Float32Array];
    assert.equal(ya.length, 4);
    for (let i = 0; i < ya.length; i++) assert.ok(Math.abs(ya[i]! - yb[i]!) <= 1e-5 * Math.max(1, Math.abs(ya[i]!)), `${ya[i]} vs ${yb[i]}`);
  });

  test('--external-data with --external-threshold: one data file, reload equal', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'ext.onnx');
    const r = await qcc(['convert', CLS, out, '--canonicalize', '--external-threshold', '4096']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /bytes of external data/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['ext.onnx', 'ext.onnx.data']);
    const j = JSON.parse((await qcc(['inspect', out, '--json'])).stdout);
    assert.ok(j.parameters.externalBytes > 0.8 * j.parameters.bytes, JSON.stringify(j.parameters));
    // the same model as the inline conversion (the printed digests cover every tensor's bytes)
    const inline = path.join(tempDir(), 'inline.onnx');
    assert.equal((await qcc(['convert', CLS, inline, '--canonicalize'])).code, 0);
    assert.equal(printModel(loadModel(out)), printModel(loadModel(inline)));
    assert.ok(fs.statSync(out).size < 0.2 * fs.statSync(inline).size);
  });

  test('.qir output is the printed IR and parses back', async () => {
    const out = path.join(tempDir(), 'cls.qir');
    const r = await qcc(['convert', CLS, out]);
    assert.equal(r.code, 0, r.stderr);
    const text = fs.readFileSync(out, 'utf8');
    assert.equal(text, printModel(loadModel(CLS)));
    assert.equal(printModel(parseModel(text)), text);
  });
});

describe('failed commands leave no output', () => {
  test('garbage input: exit 3, E_ONNX_ code, nothing written', async () => {
    const dir = tempDir();
    const bad = path.join(dir, 'garbage.onnx');
    fs.writeFileSync(bad, Buffer.from('this is not a protobuf at all, just text\n'.repeat(20)));
    const out = path.join(dir, 'out.onnx');
    const r = await qcc(['convert', bad, out]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^qcc: E_ONNX_[A-Z_]+: .*\(at .*garbage\.onnx, byte \d+/);
    assert.deepEqual(fs.readdirSync(dir), ['garbage.onnx']);
  });

  test('a pipeline failure after loading (opset downgrade): exit 1, no output or temporary file', { skip: !haveOcr }, async () => {
    const dir = tempDir();
    const r = await qcc(['convert', CLS, path.join(dir, 'out.onnx'), '--opset', '7', '--external-data']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^qcc: E_UNSUPPORTED: in pass upgrade-opset: .*down/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test('unwritable output location: exit 2 (E_IO), nothing created', { skip: !haveOcr }, async () => {
    const dir = tempDir();
    const r = await qcc(['convert', CLS, path.join(dir, 'no', 'such', 'dir', 'out.onnx')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^qcc: E_IO: cannot write /);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
