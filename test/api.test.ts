// The public API (index.ts) is a contract: its export list is snapshotted, and the library path works end to end.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as qcc from '../index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SNAPSHOT = path.join(ROOT, 'test/api.snapshot.txt');

function describeExports(): string {
  return Object.keys(qcc)
    .sort()
    .map((k) => `${k}: ${typeof (qcc as Record<string, unknown>)[k]}`)
    .join('\n');
}

test('index.ts exports exactly the snapshotted names (UPDATE_API_SNAPSHOT=1 to accept a change)', () => {
  const now = `${describeExports()}\n`;
  if (process.env.UPDATE_API_SNAPSHOT === '1') fs.writeFileSync(SNAPSHOT, now);
  assert.equal(now, fs.readFileSync(SNAPSHOT, 'utf8'));
});

test('library path: build a model, save, load, canonicalize, run: same outputs as before canonicalization', async () => {
  const b = new qcc.GraphBuilder('lib', { opset: 13 });
  const x = b.input('x', 'f32', [{ param: 'N' }, 2, 4, 4]);
  const w = b.f32('w', [3, 2, 1, 1], [1, -1, 0.5, 2, -0.25, 0.75]);
  const c = b.op('Conv', [x, w], { name: 'conv' });
  const bn = b.op('BatchNormalization', [c, b.f32('g', [3], [1, 2, 0.5]), b.f32('beta', [3], [0, 0.1, -0.1]), b.f32('mu', [3], [0.2, -0.3, 0.1]), b.f32('var', [3], [1, 4, 0.25])], { name: 'bn' });
  b.output(b.op('Relu', [bn], { name: 'relu' }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-api-'));
  try {
    const file = path.join(dir, 'm.onnx');
    qcc.saveModel(b.build(), file);
    const m = qcc.loadModel(file);
    const feeds = { x: qcc.toOrt(qcc.tensorFromTyped('x', 'f32', [2, 2, 4, 4], Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)))) };
    const before = await qcc.runSession(await qcc.createSession(m), feeds);
    const r = await qcc.canonicalize(m);
    assert.deepEqual(qcc.verify(r.model), []);
    assert.deepEqual([...r.model.graph.nodes()].map((n) => n.opType), ['Conv', 'Relu']);
    const after = await qcc.runSession(await qcc.createSession(r.model), feeds);
    const a = before[m.graph.outputs[0]!.name]!.data as Float32Array;
    const z = after[r.model.graph.outputs[0]!.name]!.data as Float32Array;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - z[i]!) <= 1e-5 * Math.max(1, Math.abs(a[i]!)), `element ${i}: ${a[i]} vs ${z[i]}`);
    assert.equal(qcc.countParams(r.model), 6 + 3);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('errors from the library are QccErrors with codes', () => {
  assert.throws(() => qcc.decodeModel(new Uint8Array(0)), (e: unknown) => qcc.isQccError(e) && e.code === 'E_ONNX_EMPTY');
});
