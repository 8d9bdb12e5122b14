// config.ts: presets, the JSON config file (schema errors name the JSON path), globs and per-layer resolution.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { isQccError } from '../../ir/errors.js';
import type { Preset } from '../../passes/quant/types.js';
import { applyConfigFile, jsonErrorOffset, jsonErrorWhere, keptFpBy, layerOverride, loadConfigFile, matchGlob, parseConfigText, presetConfig, PRESET_SUMMARY, requiredOpset } from '../../targets/config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function usage(re: RegExp, path?: string) {
  return (e: unknown) => {
    assert.ok(isQccError(e), String(e));
    assert.equal(e.code, 'E_USAGE');
    assert.match(e.message, re);
    if (path !== undefined) assert.equal(e.loc.path, path);
    return true;
  };
}

describe('presets', () => {
  test('defaults per preset', () => {
    assert.deepEqual(presetConfig('w8a8'), { preset: 'w8a8', perChannel: true, blockSize: 128, calibrator: 'mse', percentile: 99.99, mseClip: false, overrides: [], keepFp: [] });
    assert.equal(presetConfig('fp8').calibrator, 'minmax');
    assert.equal(presetConfig('w4a8', { blockSize: 32, perChannel: false }).blockSize, 32);
    assert.equal(presetConfig('w4a8', { perChannel: false }).perChannel, false);
    assert.deepEqual(['w8a8', 'fp8', 'w4a8', 'w4a16', 'w8a16'].map((p) => requiredOpset(presetConfig(p as Preset))), [13, 19, 21, 21, 13]);
  });
  test('w8a16 is INT8 weight-only (float activations, as TensorRT-LLM/ModelOpt W8A16): opset 13 unless an override needs more', () => {
    assert.equal(PRESET_SUMMARY.w8a16, 'INT8 weights (per-channel), activations kept in float (weight-only)');
    assert.doesNotMatch(Object.values(PRESET_SUMMARY).join('\n'), /INT16/);
    assert.equal(requiredOpset(presetConfig('w8a16', { overrides: [{ match: 'fc', precision: 'int4' }] })), 21);
    assert.equal(requiredOpset(presetConfig('w8a16', { overrides: [{ match: 'fc', precision: 'fp8' }] })), 19);
    assert.equal(requiredOpset(presetConfig('w8a16', { perChannel: false })), 13);
  });
  test('an unknown preset is E_USAGE listing the presets', () => {
    assert.throws(() => presetConfig('w2a2' as Preset), usage(/unknown preset 'w2a2' \(known: w8a8, w4a8, w4a16, w8a16, fp8\)/));
  });
  test('option values are range-checked', () => {
    assert.throws(() => presetConfig('w4a8', { blockSize: 0 }), usage(/blockSize must be an integer >= 2, got 0/));
    assert.throws(() => presetConfig('w8a8', { percentile: 101 }), usage(/percentile must be a number in \(50, 100\], got 101/));
    assert.throws(() => presetConfig('w8a8', { calibrator: 'kl' as never }), usage(/calibrator must be one of minmax, percentile, entropy, mse, got "kl"/));
  });
});

