// The OCR task's renderer: seeded lines and pages are byte-for-byte reproducible, use only dictionary characters, and look like text.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../ir/random.js';
import { availableFonts, blurGray, renderLine, renderPage, rotate180, sampleText, type GrayImage } from '../../bench/ocr/render.js';
import { dictionarySet, loadCharset } from '../../bench/ocr/task.js';

const allowed = dictionarySet(loadCharset());

function equalImages(a: GrayImage, b: GrayImage): boolean {
  return a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));
}

describe('ocr renderer', () => {
  test('the same (seed, index) gives the same text and bytes; another index or seed gives another line', async () => {
    for (const i of [0, 3, 17]) {
      const a = await renderLine(5, i, { allowed });
      const b = await renderLine(5, i, { allowed });
      assert.equal(a.text, b.text);
      assert.deepEqual(a.style, b.style);
      assert.ok(equalImages(a.image, b.image), `line ${i} differs between two renders`);
    }
    const x = await renderLine(5, 0, { allowed });
    const y = await renderLine(5, 1, { allowed });
    const z = await renderLine(6, 0, { allowed });
    assert.ok(!equalImages(x.image, y.image) && !equalImages(x.image, z.image));
  });

  test('pages are reproducible and their boxes hold ink', async () => {
    const a = await renderPage(3, 0, { allowed });
    const b = await renderPage(3, 0, { allowed });
    assert.ok(equalImages(a.image, b.image));
    assert.deepEqual(a.lines, b.lines);
    assert.equal(a.image.width, 640);
    assert.equal(a.image.height, 480);
    assert.ok(a.lines.length >= 4, `only ${a.lines.length} lines on the page`);
    // every box differs from the page background somewhere (text was drawn there)
    const bgGuess = a.image.data[0]!;
    for (const { box: [x0, y0, x1, y1], text } of a.lines) {
      let far = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (Math.abs(a.image.data[y * 640 + x]! - bgGuess) > 40) far++;
      assert.ok(far > 10, `box of ${JSON.stringify(text)} has no ink`);
    }
  });

  test('text uses only dictionary characters and covers every kind', () => {
    const cjk = availableFonts().some((f) => f.cjk);
    const r = mulberry32(42);
    const kinds = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const { text, kind } = sampleText(r, cjk, allowed);
      kinds.add(kind);
      for (const c of text) assert.ok(allowed.has(c), `${JSON.stringify(c)} of ${JSON.stringify(text)} is not in the dictionary`);
      assert.equal(text, text.trim());
    }
    const expected = ['words', 'number', 'date', 'price', 'code', 'mixed', ...(cjk ? ['chinese'] : [])];
    assert.deepEqual([...kinds].sort(), expected.sort());
  });

  test('a line has the contrast of its style: ink near fg, ground near bg', async () => {
    const l = await renderLine(9, 2, { allowed });
    const { bg, fg } = l.style;
    const d = l.image.data;
    let nearBg = 0;
    let nearFg = 0;
    for (const v of d) {
      if (Math.abs(v - bg) < 25) nearBg++;
      if (Math.abs(v - fg) < Math.abs(v - bg)) nearFg++;
    }
    assert.ok(nearBg > d.length * 0.4, 'most of a line is background');
    assert.ok(nearFg > d.length * 0.03, 'some of a line is ink');
  });

  test('rotate180 and blurGray', () => {
    const img = { width: 3, height: 2, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    assert.deepEqual([...rotate180(img).data], [6, 5, 4, 3, 2, 1]);
    assert.deepEqual(rotate180(rotate180(img)), img);
    // a constant image stays constant; a blurred step stays between its levels and keeps its mean away from the edges
    const flat = { width: 8, height: 8, data: new Uint8Array(64).fill(77) };
    assert.deepEqual([...blurGray(flat, 0.8).data], [...flat.data]);
    const step = { width: 16, height: 1, data: Uint8Array.from({ length: 16 }, (_, i) => (i < 8 ? 0 : 200)) };
    const s = blurGray(step, 1).data;
    assert.ok(s[0] === 0 && s[15] === 200 && s[7]! > 0 && s[8]! < 200 && s[7]! < s[8]!);
  });
});
