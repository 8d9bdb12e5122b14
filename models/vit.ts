// timm VisionTransformer (DeiT-Tiny/16, ViT-B/16) as an IR graph: conv patch embedding, class token, learned position embedding, pre-norm blocks.

import type { Model, Value } from '../ir/ir.js';
import { init } from './init.js';
import { N, Net, type NetOptions } from './nn.js';

export interface ViTConfig {
  readonly dim: number;
  readonly depth: number;
  readonly heads: number;
  readonly mlp: number;
  readonly patch: number;
  readonly image: number;
  readonly classes: number;
}

export const VIT_TI16: ViTConfig = { dim: 192, depth: 12, heads: 3, mlp: 768, patch: 16, image: 224, classes: 1000 };
export const VIT_B16: ViTConfig = { dim: 768, depth: 12, heads: 12, mlp: 3072, patch: 16, image: 224, classes: 1000 };

const LN_EPS = 1e-6;

/**
 * timm MHSA: qkv Linear(D, 3D, bias) -> [N,T,3,H,hd] -> (q, k, v) [N,H,T,hd]; softmax(q * hd^-0.5 @ k^T) @ v ->
 * [N,T,D] -> proj Linear(D, D). Shared by ViT and DiT (DiT imports timm's Attention with qkv_bias=True).
 */
export function attention(net: Net, x: Value, p: string, tokens: number, dim: number, heads: number): Value {
  const hd = dim / heads;
  const tn = init.truncNormal(0.02);
  const qkv = net.linear(x, `${p}.qkv`, dim, 3 * dim, tn);
  const r = net.transpose(net.reshape(qkv, [0, tokens, 3, heads, hd], `${p}.reshape_qkv`), [2, 0, 3, 1, 4], `${p}.permute_qkv`);
  const q = net.select(r, 0, 0, `${p}.q`);
  const k = net.select(r, 1, 0, `${p}.k`);
  const v = net.select(r, 2, 0, `${p}.v`);
  const qs = net.op('Mul', [q, net.scalar(hd ** -0.5)], `${p}.scale`);
  const kt = net.transpose(k, [0, 1, 3, 2], `${p}.k_t`);
  const a = net.op('Softmax', [net.op('MatMul', [qs, kt], `${p}.qk`)], `${p}.softmax`, { axis: -1 });
  const o = net.transpose(net.op('MatMul', [a, v], `${p}.av`), [0, 2, 1, 3], `${p}.transpose_out`);
  return net.linear(net.reshape(o, [0, tokens, dim], `${p}.reshape_out`), `${p}.proj`, dim, dim, tn);
}

/** timm Mlp: fc1 -> GELU -> fc2. */
export function mlp(net: Net, x: Value, p: string, dim: number, hidden: number, approximate: 'none' | 'tanh'): Value {
  const tn = init.truncNormal(0.02);
  const h = net.gelu(net.linear(x, `${p}.fc1`, dim, hidden, tn), `${p}.act`, approximate);
  return net.linear(h, `${p}.fc2`, hidden, dim, tn);
}

/**
 * timm VisionTransformer(global_pool='token', class_token=True, qkv_bias=True), input [N,3,224,224] -> logits
 * [N,1000]. Init as timm's default (weight_init=''): Linear trunc_normal(0.02) with zero bias, pos_embed
 * trunc_normal(0.02), cls_token normal(1e-6); the patch conv uses He fan-out like the CNNs (timm leaves it at
 * PyTorch's default); LayerNorm gamma/beta per nn.ts NORM_GAMMA/NORM_BETA (timm: 1 and 0).
 */
export function buildViT(name: string, cfg: ViTConfig, o: NetOptions): Model {
  const net = new Net(name, o);
  const { dim, patch, image } = cfg;
  const grid = image / patch;
  const tokens = grid * grid + 1;
  const x = net.input('input', 'f32', [N, 3, image, image]);

  let h = net.conv(x, 'patch_embed.proj', { cin: 3, cout: dim, k: patch, stride: patch, bias: true });
  h = net.transpose(net.reshape(h, [0, dim, grid * grid], 'patch_embed.flatten'), [0, 2, 1], 'patch_embed.transpose');
  const cls = net.param('cls_token', [1, 1, dim], init.normal(1e-6));
  // cls_token.expand(N, -1, -1): Expand to [N,1,1] taken from the patch tokens' shape
  const batch = net.op('Shape', [h], 'cls_expand.shape', { start: 0, end: 1 });
  const shape = net.op('Concat', [batch, net.i64([1, 1])], 'cls_expand.concat', { axis: 0 });
  const clsN = net.op('Expand', [cls, shape], 'cls_expand');
  h = net.op('Concat', [clsN, h], 'cat_cls', { axis: 1 });
  h = net.op('Add', [h, net.param('pos_embed', [1, tokens, dim], init.truncNormal(0.02))], 'pos_add');

  for (let i = 0; i < cfg.depth; i++) {
    const p = `blocks.${i}`;
    h = net.op('Add', [h, attention(net, net.layerNorm(h, `${p}.norm1`, dim, LN_EPS), `${p}.attn`, tokens, dim, cfg.heads)], `${p}.add1`);
    h = net.op('Add', [h, mlp(net, net.layerNorm(h, `${p}.norm2`, dim, LN_EPS), `${p}.mlp`, dim, cfg.mlp, 'none')], `${p}.add2`);
  }
  h = net.layerNorm(h, 'norm', dim, LN_EPS);
  const clsOut = net.select(h, 0, 1, 'pool_cls');
  const logits = net.gemm(clsOut, 'head', dim, cfg.classes, init.truncNormal(0.02));
  net.output(logits, 'logits', [N, cfg.classes]);
  return net.b.build();
}
