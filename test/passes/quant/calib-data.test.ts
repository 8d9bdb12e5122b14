// Calibration data sources: seeded random inputs, .npy files (numpy-written and hand-built), images decoded by sharp, --preprocess specs.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { GraphBuilder } from '../../../ir/builder.js';
import { QccError } from '../../../ir/errors.js';
import type { Model, Shape } from '../../../ir/ir.js';
import type { DType } from '../../../ir/dtype.js';
import { createSession, run, type Feeds } from '../../../ir/ort.js';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  imageCalibration,
  inputBatching,
  npyCalibration,
  parseNpyHeader,
  parsePreprocess,
  randomCalibration,
  readNpy,
  type CalibrationData,
} from '../../../passes/quant/calib-data.js';

const N = { param: 'N' };

/** A model with the given inputs, each feeding an Identity to an output. */
function inputsModel(inputs: [string, DType, Shape][]): Model {
  const b = new GraphBuilder('data', { opset: 17 });
  for (const [name, dtype, shape] of inputs) b.output(b.op('Identity', [b.input(name, dtype, shape)], { name: `id_${name}` }));
  return b.build();
}

async function collect(d: CalibrationData): Promise<Feeds[]> {
  const out: Feeds[] = [];
  for await (const f of d.batches()) out.push(f);
  return out;
}

function isUsage(code = 'E_USAGE', re?: RegExp) {
  return (e: unknown): boolean => e instanceof QccError && e.code === code && (!re || re.test(e.message + JSON.stringify(e.loc)));
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-calib-'));
}

// ---------------------------------------------------------------------------------------------------------------
// Random

test('random: DiT-like inputs in their expected ranges, seeded per sample, batch-size independent', async () => {
  const m = inputsModel([
    ['latent', 'f32', [N, 4, 8, 8]],
    ['timestep', 'f32', [N]],
    ['class_label', 'i64', [N]],
    ['mask', 'bool', [N, 3]],
    ['ids', 'i32', [N, 5]],
  ]);
  const d = randomCalibration(m, { samples: 7, batchSize: 3, seed: 9 });
  assert.equal(d.source, 'random');
  assert.equal(d.samples, 7);
  assert.match(d.description!, /latent f32 \[B,4,8,8\] ~ N\(0,1\)/);
  assert.match(d.description!, /timestep f32 \[B\] ~ U\[0,1000\)/);
  assert.match(d.description!, /class_label i64 \[B\] ~ U\{0\.\.999\}/);
  const batches = await collect(d);
  assert.deepEqual(batches.map((b) => b.latent!.dims), [[3, 4, 8, 8], [3, 4, 8, 8], [1, 4, 8, 8]]);
  const lat = batches.flatMap((b) => Array.from(b.latent!.data as Float32Array));
  const mean = lat.reduce((a, v) => a + v, 0) / lat.length;
  const sd = Math.sqrt(lat.reduce((a, v) => a + (v - mean) ** 2, 0) / lat.length);
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(sd - 1) < 0.05, `latent mean ${mean} sd ${sd}`);
  const ts = batches.flatMap((b) => Array.from(b.timestep!.data as Float32Array));
  assert.ok(ts.every((t) => t >= 0 && t < 1000) && new Set(ts).size === 7);
  const labels = batches.flatMap((b) => Array.from(b.class_label!.data as BigInt64Array, Number));
  assert.ok(labels.every((l) => Number.isInteger(l) && l >= 0 && l <= 999));
  assert.equal(batches[0]!.class_label!.type, 'int64');
  assert.ok(batches.flatMap((b) => Array.from(b.mask!.data as Uint8Array)).every((v) => v === 0 || v === 1));
  assert.ok(batches.flatMap((b) => Array.from(b.ids!.data as Int32Array)).every((v) => v >= 0 && v <= 9));
  // re-iterable and deterministic; sample k is the same with batch size 1
  const again = await collect(d);
  assert.deepEqual(again.map((b) => Array.from(b.latent!.data as Float32Array)), batches.map((b) => Array.from(b.latent!.data as Float32Array)));
  const single = await collect(randomCalibration(m, { samples: 7, batchSize: 1, seed: 9 }));
  assert.deepEqual(single.flatMap((b) => Array.from(b.timestep!.data as Float32Array)), ts);
  const other = await collect(randomCalibration(m, { samples: 7, batchSize: 1, seed: 10 }));
  assert.notDeepEqual(other.flatMap((b) => Array.from(b.timestep!.data as Float32Array)), ts);
});

