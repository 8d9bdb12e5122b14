// External data: saveModel writes one data file, reload is exact and runs the same in ORT; unsafe locations, bad ranges and failed writes are refused cleanly.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import { Tensor, type Model } from '../../ir/ir.js';
import { decodeModel, loadModel } from '../../ir/onnx/reader.js';
import { encodeModel, saveModel } from '../../ir/onnx/writer.js';
import { ort } from '../../ir/ort.js';
import { Rewriter } from '../../ir/rewriter.js';
import { ortResultsIdentical } from '../util/conformance.js';
import { ATTR, bytesEqual, hex, modelBytes, node, ONNX, vi } from '../util/onnx-msg.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-ext-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
function freshDir(): string {
  const d = path.join(tmpRoot, `d${dirCount++}`);
  fs.mkdirSync(d);
  return d;
}

function code(e: unknown): string | undefined {
  return e instanceof QccError ? e.code : undefined;
}

/** y = Conv(x, w) + b2 where w (1152 floats), b2 (300 floats) are large and `s` (2 floats) and a Constant are small. */
function model(): Model {
  const b = new GraphBuilder('ext', { opset: 17 });
  const x = b.input('x', 'f32', [1, 8, 6, 6]);
  const w = b.f32('w', [16, 8, 3, 3], Array.from({ length: 1152 }, (_, i) => Math.sin(i) / 10));
  const c = b.op('Conv', [x, w], { name: 'conv', attrs: { pads: [1, 1, 1, 1] } });
  const b2 = b.f32('b2', [16, 6, 6], Array.from({ length: 576 }, (_, i) => (i % 7) - 3));
  const s = b.f32('s', [1], [0.5]);
  const idx = b.i64('idx', Array.from({ length: 200 }, (_, i) => i % 16), [200]);
  const a = b.op('Add', [c, b2]);
  const m = b.op('Mul', [a, s]);
  const g = b.op('Gather', [m, idx], { attrs: { axis: 1 } });
  b.output(g);
  return b.build();
}

function input(): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.from({ length: 288 }, (_, i) => Math.cos(i)), [1, 8, 6, 6]);
}

