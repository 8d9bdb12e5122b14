// torchvision ResNet-18 / ResNet-50 (v1.5: stride on the 3x3 conv) as an IR graph; BN statistics are calibrated afterwards.

import type { Model, Value } from '../ir/ir.js';
import { init } from './init.js';
import { N, Net, RESIDUAL_GAMMA, type NetOptions } from './nn.js';

export interface ResNetConfig {
  readonly block: 'basic' | 'bottleneck';
  readonly layers: readonly [number, number, number, number];
}

export const RESNET18: ResNetConfig = { block: 'basic', layers: [2, 2, 2, 2] };
export const RESNET50: ResNetConfig = { block: 'bottleneck', layers: [3, 4, 6, 3] };

/**
 * torchvision.models.resnet.ResNet(block, layers), num_classes 1000, input [N,3,224,224] -> logits [N,1000].
 * Init as torchvision: convs kaiming_normal_(fan_out, relu); fc keeps nn.Linear's default U(+-1/sqrt(fan_in)) for
 * weight and bias. BN gamma/beta: see nn.ts NORM_GAMMA/NORM_BETA (RESIDUAL_GAMMA for bn2/bn3, the last BN of each
 * residual branch); running statistics are placeholders until
 * calibrateBatchNorm runs.
 */
export function buildResNet(name: string, cfg: ResNetConfig, o: NetOptions): Model {
  const net = new Net(name, o);
  const x = net.input('input', 'f32', [N, 3, 224, 224]);
  const expansion = cfg.block === 'basic' ? 1 : 4;

  let h = net.conv(x, 'conv1', { cin: 3, cout: 64, k: 7, stride: 2, pad: 3 });
  h = net.bn(h, 'bn1', 64);
  h = net.relu(h, 'relu');
  h = net.op('MaxPool', [h], 'maxpool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });

  let inplanes = 64;
  const planesOf = [64, 128, 256, 512];
  for (let li = 0; li < 4; li++) {
    const planes = planesOf[li]!;
    for (let bi = 0; bi < cfg.layers[li]!; bi++) {
      const stride = bi === 0 && li > 0 ? 2 : 1;
      const p = `layer${li + 1}.${bi}`;
      const identity: Value =
        stride !== 1 || inplanes !== planes * expansion
          ? net.bn(net.conv(h, `${p}.downsample.0`, { cin: inplanes, cout: planes * expansion, k: 1, stride }), `${p}.downsample.1`, planes * expansion)
          : h;
      let y: Value;
      if (cfg.block === 'basic') {
        y = net.relu(net.bn(net.conv(h, `${p}.conv1`, { cin: inplanes, cout: planes, k: 3, stride, pad: 1 }), `${p}.bn1`, planes), `${p}.relu`);
        y = net.bn(net.conv(y, `${p}.conv2`, { cin: planes, cout: planes, k: 3, pad: 1 }), `${p}.bn2`, planes, RESIDUAL_GAMMA);
      } else {
        y = net.relu(net.bn(net.conv(h, `${p}.conv1`, { cin: inplanes, cout: planes, k: 1 }), `${p}.bn1`, planes), `${p}.relu`);
        y = net.relu(net.bn(net.conv(y, `${p}.conv2`, { cin: planes, cout: planes, k: 3, stride, pad: 1 }), `${p}.bn2`, planes), `${p}.relu`);
        y = net.bn(net.conv(y, `${p}.conv3`, { cin: planes, cout: planes * expansion, k: 1 }), `${p}.bn3`, planes * expansion, RESIDUAL_GAMMA);
      }
      h = net.relu(net.op('Add', [y, identity], `${p}.add`), `${p}.relu`);
      inplanes = planes * expansion;
    }
  }

  h = net.op('GlobalAveragePool', [h], 'avgpool');
  h = net.op('Flatten', [h], 'flatten', { axis: 1 });
  const fin = 512 * expansion;
  const bound = 1 / Math.sqrt(fin);
  const logits = net.gemm(h, 'fc', fin, 1000, init.uniform(bound), init.uniform(bound));
  net.output(logits, 'logits', [N, 1000]);
  return net.b.build();
}
