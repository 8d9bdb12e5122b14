// Rewrites the CHECK lines of golden files (test/golden/**/*.qir) from the current output, for review with git diff.
// Usage: npm run golden:accept [-- [--all] [path-substring...]]
//   default: only files that fail now (and files without CHECK lines); --all: every matching file.
// Builds first (tsc; type errors elsewhere do not stop it as long as dist/ is emitted).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const all = args.includes('--all');
const filters = args.filter((a) => a !== '--all');

const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });
if (tsc.status !== 0) console.error('golden-accept: tsc reported errors; using what it emitted');
const harness = path.join(root, 'dist/test/golden/harness.js');
if (!fs.existsSync(harness)) {
  console.error('golden-accept: dist/test/golden/harness.js is missing: the build failed');
  process.exit(1);
}
const h = await import(pathToFileURL(harness).href);

let rewritten = 0;
let failed = 0;
for (const file of h.listGoldenFiles()) {
  const rel = path.relative(root, file);
  if (filters.length && !filters.some((f) => rel.includes(f))) continue;
  const text = fs.readFileSync(file, 'utf8');
  let run;
  try {
    run = await h.runGolden(text, rel);
  } catch (e) {
    console.error(`${rel}: ${e?.describe?.() ?? e}`);
    failed++;
    continue;
  }
  if (!all && h.verdict(run) === undefined) continue;
  const next = h.acceptedText(text, run);
  if (next === undefined) {
    console.error(`${rel}: not accepted: ${h.verdict(run)}`);
    failed++;
    continue;
  }
  if (next !== text) {
    fs.writeFileSync(file, next);
    rewritten++;
    console.log(`${rel}: CHECK lines rewritten`);
  }
  const again = h.verdict(await h.runGolden(next, rel));
  if (again !== undefined) {
    console.error(`${rel}: still failing after accept (review its CHECK-NOT lines): ${again}`);
    failed++;
  }
}
console.log(`golden-accept: ${rewritten} file(s) rewritten${failed ? `, ${failed} need attention` : ''}; review with git diff test/golden`);
process.exit(failed ? 1 : 0);
