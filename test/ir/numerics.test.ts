// Value-level tests for ir/numerics: rounding, f16/bf16/fp8/fp4 codecs against brute-force oracles, packing, quantizers.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  roundHalfEven,
  f16BitsToF32,
  f32ToF16Bits,
  decodeF16,
  encodeF16,
  bf16BitsToF32,
  f32ToBf16Bits,
  decodeBf16,
  encodeBf16,
  decodeFloat8E4M3FN,
  encodeFloat8E4M3FN,
  decodeFloat8E4M3FNUZ,
  encodeFloat8E4M3FNUZ,
  decodeFloat8E5M2,
  encodeFloat8E5M2,
  decodeFloat8E5M2FNUZ,
  encodeFloat8E5M2FNUZ,
  decodeFloat8E8M0,
  encodeFloat8E8M0,
  decodeFp8,
  encodeFp8,
  decodeFp8Array,
  encodeFp8Array,
  FP8_MAX,
  decodeFloat4E2M1,
  encodeFloat4E2M1,
  packNibbles,
  packFp4,
  unpackInt4,
  unpackUint4,
  unpackFp4,
  packCrumbs,
  unpackInt2,
  unpackUint2,
  saturationRange,
  isIntQuantDType,
  quantizeInt,
  dequantizeInt,
  type Fp8DType,
  type IntQuantDType,
  type E8M0RoundMode,
} from '../../ir/numerics.js';
import { mulberry32 as rng } from '../../ir/random.js';

// ------------------------------------------------------------------------------------------------
// Test utilities (independent of the implementation under test)
// ------------------------------------------------------------------------------------------------


const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
function f32FromBits(bits: number): number {
  u32buf[0] = bits >>> 0;
  return f32buf[0]!;
}

const hex = (n: number): string => '0x' + n.toString(16);

/**
 * A sign-magnitude binary float format described the way the ONNX docs do (exponent bits, mantissa bits, bias),
 * decoded with Math.pow — deliberately not sharing code with the implementation.
 */
interface Fmt {
  name: string;
  bits: number; // total bits, sign is the top bit
  eBits: number;
  mBits: number;
  bias: number;
  /** NaN / Inf classification of a code (undefined: finite). */
  special(code: number): number | undefined;
  /** Largest finite magnitude code. */
  maxCode: number;
  /** Encoding of non-saturated overflow / infinity for a given sign (ONNX Cast saturate=0 table / IEEE). */
  ovf(neg: boolean): number;
  /** No negative zero (FNUZ). */
  uz: boolean;
}

function fmtValue(f: Fmt, code: number): number {
  const sp = f.special(code);
  if (sp !== undefined) return sp;
  const signBit = 1 << (f.bits - 1);
  const e = (code >> f.mBits) & ((1 << f.eBits) - 1);
  const m = code & ((1 << f.mBits) - 1);
  const mag =
    e === 0 ? (m / Math.pow(2, f.mBits)) * Math.pow(2, 1 - f.bias) : (1 + m / Math.pow(2, f.mBits)) * Math.pow(2, e - f.bias);
  return code & signBit ? -mag : mag;
}

interface Table {
  values: number[]; // ascending positive finite magnitudes (index = magnitude code, 0..maxCode)
  ovfValue: number; // the value the next code above maxCode would have with an unbounded exponent
}

function buildTable(f: Fmt): Table {
  const values: number[] = [];
  for (let c = 0; c <= f.maxCode; c++) values.push(fmtValue(f, c));
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `${f.name} table must be increasing`);
  // Next magnitude after max with the exponent range extended (spacing of the top binade).
  const e = f.maxCode >> f.mBits;
  const m = (f.maxCode & ((1 << f.mBits) - 1)) + 1;
  const ovfValue = (1 + m / Math.pow(2, f.mBits)) * Math.pow(2, e - f.bias);
  return { values, ovfValue };
}

const OVF = -1;

