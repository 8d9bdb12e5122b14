// Exit status and error lines of the qcc CLI: 2 usage, 3 invalid model, 1 internal; no stack trace unless --debug.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { exitCodeFor } from '../../cli/app.js';
import { cleanup, qcc, tempDir } from './helpers.js';

after(cleanup);

const STACK = /^\s+at .+\(.+:\d+:\d+\)$/m;

function smallModelBytes(): Uint8Array {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [2]);
  b.output(b.op('Relu', [x], { name: 'r' }));
  return encodeModel(b.build());
}

describe('usage errors exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['no command', [], /E_USAGE: give a command/],
    ['unknown command', ['frobnicate'], /E_USAGE: Unknown argument: frobnicate/],
    ['unknown flag', ['passes', '--frob'], /E_USAGE: Unknown argument: frob/],
    ['missing argument', ['convert', 'only-one.onnx'], /E_USAGE: Not enough non-option arguments/],
    ['missing --passes', ['opt', 'a.onnx', 'b.onnx'], /E_USAGE: Missing required argument: passes/],
    ['unknown pass', ['opt', 'a.onnx', 'b.onnx', '--passes', 'nope'], /E_PASS_UNKNOWN: unknown pass 'nope'/],
    ['missing file', ['inspect', 'no/such/model.onnx'], /E_IO: cannot read no\/such\/model\.onnx/],
    ['bad --opset', ['convert', 'a.onnx', 'b.onnx', '--opset', '1.5'], /E_USAGE: --opset must be a positive integer/],
  ];
  for (const [name, args, re] of cases) {
    test(name, async () => {
      const r = await qcc(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^qcc: ${re.source}`));
      assert.doesNotMatch(r.stderr, STACK);
      assert.equal(r.stdout, '');
    });
  }
});

describe('invalid models exit 3 with a code and a location', () => {
  test('random bytes, truncation, empty file, .qir syntax', async () => {
    const dir = tempDir();
    const good = smallModelBytes();
    const files: [string, Uint8Array, RegExp][] = [
      ['random.onnx', Uint8Array.from({ length: 512 }, (_, i) => (i * 73 + 41) & 0xff), /^qcc: E_ONNX_[A-Z_]+: .*\(at .*random\.onnx, byte \d+/],
      ['truncated.onnx', good.subarray(0, good.length - 7), /^qcc: E_ONNX_TRUNCATED: .*\(at .*truncated\.onnx, byte \d+/],
      ['empty.onnx', new Uint8Array(0), /^qcc: E_ONNX_EMPTY: /],
      ['bad.qir', new TextEncoder().encode('graph g( -> () {}'), /^qcc: E_IR_PARSE: .* at line 1:10 \(at .*bad\.qir, byte 9\)/],
    ];
    for (const [name, bytes, re] of files) {
      fs.writeFileSync(path.join(dir, name), bytes);
      const r = await qcc(['inspect', path.join(dir, name)]);
      assert.equal(r.code, 3, `${name}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, STACK);
    }
  });

  test('--debug adds the stack trace', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'empty.onnx'), new Uint8Array(0));
    const r = await qcc(['inspect', path.join(dir, 'empty.onnx'), '--debug']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^qcc: E_ONNX_EMPTY: /);
    assert.match(r.stderr, STACK);
  });
});

test('--version and --help exit 0', async () => {
  const v = await qcc(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
  const h = await qcc(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['inspect', 'convert', 'passes', 'opt']) assert.match(h.stdout, new RegExp(`qcc ${c}`));
});

test('exit status classes', () => {
  assert.deepEqual(
    ['E_USAGE', 'E_PASS_UNKNOWN', 'E_PASS_OPTION', 'E_IO', 'E_ONNX_TRUNCATED', 'E_MODEL_CYCLE', 'E_EXTERNAL_PATH', 'E_IR_PARSE', 'E_PASS_FAILED', 'E_IR_VERIFY', 'E_UNSUPPORTED'].map(exitCodeFor),
    [2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1],
  );
});
