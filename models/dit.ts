// DiT (facebookresearch/DiT models.py) as an IR graph: patchify, sin-cos position embedding, timestep and label embedders, adaLN-Zero blocks, final layer, unpatchify.

import type { Model, Value } from '../ir/ir.js';
import { init } from './init.js';
import { N, Net, type NetOptions } from './nn.js';
import { attention, mlp } from './vit.js';

export interface DiTConfig {
  readonly hidden: number;
  readonly depth: number;
  readonly heads: number;
  readonly patch: number;
  /** latent side (input_size) */
  readonly size: number;
  readonly inChannels: number;
  readonly classes: number;
  readonly learnSigma: boolean;
  readonly mlpRatio: number;
}

export const DIT_S2: DiTConfig = { hidden: 384, depth: 12, heads: 6, patch: 2, size: 32, inChannels: 4, classes: 1000, learnSigma: true, mlpRatio: 4 };
export const DIT_XL2: DiTConfig = { hidden: 1152, depth: 28, heads: 16, patch: 2, size: 32, inChannels: 4, classes: 1000, learnSigma: true, mlpRatio: 4 };

const LN_EPS = 1e-6;
/** TimestepEmbedder.frequency_embedding_size */
const FREQ_DIM = 256;

/**
 * get_2d_sincos_pos_embed(embed_dim, grid_size) from DiT models.py, computed in float64 and rounded to f32 like
 * `torch.from_numpy(pos_embed).float()`. Token m = i*grid + j (row i, column j); the first half of the channels
 * encodes np.meshgrid's first output (the column j), the second half the row i; each half is [sin | cos] over
 * omega_k = 1 / 10000^(k / (D/4)).
 */
export function sincosPosEmbed(dim: number, grid: number, out: Float32Array): void {
  const quarter = dim / 4;
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (i * grid + j) * dim;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / 10000 ** (k / quarter);
        out[row + k] = Math.sin(j * omega);
        out[row + quarter + k] = Math.cos(j * omega);
        out[row + 2 * quarter + k] = Math.sin(i * omega);
        out[row + 3 * quarter + k] = Math.cos(i * omega);
      }
    }
  }
}

/**
 * DiT(input_size, patch_size, in_channels, hidden_size, depth, num_heads, mlp_ratio, class_dropout_prob=0.1,
 * num_classes, learn_sigma). Inputs latent [N,4,32,32] f32, timestep [N] f32, class_label [N] i64 (1000 = the
 * null class used for classifier-free guidance) -> output [N,8,32,32] (noise prediction and learned sigma).
 *
 * Init (see the zoo README section): block and final Linears trunc_normal(0.02) with zero bias (the repo uses
 * xavier_uniform, of the same scale), patch conv He fan-out. Two deliberate deviations keep the untrained network
 * from collapsing to an identity:
 * - adaLN-Zero: DiT zero-initializes the adaLN modulation Linear of every block and of the final layer, and the
 *   final Linear. Exactly zero, every block is the identity (gates 0) and the output is exactly 0; here their
 *   weights AND biases are trunc_normal(0.02).
 * - Conditioning at unit scale: the label table is N(0, 1) (nn.Embedding's default; the repo uses 0.02) and the
 *   timestep MLP is trunc_normal(1/sqrt(fan_in)) (repo: 0.02), so that c = t_emb + y_emb is O(1) as in a trained
 *   DiT. With the repo's 0.02 scales c is ~0.02, the gates are ~0.02 (their bias) and the conditioning barely
 *   reaches the output: on dit-s2, zeroing every block's modulation changed the output by 1.5% (RMS), another
 *   class label by 0.7%. With unit-scale conditioning (seed 0): 27%, 58% (another timestep: 13-16%); tests assert > 5%.
 */