/** Nearest magnitude code to a >= 0 by binary search; ties go to the even code; OVF if the overflow value wins. */
function nearestMagnitude(t: Table, f: Fmt, a: number): number {
  if (a === Infinity) return OVF;
  const v = t.values;
  let lo = 0;
  let hi = v.length - 1;
  if (a >= v[hi]!) {
    // between max and the overflow value (differences are exact: Sterbenz)
    const dLo = a - v[hi]!;
    const dHi = t.ovfValue - a;
    if (dLo < dHi) return hi;
    if (dHi < dLo) return OVF;
    return (hi & 1) === 0 ? hi : OVF; // tie: the even code wins (max+1 has the other parity)
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - v[lo]!;
  const dHi = v[hi]! - a;
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return (lo & 1) === 0 ? lo : hi;
}

/** Oracle encoder implementing the ONNX Cast tables on top of brute-force nearest-value search. */
function oracleEncode(f: Fmt, t: Table, x: number, saturate: boolean, nanCode: (neg: boolean) => number): number {
  const neg = x < 0 || Object.is(x, -0);
  const signBit = 1 << (f.bits - 1);
  if (Number.isNaN(x)) return nanCode(false);
  const mag = nearestMagnitude(t, f, Math.abs(x));
  if (mag === OVF) return saturate ? f.maxCode | (neg ? signBit : 0) : f.ovf(neg);
  if (f.uz && mag === 0) return 0;
  return mag | (neg ? signBit : 0);
}

const E4M3FN: Fmt = {
  name: 'E4M3FN', bits: 8, eBits: 4, mBits: 3, bias: 7, maxCode: 0x7e, uz: false,
  special: (c) => ((c & 0x7f) === 0x7f ? NaN : undefined),
  ovf: (neg) => (neg ? 0xff : 0x7f),
};
const E4M3FNUZ: Fmt = {
  name: 'E4M3FNUZ', bits: 8, eBits: 4, mBits: 3, bias: 8, maxCode: 0x7f, uz: true,
  special: (c) => (c === 0x80 ? NaN : undefined),
  ovf: () => 0x80,
};
const E5M2: Fmt = {
  name: 'E5M2', bits: 8, eBits: 5, mBits: 2, bias: 15, maxCode: 0x7b, uz: false,
  special: (c) => ((c & 0x7f) === 0x7c ? (c & 0x80 ? -Infinity : Infinity) : (c & 0x7f) > 0x7c ? NaN : undefined),
  ovf: (neg) => (neg ? 0xfc : 0x7c),
};
const E5M2FNUZ: Fmt = {
  name: 'E5M2FNUZ', bits: 8, eBits: 5, mBits: 2, bias: 16, maxCode: 0x7f, uz: true,
  special: (c) => (c === 0x80 ? NaN : undefined),
  ovf: () => 0x80,
};
const F16: Fmt = {
  name: 'F16', bits: 16, eBits: 5, mBits: 10, bias: 15, maxCode: 0x7bff, uz: false,
  special: (c) => ((c & 0x7c00) === 0x7c00 ? ((c & 0x3ff) === 0 ? (c & 0x8000 ? -Infinity : Infinity) : NaN) : undefined),
  ovf: (neg) => (neg ? 0xfc00 : 0x7c00),
};
const BF16: Fmt = {
  name: 'BF16', bits: 16, eBits: 8, mBits: 7, bias: 127, maxCode: 0x7f7f, uz: false,
  special: (c) => ((c & 0x7f80) === 0x7f80 ? ((c & 0x7f) === 0 ? (c & 0x8000 ? -Infinity : Infinity) : NaN) : undefined),
  ovf: (neg) => (neg ? 0xff80 : 0x7f80),
};
const FP4: Fmt = {
  name: 'FP4', bits: 4, eBits: 2, mBits: 1, bias: 1, maxCode: 0x7, uz: false,
  special: () => undefined,
  ovf: () => {
    throw new Error('fp4 always saturates');
  },
};

interface Fp8Case {
  dtype: Exclude<Fp8DType, 'fp8e8m0'>;
  fmt: Fmt;
  decode: (b: number) => number;
  encode: (x: number, saturate?: boolean) => number;
  nan: number;
}
const FP8_CASES: Fp8Case[] = [
  { dtype: 'fp8e4m3', fmt: E4M3FN, decode: decodeFloat8E4M3FN, encode: encodeFloat8E4M3FN, nan: 0x7f },
  { dtype: 'fp8e4m3fnuz', fmt: E4M3FNUZ, decode: decodeFloat8E4M3FNUZ, encode: encodeFloat8E4M3FNUZ, nan: 0x80 },
  { dtype: 'fp8e5m2', fmt: E5M2, decode: decodeFloat8E5M2, encode: encodeFloat8E5M2, nan: 0x7f },
  { dtype: 'fp8e5m2fnuz', fmt: E5M2FNUZ, decode: decodeFloat8E5M2FNUZ, encode: encodeFloat8E5M2FNUZ, nan: 0x80 },
];

/** Edge inputs around every representable value (exact values, midpoints/ties, just off the midpoints). */
function edgeInputs(t: Table): number[] {
  const xs: number[] = [0, -0, 5e-324, -5e-324, 1e-300, 1e300, -1e300, Number.MAX_VALUE, Number.MIN_VALUE];
  const v = [...t.values, t.ovfValue];
  for (let i = 0; i < v.length; i++) {
    xs.push(v[i]!, -v[i]!);
    if (i + 1 < v.length) {
      const mid = (v[i]! + v[i + 1]!) / 2; // exact (halving a sum of two close binary floats)
      const eps = mid * 2 ** -40;
      xs.push(mid, -mid, mid + eps, mid - eps, -(mid + eps), -(mid - eps));
    }
  }
  xs.push(t.ovfValue * 2, t.ovfValue * 1.5, t.values[1]! / 2, t.values[1]! / 3, t.values[1]! * 0.75);
  return xs;
}

/** Random inputs: random float32 bit patterns and log-uniform magnitudes over the format's range. */
function randomInputs(t: Table, count: number, seed: number): number[] {
  const r = rng(seed);
  const xs: number[] = [];
  const lo = Math.log2(t.values[1]!) - 3;
  const hi = Math.log2(t.ovfValue) + 3;
  for (let i = 0; i < count; i++) {
    const sign = r() < 0.5 ? -1 : 1;
    xs.push(sign * Math.pow(2, lo + (hi - lo) * r())); // arbitrary doubles
    xs.push(Math.fround(sign * Math.pow(2, lo + (hi - lo) * r()))); // float32 values
    const bits = Math.floor(r() * 4294967296);
    const f = f32FromBits(bits);
    if (Number.isFinite(f)) xs.push(f); // fully random float32 (huge / tiny included)
  }
  return xs;
}

// ------------------------------------------------------------------------------------------------
// roundHalfEven
// ------------------------------------------------------------------------------------------------

describe('roundHalfEven', () => {
  test('ties go to even, non-ties to nearest', () => {
    const cases: Array<[number, number]> = [
      [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [-2.5, -2], [-3.5, -4],
      [2.4999999999999996, 2], [2.5000000000000004, 3], [-2.5000000000000004, -3], [0.49999999999999994, 0],
      [1e15 + 0.5, 1e15], [1e15 + 1.5, 1e15 + 2], [4503599627370495.5, 4503599627370496], [7, 7], [-7, -7],
    ];
    for (const [x, want] of cases) assert.ok(Object.is(roundHalfEven(x), want), `roundHalfEven(${x}) = ${roundHalfEven(x)}, want ${want}`);
  });
  test('large, infinite and NaN inputs pass through', () => {
    assert.equal(roundHalfEven(2 ** 60 + 2 ** 8), 2 ** 60 + 2 ** 8);
    assert.equal(roundHalfEven(Infinity), Infinity);
    assert.equal(roundHalfEven(-Infinity), -Infinity);
    assert.ok(Number.isNaN(roundHalfEven(NaN)));
  });
  test('agrees with a floor-based reference on random halves and fractions', () => {
    const r = rng(1);
    for (let i = 0; i < 5000; i++) {
      const k = Math.floor((r() - 0.5) * 2000);
      const frac = i % 2 === 0 ? 0.5 : r();
      const x = k + frac;
      const f = Math.floor(x);
      const d = x - f;
      const want = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
      assert.equal(roundHalfEven(x) + 0, want + 0, `x=${x}`);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// float16
// ------------------------------------------------------------------------------------------------

describe('float16', () => {
  const table = buildTable(F16);

  test('all 65536 bit patterns decode like the formula and round-trip', () => {
    for (let b = 0; b < 65536; b++) {
      const v = f16BitsToF32(b);
      const want = fmtValue(F16, b);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(v), `f16 ${hex(b)} should be NaN`);
        assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(v))), `NaN ${hex(b)} must encode to a NaN`);
        continue;
      }
      assert.ok(Object.is(v, want), `f16 ${hex(b)} decoded ${v}, want ${want}`);
      assert.equal(Math.fround(v), v, 'every f16 is a float32');
      assert.equal(f32ToF16Bits(v), b, `round trip of ${hex(b)}`);
    }
  });

  test('known values', () => {
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f32ToF16Bits(65519.99), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00, 'tie above max rounds to even = Inf');
    assert.equal(f32ToF16Bits(-1e6), 0xfc00);
    assert.equal(f32ToF16Bits(6.103515625e-5), 0x0400, 'min normal 2^-14');
    assert.equal(f16BitsToF32(0x0400), 2 ** -14);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.ok(Math.abs(f16BitsToF32(0x0001) - 5.96e-8) < 1e-10);
    assert.equal(f32ToF16Bits(5.960464477539063e-8), 0x0001, 'min subnormal');
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000, 'half the min subnormal ties to even (0)');
    assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002, 'subnormal tie 1.5 -> 2');
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, '1+2^-11 ties to 1.0');
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, '1+3*2^-11 ties to 1+2^-9');
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -30), 0x3c01, 'just above the tie rounds up');
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(0.1), 0x2e66);
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.equal(f32ToF16Bits(1e-10), 0x0000);
    assert.equal(f32ToF16Bits(Infinity), 0x7c00);
    assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
    const nan = f32ToF16Bits(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
  });

  test('encoder matches a brute-force nearest-even oracle on random and edge inputs', () => {
    const xs = [...edgeInputs(table), ...randomInputs(table, 4000, 2)];
    for (const x of xs) {
      const want = oracleEncode(F16, table, x, false, () => 0x7e00);
      assert.equal(f32ToF16Bits(x), want, `f16(${x})`);
    }
  });

  test('bulk encode/decode equal the scalar functions', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const dec = decodeF16(all);
    for (let i = 0; i < 65536; i++) assert.ok(Object.is(dec[i], Math.fround(f16BitsToF32(i))) || (Number.isNaN(dec[i]!) && Number.isNaN(f16BitsToF32(i))));
    const xs = randomInputs(table, 2000, 3);
    const out = new Uint16Array(xs.length + 3);
    const enc = encodeF16(xs, out);
    assert.equal(enc, out, 'writes into the provided output');
    xs.forEach((x, i) => assert.equal(enc[i], f32ToF16Bits(x)));
    assert.throws(() => encodeF16([1, 2, 3], new Uint16Array(2)), RangeError);
  });
});

