// Streaming signed histograms for activation calibration: fixed memory, range that doubles (exact bin-pair merges) as data grows.
//
// Layout: 2·B bins over [-R, R), bin j covering [-R + j·w, -R + (j+1)·w) with w = R / B (B = HIST_BINS = 2048
// per sign). Because the bins are symmetric around 0, the histogram of |x| (B bins over [0, R)) is an exact fold:
// |x|-bin i = bin B+i (positive side) + bin B-1-i (negative side), and each side on its own is a histogram of
// magnitudes too. One structure therefore serves the percentile (either form), TensorRT's entropy method
// (|x| or per side) and the MSE search. (Mirroring half-open bins: a negative value exactly on an edge, -k·w,
// counts in |x|-bin k-1, a positive one in bin k.)
//
// Streaming without a second pass over the data: R is set from the first batch (its largest finite |x|). When a
// later batch holds a value beyond R, the histogram doubles R as often as needed, each time merging bin pairs
// (2k, 2k+1 of the old grid become one bin of the new grid). The merge is exact: binning x on the old grid and
// then merging gives the same bin as binning it on the new grid, so the result does not depend on the order of
// the batches except through where R ends up.
//
// Resolution this costs: with the final range R and the largest |x| seen, absmax, R < 2·absmax after any growth,
// so [0, absmax] is covered by more than B/2 = 1024 bins (and exactly B = 2048 when the first batch held the
// maximum, the usual case for activations). TensorRT's calibrator takes a first pass for the maximum and then
// uses 2048 bins over [0, absmax]; here the search runs on 1024..2048 bins in exchange for a single pass.
// Memory: 2·2048 float64 counters = 32 KiB per tensor, whatever the number of samples.
//
// NaN and ±Infinity are counted (nonFinite) and kept out of the histogram and of min/max.

export const HIST_BINS = 2048;

/** Largest number of out-of-range values buffered before the range grows mid-batch. */
const OVERFLOW_CAP = 4096;

/**
 * Scratch counters of addWithRange (two interleaved sub-histograms of 2·HIST_BINS + 2 slots), emptied after each
 * call. Module-level so that V8 sees one constant array in the hot loop (measured ~2x faster than a field).
 */
const FAST_SLOTS = 2 * HIST_BINS + 2;
const FAST = new Uint32Array(2 * FAST_SLOTS);

/**
 * The hot loop of addWithRange: slot (x·inv + off) | 0, clamped to `top`, in two interleaved sub-histograms so
 * that runs of equal values (the zeros after a ReLU) do not serialize on one counter's store-to-load latency.
 */
function binFast(data: Float32Array | Float64Array, inv: number, off: number, top: number): void {
  const n = data.length;
  const n2 = n & ~1;
  for (let k = 0; k < n2; k += 2) {
    let i = (data[k]! * inv + off) | 0;
    if (i > top) i = top;
    FAST[i]++;
    let j = (data[k + 1]! * inv + off) | 0;
    if (j > top) j = top;
    FAST[j + FAST_SLOTS]++;
  }
  if (n2 < n) {
    let i = (data[n2]! * inv + off) | 0;
    if (i > top) i = top;
    FAST[i]++;
  }
}

export class StreamingHistogram {
  /** Bins per sign; the signed histogram has 2·bins bins. */
  readonly bins: number;
  /** counts[j], j in [0, 2·bins): elements in [-R + j·w, -R + (j+1)·w). */
  counts: Float64Array;
  /** R: half-width of the binned range; 0 until a non-zero finite value arrives. */
  range = 0;
  /** Finite elements binned (including exact zeros seen before the range was set). */
  total = 0;
  /** Smallest and largest finite values seen (+Infinity / -Infinity while there are none). */
  min = Infinity;
  max = -Infinity;
  /** NaN and infinite elements seen (not binned). */
  nonFinite = 0;
  /** Zeros seen while range was 0 (all data so far exactly zero); binned as soon as the range is set. */
  private pendingZeros = 0;
  private readonly overflow = new Float64Array(OVERFLOW_CAP);
  private overflowCount = 0;
  private scratch: Float64Array;

  constructor(bins = HIST_BINS) {
    if (!Number.isInteger(bins) || bins < 2 || bins % 2 !== 0) throw new RangeError(`histogram bins must be an even integer >= 2, not ${bins}`);
    this.bins = bins;
    this.counts = new Float64Array(2 * bins);
    this.scratch = new Float64Array(2 * bins);
  }

  /** Bin width w = R / bins (0 before the range is set). */
  get width(): number {
    return this.range / this.bins;
  }

