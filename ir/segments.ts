// Running a model in segments: the main graph is cut, in node order, into pieces of at most a given weight size,
// and every sample runs through them one onnxruntime session at a time.
//
// onnxruntime holds a session's weights in memory, and at its default optimization level it holds them twice while
// the session is created (the weights as read and their NCHWc-reordered copies): 2.3x the weights, measured on
// ResNet-50. A model cut in two needs about half that. The values that cross a cut are written, batch by batch, to
// one file per segment in a scratch folder (removed once no later segment reads it), so memory does not grow with
// the number of samples; per sample that is one feature map where the cut is placed well.
//
// Cuts: a cut after node i holds the values computed at or before i (and the graph inputs) that a later node reads.
// Segments are filled greedily up to the weight limit, and each cut goes where the fewest bytes cross, among the
// positions past half the segment's possible weight (ResNet-50: after a bottleneck block, one [1, 2048, 7, 7] map).
// A cut never holds a value of unknown element type, strings or values read inside a subgraph; graphs with
// subgraphs, or whose nodes are out of topological order, are not cut.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cloneModel } from './clone.js';
import { rawByteLength, type DType } from './dtype.js';
import { QccError } from './errors.js';
import { Tensor, type Model, type Value } from './ir.js';
import { fromOrt, ortTypeOf, run, toOrt, type Feeds, type OrtTensor, type ort } from './ort.js';
import { Rewriter } from './rewriter.js';

/** compile's default weight limit per segment. */
export const DEFAULT_SEGMENT_BYTES = 32 << 20;

/** Bytes per element counted for a dimension of unknown size when choosing where to cut. */
const UNKNOWN_DIM = 64;

export interface Segment {
  readonly index: number;
  /** The segment as a model: its inputs are graph inputs and values of earlier segments, by their names. */
  readonly model: Model;
  readonly inputs: readonly string[];
  /** Values later segments read, and the requested values computed here. */
  readonly outputs: readonly string[];
  /** Names of the values its nodes compute. */
  readonly computes: ReadonlySet<string>;
  /** Bytes of the initializers it reads. */
  readonly weightBytes: number;
}

/** Element types a cut can hold: what onnxruntime-node tensors carry, as raw bytes. */
function storable(d: DType): boolean {
  return d !== 'string' && ortTypeOf(d) !== undefined;
}

/** Bytes of one value per run, estimated from its static shape (unknown dims count UNKNOWN_DIM); undefined: cannot cross a cut. */
function crossingBytes(v: Value): number | undefined {
  const t = v.type;
  if (t?.kind !== 'tensor' || t.dtype === undefined || !storable(t.dtype)) return undefined;
  let n = rawByteLength(t.dtype, 1);
  for (const d of t.shape ?? [UNKNOWN_DIM, UNKNOWN_DIM]) n *= typeof d === 'number' && d >= 0 ? d : UNKNOWN_DIM;
  return n;
}

/**
 * Where to cut `model`'s main graph so that no piece reads more than `maxBytes` of initializers (one node's own
 * weights excepted): the node positions after which to cut, in order. Empty when the model fits, or cannot be cut.
 */