async function runFile(file: string | Uint8Array): Promise<Record<string, ort.Tensor>> {
  const s = typeof file === 'string' ? await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' }) : await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' });
  try {
    return (await s.run({ x: input() })) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

describe('saveModel with externalData', () => {
  test('writes one data file; reload gives identical tensor bytes and ORT outputs identical to the inline model', async () => {
    const dir = freshDir();
    const m = model();
    const file = path.join(dir, 'm.onnx');
    const res = saveModel(m, file, { externalData: { threshold: 1024 } });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['m.onnx', 'm.onnx.data'], 'one data file, no temporary files');
    // w: 4608 bytes at 0; b2: 2304 bytes at 4608; idx: 1600 bytes at 6912 (64-aligned); s stays inline
    assert.equal(res.dataBytes, 6912 + 1600);
    assert.equal(fs.statSync(path.join(dir, 'm.onnx.data')).size, 6912 + 1600);
    const back = loadModel(file);
    const kinds = Object.fromEntries(back.graph.initializers.map((v) => [v.name, v.initializer!.data.kind]));
    assert.deepEqual(kinds, { w: 'external', b2: 'external', s: 'raw', idx: 'external' });
    for (const v of back.graph.initializers) {
      const d = v.initializer!.data;
      if (d.kind === 'external') {
        assert.equal(d.location, 'm.onnx.data');
        assert.equal(d.offset % 64, 0);
      }
      assert.equal(hex(v.initializer!.bytes()), hex(m.graph.findValue(v.name)!.initializer!.bytes()), `tensor ${v.name}`);
    }
    const inline = encodeModel(m);
    assert.ok(bytesEqual(encodeModel(back), inline), 'inlining the reloaded model gives the inline encoding');
    const ro = await runFile(inline);
    const re = await runFile(file); // ORT reads the data file itself
    assert.ok(ortResultsIdentical(ro, re));
    assert.deepEqual(re[m.graph.outputs[0]!.name]!.dims, [1, 200, 6, 6]);
  });

  test('re-saving a loaded external model elsewhere is a fixed point', () => {
    const d1 = freshDir();
    const d2 = freshDir();
    saveModel(model(), path.join(d1, 'm.onnx'), { externalData: { threshold: 1024 } });
    saveModel(loadModel(path.join(d1, 'm.onnx')), path.join(d2, 'm.onnx'), { externalData: { threshold: 1024 } });
    for (const f of ['m.onnx', 'm.onnx.data']) assert.ok(fs.readFileSync(path.join(d1, f)).equals(fs.readFileSync(path.join(d2, f))), f);
  });

  test('saving in place over its own data file (read before the rename) keeps the data', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'm.onnx');
    saveModel(model(), file, { externalData: { threshold: 1024 } });
    saveModel(loadModel(file), file, { externalData: { threshold: 2000 } }); // different layout
    const back = loadModel(file);
    assert.deepEqual(back.graph.initializers.map((v) => v.initializer!.data.kind), ['external', 'external', 'raw', 'raw']);
    assert.ok(bytesEqual(encodeModel(back), encodeModel(model())));
    assert.ok(ortResultsIdentical(await runFile(encodeModel(model())), await runFile(file)));
  });

  test('a location that is not a plain file name is refused', () => {
    const dir = freshDir();
    for (const location of ['../x.data', 'sub/x.data', '/tmp/x.data']) {
      assert.throws(() => saveModel(model(), path.join(dir, 'm.onnx'), { externalData: { location } }), (e) => code(e) === 'E_EXTERNAL_PATH', location);
    }
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Reading: hand-made models with external_data entries

/** A model with one FLOAT [n] initializer `w` stored externally at `location` (offset/length as given). */
function extModel(location: string, n: number, opts: { offset?: string; length?: string } = {}): Uint8Array {
  const entries = [{ key: 'location', value: location }];
  if (opts.offset !== undefined) entries.push({ key: 'offset', value: opts.offset });
  if (opts.length !== undefined) entries.push({ key: 'length', value: opts.length });
  return modelBytes({
    input: [vi('x', ONNX.FLOAT, [n])],
    initializer: [{ name: 'w', dims: [n], data_type: ONNX.FLOAT, data_location: 1, external_data: entries }],
    node: [node('Add', ['x', 'w'], ['y'])],
    output: [vi('y', ONNX.FLOAT, [n])],
  });
}

function writeData(dir: string, name: string, values: number[]): void {
  fs.writeFileSync(path.join(dir, name), Float32Array.from(values));
}

describe('reading external data', () => {
  test('reads location/offset/length; ORT agrees on the values', async () => {
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'w.bin'), Buffer.concat([Buffer.alloc(8, 0xee), Buffer.from(Float32Array.from([1, 2, 3]).buffer)]));
    const bytes = extModel('sub/w.bin', 3, { offset: '8', length: '12' });
    fs.writeFileSync(path.join(dir, 'm.onnx'), bytes);
    const m = loadModel(path.join(dir, 'm.onnx'));
    const t = m.graph.initializers[0]!.initializer!;
    assert.deepEqual(t.data.kind === 'external' && [t.data.location, t.data.offset, t.data.length], ['sub/w.bin', 8, 12]);
    assert.deepEqual([...(t.typed() as Float32Array)], [1, 2, 3]);
    const s = await ort.InferenceSession.create(path.join(dir, 'm.onnx'));
    const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from([10, 20, 30]), [3]) });
    await s.release();
    assert.deepEqual([...(r.y!.data as Float32Array)], [11, 22, 33]);
    // decodeModel with an explicit baseDir resolves the same way
    assert.deepEqual([...(decodeModel(bytes, { baseDir: dir }).graph.initializers[0]!.initializer!.typed() as Float32Array)], [1, 2, 3]);
  });

  test('a symlink that stays inside the model folder is allowed', () => {
    const dir = freshDir();
    writeData(dir, 'real.bin', [4, 5]);
    fs.symlinkSync('real.bin', path.join(dir, 'link.bin'));
    const m = decodeModel(extModel('link.bin', 2), { baseDir: dir });
    assert.deepEqual([...(m.graph.initializers[0]!.initializer!.typed() as Float32Array)], [4, 5]);
  });

  describe('locations escaping the model folder are refused with E_EXTERNAL_PATH', () => {
    const outside = freshDir();
    writeData(outside, 'secret.bin', [1, 2]);
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, 'a'));
    writeData(dir, 'ok.bin', [1, 2]);
    fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(dir, 'link.bin'));
    fs.symlinkSync(outside, path.join(dir, 'linkdir'));
    const rel = path.relative(dir, path.join(outside, 'secret.bin')); // ../dN/secret.bin: exists
    const cases: [string, string][] = [
      ['absolute path', path.join(outside, 'secret.bin')],
      ['../ to an existing file', rel],
      ['a/../../ to an existing file', path.join('a', '..', rel)],
      ['backslash ..', rel.replace(/\//g, '\\')],
      ['symlink to a file outside', 'link.bin'],
      ['symlinked folder outside', 'linkdir/secret.bin'],
      ['empty location', ''],
      ['NUL byte', 'ok.bin\0x'],
      ['the folder itself', '.'],
    ];
    for (const [what, location] of cases) {
      test(what, () => {
        assert.throws(() => decodeModel(extModel(location, 2), { baseDir: dir }), (e) => code(e) === 'E_EXTERNAL_PATH' && (e as QccError).loc.tensor === 'w');
      });
    }
    test('also through loadModel', () => {
      fs.writeFileSync(path.join(dir, 'm.onnx'), extModel(rel, 2));
      assert.throws(() => loadModel(path.join(dir, 'm.onnx')), (e) => code(e) === 'E_EXTERNAL_PATH');
    });
  });

  test('missing data file: E_EXTERNAL_MISSING', () => {
    const dir = freshDir();
    assert.throws(() => decodeModel(extModel('nope.bin', 2), { baseDir: dir }), (e) => code(e) === 'E_EXTERNAL_MISSING');
  });

  test('offset/length beyond the file: E_EXTERNAL_RANGE, before reading anything', () => {
    const dir = freshDir();
    writeData(dir, 'w.bin', [1, 2, 3, 4]); // 16 bytes
    for (const [offset, n] of [['8', 4], ['16', 1], ['99999999999', 2], ['4', 4]] as const) {
      assert.throws(() => decodeModel(extModel('w.bin', n, { offset }), { baseDir: dir }), (e) => code(e) === 'E_EXTERNAL_RANGE', `offset ${offset}, ${n} floats`);
    }
    for (const offset of ['-4', 'x', '1e3', '99999999999999999999']) {
      assert.throws(() => decodeModel(extModel('w.bin', 1, { offset }), { baseDir: dir }), (e) => code(e) === 'E_EXTERNAL_RANGE', `offset '${offset}'`);
    }
    // the exact fit is fine
    assert.deepEqual([...(decodeModel(extModel('w.bin', 2, { offset: '8' }), { baseDir: dir }).graph.initializers[0]!.initializer!.typed() as Float32Array)], [3, 4]);
  });

  test('length not matching dims: E_MODEL_DATA_SIZE', () => {
    const dir = freshDir();
    writeData(dir, 'w.bin', [1, 2, 3, 4]);
    for (const length of ['4', '12', '0']) {
      assert.throws(() => decodeModel(extModel('w.bin', 2, { length }), { baseDir: dir }), (e) => code(e) === 'E_MODEL_DATA_SIZE', `length ${length}`);
    }
  });

  test('external data is read on demand: a file truncated after loading is reported, not misread', () => {
    const dir = freshDir();
    writeData(dir, 'w.bin', [1, 2, 3, 4]);
    const m = decodeModel(extModel('w.bin', 4), { baseDir: dir });
    fs.truncateSync(path.join(dir, 'w.bin'), 8);
    assert.throws(() => m.graph.initializers[0]!.initializer!.bytes(), (e) => code(e) === 'E_EXTERNAL_CHANGED' && /size 16 -> 8/.test(String((e as Error).message)));
  });

  test('external data rewritten after loading with the same size is reported too (modification time)', () => {
    const dir = freshDir();
    writeData(dir, 'w.bin', [1, 2, 3, 4]);
    const m = decodeModel(extModel('w.bin', 4), { baseDir: dir });
    assert.deepEqual([...(m.graph.initializers[0]!.initializer!.typed() as Float32Array)], [1, 2, 3, 4]);
    writeData(dir, 'w.bin', [5, 6, 7, 8]);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'w.bin'), later, later);
    assert.throws(() => m.graph.initializers[0]!.initializer!.bytes(), (e) => code(e) === 'E_EXTERNAL_CHANGED');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Atomic writes