  /** Adds every element of `data` (one pass; a second pass only for the first non-zero batch, to set R). */
  add(data: Float32Array | Float64Array): void {
    const n = data.length;
    if (n === 0) return;
    if (this.range === 0) {
      const a = absMaxFinite(data);
      if (a === 0) {
        // nothing but zeros and non-finite values: count them, nothing to bin yet
        let zeros = 0;
        for (let k = 0; k < n; k++) if (data[k] === 0) zeros++;
        this.pendingZeros += zeros;
        this.total += zeros;
        this.nonFinite += n - zeros;
        if (zeros > 0) {
          if (this.min > 0) this.min = 0;
          if (this.max < 0) this.max = 0;
        }
        return;
      }
      this.range = a;
      if (this.pendingZeros > 0) {
        this.counts[this.bins] += this.pendingZeros;
        this.pendingZeros = 0;
      }
    }
    let pos = 0;
    while (pos < n) {
      const stop = this.binRun(data, pos);
      this.flushOverflow();
      pos = stop;
    }
  }

  /**
   * Adds `data` whose finite minimum and maximum are already known (onnxruntime computes them in-graph): the range
   * grows first, then one branch-free pass bins every element (~1.2 ns per element here). NaN elements, which
   * onnxruntime's ReduceMin/ReduceMax skip, are caught in a trap slot (ToInt32(NaN) = 0) and counted as
   * non-finite. `min` and `max` must be finite and bound every non-NaN element.
   */
  addWithRange(data: Float32Array | Float64Array, min: number, max: number): void {
    const n = data.length;
    if (n === 0) return;
    if (!(Number.isFinite(min) && Number.isFinite(max))) throw new RangeError(`addWithRange needs a finite range, not [${min}, ${max}]`);
    const a = Math.max(-min, max);
    if (a === 0) {
      // only zeros (and maybe NaN): reuse the general path, which handles the unset range
      this.add(data);
      return;
    }
    if (this.range === 0) {
      this.range = a;
      if (this.pendingZeros > 0) {
        this.counts[this.bins] += this.pendingZeros;
        this.pendingZeros = 0;
      }
    } else {
      this.growTo(a);
    }
    const B2 = 2 * this.bins;
    // slots: 0 = NaN trap, 1 = rounding just below -R (folded into bin 0), 2 .. B2+1 = bins 0 .. B2-1
    const S = B2 + 2;
    if (S !== FAST_SLOTS) throw new RangeError(`addWithRange needs ${HIST_BINS} bins per side`);
    const f = FAST;
    const inv = this.bins / this.range;
    const off = this.bins + 2; // (v + R)·inv + 2 with R·inv = bins
    const top = B2 + 1;
    binFast(data, inv, off, top);
    const c = this.counts;
    const nan = f[0]! + f[S]!;
    c[0] += f[1]! + f[S + 1]!;
    for (let s = 2; s < S; s++) c[s - 2] += f[s]! + f[s + S]!;
    f.fill(0);
    this.nonFinite += nan;
    this.total += n - nan;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
  }

  /**
   * Bins data[pos..] on the current grid until the overflow buffer fills; returns where it stopped.
   * The hot loop: two compares for min/max, one multiply, one truncation, one increment per element.
   */
  private binRun(data: Float32Array | Float64Array, pos: number): number {
    const n = data.length;
    const c = this.counts;
    const R = this.range;
    const nR = -R;
    const inv = this.bins / R;
    const last = 2 * this.bins - 1;
    const ov = this.overflow;
    let no = 0;
    let mn = this.min;
    let mx = this.max;
    let binned = 0;
    let k = pos;
    for (; k < n; k++) {
      const v = data[k]!;
      if (v <= R && v >= nR) {
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        // v + R >= 0, so truncation is floor; v === R lands one past the end
        let j = ((v + R) * inv) | 0;
        if (j > last) j = last;
        c[j]++;
        binned++;
      } else {
        ov[no++] = v;
        if (no === OVERFLOW_CAP) {
          k++;
          break;
        }
      }
    }
    this.min = mn;
    this.max = mx;
    this.total += binned;
    this.overflowCount = no;
    return k;
  }

  /** Grows the range to cover the buffered out-of-range values, then bins them. */
  private flushOverflow(): void {
    const no = this.overflowCount;
    if (no === 0) return;
    this.overflowCount = 0;
    const ov = this.overflow;
    let a = 0;
    let finite = 0;
    for (let k = 0; k < no; k++) {
      const v = ov[k]!;
      if (v - v !== 0) continue; // NaN or ±Infinity
      const av = v < 0 ? -v : v;
      if (av > a) a = av;
      ov[finite++] = v;
    }
    this.nonFinite += no - finite;
    if (finite === 0) return;
    this.growTo(a);
    const c = this.counts;
    const R = this.range;
    const inv = this.bins / R;
    const last = 2 * this.bins - 1;
    for (let k = 0; k < finite; k++) {
      const v = ov[k]!;
      if (v < this.min) this.min = v;
      if (v > this.max) this.max = v;
      let j = Math.floor((v + R) * inv);
      if (j > last) j = last;
      if (j < 0) j = 0;
      c[j]++;
    }
    this.total += finite;
  }

