// Load + save benchmark (issue 2): qcc vs plain fs read/write vs Python onnx on a ~102 MB ResNet-50-shaped model.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { loadModel } from '../ir/onnx/reader.js';
import { saveModel } from '../ir/onnx/writer.js';
import { writeResnet50Shaped } from './resnet50-shaped.js';

export const IO_HEADING = '## Load + save (issue 2)';

/** Targets from issue 2. */
const MAX_TIME_VS_FS = 1.3;
const MAX_RSS_VS_FILE = 2.5;
const MIN_PYTHON_SPEEDUP = 2;

const PY_SCRIPT = [
  'import sys, time, onnx',
  't = time.perf_counter()',
  'm = onnx.load(sys.argv[1])',
  'onnx.save(m, sys.argv[2])',
  'print((time.perf_counter() - t) * 1000)',
].join('\n');

interface ChildReport {
  /** RSS right before loadModel (Node + qcc modules loaded), bytes. */
  baselineRss: number;
  /** Peak RSS of the child's own address space (Linux VmHWM), bytes; resourceUsage().maxRSS where /proc is missing. */
  peakRss: number;
  /** process.resourceUsage().maxRSS, bytes: on Linux it also counts the parent's RSS at fork time (see below). */
  maxRss: number;
  /** True when peakRss is VmHWM. */
  hwm: boolean;
  /** The child's load + save, ms (a cold run: one process, no JIT warm-up). */
  ms: number;
}

/** Peak resident set of this process's current address space: VmHWM, which exec resets. */
function vmHwm(): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Child mode: one loadModel + saveModel, then report the peak RSS of this process. */
function childMain(file: string, out: string): void {
  const baselineRss = process.memoryUsage().rss;
  const t = performance.now();
  saveModel(loadModel(file), out);
  const ms = performance.now() - t;
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const hwm = vmHwm();
  const report: ChildReport = { baselineRss, peakRss: hwm ?? maxRss, maxRss, hwm: hwm !== undefined, ms };
  process.stdout.write(JSON.stringify(report));
}

function runChild(file: string, out: string): ChildReport {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--rss-child', file, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rss child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ChildReport;
}

