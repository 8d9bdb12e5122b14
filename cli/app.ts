// The qcc command line (yargs): argv -> options -> library calls. Commands: inspect, convert, passes, opt, zoo, compile.
//
// Exit status: 0 success; 2 usage and file errors (unknown command/flag/pass, bad option value, missing argument,
// unreadable or unwritable file: E_USAGE, E_PASS_UNKNOWN, E_PASS_OPTION, E_IO); 3 invalid input models (E_ONNX_*,
// E_MODEL_*, E_EXTERNAL_*, E_IR_PARSE); 1 everything else (a pass failed, verification failed, internal errors).
// Errors print `qcc: E_CODE: message (at file, byte N, node X)` on stderr; stack traces only with --debug.
// Output files are written atomically and only when the whole command succeeded.

import * as fs from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { QccError, isQccError, formatLoc, type ErrorCode } from '../ir/errors.js';
import type { Model } from '../ir/ir.js';
import { printModel } from '../ir/print.js';
import { canonicalize } from '../passes/canonicalize.js';
import { dumpInstrument, PassManager, verifyInstrument, type PipelineResult } from '../passes/manager.js';
import type { DiagnosticSink, Instrument } from '../passes/pass.js';
import { allPasses, getPass } from '../passes/registry.js';
import { ZOO, writeZooModel } from '../models/index.js';
import { compileCommand } from './compile.js';
import { inspectModel, renderInspect } from './inspect.js';
import { formatOf, readModel, writeModel } from './io.js';
import { allPassFlags, collectPassOptions, describeOption, parsePipeline } from './pass-flags.js';

export function exitCodeFor(code: ErrorCode | string): number {
  if (code === 'E_USAGE' || code === 'E_PASS_UNKNOWN' || code === 'E_PASS_OPTION' || code === 'E_IO') return 2;
  if (code.startsWith('E_ONNX_') || code.startsWith('E_MODEL_') || code.startsWith('E_EXTERNAL_') || code === 'E_IR_PARSE') return 3;
  return 1;
}

export interface CliIo {
  out(s: string): void;
  err(s: string): void;
}

const processIo: CliIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function reportDiagnostics(diag: DiagnosticSink, io: CliIo): void {
  for (const d of diag.items) io.err(`qcc: ${d.severity}: ${d.code}: ${d.message}${formatLoc(d.loc)}\n`);
}

function externalOption(a: { 'external-data'?: boolean; 'external-threshold'?: number }): { threshold: number } | undefined {
  const t = a['external-threshold'];
  if (t !== undefined && (!Number.isInteger(t) || t < 0)) throw new QccError('E_USAGE', `--external-threshold must be a non-negative integer number of bytes, got ${String(t)}`);
  return a['external-data'] || t !== undefined ? { threshold: t ?? 1024 } : undefined;
}

function wrote(io: CliIo, file: string, r: { bytes: number; dataBytes: number }): void {
  io.err(`qcc: wrote ${file} (${r.bytes.toLocaleString('en-US')} bytes${r.dataBytes ? ` + ${r.dataBytes.toLocaleString('en-US')} bytes of external data` : ''})\n`);
}

function outputOptions<T>(y: Argv<T>) {
  return y
    .option('external-data', { type: 'boolean', describe: 'store large tensors in one data file beside OUT (<OUT>.data); needed above 2 GiB' })
    .option('external-threshold', { type: 'number', describe: 'tensors of at least this many bytes go to the data file (implies --external-data)', defaultDescription: '1024' });
}

