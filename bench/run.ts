// Runs the benchmarks in bench/ and prints Markdown; --write replaces their sections in bench/RESULTS.md.
// Usage: node dist/bench/run.js [--only io,zoo,compile,conformance,ocr] [--reps N] [--write]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILE_HEADING, runCompileBench } from './compile.js';
import { IO_HEADING, runIoBench } from './io.js';
import { OCR_HEADING, runOcrBench } from './ocr.js';
import { ZOO_HEADING, runZooBench } from './zoo.js';

interface Bench {
  id: string;
  /** The `## ` heading of the bench's section in RESULTS.md. */
  heading: string;
  run(o: { reps: number | undefined }): { markdown: string; ok: boolean };
}

const here = path.dirname(fileURLToPath(import.meta.url));

const BENCHES: Bench[] = [
  { id: 'io', heading: IO_HEADING, run: (o) => runIoBench({ reps: o.reps }) },
  { id: 'zoo', heading: ZOO_HEADING, run: () => runZooBench({}) },
  { id: 'compile', heading: COMPILE_HEADING, run: () => runCompileBench({}) },
  {
    id: 'conformance',
    heading: '## Conformance (libonnx-testdata)',
    run: () => {
      // conformance.js is a script of its own (it exits when done): run it as a child and take its Markdown
      const r = spawnSync(process.execPath, [path.join(here, 'conformance.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
      const date = new Date().toISOString().slice(0, 10);
      const body = r.stdout.trim() || `(no output; exit code ${String(r.status)})`;
      return { markdown: `## Conformance (libonnx-testdata)\n\nMeasured ${date} with \`node dist/bench/conformance.js\`.\n\n${body}\n`, ok: r.status === 0 };
    },
  },
  { id: 'ocr', heading: OCR_HEADING, run: () => runOcrBench({}) },
];

function parseArgs(argv: string[]): { only: string[] | undefined; reps: number | undefined; write: boolean } {
  let only: string[] | undefined;
  let reps: number | undefined;
  let write = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--write') write = true;
    else if (a === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--reps' || a.startsWith('--reps=')) reps = Number(a.includes('=') ? a.slice(7) : argv[++i]);
    else {
      console.error(`unknown argument '${a}' (usage: run.js [--only ${BENCHES.map((b) => b.id).join(',')}] [--reps N] [--write])`);
      process.exit(2);
    }
  }
  if (reps !== undefined && !(Number.isInteger(reps) && reps > 0)) {
    console.error('--reps takes a positive integer');
    process.exit(2);
  }
  for (const id of only ?? []) {
    if (!BENCHES.some((b) => b.id === id)) {
      console.error(`unknown benchmark '${id}' (known: ${BENCHES.map((b) => b.id).join(', ')})`);
      process.exit(2);
    }
  }
  return { only, reps, write };
}

/** Replaces the section under `heading` (up to the next `## ` heading) or appends it. */
export function replaceSection(doc: string, heading: string, section: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === heading);
  const body = section.trimEnd().split('\n');
  if (start < 0) return `${doc.trimEnd()}\n\n${body.join('\n')}\n`;
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end < 0) end = lines.length;
  const after = lines.slice(end);
  return [...lines.slice(0, start), ...body, ...(after.length ? ['', ...after] : [''])].join('\n');
}

const args = parseArgs(process.argv.slice(2));
const resultsFile = path.resolve(here, '..', '..', 'bench', 'RESULTS.md');
let ok = true;
for (const b of BENCHES.filter((x) => args.only === undefined || args.only.includes(x.id))) {
  const r = b.run({ reps: args.reps });
  ok &&= r.ok;
  console.log(r.markdown);
  if (args.write) {
    const doc = fs.existsSync(resultsFile) ? fs.readFileSync(resultsFile, 'utf8') : '# Benchmark results\n\nWritten by `npm run bench -- --write`.\n';
    fs.writeFileSync(resultsFile, replaceSection(doc, b.heading, r.markdown));
    console.error(`run: wrote '${b.heading}' to ${path.relative(process.cwd(), resultsFile)}`);
  }
}
process.exitCode = ok ? 0 : 1;