export function planCuts(model: Model, maxBytes: number): number[] {
  const g = model.graph;
  const nodes = g.nodeArray();
  const n = nodes.length;
  if (n < 2 || !(maxBytes > 0)) return [];
  const pos = new Map(nodes.map((x, i) => [x, i] as const));
  const weight = new Float64Array(n);
  const seen = new Set<Value>();
  for (let i = 0; i < n; i++) {
    const x = nodes[i]!;
    if (x.subgraphs().length > 0) return [];
    for (const v of x.inputs) {
      if (!v) continue;
      const p = v.producer;
      if (p && (p.graph !== g || pos.get(p)! >= i)) return []; // not in topological order
      if (v.initializer && !seen.has(v)) {
        seen.add(v);
        weight[i] += v.initializer.byteLength;
      }
    }
  }
  let total = 0;
  for (const w of weight) total += w;
  if (total <= maxBytes) return [];
  // bytes crossing a cut after node i, and cuts that would hold an unstorable value
  const live = new Float64Array(n + 1);
  const blocked = new Int32Array(n + 1);
  const span = (v: Value, def: number) => {
    let last = -1;
    for (const u of v.uses) last = Math.max(last, pos.get(u.node) ?? Infinity);
    if (last <= def) return;
    if (!Number.isFinite(last)) last = n; // read inside a subgraph (not reached: such graphs are not cut)
    const b = crossingBytes(v);
    if (b === undefined) {
      blocked[Math.max(def, 0)]++;
      blocked[last]--;
    } else {
      live[Math.max(def, 0)] += b;
      live[last] -= b;
    }
  };
  for (const v of g.inputs) if (!v.initializer) span(v, -1);
  nodes.forEach((x, i) => x.outputs.forEach((v) => v && span(v, i)));
  for (let i = 1; i <= n; i++) {
    live[i] += live[i - 1]!;
    blocked[i] += blocked[i - 1]!;
  }
  const cum = new Float64Array(n + 1); // cum[i] = weight of nodes before i
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i]! + weight[i]!;
  const cuts: number[] = [];
  let start = 0;
  while (cum[n]! - cum[start]! > maxBytes) {
    let end = start; // the last node the segment can take
    while (end + 1 < n && cum[end + 2]! - cum[start]! <= maxBytes) end++;
    const half = (cum[end + 1]! - cum[start]!) / 2;
    let best = -1;
    for (let i = start; i <= end && i < n - 1; i++) {
      if (blocked[i]! > 0 || cum[i + 1]! - cum[start]! < half) continue;
      if (best < 0 || live[i]! <= live[best]!) best = i;
    }
    if (best < 0) for (let i = end + 1; i < n - 1 && best < 0; i++) if (blocked[i] === 0) best = i;
    if (best < 0) break;
    cuts.push(best);
    start = best + 1;
  }
  return cuts;
}

/**
 * `model` cut by planCuts into segments (undefined when it is not cut). `want` names values the caller needs
 * besides what crosses the cuts (the graph outputs by default); each is an output of the segment computing it.
 */
export function splitModel(model: Model, maxBytes: number, want: readonly string[] = model.graph.outputs.map((v) => v.name)): Segment[] | undefined {
  const cuts = planCuts(model, maxBytes);
  if (cuts.length === 0) return undefined;
  const g = model.graph;
  const nodes = g.nodeArray();
  const pos = new Map(nodes.map((x, i) => [x, i] as const));
  const bounds = [...cuts.map((c) => c + 1), nodes.length];
  const wanted = new Set(want);
  const segments: Segment[] = [];
  let a = 0;
  bounds.forEach((b, k) => {
    const inputs: string[] = [];
    const outputs: string[] = [];
    const computes = new Set<string>();
    const seen = new Set<Value>();
    let weightBytes = 0;
    for (let i = a; i < b; i++) {
      const x = nodes[i]!;
      for (const v of x.inputs) {
        if (!v || seen.has(v)) continue;
        seen.add(v);
        if (v.initializer) weightBytes += v.initializer.byteLength;
        else if (!v.producer || pos.get(v.producer)! < a) inputs.push(v.name);
      }
      for (const v of x.outputs) {
        if (!v) continue;
        computes.add(v.name);
        if (wanted.has(v.name) || v.uses.some((u) => pos.get(u.node)! >= b)) outputs.push(v.name);
      }
    }
    const c = cloneModel(model);
    const cg = c.graph;
    const byName = new Map<string, Value>();
    for (const v of cg.values()) byName.set(v.name, v);
    const rw = new Rewriter(cg);
    for (const name of inputs) {
      const v = byName.get(name)!;
      if (v.producer) rw.detachAsInput(v);
    }
    rw.setGraphOutputs(cg, outputs.map((name) => byName.get(name)!));
    // every node outside [a, b) now feeds nothing the segment returns
    const cnodes = cg.nodeArray(); // the clone keeps the node order
    for (let i = cnodes.length - 1; i >= 0; i--) {
      const x = cnodes[i]!;
      if (i >= a && i < b) continue;
      for (const o of x.outputs) if (o && o.uses.length > 0) throw new QccError('E_PASS_FAILED', `segment ${k}: ${x.name} outside the segment still feeds ${o.uses[0]!.node.name}`, { node: x.name });
      rw.erase(x);
    }
    for (const v of [...cg.initializers]) if (v.uses.length === 0 && !cg.outputs.includes(v) && !cg.inputs.includes(v)) rw.removeInitializer(v);
    rw.removeUnusedGraphInputs(cg);
    segments.push({ index: k, model: c, inputs, outputs, computes, weightBytes });
    a = b;
  });
  return segments;
}