// ------------------------------------------------------------------------------------------------
// bfloat16
// ------------------------------------------------------------------------------------------------

describe('bfloat16', () => {
  const table = buildTable(BF16);

  test('all 65536 bit patterns decode like the formula and round-trip', () => {
    for (let b = 0; b < 65536; b++) {
      const v = bf16BitsToF32(b);
      const want = fmtValue(BF16, b);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(v));
        assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(v))));
        continue;
      }
      assert.ok(Object.is(v, want), `bf16 ${hex(b)} decoded ${v}, want ${want}`);
      assert.equal(f32ToBf16Bits(v), b);
    }
  });

  test('known values (RNE, not truncation)', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, 'tie to even');
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, 'tie to even (up)');
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81, 'above tie rounds up (truncation would give 0x3f80)');
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80, 'f32 max rounds to Inf');
    assert.equal(f32ToBf16Bits(3.3895313892515355e38), 0x7f7f, 'bf16 max');
    assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
    assert.equal(f32ToBf16Bits(2 ** -133), 0x0001, 'min subnormal');
    assert.equal(f32ToBf16Bits(2 ** -134), 0x0000, 'tie to even 0');
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  });

  test('encoder matches the brute-force oracle; Float32Array fast path matches the scalar path', () => {
    const xs = [...edgeInputs(table), ...randomInputs(table, 4000, 4)];
    for (const x of xs) assert.equal(f32ToBf16Bits(x), oracleEncode(BF16, table, x, false, () => 0x7fc0), `bf16(${x})`);
    const r = rng(5);
    const f32 = new Float32Array(20000);
    const view = new Uint32Array(f32.buffer);
    for (let i = 0; i < f32.length; i++) view[i] = Math.floor(r() * 4294967296);
    view[0] = 0x7f7fffff; // f32 max
    view[1] = 0x3f808000; // exact tie
    view[2] = 0x3f818000; // exact tie, odd
    view[3] = 0xffc00001; // negative NaN
    const fast = encodeBf16(f32);
    const slow = encodeBf16(Array.from(f32));
    for (let i = 0; i < f32.length; i++) {
      if (Number.isNaN(f32[i]!)) assert.ok(Number.isNaN(bf16BitsToF32(fast[i]!)));
      else assert.equal(fast[i], slow[i], `element ${i} (${f32[i]})`);
    }
    const dec = decodeBf16(fast);
    for (let i = 0; i < 100; i++) assert.ok(Object.is(dec[i], bf16BitsToF32(fast[i]!)) || Number.isNaN(dec[i]!));
  });
});

