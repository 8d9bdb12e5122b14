// qcc zoo: list, write a model, and inspect reports the reference parameter count (issue 3's README path).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanup, qcc, tempDir } from './helpers.js';

after(cleanup);

describe('qcc zoo', () => {
  test('list --json names every model with its reference parameter count', async () => {
    const r = await qcc(['zoo', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const zoo = JSON.parse(r.stdout) as { name: string; params: number }[];
    assert.deepEqual(
      zoo.map((z) => [z.name, z.params]),
      [
        ['resnet18', 11_689_512],
        ['resnet50', 25_557_032],
        ['mobilenetv2', 3_504_872],
        ['vit-ti16', 5_717_416],
        ['vit-b16', 86_567_656],
        ['dit-s2', 32_963_360],
        ['dit-xl2', 675_129_632],
      ],
    );
  });

  test('zoo mobilenetv2 -o FILE, then inspect --json reports 3,504,872 learnable parameters', async () => {
    const d = tempDir();
    const f = path.join(d, 'mbv2.onnx');
    const w = await qcc(['zoo', 'mobilenetv2', '-o', f, '--opset', '17']);
    assert.equal(w.code, 0, w.stderr);
    assert.ok(fs.statSync(f).size > 13_000_000);
    const r = await qcc(['inspect', f, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { parameters: { learnable: number }; opsetImports: Record<string, number>; inputs: { shape: unknown[] }[] };
    assert.equal(j.parameters.learnable, 3_504_872);
    assert.equal(j.opsetImports['ai.onnx'] ?? j.opsetImports[''], 17);
    assert.deepEqual(j.inputs[0]!.shape, ['N', 3, 224, 224]);
  });

  test('an unknown zoo model or a missing -o is a usage error (exit 2) and writes nothing', async () => {
    const d = tempDir();
    const r = await qcc(['zoo', 'resnet51', '-o', path.join(d, 'x.onnx')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /E_USAGE: unknown zoo model 'resnet51'/);
    assert.deepEqual(fs.readdirSync(d), []);
    const r2 = await qcc(['zoo', 'resnet18']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /needs -o FILE/);
  });
});
