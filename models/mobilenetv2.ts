// torchvision MobileNetV2 (width 1.0) as an IR graph: inverted residuals, ReLU6 as Clip(0, 6), dropout omitted (inference).

import type { Model, Value } from '../ir/ir.js';
import { init } from './init.js';
import { N, Net, NORM_GAMMA, RESIDUAL_GAMMA, type NetOptions } from './nn.js';

/** torchvision's inverted_residual_setting: expand ratio t, output channels c, repeats n, first stride s. */
export const MOBILENETV2_SETTING: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** torchvision's _make_divisible(v, 8): round to a multiple of 8, never below 90% of v. */
function makeDivisible(v: number, divisor = 8): number {
  let nv = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (nv < 0.9 * v) nv += divisor;
  return nv;
}

/**
 * torchvision.models.MobileNetV2(), input [N,3,224,224] -> logits [N,1000]. Init as torchvision: convs
 * kaiming_normal_(fan_out), classifier Linear normal(0, 0.01) with zero bias. Module names follow torchvision
 * (features.{i}.conv.{j}...), so initializer names match its state_dict.
 */
export function buildMobileNetV2(name: string, o: NetOptions): Model {
  const net = new Net(name, o);
  const x = net.input('input', 'f32', [N, 3, 224, 224]);
  // Conv2dNormActivation: conv (no bias) + BN + ReLU6
  const cna = (h: Value, p: string, cin: number, cout: number, k: number, stride = 1, groups = 1): Value =>
    net.relu6(net.bn(net.conv(h, `${p}.0`, { cin, cout, k, stride, pad: (k - 1) >> 1, groups }), `${p}.1`, cout), `${p}.2`);

  let inC = makeDivisible(32);
  const lastC = makeDivisible(1280);
  let h = cna(x, 'features.0', 3, inC, 3, 2);
  let fi = 1;
  for (const [t, c, n, s] of MOBILENETV2_SETTING) {
    const outC = makeDivisible(c);
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const p = `features.${fi++}.conv`;
      const hidden = Math.round(inC * t);
      let y = h;
      let j = 0;
      if (t !== 1) y = cna(y, `${p}.${j++}`, inC, hidden, 1);
      y = cna(y, `${p}.${j++}`, hidden, hidden, 3, stride, hidden);
      y = net.conv(y, `${p}.${j++}`, { cin: hidden, cout: outC, k: 1 });
      const residual = stride === 1 && inC === outC;
      y = net.bn(y, `${p}.${j++}`, outC, residual ? RESIDUAL_GAMMA : NORM_GAMMA);
      h = residual ? net.op('Add', [h, y], `${p.slice(0, -5)}.add`) : y;
      inC = outC;
    }
  }
  h = cna(h, `features.${fi}`, inC, lastC, 1);
  h = net.op('GlobalAveragePool', [h], 'avgpool');
  h = net.op('Flatten', [h], 'flatten', { axis: 1 });
  const logits = net.gemm(h, 'classifier.1', lastC, 1000, init.normal(0.01), init.zeros);
  net.output(logits, 'logits', [N, 1000]);
  return net.b.build();
}
