// ir/ort.ts: sessions of large models go through a temporary external-data file and compute what the in-memory path computes.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { createSession, FILE_SESSION_BYTES, ort, run } from '../../ir/ort.js';
import { mulberry32 } from '../../ir/random.js';

test('a model above FILE_SESSION_BYTES runs from a temporary file with the same outputs as from bytes, and leaves no file behind', async () => {
  const k = 2048;
  const n = Math.ceil(FILE_SESSION_BYTES / 4 / k) + 1; // just above the threshold
  const r = mulberry32(5);
  const b = new GraphBuilder('big', { opset: 17 });
  const x = b.input('x', 'f32', [2, k]);
  const w = b.f32('w', [k, n], Float32Array.from({ length: k * n }, () => r() - 0.5));
  b.output(b.op('MatMul', [x, w], { name: 'mm' }));
  const m = b.build();
  const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('qcc-session-'));
  const viaFile = await createSession(m);
  const viaBytes = await createSession(encodeModel(m));
  const after = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('qcc-session-'));
  assert.deepEqual(after, before, 'the temporary directory is removed once the session exists');
  const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 2 * k }, () => r() - 0.5), [2, k]) };
  const a = (await run(viaFile, feeds)).mm_out!;
  const c = (await run(viaBytes, feeds)).mm_out!;
  assert.deepEqual(a.dims, [2, n]);
  assert.deepEqual([...(a.data as Float32Array)], [...(c.data as Float32Array)]);
  // and against float64: one column
  const wv = m.graph.findValue('w')!.initializer!.typed() as Float32Array;
  const xv = feeds.x.data as Float32Array;
  let ref = 0;
  for (let i = 0; i < k; i++) ref += xv[i]! * wv[i * n + 7]!;
  assert.ok(Math.abs((a.data as Float32Array)[7]! - ref) < 1e-3, `${(a.data as Float32Array)[7]} vs ${ref}`);
  await viaFile.release();
  await viaBytes.release();
});
