// Bias correction: moves the mean output shift that weight quantization causes into the layer's float bias.
//
// A quantized weight W_q = W + ΔW changes a layer's output by ΔW·x. Its expectation over the data,
// ΔW·E[x], is a constant per output channel, and it does not average out: rounding errors of one output channel's
// weights meet inputs that are mostly positive (after ReLU), so the shift grows with fan-in like a random walk
// instead of cancelling. Subtracting it from the bias removes that part of the error exactly in expectation
// (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019, §4.2; the
// empirical variant, with E[x] measured on the calibration data instead of derived from BatchNorm statistics):
//
//   Conv   W [M, C/g, kH, kW]:  b'[o] = b[o] - Σ_{c<C/g, k} ΔW[o, c, k] · μ[g(o)·C/g + c]     (μ: per input channel)
//   Gemm   B [K, N] / [N, K]:   C'[n] = C[n] - α/β · Σ_k ΔB[k, n] · μ[k]                        (transA = 0)
//   MatMul B [K, N] + Add(c):   c'[n] = c[n] - Σ_k ΔB[k, n] · μ[k]                               (the Linear bias)
//
// For a Conv the input mean is per channel, and zero padding carries no mean: kernel tap k reads real input at only a
// fraction f_k of the output positions (f_k = 1 without padding; in a 3x3 conv over a 3-pixel-high map the top and
// bottom rows of taps read padding at a third of the positions). The constant that best cancels a shift varying
// over positions is its average, so each tap is weighted by f_k:
//   b'[o] = b[o] - Σ_c μ[c] Σ_k ΔW[o, c, k] · f_k,   f_k = Π_dims (output positions where the tap is inside) / (outputs)
// computed from the input's spatial dims as calibration saw them (else its static shape) and the window geometry
// shape inference uses (strides, pads or auto_pad, dilations); an unknown spatial dim counts as unpadded (f = 1
// along it). Treating padding as the mean (f_k = 1 everywhere) left the PaddleOCR recognizer (48-pixel-high lines, 3-pixel-high maps after its
// stem) at 97.6 (ort) / 96.6 (tensorrt) exact match; padding-aware it is 98.0 / 97.2 (FP32 98.0). A Conv without
// bias gets one; a MatMul without a following constant-bias Add is left alone (adding an Add would change
// how the backends fuse it), as is a Gemm whose C is not a per-column vector. The corrected bias is a new
// initializer (`<node>_bias_corrected`): a bias shared by several layers is never changed under another's feet.
// The input means come from collectStatistics' `channelMeans` on the FP32 model (the quantized model's own inputs
// differ by the upstream error, which this first-order correction ignores).

import { QccError } from '../../ir/errors.js';
import { tensorFromTyped, type Model, type Node, type Value } from '../../ir/ir.js';
import { Rewriter } from '../../ir/rewriter.js';
import { windowGeometry } from '../../ir/shape-inference.js';
import { unpackInt4, unpackUint4 } from '../../ir/numerics.js';
import { dequantizeStored } from './qdq-math.js';
import { unusedName } from './quantize-weights.js';
import type { Granularity } from './types.js';

/** What bias correction did to one layer. */
export interface BiasCorrectionReport {
  readonly node: string;
  /** RMS over output channels of the subtracted shift, and of the original bias (0 without one). */
  readonly shiftRms: number;
  readonly biasRms: number;
}

/** The channel axis collectStatistics must average over for a weighted node's activation input (or undefined). */
export function meanAxisFor(n: Node): number | undefined {
  switch (n.op) {
    case 'Conv':
      return 1;
    case 'Gemm':
      return n.attrInt('transA', 0) === 0 ? -1 : undefined;
    case 'MatMul':
      return -1;
    default:
      return undefined;
  }
}

