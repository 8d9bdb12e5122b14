// The target registry and the files/notes each target emits beside the model (trtexec command, ORT session options).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getTarget, TARGET_NAMES } from '../../targets/target.js';
import { expectCode, QdqBuilder } from './helpers.js';

describe('getTarget', () => {
  test('knows tensorrt and ort; an unknown name is E_USAGE listing them', () => {
    assert.deepEqual(TARGET_NAMES, ['tensorrt', 'ort']);
    assert.equal(getTarget('tensorrt').name, 'tensorrt');
    assert.equal(getTarget('ort').name, 'ort');
    expectCode(() => getTarget('tflite'), 'E_USAGE');
    assert.throws(() => getTarget('TensorRT'), /unknown target 'TensorRT' \(known: tensorrt, ort\)/);
  });
});

describe('emitExtras', () => {
  const model = new QdqBuilder().build();

  test('tensorrt: trtexec.sh builds a strongly typed engine with detailed profiling from the emitted file', () => {
    const x = getTarget('tensorrt').emitExtras(model, { model: '/out/resnet50.w4a8.onnx' });
    assert.deepEqual(Object.keys(x.files), ['trtexec.sh']);
    const script = x.files['trtexec.sh']!;
    assert.ok(script.startsWith('#!/bin/sh\n'));
    const cmd = 'trtexec --onnx=resnet50.w4a8.onnx --stronglyTyped --saveEngine=resnet50.w4a8.engine --profilingVerbosity=detailed --exportLayerInfo=resnet50.w4a8.layers.json';
    assert.ok(script.includes(`${cmd} "$@"\n`), script);
    assert.equal(x.notes[0], `build the engine: ${cmd}`);
    // names with spaces or quotes are shell-quoted
    const q = getTarget('tensorrt').emitExtras(model, { model: "my model's.onnx" });
    assert.match(q.files['trtexec.sh']!, /--onnx='my model'\\''s\.onnx' --stronglyTyped --saveEngine='my model'\\''s\.engine'/);
  });

  test("ort: session options with graphOptimizationLevel 'all'; MatMulNBits accuracy-level and FP8 notes only when they apply", () => {
    const plain = getTarget('ort').emitExtras(model, { model: 'm.onnx' });
    assert.deepEqual(JSON.parse(plain.files['ort-session.json']!), { graphOptimizationLevel: 'all' });
    assert.equal(plain.notes.length, 1);
    assert.match(plain.notes[0]!, /graphOptimizationLevel 'all'/);

    const g = new QdqBuilder();
    const x = g.b.input('x', 'f32', [1, 64]);
    g.b.output(g.b.op('MatMul', [x, g.weight([64, 32], { dtype: 'i4', axis: 0, block: 32 })], { name: 'mm' }));
    g.b.output(g.b.op('MatMul', [x, g.weight([64, 32], { dtype: 'fp8e4m3', axis: 1 })], { name: 'mm8' }));
    const e = getTarget('ort').emitExtras(g.build(), { model: 'm.onnx' });
    assert.deepEqual(JSON.parse(e.files['ort-session.json']!), { graphOptimizationLevel: 'all' });
    assert.equal(e.notes.length, 3);
    assert.match(e.notes[1]!, /MatMulNBits; onnxruntime 1\.30 sets session\.qdq_matmulnbits_accuracy_level to 4 by default/);
    assert.match(e.notes[2]!, /FP8 Q\/DQ run emulated/);
  });
});
