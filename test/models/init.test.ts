// Zoo weight init: the seeded generator is deterministic and per-tensor, its normals follow N(0,1), the fills have the documented scales, and DiT's sin-cos table matches the repo's numpy algorithm.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sincosPosEmbed } from '../../models/dit.js';
import { fillParam, init, Rng, tensorSeed } from '../../models/init.js';

function moments(a: ArrayLike<number>): { mean: number; var: number; kurt: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  const mean = s / a.length;
  let s2 = 0;
  let s4 = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - mean;
    s2 += d * d;
    s4 += d * d * d * d;
  }
  const v = s2 / a.length;
  return { mean, var: v, kurt: s4 / a.length / (v * v) };
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7). */
function phi(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

describe('Rng', () => {
  test('same seed, same stream; different seeds and names differ', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 100 }, () => a.i32());
    assert.deepEqual(sa, Array.from({ length: 100 }, () => b.i32()));
    assert.notDeepEqual(sa, Array.from({ length: 100 }, () => c.i32()));
    assert.notEqual(tensorSeed(0, 'conv1.weight'), tensorSeed(0, 'conv2.weight'));
    assert.notEqual(tensorSeed(0, 'conv1.weight'), tensorSeed(1, 'conv1.weight'));
    assert.equal(tensorSeed(7, 'fc.bias'), tensorSeed(7, 'fc.bias'));
  });

  test('fillNormal draws exactly the values of normal() in a loop', () => {
    const a = new Rng(5);
    const b = new Rng(5);
    const out = new Float32Array(100_000);
    a.fillNormal(out, 1);
    for (let i = 0; i < out.length; i++) assert.equal(out[i], Math.fround(b.normal()), `element ${i}`);
  });

  test('normals follow N(0,1): moments and the CDF at several points (ziggurat tail and wedges included)', () => {
    const n = 2_000_000;
    const out = new Float32Array(n);
    new Rng(1).fillNormal(out, 1);
    const m = moments(out);
    // standard errors at n = 2e6: mean 7e-4, var 1e-3, kurtosis 1.7e-3
    assert.ok(Math.abs(m.mean) < 4e-3, `mean ${m.mean}`);
    assert.ok(Math.abs(m.var - 1) < 6e-3, `var ${m.var}`);
    assert.ok(Math.abs(m.kurt - 3) < 0.02, `kurtosis ${m.kurt}`);
    for (const x of [-3.5, -2, -1, -0.3, 0, 0.5, 1.5, 2.5, 3.44, 4]) {
      let c = 0;
      for (let i = 0; i < n; i++) if (out[i]! < x) c++;
      const p = phi(x);
      const se = Math.sqrt((p * (1 - p)) / n);
      assert.ok(Math.abs(c / n - p) < 5 * se + 1e-6, `P(z < ${x}) = ${c / n}, expected ${p}`);
    }
  });

  test('uniform() lies in (0, 1) with mean 1/2 and variance 1/12', () => {
    const r = new Rng(9);
    const a = Array.from({ length: 200_000 }, () => r.uniform());
    assert.ok(a.every((v) => v > 0 && v < 1));
    const m = moments(a);
    assert.ok(Math.abs(m.mean - 0.5) < 4e-3 && Math.abs(m.var - 1 / 12) < 2e-3, JSON.stringify(m));
  });
});

describe('fillParam', () => {
  test('He fan-out: std sqrt(2 / (out_channels * kh * kw)), like kaiming_normal_(mode=fan_out)', () => {
    const dims = [256, 64, 3, 3];
    const a = new Float32Array(256 * 64 * 9);
    fillParam(a, dims, init.he, 0, 'w');
    const m = moments(a);
    assert.ok(Math.abs(Math.sqrt(m.var) / Math.sqrt(2 / (256 * 9)) - 1) < 0.01, `std ${Math.sqrt(m.var)}`);
    assert.ok(Math.abs(m.mean) < 1e-3);
  });

  test('truncated normal: within mean +- 2 std, std of the truncated distribution', () => {
    const a = new Float32Array(500_000);
    fillParam(a, [a.length], init.truncNormal(0.02, 1), 0, 'g');
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of a) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(lo >= Math.fround(1 - 0.04) && hi <= Math.fround(1 + 0.04), `[${lo}, ${hi}]`);
    // a standard normal truncated to [-2, 2] has variance 1 - 4 phi(2) / (2 Phi(2) - 1) = 0.7737
    const pdf2 = Math.exp(-2) / Math.sqrt(2 * Math.PI);
    const tv = 1 - (4 * pdf2) / (2 * phi(2) - 1);
    const m = moments(a);
    assert.ok(Math.abs(m.mean - 1) < 2e-4 && Math.abs(m.var / (0.02 * 0.02 * tv) - 1) < 0.01, JSON.stringify(m));
  });

  test('uniform bound, constants, and values depend on (seed, name) only', () => {
    const a = new Float32Array(100_000);
    fillParam(a, [a.length], init.uniform(0.25), 3, 'fc.weight');
    assert.ok(a.every((v) => v > -0.25 && v < 0.25));
    const b = new Float32Array(100_000);
    fillParam(b, [b.length], init.uniform(0.25), 3, 'fc.weight');
    assert.deepEqual(a, b);
    fillParam(b, [b.length], init.uniform(0.25), 3, 'fc.bias');
    assert.notDeepEqual(a, b);
    fillParam(b, [b.length], init.ones, 3, 'x');
    assert.ok(b.every((v) => v === 1));
  });
});

describe('DiT sin-cos position embedding', () => {
  /** get_2d_sincos_pos_embed from DiT models.py, transcribed step by step (meshgrid, 1-D embeddings, concat). */
  function reference(dim: number, grid: number): Float64Array {
    const gridW: number[][] = [];
    const gridH: number[][] = [];
    for (let i = 0; i < grid; i++) {
      gridW.push(Array.from({ length: grid }, (_, j) => j)); // np.meshgrid(grid_w, grid_h)[0][i][j] = grid_w[j]
      gridH.push(Array.from({ length: grid }, () => i));
    }
    const oneD = (d: number, pos: number[]): number[][] => {
      const omega = Array.from({ length: d / 2 }, (_, k) => 1 / 10000 ** (k / (d / 2)));
      return pos.map((p) => [...omega.map((o) => Math.sin(p * o)), ...omega.map((o) => Math.cos(p * o))]);
    };
    const embH = oneD(dim / 2, gridW.flat()); // the repo names grid[0] "h" though it holds the w coordinates
    const embW = oneD(dim / 2, gridH.flat());
    return Float64Array.from(embH.flatMap((row, m) => [...row, ...embW[m]!]));
  }

  test('matches the repo algorithm for DiT-S/2 (384 channels, 16x16 grid), rounded to f32', () => {
    const out = new Float32Array(256 * 384);
    sincosPosEmbed(384, 16, out);
    const ref = reference(384, 16);
    for (let i = 0; i < out.length; i++) assert.equal(out[i], Math.fround(ref[i]!), `element ${i}`);
    // token 0 is [sin 0 | cos 0 | sin 0 | cos 0] = [0.., 1.., 0.., 1..]
    assert.deepEqual([out[0], out[96], out[192], out[288]], [0, 1, 0, 1]);
  });
});
