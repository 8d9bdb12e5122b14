// Golden tests: every test/golden/**/*.qir runs its RUN pipeline (qcc-opt passes or qcc-quant compile, verified) and must satisfy its CHECK lines.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { isQccError } from '../../ir/errors.js';
import { parseModel } from '../../ir/parse.js';
import { printModel } from '../../ir/print.js';
import { acceptedText, fileCheck, GOLDEN_DIR, listGoldenFiles, normalize, parseGolden, runGolden, verdict, type Check } from './harness.js';

const files = listGoldenFiles();

describe('golden files', () => {
  test('the corpus exists and every positive case has a .neg.qir twin', () => {
    assert.ok(files.length >= 12, `only ${files.length} golden files under ${GOLDEN_DIR}`);
    for (const f of files) {
      if (f.endsWith('.neg.qir')) {
        assert.ok(files.includes(f.replace(/\.neg\.qir$/, '.qir')), `${f} has no positive twin`);
        continue;
      }
      const spec = parseGolden(fs.readFileSync(f, 'utf8'), f);
      if (spec.expectedError) continue;
      assert.ok(files.includes(f.replace(/\.qir$/, '.neg.qir')), `${path.relative(GOLDEN_DIR, f)} has no negative twin`);
    }
  });

  for (const f of files) {
    const rel = path.relative(GOLDEN_DIR, f);
    test(rel, async () => {
      const text = fs.readFileSync(f, 'utf8');
      const r = await runGolden(text, rel);
      const why = verdict(r);
      assert.equal(why, undefined, `${rel}: ${why}\n--- output ---\n${r.output ?? r.error?.describe()}`);
      if (r.output !== undefined) {
        // the printed output is itself valid .qir that prints back identically
        assert.equal(printModel(parseModel(r.output)), r.output);
        // and so is the input
        const input = printModel(parseModel(text));
        assert.equal(printModel(parseModel(input)), input);
      }
    });
  }
});

describe('FileCheck semantics', () => {
  const out = ['model opset {"":21} ir 10', 'graph main(%x: f32[2]) -> (%y: f32[2]) {', '  %a = Relu(%x)   : f32[2] @relu', '  %y = Neg(%a) : f32[2] @neg', '}', ''].join('\n');
  const c = (kind: Check['kind'], pattern: string, line = 1): Check => ({ kind, pattern: normalize(pattern), line });

  test('CHECK matches in order, whitespace-normalized, as substrings', () => {
    assert.equal(fileCheck(out, [c('CHECK', 'graph main'), c('CHECK', '%a = Relu(%x) : f32[2]'), c('CHECK-NEXT', 'Neg(%a)')]), undefined);
    assert.match(fileCheck(out, [c('CHECK', 'Neg'), c('CHECK', 'Relu')])!, /CHECK: 'Relu' not found/);
  });

  test('CHECK-NEXT must be the very next line', () => {
    assert.match(fileCheck(out, [c('CHECK', 'graph main'), c('CHECK-NEXT', 'Neg')])!, /CHECK-NEXT: 'Neg' not on output line 3/);
    assert.match(fileCheck(out, [c('CHECK-NEXT', 'graph')])!, /without a previous match/);
  });

  test('CHECK-NOT applies between the surrounding matches, or to everything before the first positive check', () => {
    assert.equal(fileCheck(out, [c('CHECK', 'Relu'), c('CHECK-NOT', 'Relu'), c('CHECK', 'Neg')]), undefined);
    assert.match(fileCheck(out, [c('CHECK', 'graph'), c('CHECK-NOT', 'Relu'), c('CHECK', 'Neg')])!, /CHECK-NOT: 'Relu' found in output line 3/);
    assert.match(fileCheck(out, [c('CHECK-NOT', 'Neg'), c('CHECK', 'graph')])!, /CHECK-NOT: 'Neg' found in output line 4/);
    assert.match(fileCheck(out, [c('CHECK', 'graph'), c('CHECK-NOT', '@neg')])!, /found in output line 4/);
  });

  test('{{regex}} blocks', () => {
    assert.equal(fileCheck(out, [c('CHECK', '%{{[a-z]+}} = Relu(%x)')]), undefined);
    assert.notEqual(fileCheck(out, [c('CHECK', '%{{[0-9]+}} = Relu(%x)')]), undefined);
  });

  test('a wrong golden fails: the checks are not vacuous', async () => {
    const f = files.find((x) => x.endsWith(path.join('dce', 'dead-chain.qir')))!;
    const text = fs.readFileSync(f, 'utf8');
    const broken = text.replace('// CHECK-NEXT: %y = Add(%x, %b) : f32[N,4] @add', '// CHECK-NEXT: %y = Add(%b, %x) : f32[N,4] @add');
    assert.notEqual(broken, text);
    assert.match(verdict(await runGolden(broken))!, /CHECK-NEXT/);
    // a golden that says dce keeps the dead Relu fails
    const wrongNot = text.replace('// CHECK-NOT: Relu', '// CHECK-NOT: Add');
    assert.match(verdict(await runGolden(wrongNot))!, /CHECK-NOT: 'Add' found/);
    // expected-error on a pipeline that succeeds fails
    assert.match(verdict(await runGolden(`// expected-error: E_IR_PARSE\n${text}`))!, /expected error E_IR_PARSE, but the pipeline succeeded/);
  });

  test('golden:accept regenerates the checks from the output and keeps CHECK-NOT guards', async () => {
    const src = ['// RUN: qcc-opt --pass=dce', 'graph g(%x: f32[2]) -> (%y: f32[2]) {', '  %y = Relu(%x) : f32[2] @r', '  %d = Neg(%x) : f32[2] @dead', '}', '// CHECK-NOT: Neg', '// CHECK: stale'].join('\n');
    const r = await runGolden(src);
    assert.match(verdict(r)!, /'stale' not found/);
    const next = acceptedText(src, r)!;
    assert.equal(
      next.slice(next.indexOf('// CHECK')),
      ['// CHECK-NOT: Neg', '// CHECK: model opset {"":21} ir 10', '// CHECK-NEXT: graph g(%x: f32[2]) -> (%y: f32[2]) {', '// CHECK-NEXT: %y = Relu(%x) : f32[2] @r', '// CHECK-NEXT: }', ''].join('\n'),
    );
    assert.equal(verdict(await runGolden(next)), undefined);
  });

  test('RUN lines: pass options by --pass.option or a unique --option, unknown passes refused', () => {
    const s = parseGolden('// RUN: qcc-opt --pass=upgrade-opset,dce --to=13\ngraph g() -> () {}');
    assert.deepEqual(s.passes.map((p) => p.name), ['upgrade-opset', 'dce']);
    assert.deepEqual(s.options, { 'upgrade-opset': { to: 13 } });
    assert.deepEqual(parseGolden('// RUN: qcc-opt --pass=upgrade-opset --upgrade-opset.to 17\n').options, { 'upgrade-opset': { to: 17 } });
    assert.throws(() => parseGolden('// RUN: qcc-opt --pass=no-such-pass\n'), { code: 'E_PASS_UNKNOWN' });
    assert.throws(() => parseGolden('// RUN: qcc-opt --pass=dce --to=13\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-opt --pass=upgrade-opset --to=abc\n'), { code: 'E_PASS_OPTION' });
    assert.throws(() => parseGolden('graph g() -> () {}'), { code: 'E_USAGE' });
  });
});

