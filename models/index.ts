// The reference model zoo: ZOO (names, exact parameter counts), buildZooModel, writeZooModel (streams DiT weights to disk), countParams.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { isFloat, type DType } from '../ir/dtype.js';
import { QccError } from '../ir/errors.js';
import { tensorType, type Graph, type Model, type Value } from '../ir/ir.js';
import { clearExternalCache } from '../ir/onnx/external.js';
import { KEEP_EXTERNAL, modelToMsg, saveModel, writeFileAtomic } from '../ir/onnx/writer.js';
import { encodeMessageChunks } from '../ir/onnx/wire.js';
import { ort } from '../ir/ort.js';
import { countParams } from '../ir/params.js';
import { Rewriter } from '../ir/rewriter.js';
import { CALIBRATION_BATCH, calibrateBatchNorm, imagenetNoise } from './bn-stats.js';
import { buildDiT, DIT_S2, DIT_XL2 } from './dit.js';
import { buildMobileNetV2 } from './mobilenetv2.js';
import { ExternalSink, type NetOptions } from './nn.js';
import { buildResNet, RESNET18, RESNET50 } from './resnet.js';
import { buildViT, VIT_B16, VIT_TI16 } from './vit.js';

export { CALIBRATION_BATCH, calibrateBatchNorm, imagenetNoise } from './bn-stats.js';

export interface ZooEntry {
  readonly name: string;
  readonly summary: string;
  /** Exact parameter count of the reference implementation (BatchNorm running statistics excluded). */
  readonly params: number;
  /** Inputs and outputs, e.g. `input f32 [N,3,224,224] -> logits f32 [N,1000]`. */
  readonly inputs: string;
  readonly family: 'cnn' | 'vit' | 'dit';
  /** Lowest default-domain opset the builder emits valid ops for. */
  readonly minOpset: number;
  /** Approximate bytes of f32 weights. */
  readonly weightBytes: number;
}

const IMAGE_IO = 'input f32 [N,3,224,224] (ImageNet-normalized) -> logits f32 [N,1000]';
const DIT_IO = 'latent f32 [N,4,32,32], timestep f32 [N], class_label i64 [N] (0..999, 1000 = null class) -> output f32 [N,8,32,32]';

function entry(name: string, family: ZooEntry['family'], params: number, summary: string): ZooEntry {
  return { name, family, params, summary, inputs: family === 'dit' ? DIT_IO : IMAGE_IO, minOpset: family === 'cnn' ? 13 : 17, weightBytes: 4 * params };
}

export const ZOO: readonly ZooEntry[] = Object.freeze([
  entry('resnet18', 'cnn', 11_689_512, 'torchvision ResNet-18 (BasicBlock, v1.5), BN statistics calibrated on a seeded batch'),
  entry('resnet50', 'cnn', 25_557_032, 'torchvision ResNet-50 (Bottleneck, stride on the 3x3 conv: v1.5), BN statistics calibrated'),
  entry('mobilenetv2', 'cnn', 3_504_872, 'torchvision MobileNetV2 (width 1.0, ReLU6 as Clip), BN statistics calibrated'),
  entry('vit-ti16', 'vit', 5_717_416, 'DeiT-Tiny/16: ViT dim 192, depth 12, 3 heads, MLP 768, class token, learned position embedding'),
  entry('vit-b16', 'vit', 86_567_656, 'ViT-B/16: dim 768, depth 12, 12 heads, MLP 3072, class token, learned position embedding'),
  // DiT counts follow the repo's sum(p.numel() for p in model.parameters()), which includes the fixed sin-cos
  // pos_embed (an nn.Parameter with requires_grad=False): 98,304 for S/2, 294,912 for XL/2.
  entry('dit-s2', 'dit', 32_963_360, 'DiT-S/2 (facebookresearch/DiT): 32x32x4 latent, patch 2, hidden 384, depth 12, 6 heads, adaLN-Zero, learned sigma'),
  entry('dit-xl2', 'dit', 675_129_632, 'DiT-XL/2: hidden 1152, depth 28, 16 heads (2.7 GB of weights: written with external data, streamed to disk)'),
]);

/** Default-domain opsets the builders accept (onnxruntime-node 1.30 runs all of them). */
export const DEFAULT_OPSET = 21;
export const MAX_OPSET = 21;

export interface BuildZooOptions {
  /** default 21; LayerNormalization needs 17+ (transformers), CNNs accept 13+ */
  opset?: number;
  /** weight seed (default 0) */
  seed?: number;
  /** a fixed batch size; the default is the symbolic dimension 'N' */
  batch?: number;
}

export interface WriteZooOptions {
  opset?: number;
  seed?: number;
  /** one `<file>.data` beside the model; default: only for models over 2 GB (dit-xl2, which requires it) */
  externalData?: boolean;
}

export function zooEntry(name: string): ZooEntry {
  const e = ZOO.find((z) => z.name === name);
  if (!e) throw new QccError('E_USAGE', `unknown zoo model '${name}' (known: ${ZOO.map((z) => z.name).join(', ')})`);
  return e;
}

