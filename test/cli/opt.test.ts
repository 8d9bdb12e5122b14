// `qcc passes` and `qcc opt`: the pass list and flags come from the registry; dce on a model with dead nodes;
// --dump-ir, --verify, --stats; pass option errors.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { sym, type Model } from '../../ir/ir.js';
import { loadModel } from '../../ir/onnx/reader.js';
import { saveModel } from '../../ir/onnx/writer.js';
import { printModel } from '../../ir/print.js';
import { allPasses } from '../../passes/registry.js';
import { cleanup, qcc, tempDir } from './helpers.js';

after(cleanup);

/** y = Add(x, b) is live; Relu -> Sigmoid is a dead chain; `unused` is an initializer nobody reads. */
function withDeadCode(): Model {
  const b = new GraphBuilder('main');
  const x = b.input('x', 'f32', [sym('N'), 4]);
  b.f32('unused', [4], [1, 2, 3, 4]);
  const bias = b.f32('b', [4], [0.5, -0.5, 1, -1]);
  const y = b.op('Add', [x, bias], { name: 'add' });
  const r = b.op('Relu', [x], { name: 'dead_relu' });
  b.op('Sigmoid', [r], { name: 'dead_sigmoid' });
  return b.output(y).build();
}

describe('qcc passes', () => {
  test('lists every registered pass with its summary and every option flag', async () => {
    const r = await qcc(['passes']);
    assert.equal(r.code, 0, r.stderr);
    const passes = allPasses();
    assert.ok(passes.length >= 6);
    for (const p of passes) {
      assert.match(r.stdout, new RegExp(`^${p.name} +${p.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      for (const o of p.options ?? []) assert.match(r.stdout, new RegExp(`^ +--${p.name}\\.${o.name} <${o.type}>  `, 'm'));
    }
    assert.equal(r.stdout.trim().split('\n').length, passes.reduce((n, p) => n + 1 + (p.options?.length ?? 0), 0));
  });

  test('--json is the declarations', async () => {
    const j = JSON.parse((await qcc(['passes', '--json'])).stdout);
    assert.deepEqual(
      j,
      allPasses().map((p) => ({ name: p.name, summary: p.summary, mode: p.mode, options: p.options ?? [] })),
    );
  });

  test('opt --help shows each pass option flag', async () => {
    const r = await qcc(['opt', '--help']);
    assert.equal(r.code, 0);
    for (const p of allPasses()) for (const o of p.options ?? []) assert.ok(r.stdout.includes(`--${p.name}.${o.name}`), `--${p.name}.${o.name}`);
  });
});

describe('qcc opt', () => {
  test('--passes dce removes the dead chain and the unused initializer, nothing else', async () => {
    const dir = tempDir();
    const input = path.join(dir, 'in.onnx');
    saveModel(withDeadCode(), input);
    const out = path.join(dir, 'out.onnx');
    const r = await qcc(['opt', input, out, '--passes', 'dce', '--verify', '--stats']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^qcc: dce: changed \(nodes=2, initializers=1\) in [\d.]+ ms$/m);
    assert.equal(
      printModel(loadModel(out)),
      [
        'model opset {"":21} ir 10 producer "qcc"',
        'graph main(%x: f32[N,4]) -> (%add_out) {',
        '  %b = const f32[4] [0.5, -0.5, 1, -1]',
        '  %add_out = Add(%x, %b) @add',
        '}',
        '',
      ].join('\n'),
    );
  });

  test('.qir in and out; --dump-ir prints the IR after every pass', async () => {
    const dir = tempDir();
    const input = path.join(dir, 'in.qir');
    fs.writeFileSync(input, printModel(withDeadCode()));
    const out = path.join(dir, 'out.qir');
    const r = await qcc(['opt', input, out, '--passes', 'dce,constant-to-initializer', '--dump-ir']);
    assert.equal(r.code, 0, r.stderr);
    const sections = r.stdout.split(/^\/\/ ----- (.*) -----\n/m).slice(1);
    assert.deepEqual(sections.filter((_, i) => i % 2 === 0), ['input', 'after dce', 'after constant-to-initializer']);
    assert.equal(sections[1], printModel(withDeadCode()));
    assert.equal(sections[5], fs.readFileSync(out, 'utf8'));
    assert.ok(!sections[3]!.includes('Relu'));
  });

  test('pass options: --<pass>.<option> reaches the pass; misuse is a usage error (exit 2)', async () => {
    const dir = tempDir();
    const input = path.join(dir, 'in.onnx');
    const b = new GraphBuilder('main', { opset: 11, irVersion: 7 });
    const x = b.input('x', 'f32', [2]);
    b.output(b.op('Relu', [x], { name: 'relu' }));
    saveModel(b.build(), input);
    const out = path.join(dir, 'out.onnx');
    const ok = await qcc(['opt', input, out, '--passes', 'upgrade-opset', '--upgrade-opset.to', '13']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(loadModel(out).opset, 13);
    const notInPipeline = await qcc(['opt', input, path.join(dir, 'x.onnx'), '--passes', 'dce', '--upgrade-opset.to', '13']);
    assert.equal(notInPipeline.code, 2);
    assert.match(notInPipeline.stderr, /^qcc: E_USAGE: --upgrade-opset.to is given but pass upgrade-opset is not in the pipeline/);
    const badValue = await qcc(['opt', input, path.join(dir, 'x.onnx'), '--passes', 'upgrade-opset', '--upgrade-opset.to', 'abc']);
    assert.equal(badValue.code, 2);
    assert.match(badValue.stderr, /^qcc: E_PASS_OPTION: --upgrade-opset.to expects a number/);
    const unknown = await qcc(['opt', input, path.join(dir, 'x.onnx'), '--passes', 'dce,no-such-pass']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^qcc: E_PASS_UNKNOWN: unknown pass 'no-such-pass'; known passes: .*dce/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.onnx', 'out.onnx']);
  });

  test('--verify reports an invalid input IR with exit 1 and writes nothing', async () => {
    const dir = tempDir();
    const input = path.join(dir, 'bad.qir');
    fs.writeFileSync(input, 'graph g(%x: f32[4,2]) -> (%y) {\n  %s = const f32[3] [1, 2, 3]\n  %y = QuantizeLinear(%x, %s) {axis=1} @q\n}\n');
    const r = await qcc(['opt', input, path.join(dir, 'out.qir'), '--passes', 'dce', '--verify']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^qcc: E_IR_VERIFY: input of pass dce violates 1 IR invariant/);
    assert.deepEqual(fs.readdirSync(dir), ['bad.qir']);
  });
});
