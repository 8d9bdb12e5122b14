// PassManager and rewrite rules: mode enforcement, error wrapping, instruments, fixpoint drivers, explanations.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import type { Model } from '../../ir/ir.js';
import { createSession, ort, run } from '../../ir/ort.js';
import { verify } from '../../ir/verify.js';
import { PassManager, timingInstrument, verifyInstrument } from '../../passes/manager.js';
import { definePass, passOption, type Pass } from '../../passes/pass.js';
import { applyRules, commute, defineRule, explainRule } from '../../passes/rules.js';

/** x -> Neg -> Neg -> Relu: the double negation is a no-op. */
function doubleNeg(): Model {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [4]);
  const n1 = b.op('Neg', [x], { name: 'n1' });
  const n2 = b.op('Neg', [n1], { name: 'n2' });
  b.output(b.op('Relu', [n2], { name: 'relu' }));
  return b.build();
}

// Neg(Neg(x)) -> x
const foldNegNeg = defineRule({
  name: 'foldNegNeg',
  root: 'Neg',
  match(n, m) {
    const inner = n.input(0)?.producer;
    if (!inner || inner.op !== 'Neg') return m.fail('input is not produced by Neg', n.input(0));
    return { x: inner.input(0)!, outer: n };
  },
  rewrite(b, rw) {
    rw.replaceOp(b.outer, [b.x]);
  },
});

test('a rule rewrites to a fixpoint and the result computes the same in ORT', async () => {
  const m = doubleNeg();
  const before = await createSession(m);
  const feeds = { x: new ort.Tensor('float32', Float32Array.from([-2, -1, 1, 2]), [4]) };
  const want = (await run(before, feeds))[m.graph.outputs[0]!.name]!.data;
  const r = applyRules(m.graph, [foldNegNeg]);
  assert.equal(r.applied.get('foldNegNeg'), 1);
  assert.ok(r.converged);
  // inner Neg is now dead but still there: the rule only rewired the outer one
  assert.deepEqual(m.graph.nodeArray().map((n) => n.opType), ['Neg', 'Relu']);
  assert.equal(m.graph.findNode('relu')!.input(0)!.name, 'x');
  assert.deepEqual(verify(m), []);
  const after = await createSession(m);
  assert.deepEqual((await run(after, feeds))[m.graph.outputs[0]!.name]!.data, want);
});

test('explainRule says why a candidate did not match', () => {
  const m = doubleNeg();
  const ex = explainRule(m.graph, foldNegNeg);
  assert.deepEqual(ex, [
    { node: 'n1', matched: false, reason: 'input is not produced by Neg', at: 'x' },
    { node: 'n2', matched: true },
  ]);
});

test('commute() matches the swapped operand order', () => {
  // Add(x, Neg(y)) and Add(Neg(y), x) -> Sub(x, y)
  const rule = defineRule({
    name: 'addNegToSub',
    root: 'Add',
    match(n, m) {
      const p = n.input(1)?.producer;
      if (!p || p.op !== 'Neg') return m.fail('rhs is not Neg', n.input(1));
      return { a: n.input(0)!, b: p.input(0)!, n };
    },
    rewrite(b, rw) {
      const sub = rw.insertOpBefore(b.n, 'Sub', [b.a, b.b], { name: 'sub' });
      rw.replaceOp(b.n, [sub.outputs[0]!]);
    },
  });
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [2]);
  const y = b.input('y', 'f32', [2]);
  const ny = b.op('Neg', [y], { name: 'ny' });
  b.output(b.op('Add', [ny, x], { name: 'add' }));
  const m = b.build();
  assert.equal(applyRules(m.graph, [rule]).applied.size, 0);
  const r = applyRules(m.graph, [rule, commute(rule)]);
  assert.equal(r.applied.get('addNegToSub(commuted)'), 1);
  const sub = m.graph.findNode('sub')!;
  assert.deepEqual(sub.inputs.map((v) => v!.name), ['x', 'y']);
});