/** Builds the yargs program; handlers write through `io`. */
function program(argv: readonly string[], io: CliIo): Argv {
  const passFlags = allPassFlags();
  return yargs([...argv])
    .scriptName('qcc')
    .usage('$0 <command> [options]\n\nqcc: a quantization compiler for ONNX models.')
    .parserConfiguration({ 'dot-notation': false, 'camel-case-expansion': false, 'strip-dashed': false })
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new QccError('E_USAGE', msg ?? 'invalid command line');
    })
    .option('debug', { type: 'boolean', describe: 'print stack traces with errors', global: true })
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .command(
      'inspect <model>',
      'Show IR version, opsets, inputs/outputs, op histogram and parameter statistics',
      (y) =>
        y
          .positional('model', { type: 'string', describe: 'an .onnx (external data is counted, not read) or .qir file', demandOption: true })
          .option('json', { type: 'boolean', describe: 'print one JSON object (fields documented in cli/inspect.ts)' }),
      (a) => {
        const file = a.model as string;
        const r = inspectModel(readModel(file), file, formatOf(file));
        io.out(a.json ? `${JSON.stringify(r, null, 2)}\n` : renderInspect(r));
      },
    )
    .command(
      'convert <in> <out>',
      'Decode and re-encode a model (.onnx or .qir), optionally canonicalized and/or converted to another opset',
      (y) =>
        outputOptions(
          y
            .positional('in', { type: 'string', describe: 'input model', demandOption: true })
            .positional('out', { type: 'string', describe: 'output model (.onnx, or .qir for the IR text)', demandOption: true })
            .option('opset', { type: 'number', describe: 'convert the ai.onnx opset up to this version (pass upgrade-opset)' })
            .option('canonicalize', { type: 'boolean', describe: 'run the canonicalization pipeline (constant-to-initializer, [upgrade-opset,] fold-constants, fold-batchnorm, dce)' }),
        ),
      async (a) => {
        const ext = externalOption(a);
        const opset = a.opset;
        if (opset !== undefined && (!Number.isInteger(opset) || opset < 1)) throw new QccError('E_USAGE', `--opset must be a positive integer, got ${String(opset)}`);
        const m = readModel(a.in as string);
        let r: PipelineResult | undefined;
        if (a.canonicalize) r = await canonicalize(m, opset !== undefined ? { opset } : {});
        else if (opset !== undefined) {
          const up = getPass('upgrade-opset');
          r = await new PassManager([up]).run(m, { options: { [up.name]: { to: opset } } });
        }
        if (r) reportDiagnostics(r.diag, io);
        wrote(io, a.out as string, writeModel(r?.model ?? m, a.out as string, ext ? { externalData: ext } : {}));
      },
    )
    .command(
      'passes',
      'List every pass with its summary and options',
      (y) => y.option('json', { type: 'boolean', describe: 'print the pass declarations as JSON' }),
      (a) => {
        const passes = allPasses();
        if (a.json) {
          io.out(`${JSON.stringify(passes.map((p) => ({ name: p.name, summary: p.summary, mode: p.mode, options: p.options ?? [] })), null, 2)}\n`);
          return;
        }
        const w = Math.max(...passes.map((p) => p.name.length));
        const lines: string[] = [];
        for (const p of passes) {
          lines.push(`${p.name.padEnd(w)}  ${p.summary}`);
          for (const o of p.options ?? []) lines.push(`${' '.repeat(w)}    --${p.name}.${o.name} <${o.type}>  ${describeOption(o)}`);
        }
        io.out(`${lines.join('\n')}\n`);
      },
    )
    .command(
      'opt <in> <out>',
      'Run a pipeline of passes: qcc opt IN OUT --passes a,b,c [--<pass>.<option> value]',
      (y) => {
        let b = outputOptions(
          y
            .positional('in', { type: 'string', describe: 'input model (.onnx or .qir)', demandOption: true })
            .positional('out', { type: 'string', describe: 'output model (.onnx, or .qir for the IR text)', demandOption: true })
            .option('passes', { type: 'string', describe: 'comma-separated pass names, run in order (see `qcc passes`)', demandOption: true })
            .option('dump-ir', { type: 'boolean', describe: 'print the IR (.qir text) after every pass on stdout' })
            .option('verify', { type: 'boolean', describe: 'verify the IR invariants before and after every pass' })
            .option('fixpoint', { type: 'number', describe: 'repeat the pipeline until nothing changes, at most N rounds' })
            .option('stats', { type: 'boolean', describe: 'print per-pass changes, counters and time on stderr' }),
        );
        for (const [flag, p, o] of passFlags) {
          b = b.option(flag, {
            type: o.type,
            describe: `${p.name}: ${o.describe}`,
            group: 'Pass options (from the pass declarations):',
            ...(o.choices ? { choices: [...o.choices] } : {}),
            ...(o.default !== undefined ? { defaultDescription: String(o.default) } : {}),
          });
        }
        return b;
      },
      async (a) => {
        const pipeline = parsePipeline(a.passes as string);
        const given = new Map<string, unknown>();
        for (const [flag] of passFlags) if ((a as Record<string, unknown>)[flag] !== undefined) given.set(flag, (a as Record<string, unknown>)[flag]);
        const options = collectPassOptions(given, pipeline);
        const ext = externalOption(a);
        const fixpoint = a.fixpoint;
        if (fixpoint !== undefined && (!Number.isInteger(fixpoint) || fixpoint < 1)) throw new QccError('E_USAGE', `--fixpoint must be a positive integer, got ${String(fixpoint)}`);
        const m: Model = readModel(a.in as string);
        const instruments: Instrument[] = [];
        if (a.verify) instruments.push(verifyInstrument());
        if (a['dump-ir']) {
          io.out(`// ----- input -----\n${printModel(m)}`);
          instruments.push(dumpInstrument(printModel, (pass, text) => io.out(`// ----- after ${pass} -----\n${text}`)));
        }
        const r = await new PassManager(pipeline).run(m, { options, instruments, ...(fixpoint !== undefined ? { fixpoint } : {}) });
        reportDiagnostics(r.diag, io);
        if (a.stats) {
          for (const s of r.perPass) {
            const counters = Object.entries(s.stats).map(([k, v]) => `${k}=${v}`).join(', ');
            io.err(`qcc: ${s.name}: ${s.changed ? 'changed' : 'unchanged'}${counters ? ` (${counters})` : ''} in ${s.ms.toFixed(1)} ms\n`);
          }
        }
        wrote(io, a.out as string, writeModel(r.model, a.out as string, ext ? { externalData: ext } : {}));
      },
    )
    .command(
      'zoo <name>',
      'Reference models built by qcc itself: `qcc zoo list`, or `qcc zoo NAME -o FILE` (seeded synthetic weights)',
      (y) =>
        y
          .positional('name', { type: 'string', describe: `list, or one of: ${ZOO.map((z) => z.name).join(', ')}`, demandOption: true })
          .option('o', { alias: 'output', type: 'string', describe: 'output .onnx file' })
          .option('opset', { type: 'number', describe: 'default-domain opset (CNNs 13..21, transformers 17..21)', defaultDescription: '21' })
          .option('seed', { type: 'number', describe: 'weight seed', defaultDescription: '0' })
          .option('external-data', { type: 'boolean', describe: 'store weights in <FILE>.data (always on for dit-xl2)' })
          .option('json', { type: 'boolean', describe: 'with list: print the zoo as JSON' }),
      async (a) => {
        const name = a.name as string;
        if (name === 'list') {
          if (a.json) {
            io.out(`${JSON.stringify(ZOO, null, 2)}\n`);
            return;
          }
          const w = Math.max(...ZOO.map((z) => z.name.length));
          const rows = ZOO.map((z) => `${z.name.padEnd(w)}  ${z.params.toLocaleString('en-US').padStart(11)} params  ${z.summary}`);
          io.out(`${rows.join('\n')}\n`);
          return;
        }
        const out = a.o as string | undefined;
        if (!out) throw new QccError('E_USAGE', `qcc zoo ${name} needs -o FILE`);
        const t0 = performance.now();
        const r = await writeZooModel(name, out, {
          ...(a.opset !== undefined ? { opset: a.opset } : {}),
          ...(a.seed !== undefined ? { seed: a.seed } : {}),
          ...(a['external-data'] ? { externalData: true } : {}),
        });
        io.err(`qcc: wrote ${out}: ${name}, ${r.params.toLocaleString('en-US')} parameters, ${r.bytes.toLocaleString('en-US')} bytes in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      },
    )
    .command(compileCommand(io))
    .demandCommand(1, 'give a command: inspect, convert, passes, opt, zoo or compile')
    .recommendCommands()
    .wrap(Math.min(120, process.stdout.columns ?? 100));
}

/** Runs the CLI; resolves to the exit status (never throws, never calls process.exit). */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    await program(argv, io).parseAsync();
    return 0;
  } catch (e) {
    if (isQccError(e)) {
      const hint = e.code === 'E_USAGE' ? ' (see qcc --help)' : '';
      io.err(`qcc: ${e.describe()}${hint}\n`);
      if (debug && e.stack) io.err(`${e.stack}\n`);
      return exitCodeFor(e.code);
    }
    const err = e as Error;
    io.err(`qcc: internal error: ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for a stack trace)'}\n`);
    if (debug && err?.stack) io.err(`${err.stack}\n`);
    return 1;
  }
}