describe('config file', () => {
  test('every key, the layers/ops shorthands and overrides in order', () => {
    const f = path.join(dir, 'ok.json');
    fs.writeFileSync(
      f,
      JSON.stringify({
        $schema: 'x',
        preset: 'w4a8',
        perChannel: false,
        blockSize: 64,
        calibrator: 'entropy',
        percentile: 99.9,
        mseClip: true,
        keepFp: ['head.*'],
        ops: { MatMul: { precision: 'int8' }, ConvTranspose: 'fp' },
        layers: { 'stem.conv': 'fp', 'layer4.*': { calibrator: 'mse', granularity: 'per-tensor' } },
        overrides: [{ match: 'Gemm', op: true, precision: 'fp8' }],
      }),
    );
    const c = loadConfigFile(f, presetConfig('w8a8', { keepFp: ['cli.*'] }));
    assert.deepEqual(c, {
      preset: 'w4a8',
      perChannel: false,
      blockSize: 64,
      calibrator: 'entropy',
      percentile: 99.9,
      mseClip: true,
      keepFp: ['cli.*', 'head.*'],
      overrides: [
        { match: 'MatMul', op: true, precision: 'int8' },
        { match: 'ConvTranspose', op: true, precision: 'fp' },
        { match: 'stem.conv', precision: 'fp' },
        { match: 'layer4.*', granularity: 'per-tensor', calibrator: 'mse' },
        { match: 'Gemm', op: true, precision: 'fp8' },
      ],
    });
  });
  test("a file's preset replaces the base preset's calibrator default unless the file sets one", () => {
    assert.equal(applyConfigFile(presetConfig('w8a8'), parseConfigText('{"preset":"fp8"}', 'c.json')).calibrator, 'minmax');
    assert.equal(applyConfigFile(presetConfig('w8a8'), parseConfigText('{"mseClip":true}', 'c.json')).calibrator, 'mse');
  });
  test('biasCorrection: absent by default (on), false from a file, a non-boolean refused with its path', () => {
    assert.equal(presetConfig('w8a8').biasCorrection, undefined);
    assert.equal(applyConfigFile(presetConfig('w8a8'), parseConfigText('{"biasCorrection":false}', 'c.json')).biasCorrection, false);
    assert.equal(applyConfigFile(presetConfig('w8a8', { biasCorrection: false }), parseConfigText('{"mseClip":true}', 'c.json')).biasCorrection, false);
    assert.throws(() => parseConfigText('{"biasCorrection":"no"}', 'c.json'), /\$\.biasCorrection/);
  });
  const broken: [string, RegExp, string][] = [
    ['{"preset": "w3a8"}', /\$\.preset must be a preset \(known: w8a8, w4a8, w4a16, w8a16, fp8\), got "w3a8"/, '$.preset'],
    ['{"blockSize": 12.5}', /\$\.blockSize must be an integer >= 2, got 12.5/, '$.blockSize'],
    ['{"percentile": "99"}', /\$\.percentile must be a number in \(50, 100\], got "99"/, '$.percentile'],
    ['{"calibrater": "minmax"}', /\$\.calibrater is not a known key \(known: preset, perChannel/, '$.calibrater'],
    ['{"keepFp": "head"}', /\$\.keepFp must be an array of node-name globs, got "head"/, '$.keepFp'],
    ['{"keepFp": ["a", 3]}', /\$\.keepFp\[1\] must be a non-empty string, got 3/, '$.keepFp[1]'],
    ['{"overrides": [{"match": "a", "precision": "int8"}, {"match": "b", "precision": "int3"}]}', /\$\.overrides\[1\]\.precision must be one of fp, int8, int4, fp8, got "int3"/, '$.overrides[1].precision'],
    ['{"overrides": [{"precision": "int8"}]}', /\$\.overrides\[0\]\.match must be a non-empty string, got undefined/, '$.overrides[0].match'],
    ['{"overrides": [{"match": "a"}]}', /\$\.overrides\[0\] sets nothing/, '$.overrides[0]'],
    ['{"layers": {"a.*": {"granularity": "per-row"}}}', /\$\.layers\["a\.\*"\]\.granularity must be one of per-tensor, per-channel, blocked/, '$.layers["a.*"].granularity'],
    ['{"layers": {"a.*": {"match": "b"}}}', /\$\.layers\["a\.\*"\]\.match is not a known key/, '$.layers["a.*"].match'],
    ['{"ops": {"Conv 2d": "fp"}}', /\$\.ops\.Conv 2d is not an op type/, '$.ops.Conv 2d'],
    ['[1, 2]', /\$ must be an object, got an array/, '$'],
  ];
  for (const [text, re, p] of broken) {
    test(`broken: ${text}`, () => {
      assert.throws(() => parseConfigText(text, 'cfg.json'), (e: unknown) => usage(re, p)(e) && /config file cfg\.json: /.test((e as Error).message));
    });
  }
  test('invalid JSON without a position from V8: the line and column of the offending token, one line, one short excerpt', () => {
    const text = '{\n  "keepFp": ["head"],\n  "calibrator": entropy,\n  "percentile": 99.9\n}\n';
    assert.throws(
      () => parseConfigText(text, 'cfg.json'),
      (e: unknown) => usage(/^config file cfg\.json is not valid JSON: Unexpected token 'e' \(line 3, column 17\) near 'entropy,'$/)(e),
    );
    assert.equal(jsonErrorWhere('{ "preset": abc }', `Unexpected token 'a', "{ "preset": abc }" is not valid JSON`), "Unexpected token 'a' (line 1, column 13) near 'abc }'");
    assert.equal(jsonErrorWhere('{"a": 1', "Expected ',' or '}' after property value in JSON at position 7"), "Expected ',' or '}' after property value (line 1, column 8)");
    assert.equal(jsonErrorWhere('', 'Unexpected end of JSON input'), 'Unexpected end of JSON input (line 1, column 1)');
    // Node 22 appends "(line L column C)" to the position: dropped, ours is kept
    assert.equal(jsonErrorWhere('{\n}x', 'Unexpected non-whitespace character after JSON at position 3 (line 2 column 2)'), 'Unexpected non-whitespace character after JSON (line 2, column 2) near \'x\'');
    const long = `{"a": ${'x'.repeat(200)}}`;
    const m = jsonErrorWhere(long, `Unexpected token 'x', "{"a": xxxxxxx"... is not valid JSON`);
    assert.match(m, /^Unexpected token 'x' \(line 1, column 7\) near 'x{24}\.\.\.'$/);
  });
  test('jsonErrorOffset agrees with JSON.parse: -1 exactly when it parses, and the position V8 reports when it reports one', () => {
    const cases = ['{}', '[1,,2]', '{"a": tru}', '{"a" 1}', '{"a": 1.}', '{"a": -}', '{"a": 01}', '{"a":"\\x"}', '"abc', '{"a": "x\ny"}', '{"a": 1} x', '  ', '{"a": [1, 2, {"b": null}]}', '1e5', '1e', '"\\u12g4"'];
    const check = (t: string): void => {
      let err: Error | undefined;
      try {
        JSON.parse(t);
      } catch (e) {
        err = e as Error;
      }
      const at = jsonErrorOffset(t);
      if (!err) return assert.equal(at, -1, JSON.stringify(t));
      assert.notEqual(at, -1, `${JSON.stringify(t)}: ${err.message}`);
      const m = /position (\d+)/.exec(err.message);
      if (m) assert.equal(at, Number(m[1]), `${JSON.stringify(t)}: ${err.message}`);
    };
    cases.forEach(check);
    // small edits (delete, insert, replace one character) of valid config files
    const base = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ preset: 'w8a8', v }, null, 2));
    const ch = fc.constantFrom(...'{}[],:" \n\\-.0123456789eE+tfnulrsa\t');
    fc.assert(
      fc.property(base, fc.nat(), ch, fc.constantFrom('delete', 'insert', 'replace'), (t, k, c, how) => {
        const i = k % (t.length + 1);
        const e = how === 'delete' ? t.slice(0, i) + t.slice(i + 1) : how === 'insert' ? t.slice(0, i) + c + t.slice(i) : t.slice(0, i) + c + t.slice(i + 1);
        check(e);
      }),
      { numRuns: 3000, seed: 4 },
    );
  });
  test('invalid JSON names the line and column; a missing file is E_IO', () => {
    assert.throws(() => parseConfigText('{\n  "preset": "w8a8",\n}', 'cfg.json'), usage(/config file cfg\.json is not valid JSON: .*\(line 3, column 1\)/));
    assert.throws(
      () => loadConfigFile(path.join(dir, 'missing.json'), presetConfig('w8a8')),
      (e: unknown) => isQccError(e) && e.code === 'E_IO' && /cannot read config file/.test(e.message),
    );
  });
});