describe('failed writes leave no output and no temporary file', () => {
  /** A model with an extra initializer `bad` whose bytes() throws (its external data file is gone). */
  function brokenModel(dir: string): Model {
    const m = model();
    new Rewriter(m.graph).addInitializer(new Tensor('bad', 'f32', [512], { kind: 'external', location: 'gone.bin', offset: 0, length: 2048, baseDir: dir, entries: [] }));
    return m;
  }

  test('a tensor whose bytes() throws (inline save)', () => {
    const dir = freshDir();
    assert.throws(() => saveModel(brokenModel(dir), path.join(dir, 'm.onnx')), (e) => code(e) === 'E_EXTERNAL_MISSING');
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test('a tensor whose bytes() throws (external-data save), and an existing output stays as it was', () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'm.onnx'), 'old model');
    fs.writeFileSync(path.join(dir, 'm.onnx.data'), 'old data');
    assert.throws(() => saveModel(brokenModel(dir), path.join(dir, 'm.onnx'), { externalData: { threshold: 1024 } }), (e) => code(e) === 'E_EXTERNAL_MISSING');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['m.onnx', 'm.onnx.data']);
    assert.equal(fs.readFileSync(path.join(dir, 'm.onnx'), 'utf8'), 'old model');
    assert.equal(fs.readFileSync(path.join(dir, 'm.onnx.data'), 'utf8'), 'old data');
  });

  test('target folder missing: E_IO', () => {
    const dir = freshDir();
    assert.throws(() => saveModel(model(), path.join(dir, 'no', 'm.onnx')), (e) => code(e) === 'E_IO');
    assert.throws(() => saveModel(model(), path.join(dir, 'no', 'm.onnx'), { externalData: true }), (e) => code(e) === 'E_IO');
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test('target not writable (a directory is in the way): no data file is left behind', () => {
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, 'm.onnx')); // rename onto a directory fails even for root
    assert.throws(() => saveModel(model(), path.join(dir, 'm.onnx')), (e) => code(e) === 'E_IO');
    assert.throws(() => saveModel(model(), path.join(dir, 'm.onnx'), { externalData: { threshold: 1024 } }), (e) => code(e) === 'E_IO');
    assert.deepEqual(fs.readdirSync(dir), ['m.onnx']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'm.onnx')), []);
  });

  test('read-only folder (when not running as root)', { skip: process.getuid?.() === 0 && 'root ignores directory permissions' }, () => {
    const dir = freshDir();
    fs.chmodSync(dir, 0o555);
    try {
      assert.throws(() => saveModel(model(), path.join(dir, 'm.onnx')), (e) => code(e) === 'E_IO');
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.chmodSync(dir, 0o755);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The 2 GiB protobuf limit, without touching 2 GiB: 33 initializers are views of one 64 MiB zero buffer

test('encodeModel and inline saveModel refuse a model over 2 GiB with E_MODEL_TOO_LARGE (nothing written)', () => {
  const shared = new Uint8Array(64 << 20); // never written to: the OS maps zero pages lazily
  const b = new GraphBuilder('huge');
  const x = b.input('x', 'f32', [16 << 20]);
  let acc = x;
  for (let i = 0; i < 33; i++) {
    const w = b.rw.addInitializer(new Tensor(`w${i}`, 'f32', [16 << 20], { kind: 'raw', bytes: shared }));
    acc = b.op('Add', [acc, w]);
  }
  b.output(acc);
  const m = b.build();
  assert.throws(() => encodeModel(m), (e) => code(e) === 'E_MODEL_TOO_LARGE');
  const dir = freshDir();
  assert.throws(() => saveModel(m, path.join(dir, 'm.onnx')), (e) => code(e) === 'E_MODEL_TOO_LARGE');
  assert.deepEqual(fs.readdirSync(dir), []);
  // with external data the same model is small; writing its 2.1 GB data file is left to the benchmark
});

test('a Constant attribute tensor stays inline even above the threshold', () => {
  const dir = freshDir();
  const bytes = modelBytes({
    node: [node('Constant', [], ['y'], { attribute: [{ name: 'value', type: ATTR.TENSOR, t: { dims: [1024], data_type: ONNX.FLOAT, raw_data: new Uint8Array(4096) } }] })],
    output: [vi('y', ONNX.FLOAT, [1024])],
  });
  saveModel(decodeModel(bytes), path.join(dir, 'm.onnx'), { externalData: { threshold: 16 } });
  const back = loadModel(path.join(dir, 'm.onnx'));
  assert.equal(back.graph.nodeArray()[0]!.attrTensor('value')!.data.kind, 'raw');
});
