// Golden tests: every test/golden/**/*.qir runs its RUN pipeline (verified) and must satisfy its CHECK lines.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
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