describe('globs and per-layer resolution', () => {
  test('* spans dots and slashes, ? is one character, the rest is literal', () => {
    assert.ok(matchGlob('layer1.*', 'layer1.0.conv1'));
    assert.ok(matchGlob('*/attn/*', '/blocks.3/attn/qkv/MatMul'));
    assert.ok(matchGlob('conv?', 'conv1'));
    assert.ok(!matchGlob('conv?', 'conv10'));
    assert.ok(!matchGlob('layer1.*', 'layer10'), 'the dot is literal');
    assert.ok(matchGlob('a+b(c)', 'a+b(c)'));
    assert.ok(!matchGlob('stem', 'stem.conv'), 'anchored at both ends');
  });
  test('keep-fp globs and merged overrides: the last matching entry wins field by field', () => {
    const c = presetConfig('w8a8', {
      keepFp: ['head*'],
      overrides: [
        { match: 'Conv', op: true, precision: 'int8', calibrator: 'entropy' },
        { match: 'layer4.*', precision: 'fp8' },
        { match: 'layer4.1.*', calibrator: 'mse' },
      ],
    });
    assert.equal(keptFpBy(c, 'head.fc'), 'head*');
    assert.equal(keptFpBy(c, 'layer1.0.conv1'), undefined);
    assert.deepEqual(layerOverride(c, 'layer4.1.conv1', 'Conv'), { precision: 'fp8', calibrator: 'mse' });
    assert.deepEqual(layerOverride(c, 'layer1.0.conv1', 'Conv'), { precision: 'int8', calibrator: 'entropy' });
    assert.deepEqual(layerOverride(c, 'layer4.0.fc', 'MatMul'), { precision: 'fp8' });
    assert.equal(layerOverride(c, 'stem', 'MatMul'), undefined);
  });
});
