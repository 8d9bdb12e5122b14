// Scratch data: a temporary folder that holds a model's large initializers on disk instead of in memory.
//
// onnxruntime keeps its own copy of every weight in a session, so while one lives the JS copy of the same weights
// is dead weight: compile spills its canonical FP32 model here before calibration (the tensors become external
// references into `<dir>/weights-N.bin`, read back on use) and writes each onnxruntime session's graph beside them
// (`sessionFile`), so the weights are written once and read by onnxruntime from the file. Peak memory during
// calibration is then node + one onnxruntime session, not that plus one or two JS copies of the weights.
// `materialize` brings tensors back into memory before the scratch folder is removed.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QccError } from '../errors.js';
import { Tensor, type Graph, type Model } from '../ir.js';
import { Rewriter } from '../rewriter.js';
import { clearExternalCache } from './external.js';
import { KEEP_EXTERNAL, PROTOBUF_LIMIT, encodeModelChunks, writeFileAtomic } from './writer.js';

/** Initializers of at least this many bytes are spilled (external ones are always: they are read from disk anyway). */
export const SPILL_MIN_BYTES = 64 << 10;
const ALIGN = 4096;

export class ScratchData {
  private files = 0;
  private disposed = false;

  private constructor(readonly dir: string) {}

  /** A new scratch folder under the OS temporary folder. */
  static create(): ScratchData {
    try {
      return new ScratchData(fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-scratch-'))));
    } catch (e) {
      throw new QccError('E_IO', `cannot create a scratch folder in ${os.tmpdir()}: ${(e as Error).message}`);
    }
  }

  /** Whether `t`'s data lives in this scratch folder. */
  holds(t: Tensor): boolean {
    return t.data.kind === 'external' && t.data.baseDir === this.dir;
  }

  /**
   * Moves the main graph's initializers of at least `minBytes` (and every external one) to a new data file here;
   * they become external references to it. Returns the bytes written.
   */
  spill(model: Model, minBytes = SPILL_MIN_BYTES): number {
    this.check();
    const g = model.graph;
    const move = g.initializers.filter((v) => {
      const t = v.initializer!;
      return t.dtype !== 'string' && !this.holds(t) && (t.data.kind === 'external' || t.byteLength >= minBytes);
    });
    if (move.length === 0) return 0;
    const location = `weights-${this.files++}.bin`;
    const file = path.join(this.dir, location);
    const placed: { offset: number; length: number }[] = [];
    let size = 0;
    try {
      const fd = fs.openSync(file, 'w', 0o600);
      try {
        for (const v of move) {
          const b = v.initializer!.bytes(); // one tensor at a time (external ones are read here)
          const offset = Math.ceil(size / ALIGN) * ALIGN;
          let done = 0;
          while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, offset + done);
          placed.push({ offset, length: b.length });
          size = offset + b.length;
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      fs.rmSync(file, { force: true });
      if (e instanceof QccError) throw e;
      throw new QccError('E_IO', `cannot write scratch data ${file}: ${(e as Error).message}`, { file });
    }
    clearExternalCache(file);
    const rw = new Rewriter(g);
    move.forEach((v, i) => {
      const t = v.initializer!;
      const { offset, length } = placed[i]!;
      const entries = [['location', location], ['offset', String(offset)], ['length', String(length)]] as const;
      rw.setInitializer(v, new Tensor(t.name, t.dtype, t.dims, { kind: 'external', location, offset, length, baseDir: this.dir, entries }, t.proto));
    });
    return size;
  }

  /** Reads every tensor of `model` that lives here back into memory (before the folder goes). Returns the bytes read. */
  materialize(model: Model): number {
    this.check();
    let n = 0;
    const visit = (g: Graph): void => {
      const rw = new Rewriter(g);
      for (const v of g.initializers) {
        const t = v.initializer!;
        if (!this.holds(t)) continue;
        const bytes = t.bytes();
        n += bytes.length;
        rw.setInitializer(v, new Tensor(t.name, t.dtype, t.dims, { kind: 'raw', bytes }, t.proto));
      }
      for (const node of g.nodes()) for (const sg of node.subgraphs()) visit(sg);
    };
    visit(model.graph);
    return n;
  }

  /**
   * When every external tensor of `model` lives here: writes its graph (those tensors as references, everything
   * else inline) to a new file in this folder for onnxruntime to load, and returns its path (delete it after the
   * session is created). Otherwise undefined: the caller writes the model its usual way.
   */
  sessionFile(model: Model): string | undefined {
    this.check();
    let ok = true;
    let any = false;
    const visit = (g: Graph): void => {
      for (const v of g.initializers) {
        const t = v.initializer!;
        if (t.data.kind !== 'external') continue;
        any = true;
        if (!this.holds(t)) ok = false;
      }
      for (const node of g.nodes()) for (const sg of node.subgraphs()) visit(sg); // (Constant values are written inline)
    };
    visit(model.graph);
    if (!ok || !any) return undefined;
    const { chunks, size } = encodeModelChunks(model, KEEP_EXTERNAL);
    if (size > PROTOBUF_LIMIT) return undefined;
    const file = path.join(this.dir, `session-${this.files++}.onnx`);
    writeFileAtomic(file, chunks);
    return file;
  }

  /** Removes the folder. Tensors still pointing here can no longer be read. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private check(): void {
    if (this.disposed) throw new QccError('E_USAGE', `scratch folder ${this.dir} was already removed`);
  }
}
