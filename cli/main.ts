#!/usr/bin/env node
// The `qcc` executable (package.json bin): runs the CLI on process.argv and exits with its status.

import { runCli } from './app.js';

process.exitCode = await runCli(process.argv.slice(2));