describe('qcc-quant goldens (test/golden/quant-*)', () => {
  const quantFiles = files.filter((f) => /[/\\]quant-(tensorrt|ort)[/\\]/.test(f));
  const read = (rel: string): string => fs.readFileSync(path.join(GOLDEN_DIR, rel), 'utf8');
  const CHECK_LINE = /^\s*\/\/\s*(CHECK-NEXT|CHECK-NOT|CHECK)\s*:/;
  const body = (t: string): string => t.split('\n').filter((l) => !CHECK_LINE.test(l)).join('\n');
  const checksOf = (t: string): string => t.split('\n').filter((l) => CHECK_LINE.test(l)).join('\n');

  test('every pattern for both targets: conv-relu, residual, depthwise, attention, adaln (each with its twin)', () => {
    const rel = quantFiles.map((f) => path.relative(GOLDEN_DIR, f).split(path.sep).join('/'));
    for (const t of ['tensorrt', 'ort']) {
      for (const p of ['conv-relu', 'residual', 'depthwise', 'attention', 'adaln']) {
        assert.ok(rel.includes(`quant-${t}/${p}.qir`) && rel.includes(`quant-${t}/${p}.neg.qir`), `quant-${t}/${p}`);
      }
    }
  });

  test('RUN lines: qcc-quant flags become compile() options; unknown flags, targets and presets refused', () => {
    const s = parseGolden('// RUN: qcc-quant --target=ort --preset=w4a8 --calibrator=minmax --per-tensor --block-size 32 --keep-fp=a.*,b --keep-fp c --calib-samples=3 --seed=7\n');
    assert.deepEqual(s.passes, []);
    assert.equal(s.quant!.target, 'ort');
    assert.equal(s.quant!.calibSamples, 3);
    assert.equal(s.quant!.seed, 7);
    const c = s.quant!.config;
    assert.deepEqual([c.preset, c.calibrator, c.perChannel, c.blockSize, c.keepFp], ['w4a8', 'minmax', false, 32, ['a.*', 'b', 'c']]);
    // defaults: the preset's config, 8 calibration samples, seed 0
    const d = parseGolden('// RUN: qcc-quant --target=tensorrt --preset=w8a8\n').quant!;
    assert.deepEqual([d.calibSamples, d.seed, d.config.calibrator, d.config.perChannel], [8, 0, 'mse', true]);
    assert.throws(() => parseGolden('// RUN: qcc-quant --target=ort --preset=w3a8\n'), (e: unknown) => isQccError(e) && e.code === 'E_USAGE' && /unknown preset 'w3a8'/.test(e.message));
    assert.throws(() => parseGolden('// RUN: qcc-quant --target=cuda --preset=w8a8\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-quant --preset=w8a8\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-quant --target=ort --preset=w8a8 --pass=dce\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-quant --target=ort --preset=w8a8 --calibrator=median\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-quant --target=ort --preset=w8a8 --calib-samples=0\n'), { code: 'E_USAGE' });
    assert.throws(() => parseGolden('// RUN: qcc-tblgen --target=ort\n'), { code: 'E_USAGE' });
  });

  test('the runs are deterministic: the same file prints the same model twice', async () => {
    const text = read('quant-ort/attention.qir');
    const [a, b] = [await runGolden(text), await runGolden(text)];
    assert.ok(a.output !== undefined && a.output.includes('QuantizeLinear'));
    assert.equal(a.output, b.output);
  });

  test('each negative twin is told apart from its positive: neither output satisfies the other file\'s checks', async () => {
    for (const neg of quantFiles.filter((f) => f.endsWith('.neg.qir'))) {
      const pos = neg.replace(/\.neg\.qir$/, '.qir');
      const [P, N] = [fs.readFileSync(pos, 'utf8'), fs.readFileSync(neg, 'utf8')];
      assert.notEqual(verdict(await runGolden(`${body(N)}\n${checksOf(P)}`)), undefined, `${neg}: its output satisfies the positive's checks`);
      assert.notEqual(verdict(await runGolden(`${body(P)}\n${checksOf(N)}`)), undefined, `${pos}: its output satisfies the negative's checks`);
    }
  });

  test('the goldens are not vacuous: a wrong dtype, a skipped consumer DQ, per-tensor weights, the other target\'s layout all fail', async () => {
    // the activation dtype: ORT's x as int8 instead of uint8
    const ort = read('quant-ort/conv-relu.qir');
    const i8 = ort.replace('// CHECK-NEXT: %x_quantized = QuantizeLinear(%x, %x_scale, %x_zero_point) : u8[1,2,4,4] @x_q', '// CHECK-NEXT: %x_quantized = QuantizeLinear(%x, %x_scale, %x_zero_point) : i8[1,2,4,4] @x_q');
    assert.notEqual(i8, ort);
    assert.match(verdict(await runGolden(i8))!, /CHECK-NEXT: '%x_quantized = .* : i8\[1,2,4,4\] @x_q' not on output line/);
    // the shortcut DQ of the TensorRT residual Add skipped: the Add would read %x in float
    const res = read('quant-tensorrt/residual.qir');
    const skipped = res
      .replace(/^\/\/ CHECK-NEXT: %x_dequantized_1 = DequantizeLinear.*\n/m, '')
      .replace('// CHECK-NEXT: %s = Add(%h2, %x_dequantized_1)', '// CHECK-NEXT: %s = Add(%h2, %x)');
    assert.notEqual(skipped, res);
    assert.match(verdict(await runGolden(skipped))!, /CHECK-NEXT: '%s = Add\(%h2, %x\)/);
    // per-tensor weights where the golden wants per-channel (the RUN line changed, the checks kept): one scale 127/127
    // for w1, so channel 1 quantizes to [1.25 -> 1, -63.5 -> -64 (tie, to even)]
    const perTensor = res.replace('--calibrator=minmax', '--calibrator=minmax --per-tensor');
    assert.match(verdict(await runGolden(perTensor))!, /CHECK-NEXT: '%w1_quantized = .*' not on output line \d+ \(found: %w1_quantized = const i8\[2,2,1,1\] \[127, -4, 1, -64\]\)/);
    // the TensorRT checks on the ORT layout: uint8 activations and the Q after the Relu
    assert.match(verdict(await runGolden(res.replace('--target=tensorrt', '--target=ort')))!, /CHECK-NOT: 'u8' found/);
  });

  test('golden:accept keeps {{regex}} checks that still match (calibrated scales stay regexes)', async () => {
    const text = read('quant-tensorrt/conv-relu.qir');
    const r = await runGolden(text);
    assert.equal(acceptedText(text, r), text);
    // a stale exact line is rewritten, the regex lines around it are kept
    const stale = text.replace('// CHECK-NEXT: %w1_scale = const f32[2] [1, 0.5]', '// CHECK-NEXT: %w1_scale = const f32[2] [1, 0.25]');
    assert.equal(acceptedText(stale, r), text);
  });
});
