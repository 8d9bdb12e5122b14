// PaddleOCR pre/post-processing of the OCR task: CTC greedy decoding, the dictionary, RecMetric scores, cv2-style resize and input layouts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clsInput, ctcGreedyDecode, detInput, editDistance, loadCharset, recInput, recScore, resizeBilinear } from '../../bench/ocr/task.js';

/** [T, C] probabilities with `p` on the given class at each step and the rest spread evenly. */
function steps(classes: number[], C: number, p = 0.9): Float32Array {
  const out = new Float32Array(classes.length * C).fill((1 - p) / (C - 1));
  classes.forEach((c, t) => (out[t * C + c] = p));
  return out;
}

describe('ocr task', () => {
  test('CTC greedy decoding: repeats collapse, blanks separate, blank is dropped', () => {
    const cs = ['blank', 'a', 'b', 'c', ' '];
    const C = cs.length;
    assert.equal(ctcGreedyDecode(steps([1, 1, 0, 1, 2, 2, 0], C), 7, C, cs).text, 'aab');
    assert.equal(ctcGreedyDecode(steps([0, 0, 0], C), 3, C, cs).text, '');
    assert.equal(ctcGreedyDecode(steps([3, 4, 4, 1, 0, 3, 3], C), 7, C, cs).text, 'c ac');
    assert.equal(ctcGreedyDecode(steps([2, 0, 2, 0, 2], C), 5, C, cs).text, 'bbb');
    // score: mean probability of the kept steps
    const probs = steps([1, 1, 2], C);
    probs[1 * C + 1] = 0.5; // second 'a' is a repeat: not counted
    probs[2 * C + 2] = 0.7;
    const r = ctcGreedyDecode(probs, 3, C, cs);
    assert.equal(r.text, 'ab');
    assert.ok(Math.abs(r.score - (0.9 + 0.7) / 2) < 1e-6);
    // ties go to the first maximum (numpy.argmax): blank wins over 'a'
    assert.equal(ctcGreedyDecode(Float32Array.from([0.5, 0.5, 0, 0, 0]), 1, C, cs).text, '');
  });

  test('the dictionary gives the recognizer its 6625 classes: blank, ppocr_keys_v1.txt, space', () => {
    const cs = loadCharset();
    assert.equal(cs.length, 6625);
    assert.equal(cs[0], 'blank');
    assert.equal(cs.at(-1), ' ');
    for (const c of ['0', '9', 'a', 'Z', '$', '%', '中', '￥']) assert.ok(cs.indexOf(c) > 0, `${c} missing`);
    assert.equal(new Set(cs.slice(1, -1)).size > 6600, true);
  });

  test('RecMetric: edit distance, spaces ignored', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('中文字', '中字'), 1);
    assert.deepEqual(recScore('Total 12', 'Total12'), { exact: true, charAcc: 1 });
    assert.deepEqual(recScore('abcd', 'abXd'), { exact: false, charAcc: 0.75 });
    assert.deepEqual(recScore('', ''), { exact: true, charAcc: 1 });
    assert.equal(recScore('ab', 'abcd').charAcc, 0.5);
  });

  test('resizeBilinear follows cv2.INTER_LINEAR (half-pixel centres, no antialiasing, clamped edges)', () => {
    const row = { width: 4, height: 1, data: Uint8Array.from([0, 100, 200, 250]) };
    // 4 -> 2: source x = 2 dx + 0.5 -> means of pairs
    assert.deepEqual([...resizeBilinear(row, 2, 1).data], [50, 225]);
    // 2 -> 4: source x = (dx + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamp, 25 %, 75 %, clamp
    const two = { width: 2, height: 1, data: Uint8Array.from([0, 200]) };
    assert.deepEqual([...resizeBilinear(two, 4, 1).data], [0, 50, 150, 200]);
    const same = { width: 3, height: 2, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    assert.deepEqual(resizeBilinear(same, 3, 2), same);
  });

  test('recognizer input: height 48, width max(320, 48 w/h), (x/255 - 0.5)/0.5, zero padding on the right', () => {
    const short = { width: 100, height: 48, data: new Uint8Array(4800).fill(255) };
    const a = recInput(short);
    assert.deepEqual(a.dims, [1, 3, 48, 320]);
    for (const c of [0, 1, 2]) {
      assert.equal(a.data[(c * 48 + 10) * 320 + 99], 1); // white -> 1
      assert.equal(a.data[(c * 48 + 10) * 320 + 100], 0); // padding
    }
    const long = { width: 1200, height: 96, data: new Uint8Array(1200 * 96) }; // ratio 12.5 -> 600 wide, black -> -1
    const b = recInput(long);
    assert.deepEqual(b.dims, [1, 3, 48, 600]);
    assert.equal(b.data[599], -1);
    assert.deepEqual(clsInput(long).dims, [1, 3, 48, 192]); // squeezed to 192
    assert.equal(clsInput(long).data[191], -1);
  });

  test('detector input: sides multiples of 32, ImageNet mean/std per channel', () => {
    const img = { width: 100, height: 70, data: new Uint8Array(7000).fill(255) };
    const d = detInput(img);
    assert.deepEqual(d.dims, [1, 3, 64, 96]);
    const plane = 64 * 96;
    assert.ok(Math.abs(d.data[0]! - (1 - 0.485) / 0.229) < 1e-6);
    assert.ok(Math.abs(d.data[plane]! - (1 - 0.456) / 0.224) < 1e-6);
    assert.ok(Math.abs(d.data[2 * plane]! - (1 - 0.406) / 0.225) < 1e-6);
  });
});
