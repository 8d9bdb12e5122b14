// Prints the libonnx-testdata conformance counts as a Markdown table (for bench/RESULTS.md): node dist/bench/conformance.js [root]

import { runConformance, summaryTable } from '../test/util/conformance.js';
import { hasTestdata, TESTDATA_ROOT } from '../test/util/testdata.js';

const root = process.argv[2] ?? TESTDATA_ROOT;
if (!hasTestdata(root)) {
  console.error(`${root} not found: install Debian's libonnx-testdata (apt-get install libonnx-testdata)`);
  process.exit(2);
}
const s = await runConformance(root);
console.log(summaryTable(s));
const lists: [string, string[]][] = [
  ['ORT loads only one of original/converted', s.ortLoadMismatch],
  ['ORT rejects both, with different messages', s.ortRejectedDifferently],
  ['models with differing outputs', s.modelsMismatch],
  ['loadable, not comparable (inputs onnxruntime-node cannot feed)', s.modelsNotCompared],
  ['ORT rejects both (ORT limitation, same error for both)', s.outcomes.filter((o) => !o.ortOriginal && !o.ortConverted).map((o) => `${o.id}: ${(o.ortError ?? '').slice(0, 120)}`)],
];
for (const [title, items] of lists) {
  if (items.length === 0) continue;
  console.log(`\n<details><summary>${title} (${items.length})</summary>\n`);
  for (const i of items) console.log(`- ${i}`);
  console.log('\n</details>');
}
const bad = s.codecOk !== s.found || s.fixedPoint !== s.found || s.ortLoadMismatch.length > 0 || s.modelsMismatch.length > 0;
process.exit(bad ? 1 : 0);
