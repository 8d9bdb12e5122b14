// Generates a ResNet-50-shaped ONNX model (torchvision resnet50 topology, seeded random f32 weights) for the I/O benchmark.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GraphBuilder } from '../ir/builder.js';
import { sym, tensorType, type Model, type Value } from '../ir/ir.js';
import { saveModel } from '../ir/onnx/writer.js';
import { mulberry32 as prng } from '../ir/random.js';


class Net {
  readonly b = new GraphBuilder('resnet50', { opset: 17, irVersion: 8 }) // checkable by Debian's onnx 1.12;
  private readonly rnd: () => number;

  constructor(seed: number) {
    this.rnd = prng(seed);
  }

  /** Uniform values in [lo, hi). */
  private uniform(n: number, lo: number, hi: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.rnd();
    return a;
  }

  param(name: string, dims: number[], lo: number, hi: number): Value {
    return this.b.init(name, 'f32', dims, this.uniform(dims.reduce((p, d) => p * d, 1), lo, hi));
  }

  conv(x: Value, name: string, cin: number, cout: number, k: number, stride: number): Value {
    const bound = Math.sqrt(6 / (cin * k * k)); // He-uniform
    const w = this.param(`${name}.weight`, [cout, cin, k, k], -bound, bound);
    const p = (k - 1) >> 1;
    return this.b.op('Conv', [x, w], { name, attrs: { kernel_shape: [k, k], strides: [stride, stride], pads: [p, p, p, p] } });
  }

  bn(x: Value, name: string, c: number): Value {
    const scale = this.param(`${name}.weight`, [c], 0.5, 1.5);
    const bias = this.param(`${name}.bias`, [c], -0.1, 0.1);
    const mean = this.param(`${name}.running_mean`, [c], -0.1, 0.1);
    const variance = this.param(`${name}.running_var`, [c], 0.5, 1.5);
    return this.b.op('BatchNormalization', [x, scale, bias, mean, variance], { name, attrs: { epsilon: 1e-5 } });
  }

  relu(x: Value, name: string): Value {
    return this.b.op('Relu', [x], { name });
  }

  /** torchvision Bottleneck: 1x1 -> 3x3 (stride here, as in v1.5) -> 1x1 (x4), plus the (downsampled) identity. */
  bottleneck(x: Value, name: string, cin: number, width: number, stride: number): Value {
    const cout = width * 4;
    let y = this.relu(this.bn(this.conv(x, `${name}.conv1`, cin, width, 1, 1), `${name}.bn1`, width), `${name}.relu1`);
    y = this.relu(this.bn(this.conv(y, `${name}.conv2`, width, width, 3, stride), `${name}.bn2`, width), `${name}.relu2`);
    y = this.bn(this.conv(y, `${name}.conv3`, width, cout, 1, 1), `${name}.bn3`, cout);
    const id = stride !== 1 || cin !== cout ? this.bn(this.conv(x, `${name}.downsample.0`, cin, cout, 1, stride), `${name}.downsample.1`, cout) : x;
    return this.relu(this.b.op('Add', [y, id], { name: `${name}.add` }), `${name}.relu3`);
  }
}

/** torchvision resnet50 with seeded random weights (25.6M floats incl. BN statistics, ~102 MB as ONNX). */
export function buildResnet50Shaped(seed = 50): Model {
  const n = new Net(seed);
  const { b } = n;
  const input = b.input('input', 'f32', [sym('N'), 3, 224, 224]);
  let x = n.relu(n.bn(n.conv(input, 'conv1', 3, 64, 7, 2), 'bn1', 64), 'relu');
  x = b.op('MaxPool', [x], { name: 'maxpool', attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } });
  let cin = 64;
  const stages: [number, number][] = [[3, 64], [4, 128], [6, 256], [3, 512]];
  stages.forEach(([blocks, width], s) => {
    for (let i = 0; i < blocks; i++) {
      x = n.bottleneck(x, `layer${s + 1}.${i}`, cin, width, i === 0 && s > 0 ? 2 : 1);
      cin = width * 4;
    }
  });
  x = b.op('GlobalAveragePool', [x], { name: 'avgpool' });
  x = b.op('Flatten', [x], { name: 'flatten', attrs: { axis: 1 } });
  const bound = 1 / Math.sqrt(2048);
  const y = b.op('Gemm', [x, n.param('fc.weight', [1000, 2048], -bound, bound), n.param('fc.bias', [1000], -bound, bound)], { name: 'fc', attrs: { transB: 1 } });
  b.rw.rename(y, 'output');
  b.rw.setType(y, tensorType('f32', [sym('N'), 1000]));
  b.output(y);
  return b.build();
}

/** Writes the model into a fresh folder under os.tmpdir(); the caller removes `dir`. */
export function writeResnet50Shaped(seed = 50): { dir: string; file: string; bytes: number; params: number } {
  const model = buildResnet50Shaped(seed);
  let params = 0;
  for (const v of model.graph.initializers) params += v.initializer!.dims.reduce((p, d) => p * d, 1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qcc-bench-'));
  const file = path.join(dir, 'resnet50-shaped.onnx');
  const { bytes } = saveModel(model, file);
  return { dir, file, bytes, params };
}