// ------------------------------------------------------------------------------------------------
// float8
// ------------------------------------------------------------------------------------------------

describe('float8 (ONNX Cast semantics)', () => {
  for (const c of FP8_CASES) {
    const table = buildTable(c.fmt);

    test(`${c.fmt.name}: all 256 codes decode like the ONNX formula and round-trip`, () => {
      for (let b = 0; b < 256; b++) {
        const v = c.decode(b);
        const want = fmtValue(c.fmt, b);
        assert.equal(decodeFp8(c.dtype, b), v);
        if (Number.isNaN(want)) {
          assert.ok(Number.isNaN(v), `${hex(b)} should be NaN`);
          assert.ok(Number.isNaN(c.decode(c.encode(v, false))));
          assert.ok(Number.isNaN(c.decode(c.encode(v, true))));
          continue;
        }
        assert.ok(Object.is(v, want), `${c.fmt.name} ${hex(b)} decoded ${v}, want ${want}`);
        assert.equal(c.encode(v, false), b, `round trip ${hex(b)} (saturate=false)`);
        if (Number.isFinite(v)) assert.equal(c.encode(v, true), b, `round trip ${hex(b)} (saturate=true)`);
      }
    });

    test(`${c.fmt.name}: encoder matches the brute-force oracle (saturate on and off)`, () => {
      const xs = [...edgeInputs(table), ...randomInputs(table, 3000, 10 + c.fmt.bias)];
      for (const x of xs) {
        for (const sat of [true, false]) {
          const want = oracleEncode(c.fmt, table, x, sat, () => c.nan);
          const got = c.encode(x, sat);
          assert.equal(got, want, `${c.fmt.name}(${x}, saturate=${sat}) = ${hex(got)}, want ${hex(want)}`);
          assert.equal(encodeFp8(c.dtype, x, sat), want);
        }
      }
    });

    test(`${c.fmt.name}: special values per the ONNX Cast tables`, () => {
      const max = FP8_MAX[c.dtype];
      assert.equal(c.decode(c.fmt.maxCode), max);
      // saturate = true: +-Inf -> +-FLT_MAX for all four types
      assert.equal(c.encode(Infinity, true), c.fmt.maxCode);
      assert.equal(c.encode(-Infinity, true), c.fmt.maxCode | 0x80);
      assert.equal(c.encode(1e9, true), c.fmt.maxCode);
      assert.equal(c.encode(-1e9, true), c.fmt.maxCode | 0x80);
      // saturate = false
      const infPos = c.decode(c.encode(Infinity, false));
      const ovfNeg = c.decode(c.encode(-1e9, false));
      if (c.dtype === 'fp8e5m2') {
        assert.equal(infPos, Infinity);
        assert.equal(ovfNeg, -Infinity);
      } else {
        assert.ok(Number.isNaN(infPos));
        assert.ok(Number.isNaN(ovfNeg));
      }
      assert.ok(Number.isNaN(c.decode(c.encode(NaN, true))));
      assert.equal(c.encode(NaN), c.nan);
      // zeros
      assert.equal(c.encode(0), 0);
      assert.equal(c.encode(-0), c.fmt.uz ? 0x00 : 0x80);
      assert.equal(c.encode(-1e-30), c.fmt.uz ? 0x00 : 0x80, 'negative underflow');
    });
  }

  test('E4M3FN known values', () => {
    assert.equal(encodeFloat8E4M3FN(448), 0x7e);
    assert.equal(decodeFloat8E4M3FN(0x7e), 448);
    assert.equal(decodeFloat8E4M3FN(0x08), 2 ** -6, 'min normal');
    assert.equal(decodeFloat8E4M3FN(0x01), 2 ** -9, 'min subnormal');
    assert.equal(encodeFloat8E4M3FN(2 ** -9), 0x01);
    assert.equal(encodeFloat8E4M3FN(2 ** -10), 0x00, 'half min subnormal ties to 0');
    assert.equal(encodeFloat8E4M3FN(3 * 2 ** -10), 0x02);
    assert.equal(encodeFloat8E4M3FN(464), 0x7e, '464 saturates to 448');
    assert.equal(encodeFloat8E4M3FN(464, false), 0x7e, '464 is a tie that rounds to even 448, in range');
    assert.equal(encodeFloat8E4M3FN(465, false), 0x7f, 'past the tie: NaN without saturation');
    assert.equal(encodeFloat8E4M3FN(500, true), 0x7e);
    assert.equal(encodeFloat8E4M3FN(1e9, false), 0x7f);
    assert.ok(Number.isNaN(decodeFloat8E4M3FN(encodeFloat8E4M3FN(1e9, false))));
    assert.equal(encodeFloat8E4M3FN(-Infinity, false), 0xff, '-Inf -> -NaN');
    assert.equal(encodeFloat8E4M3FN(-448), 0xfe);
    assert.equal(encodeFloat8E4M3FN(1.0625), 0x38, '1+1/16 ties to even 1.0');
    assert.equal(encodeFloat8E4M3FN(1.1875), 0x3a, '1+3/16 ties to even 1.25');
    assert.equal(encodeFloat8E4M3FN(0.1), 0x1d);
    assert.ok(Number.isNaN(decodeFloat8E4M3FN(0x7f)) && Number.isNaN(decodeFloat8E4M3FN(0xff)));
    assert.ok(Object.is(decodeFloat8E4M3FN(0x80), -0));
  });

  test('E4M3FNUZ / E5M2 / E5M2FNUZ known values', () => {
    assert.equal(encodeFloat8E4M3FNUZ(240), 0x7f);
    assert.equal(decodeFloat8E4M3FNUZ(0x01), 2 ** -10);
    assert.equal(decodeFloat8E4M3FNUZ(0x08), 2 ** -7);
    assert.equal(encodeFloat8E4M3FNUZ(1), 0x40);
    assert.equal(encodeFloat8E4M3FNUZ(300, false), 0x80);
    assert.ok(Number.isNaN(decodeFloat8E4M3FNUZ(0x80)));
    assert.equal(encodeFloat8E5M2(57344), 0x7b);
    assert.equal(decodeFloat8E5M2(0x7b), 57344);
    assert.equal(encodeFloat8E5M2(Infinity, false), 0x7c);
    assert.equal(encodeFloat8E5M2(-Infinity, false), 0xfc);
    assert.equal(decodeFloat8E5M2(0x7c), Infinity);
    assert.equal(encodeFloat8E5M2(61439, false), 0x7b);
    assert.equal(encodeFloat8E5M2(61440, false), 0x7c, 'tie above max rounds to even = Inf');
    assert.equal(encodeFloat8E5M2(61440, true), 0x7b);
    assert.equal(decodeFloat8E5M2(0x01), 2 ** -16);
    assert.equal(encodeFloat8E5M2(1), 0x3c);
    assert.equal(encodeFloat8E5M2FNUZ(57344), 0x7f);
    assert.equal(decodeFloat8E5M2FNUZ(0x01), 2 ** -17);
    assert.equal(encodeFloat8E5M2FNUZ(1), 0x40);
    assert.equal(encodeFloat8E5M2FNUZ(-Infinity, false), 0x80);
  });

  test('bulk fp8 encode/decode equal the scalar functions', () => {
    const r = rng(7);
    const xs = new Float32Array(5000);
    for (let i = 0; i < xs.length; i++) xs[i] = (r() - 0.5) * 2 ** Math.floor(r() * 40 - 20);
    for (const c of FP8_CASES) {
      for (const sat of [true, false]) {
        const enc = encodeFp8Array(c.dtype, xs, sat);
        for (let i = 0; i < xs.length; i++) assert.equal(enc[i], c.encode(xs[i]!, sat));
        const dec = decodeFp8Array(c.dtype, enc);
        for (let i = 0; i < xs.length; i++) {
          const v = c.decode(enc[i]!);
          assert.ok(Object.is(dec[i], v) || (Number.isNaN(v) && Number.isNaN(dec[i]!)));
        }
      }
    }
    const all = new Uint8Array(256).map((_, i) => i);
    const e8 = decodeFp8Array('fp8e8m0', all);
    for (let i = 0; i < 255; i++) assert.equal(e8[i], 2 ** (i - 127));
  });
});

