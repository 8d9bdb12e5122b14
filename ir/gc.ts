// Returning dead ArrayBuffers to the OS before a large allocation elsewhere (an onnxruntime session).
//
// V8 frees an ArrayBuffer's memory only after a garbage collection finds it dead, and its heap is small, so a pass
// that drops 100 MB of weight arrays (compile, after spilling them to disk) can leave them in memory until well
// after onnxruntime has allocated its own copy. `collectGarbage` runs a full collection (gc exposed through V8's
// flags; a no-op where that is refused) and waits, at most MAX_WAIT_MS, for the freed backing stores to be
// released (V8 releases them on a background task).

import * as v8 from 'node:v8';
import * as vm from 'node:vm';

const MAX_WAIT_MS = 100;
let gc: (() => void) | undefined | null = null;

function gcFunction(): (() => void) | undefined {
  if (gc === null) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const f = vm.runInNewContext('gc') as unknown;
      gc = typeof f === 'function' ? (f as () => void) : undefined;
    } catch {
      gc = undefined;
    }
  }
  return gc;
}

/**
 * Runs a full garbage collection and waits until about `expectBytes` of ArrayBuffer memory is released (or
 * MAX_WAIT_MS). Returns the ArrayBuffer bytes released.
 */
export async function collectGarbage(expectBytes = 0): Promise<number> {
  const f = gcFunction();
  const before = process.memoryUsage().arrayBuffers;
  if (!f) return 0;
  f();
  const t0 = performance.now();
  let now = process.memoryUsage().arrayBuffers;
  let changed = t0;
  // until about expectBytes are back, or nothing has come back for 10 ms since something did
  while (before - now < expectBytes * 0.9 && performance.now() - t0 < MAX_WAIT_MS && (now === before || performance.now() - changed < 10)) {
    await new Promise((r) => setTimeout(r, 2));
    const m = process.memoryUsage().arrayBuffers;
    if (m !== now) changed = performance.now();
    now = m;
  }
  return Math.max(0, before - now);
}