/** The float weights a DequantizeLinear over initializers produces, float64; undefined when it is not one. */
function dequantizedWeight(v: Value | null | undefined): { values: Float64Array; dims: readonly number[] } | undefined {
  const dq = v?.producer;
  if (!dq || dq.op !== 'DequantizeLinear') return undefined;
  const [x, s, z] = [dq.inputs[0]?.initializer, dq.inputs[1]?.initializer, dq.inputs[2]?.initializer];
  if (!x || !s) return undefined;
  const dt = x.dtype;
  if (dt !== 'i8' && dt !== 'u8' && dt !== 'i4' && dt !== 'u4' && dt !== 'fp8e4m3') return undefined;
  const dims = x.dims.map(Number);
  const rank = dims.length;
  let g: Granularity;
  const block = dq.attrInt('block_size', 0);
  const axisRaw = dq.attrInt('axis', 1);
  const axis = axisRaw < 0 ? axisRaw + rank : axisRaw;
  if (s.dims.length === 0) g = { kind: 'per-tensor' };
  else if (block > 0) g = { kind: 'blocked', axis, size: block };
  else g = { kind: 'per-channel', axis };
  const scale = s.typed() as Float32Array;
  const zCount = z ? z.dims.reduce((a, d) => a * Number(d), 1) : 0;
  const zp = !z
    ? undefined
    : z.dtype === 'i4'
      ? Array.from(unpackInt4(z.bytes(), zCount))
      : z.dtype === 'u4'
        ? Array.from(unpackUint4(z.bytes(), zCount))
        : z.dtype === 'fp8e4m3'
          ? undefined // FP8 zero points are 0 (insert/quantize refuse others)
          : Array.from(z.typed() as ArrayLike<number>, Number);
  const raw = x.bytes();
  const data = dt === 'i8' ? new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength) : raw;
  return { values: dequantizeStored(data, dt, dims, g, scale, zp), dims };
}

/**
 * f_k per kernel tap (row-major over the kernel's spatial dims): the fraction of output positions at which tap k
 * reads the input rather than zero padding. `input` is the Conv input's shape [N, C, spatial...] (undefined: f = 1;
 * a symbolic spatial dim: f = 1 along it).
 */
export function tapCoverage(n: Node, kernel: readonly number[], input: readonly unknown[] | undefined): Float64Array {
  const spatial = input?.length === kernel.length + 2 ? input.slice(2) : undefined;
  const geo = spatial ? windowGeometry(n, [...kernel], spatial) : undefined;
  let out = Float64Array.of(1);
  kernel.forEach((K, d) => {
    // along this dim: the share of output positions at which tap k lands inside [0, L)
    const f = new Float64Array(K).fill(1);
    const g = geo?.[d];
    const L = spatial?.[d] as number;
    if (g && g.out > 0) {
      for (let k = 0; k < K; k++) {
        let inside = 0;
        for (let o = 0; o < g.out; o++) {
          const i = o * g.stride - g.padBegin + k * g.dilation;
          if (i >= 0 && i < L) inside++;
        }
        f[k] = inside / g.out;
      }
    }
    // the product over dims, row-major over the kernel
    const next = new Float64Array(out.length * K);
    for (let a = 0; a < out.length; a++) for (let k = 0; k < K; k++) next[a * K + k] = out[a]! * f[k]!;
    out = next;
  });
  return out;
}

/** What correctBias reads of a layer input's calibration statistics (a TensorStats has both). */
export interface InputStats {
  readonly channelMean?: Float64Array;
  readonly observedShape?: readonly number[];
}

function rms(a: ArrayLike<number>): number {
  if (a.length === 0) return 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s / a.length);
}

/**
 * Corrects the biases of the quantized layers of `q` (see the file comment). `fp` is the FP32 model `q` was made
 * from (same node names; its float weights are the reference), `inputs` the calibration statistics of each layer's
 * activation input in `fp` by tensor name (collectStatistics with `channelMeans`): its per-channel means and the
 * shape calibration saw (Conv padding; the inferred static shape when absent). Layers without a quantized constant
 * weight or without means are skipped.
 */