  /** Doubles R (merging bin pairs) until |x| <= a fits. */
  growTo(a: number): void {
    if (!(a > this.range)) return;
    if (this.range === 0) {
      this.range = a;
      return;
    }
    const B = this.bins;
    while (this.range < a) {
      const src = this.counts;
      const dst = this.scratch;
      dst.fill(0);
      // old bin j covers [-R + j w, ...) = [-2R + (j + B) w, ...): new bin (j + B) >> 1 on the grid of width 2w
      for (let j = 0; j < 2 * B; j++) dst[(j + B) >> 1] += src[j]!;
      this.counts = dst;
      this.scratch = src;
      this.range *= 2;
      if (!Number.isFinite(this.range)) throw new RangeError('histogram range overflowed');
    }
  }

  /** Histogram of |x|: `bins` counts over [0, R) with width w. */
  absCounts(counts: Float64Array = this.countsWithPending()): Float64Array {
    const B = this.bins;
    const out = new Float64Array(B);
    for (let i = 0; i < B; i++) out[i] = counts[B + i]! + counts[B - 1 - i]!;
    return out;
  }

  /** Magnitude histogram of one sign: side 'pos' = counts of x in [i·w, (i+1)·w), 'neg' = of -x. */
  sideCounts(side: 'pos' | 'neg', counts: Float64Array = this.countsWithPending()): Float64Array {
    const B = this.bins;
    const out = new Float64Array(B);
    if (side === 'pos') for (let i = 0; i < B; i++) out[i] = counts[B + i]!;
    else for (let i = 0; i < B; i++) out[i] = counts[B - 1 - i]!;
    return out;
  }

  /** The signed counts (zeros pending before the range was set are in the bin of 0). */
  countsWithPending(): Float64Array {
    if (this.pendingZeros === 0) return this.counts;
    const c = new Float64Array(this.counts);
    c[this.bins] += this.pendingZeros;
    return c;
  }

  /**
   * Signed counts of clamp(x, lo, hi): the mass below lo moves into the bin that holds lo, the mass above hi into
   * the bin that holds hi (what a Relu/Clip in front of the quantizer does to the distribution).
   */
  clampedCounts(lo: number, hi: number): Float64Array {
    const src = this.countsWithPending();
    const n = src.length;
    if (this.range === 0) return src;
    const inv = this.bins / this.range;
    const R = this.range;
    const binOf = (x: number): number => Math.min(n - 1, Math.max(0, Math.floor((x + R) * inv)));
    const jl = lo > -R ? binOf(lo) : 0;
    const jh = hi < R ? binOf(hi) : n - 1;
    if (jl === 0 && jh === n - 1) return src;
    const out = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const t = j < jl ? jl : j > jh ? jh : j;
      out[t] += src[j]!;
    }
    return out;
  }
}

/** Largest finite |x| (0 when there is none). */
export function absMaxFinite(data: Float32Array | Float64Array): number {
  let a = 0;
  for (let k = 0; k < data.length; k++) {
    const v = data[k]!;
    const av = v < 0 ? -v : v;
    if (av > a && av !== Infinity) a = av;
  }
  return a;
}

/**
 * The value below which a fraction q of the histogram's mass lies, interpolating linearly inside the bin
 * (elements assumed uniform within a bin). `counts[i]` covers [origin + i·width, origin + (i+1)·width).
 */
export function histQuantile(counts: Float64Array, origin: number, width: number, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return origin;
  const target = Math.min(1, Math.max(0, q)) * total;
  // q·total carries float error (99.9 / 100 = 0.9990000000000001): a rank within 1e-12 (relative) of a bin's cumulative
  // count belongs to that bin, not to the next non-empty one
  const slack = target * 1e-12;
  let cum = 0;
  let lastNonEmpty = -1;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c === 0) continue;
    lastNonEmpty = i;
    if (cum + c >= target - slack) return origin + (i + Math.min(1, Math.max(0, (target - cum) / c))) * width;
    cum += c;
  }
  return origin + (lastNonEmpty + 1) * width;
}

/** One past the index of the last non-zero count (0 for an empty histogram). */
export function usedBins(counts: Float64Array): number {
  for (let i = counts.length - 1; i >= 0; i--) if (counts[i] !== 0) return i + 1;
  return 0;
}