export function buildDiT(name: string, cfg: DiTConfig, o: NetOptions): Model {
  const net = new Net(name, o);
  const D = cfg.hidden;
  const grid = cfg.size / cfg.patch;
  const T = grid * grid;
  const outC = cfg.learnSigma ? 2 * cfg.inChannels : cfg.inChannels;
  /** the adaLN-Zero layers: small random instead of zero (weights and biases) */
  const notZero = init.truncNormal(0.02);

  const x = net.input('latent', 'f32', [N, cfg.inChannels, cfg.size, cfg.size]);
  const t = net.input('timestep', 'f32', [N]);
  const y = net.input('class_label', 'i64', [N]);

  // x_embedder (timm PatchEmbed: conv, flatten(2), transpose(1, 2)) + pos_embed (fixed buffer, not learned)
  let h = net.conv(x, 'x_embedder.proj', { cin: cfg.inChannels, cout: D, k: cfg.patch, stride: cfg.patch, bias: true });
  h = net.transpose(net.reshape(h, [0, D, T], 'x_embedder.flatten'), [0, 2, 1], 'x_embedder.transpose');
  const pos = net.param('pos_embed', [1, T, D], init.values((out) => sincosPosEmbed(D, grid, out)));
  h = net.op('Add', [h, pos], 'pos_add');

  // t_embedder: freqs = exp(-log(10000) * arange(half) / half); args = t[:, None] * freqs; [cos | sin] -> MLP
  const half = FREQ_DIM / 2;
  const ar = net.op('Range', [net.scalar(0), net.scalar(half), net.scalar(1)], 't_embedder.arange');
  const freqs = net.op('Exp', [net.op('Div', [net.op('Mul', [ar, net.scalar(-Math.log(10000))], 't_embedder.mul_log'), net.scalar(half)], 't_embedder.div_half')], 't_embedder.freqs');
  const args = net.op('Mul', [net.unsqueeze(t, [1], 't_embedder.unsqueeze'), freqs], 't_embedder.args');
  const temb = net.op('Concat', [net.op('Cos', [args], 't_embedder.cos'), net.op('Sin', [args], 't_embedder.sin')], 't_embedder.embedding', { axis: -1 });
  let te = net.gemm(temb, 't_embedder.mlp.0', FREQ_DIM, D, init.truncNormal(1 / Math.sqrt(FREQ_DIM)));
  te = net.gemm(net.silu(te, 't_embedder.mlp.1'), 't_embedder.mlp.2', D, D, init.truncNormal(1 / Math.sqrt(D)));

  // y_embedder: embedding table with classes + 1 rows (the last is the CFG null class); no label dropout at inference
  const table = net.param('y_embedder.embedding_table.weight', [cfg.classes + 1, D], init.normal(1));
  const ye = net.op('Gather', [table, y], 'y_embedder', { axis: 0 });
  const c = net.op('Add', [te, ye], 'c');

  /** adaLN_modulation(c).chunk(k, dim=1), each unsqueezed to [N,1,D] for broadcasting over tokens */
  const modulation = (p: string, k: number): Value[] => {
    const m = net.gemm(net.silu(c, `${p}.0`), `${p}.1`, D, k * D, notZero, notZero);
    const m3 = net.unsqueeze(m, [1], `${p}.unsqueeze`);
    return Array.from({ length: k }, (_, i) => net.slice(m3, i * D, (i + 1) * D, 2, `${p}.chunk${i}`));
  };
  /** modulate(x, shift, scale) = x * (1 + scale) + shift */
  const modulate = (v: Value, shift: Value, scale: Value, p: string): Value =>
    net.op('Add', [net.op('Mul', [v, net.op('Add', [scale, net.scalar(1)], `${p}.one_plus_scale`)], `${p}.scale`), shift], `${p}.shift`);

  for (let i = 0; i < cfg.depth; i++) {
    const p = `blocks.${i}`;
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = modulation(`${p}.adaLN_modulation`, 6) as [Value, Value, Value, Value, Value, Value];
    const a = attention(net, modulate(net.layerNorm(h, `${p}.norm1`, D, LN_EPS, false), shiftMsa, scaleMsa, `${p}.modulate1`), `${p}.attn`, T, D, cfg.heads);
    h = net.op('Add', [h, net.op('Mul', [gateMsa, a], `${p}.gate1`)], `${p}.add1`);
    const f = mlp(net, modulate(net.layerNorm(h, `${p}.norm2`, D, LN_EPS, false), shiftMlp, scaleMlp, `${p}.modulate2`), `${p}.mlp`, D, D * cfg.mlpRatio, 'tanh');
    h = net.op('Add', [h, net.op('Mul', [gateMlp, f], `${p}.gate2`)], `${p}.add2`);
  }

  // final_layer: adaLN (shift, scale) -> modulate(norm_final(x)) -> Linear(D, p*p*outC)
  const [shift, scale] = modulation('final_layer.adaLN_modulation', 2) as [Value, Value];
  h = modulate(net.layerNorm(h, 'final_layer.norm_final', D, LN_EPS, false), shift, scale, 'final_layer.modulate');
  const pp = cfg.patch;
  h = net.linear(h, 'final_layer.linear', D, pp * pp * outC, notZero, notZero);

  // unpatchify: [N,T,p*p*C] -> [N,h,w,p,p,C] -> einsum nhwpqc->nchpwq -> [N,C,h*p,w*p]
  h = net.reshape(h, [0, grid, grid, pp, pp, outC], 'unpatchify.reshape');
  h = net.transpose(h, [0, 5, 1, 3, 2, 4], 'unpatchify.einsum');
  h = net.reshape(h, [0, outC, cfg.size, cfg.size], 'unpatchify.reshape_out');
  net.output(h, 'output', [N, outC, cfg.size, cfg.size]);
  return net.b.build();
}
