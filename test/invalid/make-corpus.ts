// Writes the bad-model corpus (test/invalid/*.onnx and corpus.json) from cases.ts: `node dist/test/invalid/make-corpus.js`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASES } from './cases.js';

/** test/invalid/ in the source tree (this file runs from dist/test/invalid/). */
export const CORPUS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/invalid');

/** corpus.json: one {file, error, issue} per case, in case order. */
export function corpusJson(): string {
  return JSON.stringify(CASES.map((c) => ({ file: c.file, error: c.error, issue: c.issue })), null, 2) + '\n';
}

function main(): void {
  const keep = new Set(CASES.map((c) => c.file));
  for (const f of fs.readdirSync(CORPUS_DIR)) if (f.endsWith('.onnx') && !keep.has(f)) fs.rmSync(path.join(CORPUS_DIR, f));
  for (const c of CASES) fs.writeFileSync(path.join(CORPUS_DIR, c.file), c.build().bytes);
  fs.writeFileSync(path.join(CORPUS_DIR, 'corpus.json'), corpusJson());
  console.log(`wrote ${CASES.length} files and corpus.json to ${CORPUS_DIR}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