// ------------------------------------------------------------------------------------------------
// FLOAT8E8M0
// ------------------------------------------------------------------------------------------------

/** Oracle for E8M0: brute force over all 2^k, k in [-127, 127], per round mode, on the raw value (ONNX table). */
function oracleE8M0(x: number, saturate: boolean, mode: E8M0RoundMode): number {
  if (Number.isNaN(x)) return 0xff;
  const a = Math.abs(x);
  if (a > 2 ** 127) return saturate ? 0xfe : 0xff;
  if (a < 2 ** -127) return saturate ? 0x00 : 0xff;
  let below = -1;
  for (let k = -127; k <= 127; k++) if (Math.pow(2, k) <= a) below = k + 127; // largest 2^k <= a
  const lo = Math.pow(2, below - 127);
  if (lo === a || mode === 'down') return below;
  if (mode === 'up') return below + 1;
  return a - lo >= 2 * lo - a ? below + 1 : below; // nearest, ties up
}

describe('FLOAT8E8M0', () => {
  test('all 256 codes decode to 2^(e-127) and round-trip in every mode', () => {
    for (let b = 0; b < 256; b++) {
      const v = decodeFloat8E8M0(b);
      if (b === 0xff) {
        assert.ok(Number.isNaN(v));
        assert.equal(encodeFloat8E8M0(v), 0xff);
        continue;
      }
      assert.equal(v, Math.pow(2, b - 127));
      assert.equal(decodeFp8('fp8e8m0', b), v);
      for (const mode of ['up', 'down', 'nearest'] as const) for (const sat of [true, false]) assert.equal(encodeFloat8E8M0(v, sat, mode), b);
    }
  });

  test('known values: default round mode is "up" with saturation', () => {
    assert.equal(encodeFloat8E8M0(1), 127);
    assert.equal(encodeFloat8E8M0(3), 129, '3 -> 4 (up)');
    assert.equal(encodeFloat8E8M0(3, true, 'down'), 128);
    assert.equal(encodeFloat8E8M0(3, true, 'nearest'), 129, 'tie 1.5*2^1 rounds up');
    assert.equal(encodeFloat8E8M0(2.9, true, 'nearest'), 128);
    assert.equal(encodeFloat8E8M0(1.0000001), 128);
    assert.equal(encodeFp8('fp8e8m0', 5), 130);
    assert.equal(encodeFp8('fp8e8m0', 5, true, 'down'), 129);
    // ONNX table: saturate+up | non-saturate
    assert.equal(encodeFloat8E8M0(0), 0x00);
    assert.equal(encodeFloat8E8M0(0, false, 'nearest'), 0xff);
    assert.equal(encodeFloat8E8M0(Infinity), 0xfe);
    assert.equal(encodeFloat8E8M0(Infinity, false, 'nearest'), 0xff);
    assert.equal(encodeFloat8E8M0(1e39), 0xfe);
    assert.equal(encodeFloat8E8M0(1e39, false), 0xff);
    assert.equal(encodeFloat8E8M0(2 ** 127 * 1.5), 0xfe, 'in (MAX, f32 max): saturates');
    assert.equal(encodeFloat8E8M0(1e-40), 0x00);
    assert.equal(encodeFloat8E8M0(1e-40, false, 'nearest'), 0xff);
    assert.equal(encodeFloat8E8M0(NaN), 0xff);
    assert.equal(encodeFloat8E8M0(-4), 129, 'sign ignored (undefined in ONNX; reference drops the sign bit)');
    assert.throws(() => encodeFloat8E8M0(3, true, 'bogus' as E8M0RoundMode), RangeError);
  });

  test('matches the brute-force oracle on random and edge inputs', () => {
    const r = rng(11);
    const xs: number[] = [0, 2 ** -127, 2 ** 127, 2 ** -128, 1.5 * 2 ** -127, 2 ** 127 * 1.0000001, Infinity, -0];
    for (let k = -127; k <= 127; k++) xs.push(Math.pow(2, k) * 1.5, Math.pow(2, k) * 1.4999999, Math.pow(2, k) * 1.5000001);
    for (let i = 0; i < 3000; i++) {
      xs.push(Math.pow(2, (r() - 0.5) * 270));
      xs.push(f32FromBits(Math.floor(r() * 0x7f800000)));
    }
    for (const x of xs)
      for (const mode of ['up', 'down', 'nearest'] as const)
        for (const sat of [true, false])
          assert.equal(encodeFloat8E8M0(x, sat, mode), oracleE8M0(x, sat, mode), `e8m0(${x}, ${sat}, ${mode})`);
  });
});