function checkOptions(e: ZooEntry, o: { opset?: number; seed?: number; batch?: number }): { opset: number; seed: number } {
  const opset = o.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < e.minOpset || opset > MAX_OPSET) {
    throw new QccError('E_MODEL_OPSET', `${e.name} can be built for opsets ${e.minOpset}..${MAX_OPSET}, not ${opset}${e.minOpset === 17 && opset < 17 ? ' (LayerNormalization is opset 17)' : ''}`);
  }
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new QccError('E_USAGE', `seed must be an integer in 0..2^32-1, not ${seed}`);
  if (o.batch !== undefined && (!Number.isInteger(o.batch) || o.batch < 1)) throw new QccError('E_USAGE', `batch must be a positive integer, not ${o.batch}`);
  return { opset, seed };
}

/** Builds the graph with uncalibrated BN statistics (weights from `o.sink`). */
function buildRaw(e: ZooEntry, o: NetOptions): Model {
  switch (e.name) {
    case 'resnet18':
      return buildResNet(e.name, RESNET18, o);
    case 'resnet50':
      return buildResNet(e.name, RESNET50, o);
    case 'mobilenetv2':
      return buildMobileNetV2(e.name, o);
    case 'vit-ti16':
      return buildViT(e.name, VIT_TI16, o);
    case 'vit-b16':
      return buildViT(e.name, VIT_B16, o);
    case 'dit-s2':
      return buildDiT(e.name, DIT_S2, o);
    case 'dit-xl2':
      return buildDiT(e.name, DIT_XL2, o);
    default:
      throw new QccError('E_USAGE', `zoo model '${e.name}' has no builder`);
  }
}

function stamp(m: Model, e: ZooEntry, seed: number): void {
  m.docString = `qcc zoo ${e.name}: ${e.summary}. Seeded synthetic weights (seed ${seed}), not trained.`;
  m.metadataProps.push(['qcc.zoo.model', e.name], ['qcc.zoo.seed', String(seed)], ['qcc.zoo.params', String(e.params)]);
}

/**
 * Builds a zoo model in memory. CNNs get their BatchNormalization running statistics from one onnxruntime run on
 * `imagenetNoise(CALIBRATION_BATCH, seed)` (see bn-stats.ts). dit-xl2 in memory takes 2.7 GB: prefer writeZooModel.
 */
export async function buildZooModel(name: string, o: BuildZooOptions = {}): Promise<Model> {
  const e = zooEntry(name);
  const { opset, seed } = checkOptions(e, o);
  const m = buildRaw(e, { opset, seed });
  if (e.family === 'cnn') {
    const x = new ort.Tensor('float32', imagenetNoise(CALIBRATION_BATCH, seed), [CALIBRATION_BATCH, 3, 224, 224]);
    await calibrateBatchNorm(m, { input: x });
  }
  if (o.batch !== undefined) setBatch(m, o.batch);
  stamp(m, e, seed);
  return m;
}

/** Replaces the symbolic batch dimension of the graph inputs and outputs by a number. */
function setBatch(m: Model, batch: number): void {
  const rw = new Rewriter(m.graph);
  for (const v of [...m.graph.inputs, ...m.graph.outputs]) {
    const t = v.type;
    if (t?.kind !== 'tensor' || !t.shape) continue;
    rw.setType(v, tensorType(t.dtype, t.shape.map((d) => (typeof d === 'object' && d.param === 'N' ? batch : d))));
  }
}

/**
 * Writes a zoo model to `file` (and `<file>.data` with external data). With external data, transformer weights
 * are streamed: each tensor goes to the data file as soon as it is generated and the IR holds only references,
 * so peak memory stays near one tensor (dit-xl2: 2.7 GB of weights in well under 0.5 GB of RSS).
 * Returns the parameter count and the bytes written (model + data).
 */
export async function writeZooModel(name: string, file: string, o: WriteZooOptions = {}): Promise<{ params: number; bytes: number }> {
  const e = zooEntry(name);
  const { opset, seed } = checkOptions(e, o);
  const big = e.weightBytes > 2 ** 31 - 1;
  const external = o.externalData ?? big;
  if (big && !external) throw new QccError('E_MODEL_TOO_LARGE', `${e.name} has ${(e.weightBytes / 2 ** 30).toFixed(1)} GiB of weights, over protobuf's 2 GiB limit: write it with external data`, { file });
  if (!external || e.family === 'cnn') {
    // CNNs are small and need an onnxruntime run to calibrate BN: build in memory, then save
    const m = await buildZooModel(name, { opset, seed });
    const r = saveModel(m, file, external ? { externalData: true } : {});
    return { params: countParams(m), bytes: r.bytes + r.dataBytes };
  }
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const location = `${path.basename(abs)}.data`;
  const dataFile = path.join(dir, location);
  const tmp = path.join(dir, `.${location}.${process.pid}.${Date.now()}.part`);
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(tmp, 'w', 0o644);
    } catch (err) {
      throw new QccError('E_IO', `cannot write ${dataFile}: ${(err as Error).message}`, { file: dataFile });
    }
    const sink = new ExternalSink(fd, location, dir);
    const m = buildRaw(e, { opset, seed, sink });
    stamp(m, e, seed);
    fs.closeSync(fd);
    fd = undefined;
    // the external tensors already live in the data file: encode their references as they are (KEEP_EXTERNAL)
    const { chunks, size } = encodeMessageChunks(modelToMsg(m, KEEP_EXTERNAL), 'ModelProto');
    writeFileAtomic(abs, chunks);
    fs.renameSync(tmp, dataFile);
    clearExternalCache(dataFile);
    return { params: countParams(m), bytes: size + sink.size };
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (err instanceof QccError) throw err;
    throw new QccError('E_IO', `cannot write ${file}: ${(err as Error).message}`, { file });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter counting

export { countParams };