/** The first interpreter that imports onnx (a pyenv `python3` may shadow Debian's /usr/bin/python3). */
function findPython(): { exe: string; onnx: string } | undefined {
  for (const exe of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(exe, ['-c', 'import onnx; print(onnx.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { exe, onnx: r.stdout.trim() };
  }
  return undefined;
}

function runPython(exe: string, file: string, out: string): number {
  const r = spawnSync(exe, ['-c', PY_SCRIPT, file, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python onnx load+save failed (${r.status}): ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** A full GC before each timed step, so that no step pays for the garbage of the one before it. */
const collect: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

function timed(f: () => void): number {
  collect();
  const t = performance.now();
  f();
  return performance.now() - t;
}

function rm(file: string): void {
  fs.rmSync(file, { force: true });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number): string => x.toFixed(0);
const mb = (x: number): string => (x / 1e6).toFixed(1);
const ratio = (x: number): string => `${x.toFixed(2)}x`;
const verdict = (ok: boolean): string => (ok ? 'pass' : '**FAIL**');

export interface IoResult {
  markdown: string;
  ok: boolean;
}

export function runIoBench(opts: { reps?: number; log?: (s: string) => void } = {}): IoResult {
  const reps = opts.reps ?? 9;
  const load0 = os.loadavg()[0]!;
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  log('io: generating the ResNet-50-shaped model ...');
  const gen = writeResnet50Shaped();
  const { dir, file, bytes } = gen;
  const nodes = loadModel(file).graph.nodeArray().length;
  const py = findPython();
  const fsMs: number[] = [];
  const qccMs: number[] = [];
  const pyMs: number[] = [];
  const child: ChildReport[] = [];
  const out = (tag: string, i: number): string => path.join(dir, `out-${tag}-${i}.onnx`);
  try {
    // round 0 is a warm-up (JIT, page cache, Python's imports) and is not counted
    for (let i = 0; i <= reps; i++) {
      log(`io: round ${i}${i === 0 ? ' (warm-up)' : ''} of ${reps}`);
      // fs first: it also brings the input into the page cache for the others
      const tf = timed(() => fs.writeFileSync(out('fs', i), fs.readFileSync(file)));
      rm(out('fs', i));
      const tq = timed(() => saveModel(loadModel(file), out('qcc', i)));
      if (i === 0 && !fs.readFileSync(out('qcc', i)).equals(fs.readFileSync(file))) throw new Error('qcc load + save did not reproduce the file byte for byte');
      rm(out('qcc', i));
      const tp = py ? runPython(py.exe, file, out('py', i)) : NaN;
      rm(out('py', i));
      const c = runChild(file, out('child', i));
      rm(out('child', i));
      if (i === 0) continue;
      fsMs.push(tf);
      qccMs.push(tq);
      if (py) pyMs.push(tp);
      child.push(c);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const fsMed = median(fsMs);
  const qccMed = median(qccMs);
  const pyMed = py ? median(pyMs) : NaN;
  const peak = Math.max(...child.map((c) => c.peakRss));
  const maxRss = Math.max(...child.map((c) => c.maxRss));
  const hwm = child.every((c) => c.hwm);
  const base = median(child.map((c) => c.baselineRss));
  const childMs = median(child.map((c) => c.ms));
  const timeOk = qccMed / fsMed <= MAX_TIME_VS_FS;
  const rssOk = peak / bytes <= MAX_RSS_VS_FILE;
  const pyOk = py ? pyMed / qccMed >= MIN_PYTHON_SPEEDUP : true;
  const range = (xs: number[]): string => `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}`;

  const date = new Date().toISOString().slice(0, 10);
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const lines = [
    IO_HEADING,
    '',
    `Measured ${date} with \`npm run bench\` (\`node dist/bench/run.js --only io\` runs this section alone).`,
    `Model: ResNet-50-shaped (bench/resnet50-shaped.ts: torchvision resnet50 topology, ${nodes} nodes, ${gen.params.toLocaleString('en-US')} seeded random f32 parameters incl. BN statistics, all in raw_data), ${bytes.toLocaleString('en-US')} bytes (${mb(bytes)} MB), in os.tmpdir().`,
    `Machine: node ${process.version}, ${cpu} (${os.cpus().length} cores), Linux ${os.release()}; 1-minute load average ${load0.toFixed(2)} before and ${os.loadavg()[0]!.toFixed(2)} after the run (other work on the machine shows up as noise here).`,
    '',
    `| load + save, ${reps} alternating rounds after 1 warm-up | median ms | range ms | ratio | target | result |`,
    '| --- | ---: | ---: | --- | --- | --- |',
    `| fs: \`readFileSync\` + \`writeFileSync\` of the same bytes to a new file | ${ms(fsMed)} | ${range(fsMs)} | | | |`,
    `| qcc: \`loadModel\` + \`saveModel\` (temp file + rename) | ${ms(qccMed)} | ${range(qccMs)} | qcc/fs ${ratio(qccMed / fsMed)} | ≤ ${MAX_TIME_VS_FS}x | ${verdict(timeOk)} |`,
    py
      ? `| Python onnx ${py.onnx}: \`onnx.load\` + \`onnx.save\` | ${ms(pyMed)} | ${range(pyMs)} | python/qcc ${ratio(pyMed / qccMed)} | ≥ ${MIN_PYTHON_SPEEDUP}x (goal) | ${pyOk ? 'met' : 'not met'} |`
      : '| Python onnx: not installed (apt-get install python3-onnx) | | | | | skipped |',
    '',
    `| memory: one load + save in a fresh node process | MB | / file size | target | result |`,
    '| --- | ---: | ---: | --- | --- |',
    `| peak RSS of the whole child process (${hwm ? 'VmHWM' : '`resourceUsage().maxRSS`'}, max over ${reps} runs): the number compared | ${mb(peak)} | ${ratio(peak / bytes)} | ≤ ${MAX_RSS_VS_FILE}x | ${verdict(rssOk)} |`,
    `| RSS before loading (Node itself + qcc's modules, median) | ${mb(base)} | ${ratio(base / bytes)} | | |`,
    `| peak minus that baseline (what load + save adds) | ${mb(peak - base)} | ${ratio((peak - base) / bytes)} | | |`,
    '',
    ...(py
      ? [
          `qcc reads and writes the same bytes as the fs baseline, so python/qcc is bounded by python/fs (${ratio(pyMed / fsMed)} in this run).`,
          '',
        ]
      : []),
    'How it is measured: every round runs fs, then qcc, then Python, then the memory child, on the same input file, so the',
    'input is in the page cache for all of them (fs reads it first) and the outputs are new files, removed after each step.',
    'fs and qcc run in the bench process (warm JIT). Python is timed inside Python with `time.perf_counter()` around',
    '`onnx.load` + `onnx.save`, so interpreter start-up and `import onnx` are excluded. The memory child runs the bench',
    `file itself (\`--rss-child\`); its cold, single-run load + save took ${ms(childMs)} ms (median). A full GC runs before`,
    'each timed step (outside the timing), so that no step pays for the garbage of the step before it.',
    ...(hwm
      ? [
          `The peak is the child's VmHWM (/proc/self/status), not \`process.resourceUsage().maxRSS\`: on Linux a spawned child's`,
          "maxRSS keeps the high-water mark of the address space it was forked from, i.e. the bench process's own RSS at",
          `spawn time; here maxRSS said ${mb(maxRss)} MB (${ratio(maxRss / bytes)}), which measures the bench, not qcc.`,
        ]
      : []),
    '',
  ];
  // the Python ratio is a goal, not a requirement: it does not fail the run
  return { markdown: lines.join('\n'), ok: timeOk && rssOk };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--rss-child') childMain(process.argv[3]!, process.argv[4]!);
  else {
    const r = runIoBench();
    console.log(r.markdown);
    process.exitCode = r.ok ? 0 : 1;
  }
}
