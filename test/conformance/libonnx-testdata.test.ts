// Conformance: every libonnx-testdata model gives bit-identical ORT outputs after qcc decode -> encode, and re-encoding is a fixed point.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { ort } from '../../ir/ort.js';
import { decodeMessage, encodeMessage, type Msg } from '../../ir/onnx/wire.js';
import { checkTestDir, ortTensorsIdentical, runConformance, summaryTable } from '../util/conformance.js';
import { hasTestdata, TESTDATA_ROOT } from '../util/testdata.js';

// Counts measured on the reference machine (onnxruntime-node 1.30.0, Debian libonnx-testdata 1.12.0-2).
// They are floors: a newer ORT may load more models, never fewer without a reason worth looking at.
const FOUND = 1072;
const ORT_LOADABLE = 1004; // 68 rejected by ORT itself: training ops, missing kernels, bfloat16, batchwise RNNs, locale
const BIT_IDENTICAL = 980; // the other 24 loadable models take sequence/optional inputs onnxruntime-node cannot feed
const BYTE_IDENTICAL_TO_INPUT = 1070; // 2 differ only by trailing empty optional inputs, which the writer drops

const skip = !hasTestdata() && `${TESTDATA_ROOT} is not installed (apt-get install libonnx-testdata)`;

test('libonnx-testdata: decode -> encode keeps ORT outputs bit-identical; encoding is a fixed point', { skip, timeout: 600_000 }, async () => {
  const s = await runConformance();
  console.log(summaryTable(s));
  if (s.modelsNotCompared.length) console.log(`not comparable: ${s.modelsNotCompared.join(', ')}`);
  // the codec: every model, loadable by ORT or not
  assert.ok(s.found >= FOUND, `found ${s.found} models, expected at least ${FOUND}`);
  assert.deepEqual(s.outcomes.filter((o) => o.codecError !== undefined).map((o) => `${o.id}: ${o.codecError}`), []);
  assert.deepEqual(s.outcomes.filter((o) => !o.fixedPoint).map((o) => o.id), []);
  assert.ok(s.identicalToInput >= BYTE_IDENTICAL_TO_INPUT, `only ${s.identicalToInput} re-encodings are byte-identical to their input`);
  // ORT: the converted model loads exactly when the original does, fails the same way, and computes the same bits
  assert.deepEqual(s.ortLoadMismatch, []);
  assert.deepEqual(s.ortRejectedDifferently, []);
  assert.ok(s.ortLoadable >= ORT_LOADABLE, `ORT loads ${s.ortLoadable} models, expected at least ${ORT_LOADABLE}`);
  assert.deepEqual(s.modelsMismatch, []);
  assert.equal(s.sets.mismatch, 0);
  assert.ok(s.modelsBitIdentical >= BIT_IDENTICAL, `${s.modelsBitIdentical} models compared bit-identical, expected at least ${BIT_IDENTICAL}`);
  assert.equal(s.modelsBitIdentical + s.modelsNotCompared.length, s.ortLoadable, 'every loadable model is either compared or listed as not comparable');
  // models ORT cannot be fed (sequence/optional inputs) are covered by byte identity: same bytes, same behaviour
  const byId = new Map(s.outcomes.map((o) => [o.id, o]));
  assert.deepEqual(s.modelsNotCompared.filter((id) => !byId.get(id)!.identicalToInput), []);
});

test('the comparison catches a converter that changes semantics', { skip }, async () => {
  // a deliberately wrong "converter": Abs -> Neg
  const wrong = (bytes: Uint8Array): Uint8Array => {
    const m = decodeMessage(bytes, 'ModelProto');
    for (const n of ((m.graph as Msg).node as Msg[])) if (n.op_type === 'Abs') n.op_type = 'Neg';
    return encodeMessage(m, 'ModelProto');
  };
  const o = await checkTestDir(path.join(TESTDATA_ROOT, 'node/test_abs'), TESTDATA_ROOT, wrong);
  assert.equal(o.ortOriginal && o.ortConverted, true);
  assert.deepEqual(o.setsMismatch, ['test_data_set_0']);
  assert.equal(o.setsIdentical, 0);
});

test('output comparison is bitwise: NaN payloads and signed zeros count', () => {
  const f = (bits: number[]): ort.Tensor => new ort.Tensor('float32', new Float32Array(Uint32Array.from(bits).buffer), [bits.length]);
  assert.equal(ortTensorsIdentical(f([0x7fc00000, 0x3f800000]), f([0x7fc00000, 0x3f800000])), true); // NaN == NaN, same bits
  assert.equal(ortTensorsIdentical(f([0x7fc00000]), f([0x7fc00001])), false); // different NaN payloads
  assert.equal(ortTensorsIdentical(f([0x00000000]), f([0x80000000])), false); // +0 vs -0
  assert.equal(ortTensorsIdentical(f([1, 2]), new ort.Tensor('float32', new Float32Array(new Uint32Array([1, 2]).buffer), [1, 2])), false); // dims
  assert.equal(ortTensorsIdentical(new ort.Tensor('int32', Int32Array.from([1]), [1]), new ort.Tensor('uint32', Uint32Array.from([1]), [1])), false); // type
  assert.equal(ortTensorsIdentical(new ort.Tensor('string', ['a', 'b'], [2]), new ort.Tensor('string', ['a', 'c'], [2])), false);
});