// ---------------------------------------------------------------------------------------------------------------
// Running samples through the segments

interface Stored {
  readonly file: number;
  readonly offset: number;
  readonly length: number;
  readonly dtype: DType;
  readonly dims: readonly number[];
}

/** The values crossing the cuts, per batch: one append-only file per writing segment. */
class CrossingStore {
  private readonly files: { path: string; fd: number; size: number }[] = [];
  private readonly index = new Map<number, Map<string, Stored>>();

  constructor(private readonly dir: string) {}

  write(k: number, batch: number, name: string, t: OrtTensor): void {
    const ir = fromOrt(name, t);
    if (!storable(ir.dtype)) throw new QccError('E_UNSUPPORTED', `segmented run: cannot hand on '${name}' of type ${t.type}`, { tensor: name });
    let f = this.files[k];
    if (!f) {
      const p = path.join(this.dir, `crossing-${k}.bin`);
      f = this.files[k] = { path: p, fd: fs.openSync(p, 'w+', 0o600), size: 0 };
    }
    const bytes = ir.bytes();
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(f.fd, bytes, done, bytes.length - done, f.size + done);
    let m = this.index.get(batch);
    if (!m) this.index.set(batch, (m = new Map()));
    m.set(name, { file: k, offset: f.size, length: bytes.length, dtype: ir.dtype, dims: ir.dims });
    f.size += bytes.length;
  }

  read(batch: number, names: readonly string[]): Feeds {
    const m = this.index.get(batch);
    const feeds: Feeds = {};
    for (const name of names) {
      const s = m?.get(name);
      if (!s) throw new QccError('E_PASS_FAILED', `segmented run: batch ${batch} has no stored '${name}'`, { tensor: name });
      const bytes = new Uint8Array(s.length);
      let done = 0;
      while (done < bytes.length) {
        const r = fs.readSync(this.files[s.file]!.fd, bytes, done, bytes.length - done, s.offset + done);
        if (r === 0) throw new QccError('E_IO', `segmented run: ${this.files[s.file]!.path} is shorter than written`);
        done += r;
      }
      feeds[name] = toOrt(new Tensor(name, s.dtype, [...s.dims], { kind: 'raw', bytes }));
    }
    return feeds;
  }

  /** Deletes segment k's file. */
  drop(k: number): void {
    const f = this.files[k];
    if (!f) return;
    fs.closeSync(f.fd);
    fs.rmSync(f.path, { force: true });
    delete this.files[k];
  }

  close(): void {
    for (let k = 0; k < this.files.length; k++) this.drop(k);
  }
}

export interface SegmentRunOptions {
  /** The session for a segment and what else to fetch from it (a calibration probe built on `seg.model`, say). */
  session: (seg: Segment) => Promise<{ session: ort.InferenceSession; fetch?: readonly string[] }>;
  /** Each batch's outputs of a segment: its `outputs` and the extra fetches. `feeds` are what the segment was fed. */
  onBatch?: (seg: Segment, batch: number, out: Record<string, OrtTensor>, feeds: Feeds) => void | Promise<void>;
  /** Called once per batch with the source's feeds, before the first segment runs it; false leaves the batch out. */
  admit?: (feeds: Feeds, batch: number) => boolean;
  /** After a segment ran every batch, before its session goes; `feedsOf(i)` gives batch i's feeds of this segment. */
  after?: (seg: Segment, session: ort.InferenceSession, feedsOf: (batch: number) => Feeds) => Promise<void>;
  /** Progress over segments x batches. */
  onProgress?: (done: number, total: number) => void;
  /** Total batches, for progress. */
  batches?: number;
  /** Where the crossing values go (a new temporary folder by default, removed at the end). */
  dir?: string;
}

