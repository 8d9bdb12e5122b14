// Models that keep their weights on disk: loadModel's lazy mode (initializers stay in the .onnx file) and
// ScratchData (compile spills its canonical model's weights to a temporary folder while onnxruntime holds its own).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { cloneModel } from '../../ir/clone.js';
import { QccError } from '../../ir/errors.js';
import type { Model } from '../../ir/ir.js';
import { loadModel } from '../../ir/onnx/reader.js';
import { ScratchData } from '../../ir/onnx/scratch.js';
import { encodeModel, saveModel } from '../../ir/onnx/writer.js';
import { createSession, run } from '../../ir/ort.js';
import { compile } from '../../targets/compile.js';
import { presetConfig } from '../../targets/config.js';
import { bytesEqual } from '../util/onnx-msg.js';
import { tinyCnn } from '../util/tiny-cnn.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-lazy-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let count = 0;
const freshDir = (): string => fs.mkdtempSync(path.join(root, `d${count++}-`));

function code(e: unknown): string | undefined {
  return e instanceof QccError ? e.code : undefined;
}

function input(seed: number): ort.Tensor {
  let s = seed;
  const d = Float32Array.from({ length: 2 * 3 * 16 * 16 }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
  return new ort.Tensor('float32', d, [2, 3, 16, 16]);
}

async function outputs(m: Model, o: Parameters<typeof createSession>[1] = {}): Promise<Float32Array> {
  const s = await createSession(m, o);
  try {
    const r = await run(s, { input: input(7) });
    return r[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function saved(): string {
  const f = path.join(freshDir(), 'tiny.onnx');
  saveModel(tinyCnn(), f);
  return f;
}

describe('loadModel lazy mode', () => {
  test('same model; initializers from lazyMinBytes up stay in the file, the rest are copies, no view of the file bytes survives', () => {
    const f = saved();
    const eager = loadModel(f);
    const lazy = loadModel(f, { lazy: true, lazyMinBytes: 1024 });
    assert.equal(lazy.graph.initializers.length, eager.graph.initializers.length);
    let inFile = 0;
    for (const v of lazy.graph.initializers) {
      const t = v.initializer!;
      const e = eager.graph.findValue(v.name)!.initializer!;
      assert.ok(bytesEqual(t.bytes(), e.bytes()), v.name);
      if (t.byteLength >= 1024) {
        inFile++;
        assert.equal(t.data.kind, 'external', v.name);
        if (t.data.kind === 'external') assert.equal(path.join(t.data.baseDir, t.data.location), fs.realpathSync(f));
      } else {
        assert.equal(t.data.kind, 'raw', v.name);
        // its own buffer, not a window into the whole file
        if (t.data.kind === 'raw') assert.equal(t.data.bytes.buffer.byteLength, t.data.bytes.byteLength, v.name);
      }
    }
    assert.equal(inFile, 5, 'the four 3x3 convs and fc are at least 1 KiB');
    // written out, the lazy model is the same file
    assert.ok(bytesEqual(encodeModel(lazy), encodeModel(eager)));
  });

  test('onnxruntime gives identical outputs for the lazy and the eager model', async () => {
    const f = saved();
    const a = await outputs(loadModel(f));
    const b = await outputs(loadModel(f, { lazy: true, lazyMinBytes: 1024 }));
    assert.deepEqual(b, a);
  });

  test('through a symlink from another folder; a clone reads the same data', () => {
    const f = saved();
    const link = path.join(freshDir(), 'link.onnx');
    fs.symlinkSync(f, link);
    const m = loadModel(link, { lazy: true, lazyMinBytes: 1024 });
    const c = cloneModel(m);
    for (const v of m.graph.initializers) assert.ok(bytesEqual(c.graph.findValue(v.name)!.initializer!.bytes(), v.initializer!.bytes()), v.name);
  });

  test('the file rewritten after loading: reading a weight fails with E_EXTERNAL_CHANGED instead of returning other weights', () => {
    const f = saved();
    const m = loadModel(f, { lazy: true, lazyMinBytes: 1024 });
    const w = m.graph.findValue('head.weight')!.initializer!;
    w.bytes();
    saveModel(tinyCnn(2), f); // same shapes, other values, same size
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(f, later, later);
    assert.throws(() => w.bytes(), (e) => code(e) === 'E_EXTERNAL_CHANGED');
  });
});

describe('ScratchData', () => {
  test('spill: big initializers become references into the scratch folder, values and onnxruntime outputs unchanged', async () => {
    const m = tinyCnn();
    const before = new Map(m.graph.initializers.map((v) => [v.name, v.initializer!.bytes()]));
    const ref = await outputs(m);
    const s = ScratchData.create();
    try {
      const bytes = s.spill(m, 1024);
      assert.ok(bytes >= 5 * 1024, String(bytes));
      const held = m.graph.initializers.filter((v) => s.holds(v.initializer!));
      assert.equal(held.length, 5);
      for (const v of m.graph.initializers) {
        assert.equal(s.holds(v.initializer!), v.initializer!.byteLength >= 1024, v.name);
        assert.ok(bytesEqual(v.initializer!.bytes(), before.get(v.name)!), v.name);
      }
      // the session reads the weights where they are: only a graph file is written, and removed again
      const file = s.sessionFile(m);
      assert.ok(file && fs.statSync(file).size < 5 * 1024, `graph file ${file}`);
      fs.rmSync(file!);
      assert.deepEqual(await outputs(m, { scratch: s }), ref);
      assert.deepEqual(fs.readdirSync(s.dir).filter((f) => f.endsWith('.onnx')), []);
      // a clone refers to the same data
      assert.equal(cloneModel(m).graph.initializers.filter((v) => s.holds(v.initializer!)).length, 5);
      // materialize: back in memory, the same bytes
      const read = s.materialize(m);
      assert.equal(read, held.reduce((n, v) => n + v.initializer!.byteLength, 0));
      for (const v of m.graph.initializers) {
        assert.equal(v.initializer!.data.kind, 'raw', v.name);
        assert.ok(bytesEqual(v.initializer!.bytes(), before.get(v.name)!), v.name);
      }
    } finally {
      s.dispose();
    }
    assert.equal(fs.existsSync(s.dir), false);
    assert.throws(() => s.spill(m), (e) => code(e) === 'E_USAGE');
  });

  test('lazily loaded weights are spilled too; a model with weights elsewhere gets no in-place session file', () => {
    const f = saved();
    const m = loadModel(f, { lazy: true, lazyMinBytes: 1024 });
    const s = ScratchData.create();
    try {
      assert.equal(s.sessionFile(m), undefined, 'its weights live in the model file, not in the scratch folder');
      s.spill(m, 1 << 30); // nothing is that big, but every external tensor moves
      assert.ok(m.graph.initializers.every((v) => v.initializer!.data.kind !== 'external' || s.holds(v.initializer!)));
      assert.notEqual(s.sessionFile(m), undefined);
    } finally {
      s.dispose();
    }
  });
});

describe('compile with weights on disk', () => {
  test('a lazily loaded model compiles to the same quantized model as an eagerly loaded one; the scratch folder exists during calibration and is gone after', async () => {
    const f = saved();
    // a private temporary folder (other test files compile at the same time): os.tmpdir() reads TMPDIR
    const tmp = freshDir();
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    const scratchDirs = () => fs.readdirSync(tmp).filter((d) => d.startsWith('qcc-scratch-'));
    const during: string[][] = [];
    try {
      const o = { target: 'tensorrt' as const, config: presetConfig('w8a8'), calibSamples: 4, validationSamples: 2 };
      const a = await compile(loadModel(f), o);
      const b = await compile(loadModel(f, { lazy: true, lazyMinBytes: 1024 }), { ...o, onProgress: (p) => void (p.phase === 'calibrate' && during.push(scratchDirs())) });
      assert.ok(bytesEqual(encodeModel(b.model), encodeModel(a.model)));
      assert.ok(b.model.graph.initializers.every((v) => v.initializer!.data.kind !== 'external' || !v.initializer!.data.baseDir.includes('qcc-scratch-')));
      assert.equal(b.report.validation.outputs[0]!.sqnrDb, a.report.validation.outputs[0]!.sqnrDb);
      assert.ok(b.report.timings.some((t) => t.phase === 'spill-weights'));
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
    assert.ok(during.length > 0 && during.every((d) => d.length === 1), `one scratch folder while calibrating: ${JSON.stringify(during)}`);
    assert.deepEqual(scratchDirs(), [], 'removed after compile');
  });
});