// ------------------------------------------------------------------------------------------------
// FLOAT4E2M1
// ------------------------------------------------------------------------------------------------

describe('FLOAT4E2M1', () => {
  const table = buildTable(FP4);
  const VALUES = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

  test('all 16 codes decode to ±{0,.5,1,1.5,2,3,4,6} and round-trip', () => {
    for (let c = 0; c < 16; c++) {
      const want = c & 8 ? -VALUES[c & 7]! : VALUES[c & 7]!;
      assert.ok(Object.is(decodeFloat4E2M1(c), want), `code ${c}`);
      assert.ok(Object.is(fmtValue(FP4, c), want));
      assert.equal(encodeFloat4E2M1(want), c);
    }
  });

  test('SPEC §9 vectors and saturation', () => {
    assert.equal(decodeFloat4E2M1(encodeFloat4E2M1(5.0)), 4, '5.0 ties to even mantissa -> 4');
    assert.equal(decodeFloat4E2M1(encodeFloat4E2M1(5.1)), 6);
    assert.equal(encodeFloat4E2M1(-5), 0xe);
    assert.equal(encodeFloat4E2M1(7), 0x7);
    assert.equal(encodeFloat4E2M1(100), 0x7);
    assert.equal(encodeFloat4E2M1(-100), 0xf);
    assert.equal(encodeFloat4E2M1(Infinity), 0x7);
    assert.equal(encodeFloat4E2M1(-Infinity), 0xf);
    assert.equal(encodeFloat4E2M1(NaN), 0x7, 'NaN -> +6');
    assert.equal(encodeFloat4E2M1(0.25), 0x0);
    assert.equal(encodeFloat4E2M1(0.75), 0x2);
    assert.equal(encodeFloat4E2M1(1.25), 0x2);
    assert.equal(encodeFloat4E2M1(1.75), 0x4);
    assert.equal(encodeFloat4E2M1(2.5), 0x4);
    assert.equal(encodeFloat4E2M1(3.5), 0x6);
    assert.equal(encodeFloat4E2M1(-0), 0x8);
  });

  test('matches the brute-force oracle', () => {
    const xs = [...edgeInputs(table), ...randomInputs(table, 2000, 12)];
    for (const x of xs) assert.equal(encodeFloat4E2M1(x), oracleEncode(FP4, table, x, true, () => 0x7), `fp4(${x})`);
  });
});