/**
 * Runs every batch of `source` through `segments` in order, one session at a time. Returns the number of batches.
 * Segment 0 reads the source; later segments read the graph inputs and the values of earlier segments they need
 * from the crossing files.
 */
export async function runSegmented(segments: readonly Segment[], source: () => AsyncIterable<Feeds>, o: SegmentRunOptions): Promise<number> {
  const own = o.dir === undefined;
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-segments-'));
  const store = new CrossingStore(dir);
  // who reads what: the last segment reading each name, and what every segment must hand on
  const lastReader = new Map<string, number>();
  for (const s of segments) for (const name of s.inputs) lastReader.set(name, s.index);
  const writer = new Map<string, number>(); // name -> the segment whose file holds it
  let count = 0;
  const skipped = new Set<number>();
  const total = (o.batches ?? 0) * segments.length;
  let done = 0;
  try {
    for (const seg of segments) {
      const { session, fetch = [] } = await o.session(seg);
      try {
        const names = [...new Set([...seg.outputs, ...fetch])];
        // what this segment writes for later ones: its outputs read later, and (segment 0) graph inputs read later
        const handOn = [...lastReader.entries()].filter(([name, last]) => last > seg.index && (seg.computes.has(name) || (seg.index === 0 && !segments.some((s) => s.computes.has(name))))).map(([name]) => name);
        for (const name of handOn) writer.set(name, seg.index);
        const feedsOf = (batch: number): Feeds => {
          if (seg.index === 0) return store.read(batch, seg.inputs);
          const from = new Map<number, string[]>();
          for (const name of seg.inputs) {
            const w = writer.get(name);
            if (w === undefined) throw new QccError('E_PASS_FAILED', `segmented run: nothing hands on '${name}'`, { tensor: name });
            from.set(w, [...(from.get(w) ?? []), name]);
          }
          const feeds: Feeds = {};
          for (const [, ns] of from) Object.assign(feeds, store.read(batch, ns));
          return feeds;
        };
        const step = async (feeds: Feeds, batch: number, all: Feeds): Promise<void> => {
          const out = await run(session, feeds, names);
          for (const name of handOn) {
            const t = out[name] ?? all[name];
            if (!t) throw new QccError('E_ORT', `segmented run: onnxruntime did not return '${name}'`, { tensor: name });
            store.write(seg.index, batch, name, t);
          }
          await o.onBatch?.(seg, batch, out, feeds);
          o.onProgress?.(++done, Math.max(total, done));
        };
        if (seg.index === 0) {
          let batch = 0;
          for await (const all of source()) {
            const i = batch++;
            if (o.admit && !o.admit(all, i)) {
              skipped.add(i);
              continue;
            }
            const feeds: Feeds = {};
            for (const name of seg.inputs) {
              const t = all[name];
              if (!t) throw new QccError('E_USAGE', `the input data has no '${name}'`, { tensor: name });
              feeds[name] = t;
            }
            // `after` may want segment 0's feeds again: kept in a file of their own
            if (o.after) for (const name of seg.inputs) if (!handOn.includes(name)) store.write(segments.length, i, name, feeds[name]!);
            await step(feeds, i, all);
          }
          count = batch;
        } else {
          for (let i = 0; i < count; i++) if (!skipped.has(i)) await step(feedsOf(i), i, {});
        }
        await o.after?.(seg, session, feedsOf);
      } finally {
        await session.release();
      }
      // files no later segment reads
      for (const k of new Set(writer.values())) {
        if (k > seg.index) continue;
        const still = [...writer.entries()].some(([name, w]) => w === k && (lastReader.get(name) ?? -1) > seg.index);
        if (!still) store.drop(k);
      }
    }
  } finally {
    store.close();
    if (own) fs.rmSync(dir, { recursive: true, force: true });
  }
  return count;
}