test('the manager wraps failures with the pass name and the passes before it', async () => {
  const ok = definePass({ name: 'ok', summary: 'does nothing', mode: 'in-place', run: (m) => ({ model: m, changed: false, stats: {} }) });
  const bad = definePass({
    name: 'bad',
    summary: 'fails',
    mode: 'in-place',
    run: () => {
      throw new QccError('E_UNSUPPORTED', 'no can do', { node: 'n7' });
    },
  });
  await assert.rejects(new PassManager([ok, bad]).run(doubleNeg()), (e: QccError) => {
    assert.equal(e.code, 'E_UNSUPPORTED');
    assert.match(e.message, /^in pass bad after \[ok\]: no can do/);
    assert.equal(e.loc.pass, 'bad');
    assert.equal(e.loc.node, 'n7');
    return true;
  });
});

test('mode enforcement: an in-place pass must return its model; a functional pass must not mutate its input', async () => {
  const swaps = definePass({ name: 'swaps', summary: 'returns another model', mode: 'in-place', run: () => ({ model: doubleNeg(), changed: true, stats: {} }) });
  await assert.rejects(new PassManager([swaps]).run(doubleNeg()), /returned a different model/);
  const sneaky: Pass = definePass({
    name: 'sneaky',
    summary: 'mutates while claiming to be functional',
    mode: 'functional',
    run: (m) => {
      applyRules(m.graph, [foldNegNeg]);
      return { model: m, changed: true, stats: {} };
    },
  });
  await assert.rejects(new PassManager([sneaky]).run(doubleNeg(), { instruments: [verifyInstrument()] }), /mutated its input/);
});

test('the verify instrument catches a pass that breaks the IR', async () => {
  const breaker = definePass({
    name: 'breaker',
    summary: 'moves a node after its user',
    mode: 'in-place',
    run: (m) => {
      const b = new GraphBuilder('tmp');
      void b;
      const n1 = m.graph.findNode('n1')!;
      const relu = m.graph.findNode('relu')!;
      // use the rewriter's moveBefore to put n1 at the end: a legal edit that breaks topological order
      const { Rewriter } = requireRewriter();
      new Rewriter(m.graph).moveBefore(n1, relu);
      new Rewriter(m.graph).moveBefore(relu, n1);
      return { model: m, changed: true, stats: {} };
    },
  });
  await assert.rejects(new PassManager([breaker]).run(doubleNeg(), { instruments: [verifyInstrument()] }), (e: QccError) => e.code === 'E_IR_VERIFY' && /output of pass breaker/.test(e.message));
});

import { Rewriter } from '../../ir/rewriter.js';
function requireRewriter() {
  return { Rewriter };
}

test('fixpoint rounds stop when nothing changes; timing records every pass run', async () => {
  let calls = 0;
  const once = definePass({
    name: 'once',
    summary: 'changes in the first two rounds only',
    mode: 'in-place',
    run: (m) => ({ model: m, changed: ++calls <= 2, stats: { calls } }),
  });
  const times: { name: string; ms: number }[] = [];
  const r = await new PassManager([once]).run(doubleNeg(), { fixpoint: 10, instruments: [timingInstrument(times)] });
  assert.equal(calls, 3);
  assert.equal(r.rounds, 3);
  assert.equal(times.length, 3);
  assert.ok(r.changed);
  await assert.rejects(new PassManager([definePass({ name: 'always', summary: 's', mode: 'in-place', run: (m) => ({ model: m, changed: true, stats: {} }) })]).run(doubleNeg(), { fixpoint: 3, testConvergence: true }), /did not converge in 3 rounds/);
});

test('pass options: declared defaults, type and choices are enforced', () => {
  const p = definePass({
    name: 'opt-demo',
    summary: 's',
    mode: 'in-place',
    options: [
      { name: 'level', type: 'number', describe: 'l', default: 2 },
      { name: 'mode', type: 'string', describe: 'm', choices: ['a', 'b'], default: 'a' },
    ],
    run: (m) => ({ model: m, changed: false, stats: {} }),
  });
  const cx = (options: Record<string, number | string>) => ({ options, diag: { items: [], report() {} }, instruments: [] });
  assert.equal(passOption<number>(p, cx({}), 'level'), 2);
  assert.equal(passOption<number>(p, cx({ level: 5 }), 'level'), 5);
  assert.throws(() => passOption(p, cx({ level: 'x' }), 'level'), (e: QccError) => e.code === 'E_PASS_OPTION');
  assert.throws(() => passOption(p, cx({ mode: 'c' }), 'mode'), (e: QccError) => e.code === 'E_PASS_OPTION');
  assert.throws(() => definePass({ ...p, name: 'Bad_Name' }), /kebab-case/);
});
