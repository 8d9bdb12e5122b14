// External tensor data: safe resolution of locations (no escape from the model's folder) and on-demand reads.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { QccError } from '../errors.js';
import { setExternalReader, type TensorData } from '../ir.js';

type External = Extract<TensorData, { kind: 'external' }>;

/**
 * Resolves `location` against `baseDir`, refusing anything that could read outside the model's folder:
 * absolute paths, drive letters, `..` segments, NUL bytes, and symlinks whose target leaves the folder.
 * Loading untrusted ONNX files with `../../etc/passwd` style locations is a known attack on ONNX loaders.
 */
export function resolveExternalPath(baseDir: string, location: string, tensor: string): string {
  const bad = (why: string): never => {
    throw new QccError('E_EXTERNAL_PATH', `external data location '${location}' ${why}`, { tensor });
  };
  if (location.length === 0) bad('is empty');
  if (location.includes('\0')) bad('contains a NUL byte');
  if (path.isAbsolute(location) || /^[a-zA-Z]:/.test(location) || location.startsWith('\\')) bad('is absolute');
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) bad("contains '..'");
  const full = path.resolve(baseDir, location);
  const rel = path.relative(baseDir, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) bad('leaves the model folder');
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    throw new QccError('E_EXTERNAL_MISSING', `external data file '${location}' does not exist`, { tensor });
  }
  let realBase: string;
  try {
    realBase = fs.realpathSync(baseDir);
  } catch {
    realBase = baseDir;
  }
  const realRel = path.relative(realBase, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) bad('is a link that leaves the model folder');
  return real;
}

/** Size and modification time of each data file when first seen: a later read of a file that changed fails. */
const seen = new Map<string, { size: number; mtimeMs: number }>();

function statOf(p: string, location: string, tensor: string): { size: number; mtimeMs: number } {
  const st = fs.statSync(p);
  if (!st.isFile()) throw new QccError('E_EXTERNAL_PATH', `external data location '${location}' is not a regular file`, { tensor });
  return { size: st.size, mtimeMs: st.mtimeMs };
}

/** Checks that [offset, offset+length) lies inside the file; returns the resolved path. */
export function checkExternalRange(baseDir: string, location: string, offset: number, length: number, tensor: string): string {
  const p = resolveExternalPath(baseDir, location, tensor);
  let st = seen.get(p);
  if (st === undefined) {
    st = statOf(p, location, tensor);
    seen.set(p, st);
  }
  if (offset < 0 || length < 0 || offset + length > st.size) {
    throw new QccError('E_EXTERNAL_RANGE', `external data [${offset}, ${offset + length}) lies outside '${location}' (${st.size} bytes)`, { tensor });
  }
  return p;
}

/** Forget what was seen of a data file qcc has just (re)written, or of every file. */
export function clearExternalCache(file?: string): void {
  if (file === undefined) return seen.clear();
  let p = path.resolve(file);
  try {
    p = fs.realpathSync(p);
  } catch {
    /* gone: forget the name as given */
  }
  seen.delete(p);
}

export function readExternal(d: External, tensor: string): Uint8Array {
  const p = checkExternalRange(d.baseDir, d.location, d.offset, d.length, tensor);
  const out = Buffer.allocUnsafe(d.length);
  const fd = fs.openSync(p, 'r');
  try {
    // data read later than the model (lazily loaded models, external data) must come from the file as it was then
    const was = seen.get(p)!;
    const st = fs.fstatSync(fd);
    if (st.size !== was.size || st.mtimeMs !== was.mtimeMs) {
      throw new QccError('E_EXTERNAL_CHANGED', `'${d.location}' changed on disk after the model was read (size ${was.size} -> ${st.size}); read the model again`, { tensor });
    }
    let done = 0;
    while (done < d.length) {
      const n = fs.readSync(fd, out, done, Math.min(d.length - done, 1 << 30), d.offset + done);
      if (n === 0) throw new QccError('E_EXTERNAL_RANGE', `external data file '${d.location}' ended early`, { tensor });
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

setExternalReader(readExternal);