test('random: fixed batch, symbolic dims given by name or input:axis, and errors', async () => {
  const fixed = inputsModel([['x', 'f32', [2, 3]]]);
  const d = randomCalibration(fixed, { samples: 5 });
  assert.equal(d.samples, 6); // rounded up to whole batches of the model's batch 2
  assert.deepEqual((await collect(d)).map((b) => b.x!.dims), [[2, 3], [2, 3], [2, 3]]);
  const dyn = inputsModel([['img', 'f32', [N, 3, { param: 'H' }, { param: null }]]]);
  assert.throws(() => randomCalibration(dyn, { samples: 1 }), isUsage('E_USAGE', /symbolic dimension 'H' at axis 2: give its value with --dim H=N \(library: dims: \{H: N\}\)/));
  assert.throws(() => randomCalibration(dyn, { samples: 1, dims: { H: 5 } }), isUsage('E_USAGE', /--dim img:3=N \(library: dims: \{"img:3": N\}\)/));
  const dd = randomCalibration(dyn, { samples: 2, batchSize: 2, dims: { H: 5, 'img:3': 7 } });
  assert.deepEqual((await collect(dd))[0]!.img!.dims, [2, 3, 5, 7]);
  assert.throws(() => randomCalibration(dyn, { samples: 0 }), isUsage());
  assert.throws(() => randomCalibration(fixed, { samples: 1, seed: -1 }), isUsage());
  const str = inputsModel([['s', 'string', [N]]]);
  assert.throws(() => randomCalibration(str, { samples: 1 }), isUsage('E_USAGE', /cannot calibrate input 's': string tensors have no numeric range/));
});

/** Batch `k`'s feed of `name` as plain numbers. */
function values(batches: Feeds[], k: number, name: string): number[] {
  return Array.from(batches[k]![name]!.data as Float32Array);
}

test('random: static inputs that are not the batch ([2,2,1,1], [8], rank 0) are fed whole; onnxruntime accepts every batch', async () => {
  // all first dims static: the largest input (x) sets the batch (1); p and q do not share it and are not batched
  const m = inputsModel([
    ['p', 'f32', [2, 2, 1, 1]],
    ['x', 'f32', [1, 3, 8, 8]],
    ['q', 'f32', [8]],
    ['s', 'f32', []],
  ]);
  assert.deepEqual(inputBatching(m), { fixed: 1, unbatched: new Set(['p', 'q']) });
  const d = randomCalibration(m, { samples: 3, seed: 5 });
  assert.equal(d.samples, 3);
  assert.match(d.description!, /p f32 \[2,2,1,1\] ~ N\(0,1\).*, the same in every batch; x f32 \[1,3,8,8\] ~ N\(0,1\)/);
  const batches = await collect(d);
  assert.equal(batches.length, 3);
  assert.deepEqual(batches.map((b) => [b.p!.dims, b.x!.dims, b.q!.dims, b.s!.dims]), Array(3).fill([[2, 2, 1, 1], [1, 3, 8, 8], [8], []]));
  // unbatched: one sample, unchanged; batched and rank-0: a new sample per batch
  for (const k of [1, 2]) {
    assert.deepEqual(values(batches, k, 'p'), values(batches, 0, 'p'));
    assert.deepEqual(values(batches, k, 'q'), values(batches, 0, 'q'));
    assert.notDeepEqual(values(batches, k, 'x'), values(batches, 0, 'x'));
    assert.notDeepEqual(values(batches, k, 's'), values(batches, 0, 's'));
  }
  assert.ok(new Set(values(batches, 0, 'p')).size === 4, 'p is random, not a constant fill');
  const session = await createSession(m);
  try {
    // onnxruntime checks every feed against the declared (static) input shapes
    for (const b of batches) assert.equal(Object.keys(await run(session, b)).length, 4);
  } finally {
    await session.release();
  }
});