export function correctBias(q: Model, fp: Model, inputs: ReadonlyMap<string, InputStats>): BiasCorrectionReport[] {
  const rw = new Rewriter(q.graph);
  const out: BiasCorrectionReport[] = [];
  for (const n of [...q.graph.nodes()]) {
    if (n.op !== 'Conv' && n.op !== 'Gemm' && n.op !== 'MatMul') continue;
    const ref = fp.graph.findNode(n.name);
    if (!ref || ref.op !== n.op) continue;
    const wq = dequantizedWeight(n.inputs[1]);
    const w = ref.inputs[1]?.initializer;
    if (!wq || !w) continue;
    const xs = inputs.get(ref.inputs[0]?.name ?? '');
    const mu = xs?.channelMean;
    if (!mu) continue;
    const wf = w.typed() as Float32Array | Float64Array;
    if (wf.length !== wq.values.length) throw new QccError('E_PASS_FAILED', `bias correction: '${n.name}' has ${wq.values.length} quantized weights but ${wf.length} float ones`, { node: n.name });
    const dims = wq.dims;
    const qv = wq.values;
    let shift: Float64Array;
    let biasTarget: { node: Node; input: number; scale: number } | undefined;
    if (n.op === 'Conv') {
      const [M, cg] = [dims[0]!, dims[1]!];
      const k = wf.length / (M * cg);
      const groups = n.attrInt('group', 1);
      const mg = M / groups;
      if (mu.length !== cg * groups) continue;
      const cover = tapCoverage(ref, dims.slice(2), xs.observedShape ?? ref.inputs[0]?.shape);
      if (cover.length !== k) throw new QccError('E_PASS_FAILED', `bias correction: '${n.name}' has ${k} kernel taps but ${cover.length} coverage factors`, { node: n.name });
      shift = new Float64Array(M);
      for (let o = 0; o < M; o++) {
        const base = Math.floor(o / mg) * cg;
        let s = 0;
        for (let c = 0; c < cg; c++) {
          const m = mu[base + c]!;
          const off = (o * cg + c) * k;
          let d = 0;
          for (let j = 0; j < k; j++) d += (qv[off + j]! - wf[off + j]!) * cover[j]!;
          s += d * m;
        }
        shift[o] = s;
      }
      biasTarget = { node: n, input: 2, scale: 1 };
    } else {
      if (dims.length !== 2) continue;
      const transB = n.op === 'Gemm' ? n.attrInt('transB', 0) : 0;
      const [K, N] = transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!];
      if (mu.length !== K) continue;
      shift = new Float64Array(N);
      for (let kk = 0; kk < K; kk++) {
        const m = mu[kk]!;
        if (m === 0) continue;
        for (let o = 0; o < N; o++) {
          const i = transB ? o * K + kk : kk * N + o;
          shift[o]! += (qv[i]! - wf[i]!) * m;
        }
      }
      if (n.op === 'Gemm') {
        const alpha = n.attrFloat('alpha', 1);
        const beta = n.attrFloat('beta', 1);
        const c = n.inputs[2];
        if (c && !(c.initializer && c.initializer.dims.length === 1 && Number(c.initializer.dims[0]) === N)) continue;
        if (beta === 0) continue;
        biasTarget = { node: n, input: 2, scale: alpha / beta };
      } else {
        // the Linear's bias: the single consumer is Add(y, c) with c a constant [N]
        const y = n.outputs[0]!;
        const u = y.uses.length === 1 && !y.graph.outputs.includes(y) ? y.uses[0]! : undefined;
        const add = u?.node;
        if (!add || add.op !== 'Add') continue;
        const other = add.inputs[1 - u!.index];
        const ci = other?.initializer;
        if (!ci || ci.dims.length !== 1 || Number(ci.dims[0]) !== N || ci.dtype !== 'f32') continue;
        biasTarget = { node: add, input: 1 - u!.index, scale: 1 };
      }
    }
    const bv = biasTarget.node.inputs[biasTarget.input];
    const old = bv?.initializer;
    if (bv && (!old || old.dtype !== 'f32')) continue; // a computed or non-float bias is left alone
    const M = shift.length;
    const b = old ? (old.typed() as Float32Array) : undefined;
    if (b && b.length !== M) continue;
    const nb = new Float32Array(M);
    for (let o = 0; o < M; o++) nb[o] = (b ? b[o]! : 0) - biasTarget.scale * shift[o]!;
    const nv = rw.addInitializer(tensorFromTyped(unusedName(q.graph, `${n.name}_bias_corrected`), 'f32', [M], nb));
    if (bv) rw.setInput(biasTarget.node, biasTarget.input, nv);
    else rw.setInputs(biasTarget.node, [...biasTarget.node.inputs, nv]);
    out.push({ node: n.name, shiftRms: rms(shift), biasRms: b ? rms(b) : 0 });
  }
  return out;
}
