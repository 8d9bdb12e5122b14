// Zoo files: writeZooModel's streamed external data reloads bit-identical to the in-memory build, and Debian's python3-onnx checker (full_check) accepts every model saved at opset 17.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QccError } from '../../ir/errors.js';
import { loadModel } from '../../ir/onnx/reader.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { buildZooModel, countParams, writeZooModel, ZOO } from '../../models/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-zoo-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function code(e: unknown): string | undefined {
  return e instanceof QccError ? e.code : undefined;
}

/** A python3 that can import onnx (Debian's python3-onnx lives in /usr/bin/python3, not in a pyenv python). */
function findPython(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import onnx'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

describe('zoo files', () => {
  const ditFile = path.join(dir, 'dit-s2.onnx');
  let written: { params: number; bytes: number };
  before(async () => {
    written = await writeZooModel('dit-s2', ditFile, { opset: 17, externalData: true });
  });

  test('dit-s2 streamed to external data: same tensors and outputs as the in-memory build, no temporary files left', async () => {
    assert.equal(written.params, 32_963_360);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['dit-s2.onnx', 'dit-s2.onnx.data']);
    assert.equal(written.bytes, fs.statSync(ditFile).size + fs.statSync(`${ditFile}.data`).size);
    assert.ok(fs.statSync(ditFile).size < 200_000, 'the model proto holds references, not weights');

    const loaded = loadModel(ditFile);
    assert.equal(countParams(loaded), 32_963_360);
    const mem = await buildZooModel('dit-s2', { opset: 17 });
    assert.equal(loaded.graph.initializers.length, mem.graph.initializers.length);
    let external = 0;
    for (const v of mem.graph.initializers) {
      const lv = loaded.graph.findValue(v.name);
      assert.ok(lv?.initializer, v.name);
      assert.deepEqual(lv.initializer.dims, v.initializer!.dims, v.name);
      const d = lv.initializer.data;
      if (d.kind === 'external') {
        external++;
        assert.equal(d.location, 'dit-s2.onnx.data');
        assert.equal(d.offset % 64, 0);
      }
      assert.ok(Buffer.from(lv.initializer.bytes()).equals(Buffer.from(v.initializer!.bytes())), `${v.name} bytes`);
    }
    assert.ok(external > 100, `${external} external tensors`);

    const feeds = {
      latent: new ort.Tensor('float32', Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)), [1, 4, 32, 32]),
      timestep: new ort.Tensor('float32', Float32Array.of(250), [1]),
      class_label: new ort.Tensor('int64', BigInt64Array.of(88n), [1]),
    };
    const out = async (m: typeof mem): Promise<Float32Array> => {
      const s = await createSession(m);
      try {
        return (await run(s, feeds)).output!.data as Float32Array;
      } finally {
        await s.release();
      }
    };
    assert.deepEqual(await out(loaded), await out(mem));
  });

  test('a failed streamed write leaves nothing behind and reports E_IO', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'fail-'));
    fs.mkdirSync(path.join(sub, 'm.onnx')); // the model path is a folder: the final rename fails after the data is written
    await assert.rejects(writeZooModel('vit-ti16', path.join(sub, 'm.onnx'), { externalData: true }), (e) => code(e) === 'E_IO');
    assert.deepEqual(fs.readdirSync(sub), ['m.onnx']);
    await assert.rejects(writeZooModel('vit-ti16', path.join(sub, 'missing', 'm.onnx'), { externalData: true }), (e) => code(e) === 'E_IO');
    fs.rmSync(sub, { recursive: true });
  });

  test('python3 onnx.checker.check_model(full_check=True) accepts every model written at opset 17 (dit-xl2 aside)', async (t) => {
    const py = findPython();
    if (!py) {
      t.skip('python3-onnx is not installed (apt-get install python3-onnx): onnx.checker not run');
      return;
    }
    const files = [ditFile];
    for (const z of ZOO) {
      if (z.name === 'dit-xl2' || z.name === 'dit-s2') continue;
      const f = path.join(dir, `${z.name}.onnx`);
      // vit-b16 (346 MB) goes through the streaming writer too; the checker then reads only the small proto
      const r = await writeZooModel(z.name, f, { opset: 17, externalData: z.name === 'vit-b16' });
      assert.equal(r.params, z.params, z.name);
      files.push(f);
    }
    const script = [
      'import sys, onnx',
      'for f in sys.argv[1:]:',
      '    onnx.checker.check_model(f, full_check=True)',
      '    m = onnx.load(f, load_external_data=False)',
      '    print("ok", f.rsplit("/", 1)[-1], m.ir_version, [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0])',
    ].join('\n');
    const r = spawnSync(py, ['-c', script, ...files], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `onnx.checker failed:\n${r.stderr}`);
    assert.deepEqual(
      r.stdout.trim().split('\n'),
      files.map((f) => `ok ${path.basename(f)} 8 17`),
    );
  });
});