// ------------------------------------------------------------------------------------------------
// Sub-byte packing
// ------------------------------------------------------------------------------------------------

describe('sub-byte packing', () => {
  test('int4 pack(1,-1) = 0xF1 and odd counts pad with zero', () => {
    assert.deepEqual([...packNibbles([1, -1])], [0xf1]);
    assert.deepEqual([...packNibbles([1, 2, 3])], [0x21, 0x03]);
    assert.deepEqual([...packNibbles([])], []);
    assert.deepEqual([...packNibbles([15, 0, -8])], [0x0f, 0x08]);
    assert.deepEqual([...unpackInt4(new Uint8Array([0xf1]), 2)], [1, -1]);
    assert.deepEqual([...unpackUint4(new Uint8Array([0xf1, 0x08]), 3)], [1, 15, 8]);
    assert.deepEqual([...unpackInt4(new Uint8Array([0x87]), 2)], [7, -8]);
    assert.throws(() => packNibbles([16]), RangeError);
    assert.throws(() => packNibbles([-9]), RangeError);
    assert.throws(() => packNibbles([1.5]), RangeError);
    assert.throws(() => unpackInt4(new Uint8Array(1), 3), RangeError);
  });

  test('int4 / uint4 round trips on random data', () => {
    const r = rng(13);
    for (const n of [1, 2, 7, 64, 1001]) {
      const s = Array.from({ length: n }, () => Math.floor(r() * 16) - 8);
      const u = Array.from({ length: n }, () => Math.floor(r() * 16));
      const ps = packNibbles(s);
      assert.equal(ps.length, Math.ceil(n / 2));
      assert.deepEqual([...unpackInt4(ps, n)], s);
      assert.deepEqual([...unpackUint4(packNibbles(u), n)], u);
      if (n % 2 === 1) assert.equal(ps[ps.length - 1]! >> 4, 0, 'padding nibble is zero');
      const out = new Int8Array(n + 5).fill(99);
      assert.equal(unpackInt4(ps, n, out), out);
      assert.deepEqual([...out.subarray(0, n)], s);
      assert.equal(out[n], 99, 'does not write past count');
    }
  });

  test('fp4 packing', () => {
    const vals = [0.5, -6, 5, 1.25, 100];
    const packed = packFp4(vals);
    assert.deepEqual([...packed], [0x1 | (0xf << 4), 0x6 | (0x2 << 4), 0x7]);
    assert.deepEqual([...unpackFp4(packed, 5)], [0.5, -6, 4, 1, 6]);
    const codes = Array.from({ length: 16 }, (_, i) => i);
    const dec = unpackFp4(packNibbles(codes), 16);
    codes.forEach((c) => assert.ok(Object.is(dec[c], decodeFloat4E2M1(c))));
  });

  test('2-bit packing: element 0 in the lowest bits', () => {
    assert.deepEqual([...packCrumbs([1, 2, 3, 0, 1])], [0x39, 0x01]);
    assert.deepEqual([...packCrumbs([-1, -2, 1, 0])], [0x1b]);
    assert.deepEqual([...unpackInt2(new Uint8Array([0x1b]), 4)], [-1, -2, 1, 0]);
    assert.deepEqual([...unpackUint2(new Uint8Array([0x39, 0x01]), 5)], [1, 2, 3, 0, 1]);
    assert.throws(() => packCrumbs([4]), RangeError);
    assert.throws(() => unpackUint2(new Uint8Array(1), 5), RangeError);
    const r = rng(14);
    for (const n of [1, 3, 4, 5, 333]) {
      const s = Array.from({ length: n }, () => Math.floor(r() * 4) - 2);
      const p = packCrumbs(s);
      assert.equal(p.length, Math.ceil(n / 4));
      assert.deepEqual([...unpackInt2(p, n)], s);
      assert.deepEqual([...unpackUint2(p, n)], s.map((v) => v & 3));
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Quantizers
// ------------------------------------------------------------------------------------------------

describe('integer quantizers (QuantizeLinear / DequantizeLinear)', () => {
  test('SPEC §9 vectors', () => {
    assert.equal(quantizeInt(2.5, 1, 0, 'i8'), 2);
    assert.equal(quantizeInt(3.5, 1, 0, 'i8'), 4);
    assert.equal(quantizeInt(-2.5, 1, 0, 'i8'), -2);
    assert.equal(quantizeInt(300, 1, 0, 'i8'), 127);
    assert.equal(quantizeInt(-300, 1, 0, 'i8'), -128);
  });

  test('zero points, scales and saturation per dtype', () => {
    assert.equal(quantizeInt(-1, 0.5, 128, 'u8'), 126);
    assert.equal(quantizeInt(-1000, 0.5, 128, 'u8'), 0);
    assert.equal(quantizeInt(1000, 0.5, 128, 'u8'), 255);
    assert.equal(quantizeInt(0.75, 0.5, 3, 'u4'), 5, '1.5 ties to 2');
    assert.equal(quantizeInt(100, 1, 0, 'i4'), 7);
    assert.equal(quantizeInt(-100, 1, 0, 'i4'), -8);
    assert.equal(quantizeInt(-100, 1, 0, 'i2'), -2);
    assert.equal(quantizeInt(100, 1, 0, 'u2'), 3);
    assert.equal(quantizeInt(1e6, 1, 0, 'i16'), 32767);
    assert.equal(quantizeInt(1e6, 1, 0, 'u16'), 65535);
    assert.equal(quantizeInt(1e12, 1, 0, 'i32'), 2147483647);
    assert.equal(quantizeInt(Infinity, 1, 0, 'i8'), 127);
    assert.equal(quantizeInt(-Infinity, 1, 0, 'u8'), 0);
    assert.equal(quantizeInt(NaN, 1, 5, 'u8'), 5);
    assert.equal(quantizeInt(-0.4, 1, 0, 'i8') + 0, 0);
    assert.equal(dequantizeInt(126, 0.5, 128), -1);
    assert.equal(dequantizeInt(-8, 0.25), -2);
    assert.equal(dequantizeInt(3, 0.1, 0, true), Math.fround(0.30000000000000004));
  });

  test('float32 mode reproduces float32 division (differs from the exact quotient near ties)', () => {
    const x = Math.fround(0.35);
    const s = Math.fround(0.1);
    // exact quotient 3.49999988824129... rounds to 3, but it is within half a float32 ulp of 3.5 -> 4 in float32
    assert.equal(quantizeInt(x, s, 0, 'i8'), 3);
    assert.equal(quantizeInt(x, s, 0, 'i8', true), 4);
  });

  test('saturationRange', () => {
    const want: Record<IntQuantDType, [number, number]> = {
      i8: [-128, 127], u8: [0, 255], i16: [-32768, 32767], u16: [0, 65535], i4: [-8, 7], u4: [0, 15],
      i2: [-2, 1], u2: [0, 3], i32: [-2147483648, 2147483647],
    };
    for (const [d, [lo, hi]] of Object.entries(want) as Array<[IntQuantDType, [number, number]]>) {
      assert.deepEqual(saturationRange(d), { min: lo, max: hi }, d);
      assert.ok(isIntQuantDType(d));
    }
    assert.equal(isIntQuantDType('f32'), false);
    assert.throws(() => saturationRange('f32' as IntQuantDType), RangeError);
  });

  test('property: |dequantize(quantize(x)) - x| <= scale/2 inside the saturation range', () => {
    const dtypes: IntQuantDType[] = ['i8', 'u8', 'i16', 'u16', 'i4', 'u4', 'i2', 'u2', 'i32'];
    fc.assert(
      fc.property(
        fc.constantFrom(...dtypes),
        fc.double({ min: 1e-6, max: 1e3, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: -1, max: 1, noNaN: true }),
        fc.double({ min: -1e12, max: 1e12, noNaN: true }),
        fc.boolean(),
        (dtype, scale, zpFrac, t, xWide, useWide) => {
          const { min, max } = saturationRange(dtype);
          const zp = Math.round(min + zpFrac * (max - min));
          // mostly values that land inside the range, sometimes arbitrary finite x
          const x = useWide ? xWide : (zp + t * (max - min)) * scale - zp * scale;
          const y = x / scale + zp;
          fc.pre(y >= min && y <= max);
          const q = quantizeInt(x, scale, zp, dtype);
          assert.ok(Number.isInteger(q) && q >= min && q <= max);
          const err = Math.abs(dequantizeInt(q, scale, zp) - x);
          // scale/2 plus a few float64 ulps of the operands (the bound is exact in real arithmetic)
          return err <= scale / 2 + 1e-12 * (Math.abs(x) + scale);
        },
      ),
      { numRuns: 2000, seed: 42 },
    );
  });
});