test('random: a symbolic batch next to static inputs: only the symbolic ones are batched, the batch size is free', async () => {
  const m = inputsModel([
    ['x', 'f32', [N, 3, 8, 8]],
    ['p', 'f32', [2, 2, 1, 1]],
    ['t', 'f32', [N]],
  ]);
  assert.deepEqual(inputBatching(m), { fixed: undefined, unbatched: new Set(['p']) });
  const d = randomCalibration(m, { samples: 5, batchSize: 2, seed: 1 });
  assert.equal(d.samples, 5);
  const batches = await collect(d);
  assert.deepEqual(batches.map((b) => [b.x!.dims, b.p!.dims, b.t!.dims]), [
    [[2, 3, 8, 8], [2, 2, 1, 1], [2]],
    [[2, 3, 8, 8], [2, 2, 1, 1], [2]],
    [[1, 3, 8, 8], [2, 2, 1, 1], [1]],
  ]);
  assert.deepEqual(values(batches, 2, 'p'), values(batches, 0, 'p'));
  // the batched inputs do not depend on the batch size
  const single = await collect(randomCalibration(m, { samples: 5, batchSize: 1, seed: 1 }));
  assert.deepEqual(single.flatMap((b) => values([b], 0, 't')), batches.flatMap((b) => values([b], 0, 't')));
  const session = await createSession(m);
  try {
    for (const b of batches) await run(session, b);
  } finally {
    await session.release();
  }
  // all static and sharing dim 0: all batched, at that fixed size
  const same = await collect(randomCalibration(inputsModel([['a', 'f32', [2, 3]], ['b', 'f32', [2, 5]]]), { samples: 4 }));
  assert.deepEqual(same.map((b) => [b.a!.dims, b.b!.dims]), [[[2, 3], [2, 5]], [[2, 3], [2, 5]]]);
  assert.notDeepEqual(values(same, 1, 'b'), values(same, 0, 'b'));
});

// ---------------------------------------------------------------------------------------------------------------
// .npy

function python(script: string): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return true;
}

const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('npy files written by numpy: v1 and v2 headers, <f4 / <f8 / <i8 / |u1 / |b1, samples and batch files', { skip: !hasNumpy && 'python3 numpy is missing' }, async () => {
  const dir = tmpDir();
  try {
    python(`
import numpy as np
d = ${JSON.stringify(dir)}
a = (np.arange(48, dtype=np.float32).reshape(3, 4, 4) / 7 - 3)
np.save(d + '/x_2.npy', a)
np.save(d + '/x_10.npy', a * 2)
np.save(d + '/x_3.npy', np.stack([a + 1, a - 1]))  # a batch of two
np.lib.format.write_array(open(d + '/x_4.npy', 'wb'), (a * 0.5).astype(np.float64), version=(2, 0))
np.save(d + '/i.npy', np.array([[1, -2, 3 ** 30]], dtype=np.int64))
np.save(d + '/u.npy', np.array([0, 255, 7], dtype=np.uint8))
np.save(d + '/b.npy', np.array([True, False]))
np.save(d + '/be.npy', np.array([1.5], dtype='>f4'))
np.save(d + '/f.npy', np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
`);
    const ref = Array.from({ length: 48 }, (_, k) => Math.fround(Math.fround(k) / 7) - 3).map(Math.fround);
    const i = await readNpy(path.join(dir, 'i.npy'));
    assert.equal(i.dtype, 'i64');
    assert.deepEqual(i.header.shape, [1, 3]);
    assert.deepEqual(Array.from(i.data as BigInt64Array), [1n, -2n, 3n ** 30n]);
    assert.deepEqual(Array.from((await readNpy(path.join(dir, 'u.npy'))).data as Uint8Array), [0, 255, 7]);
    assert.deepEqual(Array.from((await readNpy(path.join(dir, 'b.npy'))).data as Uint8Array), [1, 0]);
    const v2 = await readNpy(path.join(dir, 'x_4.npy'));
    assert.equal(v2.dtype, 'f64');
    assert.deepEqual(Array.from(v2.data as Float64Array), ref.map((v) => Math.fround(v) * 0.5));
    await assert.rejects(readNpy(path.join(dir, 'be.npy')), isUsage('E_USAGE', /be\.npy.*'>f4'/));
    await assert.rejects(readNpy(path.join(dir, 'f.npy')), isUsage('E_USAGE', /Fortran/));
    for (const f of ['i', 'u', 'b', 'be', 'f']) fs.rmSync(path.join(dir, `${f}.npy`));

    // one input [N,3,4,4]: files x_2 (1), x_3 (2), x_4 (1, f64 converted), x_10 (1) in natural order = 5 samples
    const m = inputsModel([['x', 'f32', [N, 3, 4, 4]]]);
    const d = npyCalibration(dir, m, { batchSize: 2 });
    assert.equal(d.source, 'npy');
    assert.equal(d.samples, 5);
    const batches = await collect(d);
    assert.deepEqual(batches.map((b) => b.x!.dims), [[2, 3, 4, 4], [2, 3, 4, 4], [1, 3, 4, 4]]);
    const all = batches.flatMap((b) => Array.from(b.x!.data as Float32Array));
    const expect = [ref, ref.map((v) => Math.fround(v + 1)), ref.map((v) => Math.fround(v - 1)), ref.map((v) => Math.fround(v * 0.5)), ref.map((v) => Math.fround(v * 2))].flat();
    assert.deepEqual(all, expect);
    assert.equal((await collect(npyCalibration(dir, m, { samples: 3 }))).length, 3);
    // wrong dtype for the input and wrong shape, named by file
    const im = inputsModel([['x', 'i64', [N, 3, 4, 4]]]);
    assert.throws(() => npyCalibration(dir, im), isUsage('E_USAGE', /x_2\.npy.*'<f4'.*i64/));
    const wrong = inputsModel([['x', 'f32', [N, 3, 5, 4]]]);
    assert.throws(() => npyCalibration(dir, wrong), isUsage('E_USAGE', /x_2\.npy.*does not match/));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A .npy v1 file built by hand: magic, version, header length, dict padded with spaces to 64 bytes, data. */
function npyBytes(descr: string, shape: number[], data: Uint8Array, version = 1): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = version === 1 ? 10 : 12;
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - pre - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const len = header.length;
  if (version === 1) out.set([len & 0xff, len >> 8], 8);
  else out.set([len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >>> 24], 8);
  out.set(new TextEncoder().encode(header), pre);
  out.set(data, total);
  return out;
}

test('npy files built by hand: several inputs matched by name prefix, headers parsed, errors name the file', async () => {
  const dir = tmpDir();
  try {
    const f32 = (v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);
    const i64 = (v: number[]): Uint8Array => new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer);
    // inputs 'x' and 'x_mask' (a prefix of each other): the longest name wins
    fs.writeFileSync(path.join(dir, 'x_a.npy'), npyBytes('<f4', [2], f32([1, 2])));
    fs.writeFileSync(path.join(dir, 'x_mask_a.npy'), npyBytes('<i8', [3], i64([7, 8, 9]), 2));
    fs.writeFileSync(path.join(dir, 'x_b.npy'), npyBytes('<f4', [2], f32([3, 4])));
    fs.writeFileSync(path.join(dir, 'x_mask_b.npy'), npyBytes('<i8', [3], i64([1, 2, 3])));
    const m = inputsModel([['x', 'f32', [N, 2]], ['x_mask', 'i64', [N, 3]]]);
    const d = npyCalibration(dir, m, { batchSize: 4 });
    assert.equal(d.samples, 2);
    const [b] = await collect(d);
    assert.deepEqual(b!.x!.dims, [2, 2]);
    assert.deepEqual(Array.from(b!.x!.data as Float32Array), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(b!.x_mask!.data as BigInt64Array, Number), [7, 8, 9, 1, 2, 3]);
    // header parsing on its own
    const hb = npyBytes('<f8', [2, 3], new Uint8Array(48));
    const h = parseNpyHeader(hb, 'h.npy', hb.length);
    assert.deepEqual([h.descr, h.shape, h.dataOffset, h.fortranOrder], ['<f8', [2, 3], hb.length - 48, false]);
    assert.equal(h.dataOffset % 64, 0);
    const h0 = parseNpyHeader(npyBytes('<f4', [], new Uint8Array(4), 2), 's.npy', 132);
    assert.deepEqual(h0.shape, []);
    assert.throws(() => parseNpyHeader(new Uint8Array(20), 'z.npy', 20), isUsage('E_USAGE', /z\.npy.*magic/));
    const short = npyBytes('<f8', [2, 3], new Uint8Array(8));
    assert.throws(() => parseNpyHeader(short, 't.npy', short.length), isUsage('E_USAGE', /t\.npy.*needs 48 data bytes/));
    // a missing partner file, a stray file
    fs.rmSync(path.join(dir, 'x_mask_b.npy'));
    assert.throws(() => npyCalibration(dir, m), isUsage('E_USAGE', /x_mask_b\.npy is missing/));
    fs.writeFileSync(path.join(dir, 'y_c.npy'), npyBytes('<f4', [2], f32([0, 0])));
    assert.throws(() => npyCalibration(dir, m), isUsage('E_USAGE', /y_c\.npy.*<input>_<key>/));
    assert.throws(() => npyCalibration(path.join(dir, 'nope'), m), isUsage('E_IO'));
    const empty = tmpDir();
    assert.throws(() => npyCalibration(empty, m), isUsage('E_USAGE', /no \.npy files/));
    fs.rmSync(empty, { recursive: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('npy: an unbatched input takes its whole tensor per key, fed unchanged with each sample of that key', async () => {
  const dir = tmpDir();
  try {
    const f32 = (v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);
    fs.writeFileSync(path.join(dir, 'x_a.npy'), npyBytes('<f4', [2, 2], f32([1, 2, 3, 4]))); // a batch of two samples
    fs.writeFileSync(path.join(dir, 'p_a.npy'), npyBytes('<f4', [3, 1], f32([7, 8, 9])));
    fs.writeFileSync(path.join(dir, 'x_b.npy'), npyBytes('<f4', [2], f32([5, 6])));
    fs.writeFileSync(path.join(dir, 'p_b.npy'), npyBytes('<f4', [3, 1], f32([-7, -8, -9])));
    const m = inputsModel([['x', 'f32', [N, 2]], ['p', 'f32', [3, 1]]]);
    const d = npyCalibration(dir, m, { batchSize: 2 });
    assert.equal(d.samples, 3);
    const batches = await collect(d);
    assert.deepEqual(batches.map((b) => [b.x!.dims, b.p!.dims]), [[[2, 2], [3, 1]], [[1, 2], [3, 1]]]);
    assert.deepEqual(batches.map((b) => [values([b], 0, 'x'), values([b], 0, 'p')]), [[[1, 2, 3, 4], [7, 8, 9]], [[5, 6], [-7, -8, -9]]]);
    fs.writeFileSync(path.join(dir, 'p_b.npy'), npyBytes('<f4', [1, 3, 1], f32([-7, -8, -9])));
    assert.throws(() => npyCalibration(dir, m), isUsage('E_USAGE', /p_b\.npy: shape \(1, 3, 1\) is not input 'p' \[3,1\], which has no batch dimension/));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Images

async function writePng(file: string, w: number, h: number, channels: 1 | 3 | 4, pixel: (x: number, y: number, c: number) => number): Promise<Uint8Array> {
  const px = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < channels; c++) px[(y * w + x) * channels + c] = pixel(x, y, c);
  await sharp(px, { raw: { width: w, height: h, channels } }).png().toFile(file);
  return px;
}

test('images: exact pixels through normalize (NCHW, NHWC, BGR, grey), resize math, JPEG decode', async () => {
  const dir = tmpDir();
  try {
    const pix = (x: number, y: number, c: number): number => (x * 40 + y * 7 + c * 60) % 256;
    await writePng(path.join(dir, 'a.png'), 4, 3, 3, pix);
    await writePng(path.join(dir, 'b.png'), 4, 3, 4, (x, y, c) => (c === 3 ? 128 : 255 - pix(x, y, c))); // alpha dropped
    const spec = parsePreprocess('imagenet');
    const norm = (v: number, c: number): number => Math.fround((v * (1 / 255) - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!);
    // NCHW [N,3,3,4]
    const nchw = inputsModel([['img', 'f32', [N, 3, 3, 4]]]);
    const d = imageCalibration(dir, nchw, { preprocess: spec, batchSize: 2 });
    assert.equal(d.samples, 2);
    const [b] = await collect(d);
    assert.deepEqual(b!.img!.dims, [2, 3, 3, 4]);
    const got = b!.img!.data as Float32Array;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 4; x++) {
          assert.equal(got[(c * 3 + y) * 4 + x], norm(pix(x, y, c), c), `a ${c} ${y} ${x}`);
          assert.equal(got[36 + (c * 3 + y) * 4 + x], norm(255 - pix(x, y, c), c), `b ${c} ${y} ${x}`);
        }
      }
    }
    // NHWC [1,3,4,3] (ambiguous: dim 1 is 3 too, so the layout is given) with BGR: model channel c reads image channel 2-c; mean/std in model (BGR) order
    const nhwc = inputsModel([['img', 'f32', [1, 3, 4, 3]]]);
    const bgr = imageCalibration(dir, nhwc, { preprocess: { mean: [10, 20, 30], std: [2, 4, 8], scale: 1, bgr: true, layout: 'nhwc' }, samples: 1 });
    const [c1] = await collect(bgr);
    const g = c1!.img!.data as Float32Array;
    for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) for (let c = 0; c < 3; c++) assert.equal(g[(y * 4 + x) * 3 + c], Math.fround((pix(x, y, 2 - c) - [10, 20, 30][c]!) / [2, 4, 8][c]!));
    // uint8 input: raw pixels
    const u8 = inputsModel([['img', 'u8', [1, 3, 3, 4]]]);
    const [c2] = await collect(imageCalibration(dir, u8, { preprocess: {}, samples: 1 }));
    assert.equal((c2!.img!.data as Uint8Array)[5], pix(1, 1, 0));
    assert.throws(() => imageCalibration(dir, u8, { preprocess: spec }), isUsage('E_USAGE', /raw uint8/));

    // resize: a horizontal ramp 64 -> 32 wide (triangle filter): interior pixel k averages source pixels 2k, 2k+1
    const rdir = path.join(dir, 'ramp');
    fs.mkdirSync(rdir);
    await writePng(path.join(rdir, 'r.png'), 64, 4, 3, (x, _y, c) => (c === 0 ? x * 4 : c === 1 ? 100 : 255 - x * 4));
    const small = inputsModel([['img', 'f32', [1, 3, 4, 32]]]);
    const [r] = await collect(imageCalibration(rdir, small, { preprocess: { scale: 1 } }));
    const rd = r!.img!.data as Float32Array;
    for (let k = 1; k < 31; k++) {
      assert.ok(Math.abs(rd[k]! - (8 * k + 2)) <= 1, `red ${k}: ${rd[k]}`);
      assert.equal(rd[128 + k], 100);
      assert.ok(Math.abs(rd[256 + k]! - (255 - 8 * k - 2)) <= 1, `blue ${k}`);
    }
    // resize given explicitly for a model with dynamic H/W; a grey image feeds all three channels
    const gdir = path.join(dir, 'grey');
    fs.mkdirSync(gdir);
    await writePng(path.join(gdir, 'g.png'), 5, 7, 1, () => 77);
    const dyn = inputsModel([['img', 'f32', [N, 3, { param: 'H' }, { param: 'W' }]]]);
    const [gb] = await collect(imageCalibration(gdir, dyn, { preprocess: parsePreprocess('resize=6x2,scale=1') }));
    assert.deepEqual(gb!.img!.dims, [1, 3, 2, 6]);
    assert.ok(Array.from(gb!.img!.data as Float32Array).every((v) => v === 77));
    // JPEG of a constant colour decodes to (nearly) that colour
    const jdir = path.join(dir, 'jpeg');
    fs.mkdirSync(jdir);
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 50, b: 120 } } }).jpeg({ quality: 95 }).toFile(path.join(jdir, 'c.jpg'));
    const j = inputsModel([['img', 'f32', [1, 3, 16, 16]]]);
    const [jb] = await collect(imageCalibration(jdir, j, { preprocess: { scale: 1 } }));
    const jd = jb!.img!.data as Float32Array;
    for (const [c, v] of [200, 50, 120].entries()) assert.ok(Math.abs(jd[c * 256 + 100]! - v) <= 3, `jpeg channel ${c}: ${jd[c * 256 + 100]}`);
    // errors
    assert.throws(() => imageCalibration(dir, inputsModel([['a', 'f32', [N, 3, 4, 4]], ['b', 'f32', [N, 2]]]), { preprocess: {} }), isUsage('E_USAGE', /single-input/));
    assert.throws(() => imageCalibration(dir, nchw, { preprocess: { mean: [1, 2] } }), isUsage('E_USAGE', /mean has 2 values/));
    assert.throws(() => imageCalibration(dir, nchw, { preprocess: { size: [5, 3] } }), isUsage('E_USAGE', /resize width 5/));
    fs.writeFileSync(path.join(rdir, 'broken.png'), 'not a png');
    await assert.rejects(collect(imageCalibration(rdir, small, { preprocess: {} })), isUsage('E_IO', /broken\.png/));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('parsePreprocess: the documented spec, presets, overrides and E_USAGE on bad specs', () => {
  assert.deepEqual(parsePreprocess('resize=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw'), {
    size: [224, 224],
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    layout: 'nchw',
  });
  assert.deepEqual(parsePreprocess('imagenet, bgr, size=320x48'), { scale: 1 / 255, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], bgr: true, size: [320, 48] });
  assert.deepEqual(parsePreprocess('scale=1/127.5,mean=1,std=1,layout=NHWC,bgr=false,resize=32'), { scale: 1 / 127.5, mean: [1], std: [1], layout: 'nhwc', bgr: false, size: [32, 32] });
  assert.deepEqual(parsePreprocess(''), {});
  assert.deepEqual(parsePreprocess('rgb'), { bgr: false });
  for (const bad of ['resize=abc', 'resize=0x5', 'mean=1/2', 'std=1/0/1', 'foo=1', 'layout=chw', 'scale=', 'scale=0', 'bgr=maybe', 'imagenet=1', 'mean=a/b/c']) {
    assert.throws(() => parsePreprocess(bad), isUsage('E_USAGE', /bad preprocessing spec/), bad);
  }
});
