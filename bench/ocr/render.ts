// Deterministic, seeded text rendering for the PaddleOCR quality task: text lines (recognizer, classifier) and pages (detector).
//
// Text comes from a seeded mix of English words, numbers, dates, prices, codes and (when a CJK font is installed)
// common Chinese phrases; every character is in PaddleOCR's dictionary (ppocr_keys_v1.txt). Glyphs are rendered by
// sharp (libvips -> Pango -> fontconfig) from Debian's fonts (fonts-dejavu-core, fonts-liberation2,
// fonts-wqy-microhei); Pango falls back to the CJK face for Chinese characters in a Latin font, as a real document
// renderer does. The coverage mask is then composited in JS: background and foreground gray levels (sometimes light
// text on a dark ground), small margins like a detector crop, an optional Gaussian blur and seeded Gaussian noise.
// The same seed gives the same bytes on one machine (same fonts, same sharp/libvips).

import * as fs from 'node:fs';
import sharp from 'sharp';
import { QccError } from '../../ir/errors.js';
import { mulberry32 } from '../../ir/random.js';

/** An 8-bit single-channel image, row-major. */
export interface GrayImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

export interface FontFace {
  /** Pango font description without the size, e.g. "DejaVu Sans Bold". */
  readonly desc: string;
  /** A file that must exist for the face to be used. */
  readonly file: string;
  /** The face has Chinese glyphs. */
  readonly cjk: boolean;
}

const DEJAVU = '/usr/share/fonts/truetype/dejavu';
const LIBERATION = '/usr/share/fonts/truetype/liberation2';

/** Candidate faces (Debian packages fonts-dejavu-core, fonts-liberation2, fonts-wqy-microhei). */
export const FONT_FACES: readonly FontFace[] = [
  { desc: 'DejaVu Sans', file: `${DEJAVU}/DejaVuSans.ttf`, cjk: false },
  { desc: 'DejaVu Sans Bold', file: `${DEJAVU}/DejaVuSans-Bold.ttf`, cjk: false },
  { desc: 'DejaVu Serif', file: `${DEJAVU}/DejaVuSerif.ttf`, cjk: false },
  { desc: 'DejaVu Sans Mono', file: `${DEJAVU}/DejaVuSansMono.ttf`, cjk: false },
  { desc: 'DejaVu Sans Condensed', file: `${DEJAVU}/DejaVuSansCondensed.ttf`, cjk: false },
  { desc: 'Liberation Sans', file: `${LIBERATION}/LiberationSans-Regular.ttf`, cjk: false },
  { desc: 'Liberation Sans Bold', file: `${LIBERATION}/LiberationSans-Bold.ttf`, cjk: false },
  { desc: 'Liberation Serif', file: `${LIBERATION}/LiberationSerif-Regular.ttf`, cjk: false },
  { desc: 'Liberation Serif Italic', file: `${LIBERATION}/LiberationSerif-Italic.ttf`, cjk: false },
  { desc: 'Liberation Mono', file: `${LIBERATION}/LiberationMono-Regular.ttf`, cjk: false },
  { desc: 'WenQuanYi Micro Hei', file: '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc', cjk: true },
];

/** The installed faces; E_IO when there is none. */
export function availableFonts(): FontFace[] {
  const r = FONT_FACES.filter((f) => fs.existsSync(f.file));
  if (r.length === 0) throw new QccError('E_IO', `no font for the OCR task: install fonts-dejavu-core (looked for ${FONT_FACES.map((f) => f.file).join(', ')})`);
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
// Text

const WORDS = (
  'the of and to in is for on with as by at from this that order total invoice customer service account number date time ' +
  'amount price quantity item store open close hours phone email address street road city station airport hotel room ' +
  'floor building office report data system network security support center product model serial version update ' +
  'payment card balance receipt thank you welcome please keep exit entrance parking meeting project design quality ' +
  'test result page chapter section table figure summary notes daily weekly monthly annual north south east west ' +
  'green red blue black white small large medium fresh coffee tea milk bread rice water apple orange delivery shipping ' +
  'return policy free sale discount member points reward ticket gate seat train bus flight platform'
).split(' ');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const ZH = (
  '欢迎光临 营业时间 北京市 上海市 人民币 合计 发票号码 联系电话 地址 有限公司 中华人民共和国 会员卡 停车场 出口 入口 ' +
  '请勿吸烟 注意安全 今天天气很好 我们的产品 服务中心 学习资料 电子邮件 银行卡号 数量 单价 金额 日期 姓名 收款人 ' +
  '订单编号 客户服务 谢谢惠顾 优惠活动 新年快乐 火车站 飞机场 医院 学校 图书馆 超市 餐厅 酒店 公交车 地铁站 身份证 ' +
  '手机号码 办公室 会议室 经理 工程师 设计 开发 测试 质量 管理 系统 文件 报告 数据 分析 网络 安全 技术 支持 ' +
  '中国银行 广州市 深圳市 杭州市 南京路 人民路 长江 大学 图书 价格 商品 名称 规格 备注 时间 地点'
).split(' ');

const CODE_LETTERS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';

export type TextKind = 'words' | 'number' | 'date' | 'price' | 'code' | 'chinese' | 'mixed';

type Rng = () => number;
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const pad = (n: number, w: number) => String(n).padStart(w, '0');

function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function word(r: Rng): string {
  const w = pick(r, WORDS);
  const c = r();
  return c < 0.2 ? w.toUpperCase() : c < 0.55 ? w[0]!.toUpperCase() + w.slice(1) : w;
}

function dateText(r: Rng, cjk: boolean): string {
  const y = int(r, 1998, 2031);
  const m = int(r, 1, 12);
  const d = int(r, 1, 28);
  const f = int(r, 0, cjk ? 4 : 3);
  switch (f) {
    case 0: return `${y}-${pad(m, 2)}-${pad(d, 2)}`;
    case 1: return `${pad(d, 2)}/${pad(m, 2)}/${y}`;
    case 2: return `${MONTHS[m - 1]} ${d}, ${y}`;
    case 3: return `${y}.${pad(m, 2)}.${pad(d, 2)} ${pad(int(r, 0, 23), 2)}:${pad(int(r, 0, 59), 2)}`;
    default: return `${y}年${m}月${d}日`;
  }
}

function priceText(r: Rng, cjk: boolean): string {
  const v = int(r, 1, r() < 0.5 ? 999 : 99999);
  const cents = pad(int(r, 0, 99), 2);
  // the full-width yuan sign: what Chinese receipts print and what the recognizer emits for both yen/yuan glyphs
  const cur = pick(r, cjk ? ['$', '￥', '', 'USD ', 'RMB '] : ['$', '', 'USD ', 'RMB ']);
  const label = r() < 0.4 ? `${pick(r, ['Total', 'Price', 'Subtotal', 'Tax', 'Amount'])}: ` : '';
  return `${label}${cur}${grouped(v)}.${cents}`;
}

function numberText(r: Rng): string {
  switch (int(r, 0, 3)) {
    case 0: return grouped(int(r, 10, 9999999));
    case 1: return `${int(r, 0, 999)}.${Array.from({ length: int(r, 1, 3) }, () => String(int(r, 0, 9))).join('')}`;
    case 2: return `${int(r, 1, 99)}.${int(r, 0, 9)}%`;
    default: return `${pick(r, ['No.', 'Tel', 'Room', 'Gate', 'Page'])} ${int(r, 1, 9999)}`;
  }
}

function codeText(r: Rng): string {
  const letters = (n: number) => Array.from({ length: n }, () => pick(r, [...CODE_LETTERS])).join('');
  const digits = (n: number) => Array.from({ length: n }, () => String(int(r, 0, 9))).join('');
  switch (int(r, 0, 4)) {
    case 0: return `${letters(int(r, 2, 3))}-${digits(int(r, 4, 8))}`;
    case 1: return `${pick(r, ['INV', 'SN', 'PO', 'ID'])} ${letters(2)}${digits(int(r, 3, 6))}`;
    case 2: return `${digits(3)}-${digits(4)}-${digits(4)}`;
    case 3: return `${pick(r, ['info', 'sales', 'admin', 'hello'])}@${pick(r, WORDS)}.${pick(r, ['com', 'org', 'net', 'cn'])}`;
    default: return `www.${pick(r, WORDS)}${pick(r, WORDS)}.${pick(r, ['com', 'cn', 'org'])}`;
  }
}

function chineseText(r: Rng): string {
  switch (int(r, 0, 3)) {
    case 0: return pick(r, ZH) + pick(r, ZH);
    case 1: return `${pick(r, ZH)}${int(r, 1, 999)}号`;
    case 2: return `${pick(r, ['合计', '单价', '金额', '价格'])}${int(r, 1, 9999)}.${pad(int(r, 0, 99), 2)}元`;
    default: return pick(r, ZH);
  }
}

/** One seeded line of text; `cjk` allows Chinese phrases and dates. Only characters of `allowed` (when given) appear. */
export function sampleText(r: Rng, cjk: boolean, allowed?: ReadonlySet<string>): { text: string; kind: TextKind } {
  for (let attempt = 0; ; attempt++) {
    const u = r();
    let kind: TextKind;
    let text: string;
    if (u < 0.3) {
      kind = 'words';
      text = Array.from({ length: int(r, 1, 4) }, () => word(r)).join(' ');
    } else if (u < 0.4) (kind = 'number'), (text = numberText(r));
    else if (u < 0.5) (kind = 'date'), (text = dateText(r, cjk));
    else if (u < 0.6) (kind = 'price'), (text = priceText(r, cjk));
    else if (u < 0.72) (kind = 'code'), (text = codeText(r));
    else if (cjk && u < 0.9) (kind = 'chinese'), (text = chineseText(r));
    else (kind = 'mixed'), (text = `${word(r)} ${r() < 0.5 ? numberText(r) : dateText(r, false)}`);
    if (text && (!allowed || [...text].every((c) => allowed.has(c)))) return { text, kind };
    if (attempt > 100) throw new QccError('E_USAGE', 'the OCR text generator cannot produce text from the given character set');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Glyph coverage (sharp/Pango) and compositing

function escapeMarkup(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const coverageCache = new Map<string, GrayImage>();

/** Pango's coverage mask of `text` (0 = no ink, 255 = full ink), tight to the text's logical extent. */
export async function renderCoverage(text: string, font: string, sizePx: number): Promise<GrayImage> {
  const key = `${font}\u0000${sizePx}\u0000${text}`;
  const hit = coverageCache.get(key);
  if (hit) return hit;
  try {
    const { data, info } = await sharp({ text: { text: escapeMarkup(text), font: `${font} ${sizePx}`, dpi: 72, rgba: false } })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const out = new Uint8Array(info.width * info.height);
    for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]!;
    const img = { width: info.width, height: info.height, data: out };
    if (coverageCache.size > 4096) coverageCache.clear();
    coverageCache.set(key, img);
    return img;
  } catch (e) {
    throw new QccError('E_IO', `cannot render text ${JSON.stringify(text)} in '${font}': ${(e as Error).message}`);
  }
}

/** Standard normal sample (Box-Muller). */
function gauss(r: Rng): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Separable Gaussian blur (sigma in pixels, edges clamped), rounded to 8 bits. */
export function blurGray(img: GrayImage, sigma: number): GrayImage {
  if (sigma <= 0) return img;
  const rad = Math.max(1, Math.ceil(3 * sigma));
  const k = Array.from({ length: 2 * rad + 1 }, (_, i) => Math.exp(-((i - rad) ** 2) / (2 * sigma * sigma)));
  const ks = k.reduce((a, b) => a + b, 0);
  const { width: w, height: h } = img;
  const tmp = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = -rad; j <= rad; j++) s += k[j + rad]! * img.data[y * w + Math.min(w - 1, Math.max(0, x + j))]!;
      tmp[y * w + x] = s / ks;
    }
  }
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = -rad; j <= rad; j++) s += k[j + rad]! * tmp[Math.min(h - 1, Math.max(0, y + j)) * w + x]!;
      out[y * w + x] = Math.round(s / ks);
    }
  }
  return { width: w, height: h, data: out };
}

function addNoise(img: GrayImage, sd: number, r: Rng): void {
  if (sd <= 0) return;
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = Math.min(255, Math.max(0, Math.round(d[i]! + sd * gauss(r))));
}

/** Gray levels of a line or page: background, foreground (contrast at least 90 levels). */
function colours(r: Rng): { bg: number; fg: number } {
  if (r() < 0.12) return { bg: int(r, 10, 70), fg: int(r, 190, 255) }; // light text on a dark ground
  return { bg: int(r, 175, 255), fg: int(r, 0, 85) };
}

// ---------------------------------------------------------------------------------------------------------------
// Lines

export interface LineStyle {
  readonly font: string;
  readonly sizePx: number;
  readonly bg: number;
  readonly fg: number;
  readonly margin: { readonly left: number; readonly right: number; readonly top: number; readonly bottom: number };
  readonly blur: number;
  readonly noise: number;
}

export interface TextLine {
  readonly text: string;
  readonly kind: TextKind;
  readonly style: LineStyle;
  readonly image: GrayImage;
}

export interface LineOptions {
  /** Characters the text may use (the recognizer's dictionary); default: anything the generator makes. */
  readonly allowed?: ReadonlySet<string>;
  /** Faces to draw from (default: availableFonts()). */
  readonly fonts?: readonly FontFace[];
}

function sampleStyle(r: Rng, fonts: readonly FontFace[], cjkText: boolean): LineStyle {
  const face = pick(r, fonts);
  const sizePx = int(r, 22, 40);
  const { bg, fg } = colours(r);
  const m = () => int(r, 1, Math.max(2, Math.round(sizePx * 0.25)));
  const blur = r() < 0.35 ? 0.3 + 0.6 * r() : 0;
  const noise = r() < 0.5 ? 1 + 5 * r() : 0;
  return { font: cjkText && !face.cjk && r() < 0.5 ? pick(r, fonts.filter((f) => f.cjk).concat(face)).desc : face.desc, sizePx, bg, fg, margin: { left: m(), right: m(), top: m(), bottom: m() }, blur, noise };
}

/** Composites a coverage mask at (x, y) onto `dst` with foreground `fg` (alpha = coverage). */
function blit(dst: GrayImage, cov: GrayImage, x0: number, y0: number, fg: number): void {
  for (let y = 0; y < cov.height; y++) {
    const dy = y0 + y;
    if (dy < 0 || dy >= dst.height) continue;
    for (let x = 0; x < cov.width; x++) {
      const dx = x0 + x;
      if (dx < 0 || dx >= dst.width) continue;
      const a = cov.data[y * cov.width + x]! / 255;
      if (a === 0) continue;
      const i = dy * dst.width + dx;
      dst.data[i] = Math.round(dst.data[i]! * (1 - a) + fg * a);
    }
  }
}

/** The text line `index` of the set `seed`: the same (seed, index) always gives the same text and bytes. */
export async function renderLine(seed: number, index: number, o: LineOptions = {}): Promise<TextLine> {
  const r = mulberry32((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const fonts = o.fonts ?? availableFonts();
  const cjk = fonts.some((f) => f.cjk);
  const { text, kind } = sampleText(r, cjk, o.allowed);
  const style = sampleStyle(r, fonts, /[^\x00-\x7f]/.test(text));
  const cov = await renderCoverage(text, style.font, style.sizePx);
  const { left, right, top, bottom } = style.margin;
  const width = cov.width + left + right;
  const height = cov.height + top + bottom;
  const img: GrayImage = { width, height, data: new Uint8Array(width * height).fill(style.bg) };
  blit(img, cov, left, top, style.fg);
  const out = blurGray(img, style.blur);
  addNoise(out, style.noise, r);
  return { text, kind, style, image: out };
}

/** `count` lines of the set `seed` starting at `from`. */
export async function renderLines(seed: number, count: number, o: LineOptions & { from?: number } = {}): Promise<TextLine[]> {
  const fonts = o.fonts ?? availableFonts();
  const out: TextLine[] = [];
  for (let i = 0; i < count; i++) out.push(await renderLine(seed, (o.from ?? 0) + i, { ...o, fonts }));
  return out;
}

/** The image turned by 180 degrees (the classifier's second class). */
export function rotate180(img: GrayImage): GrayImage {
  const d = new Uint8Array(img.data.length);
  for (let i = 0; i < d.length; i++) d[i] = img.data[d.length - 1 - i]!;
  return { width: img.width, height: img.height, data: d };
}

// ---------------------------------------------------------------------------------------------------------------
// Pages

export interface Page {
  readonly image: GrayImage;
  /** Text lines drawn: their text and axis-aligned ink box [x0, y0, x1, y1) in page pixels. */
  readonly lines: readonly { readonly text: string; readonly box: readonly [number, number, number, number] }[];
}

export interface PageOptions extends LineOptions {
  /** Page size in pixels (default 640 x 480: multiples of 32, so PaddleOCR's detector resize keeps it). */
  readonly width?: number;
  readonly height?: number;
}

/** The page `index` of the set `seed`: rows of text lines at seeded positions, sizes and fonts; seeded noise and blur. */
export async function renderPage(seed: number, index: number, o: PageOptions = {}): Promise<Page> {
  const r = mulberry32((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(index + 1, 0x165667b1)) >>> 0);
  const fonts = o.fonts ?? availableFonts();
  const cjk = fonts.some((f) => f.cjk);
  const W = o.width ?? 640;
  const H = o.height ?? 480;
  const { bg, fg } = colours(r);
  const img: GrayImage = { width: W, height: H, data: new Uint8Array(W * H).fill(bg) };
  const lines: { text: string; box: [number, number, number, number] }[] = [];
  let y = int(r, 8, 40);
  while (y < H - 20) {
    const sizePx = int(r, 14, 36);
    const face = pick(r, fonts);
    let x = int(r, 8, Math.round(W * 0.3));
    // one or two text fragments per row (columns, like a receipt or a form)
    const parts = r() < 0.4 ? 2 : 1;
    let rowH = 0;
    for (let p = 0; p < parts; p++) {
      const { text } = sampleText(r, cjk, o.allowed);
      const cov = await renderCoverage(text, face.desc, sizePx);
      if (x + cov.width > W - 8 || y + cov.height > H - 4) break;
      blit(img, cov, x, y, fg);
      lines.push({ text, box: [x, y, x + cov.width, y + cov.height] });
      rowH = Math.max(rowH, cov.height);
      x += cov.width + int(r, 20, 80);
    }
    y += Math.max(rowH, sizePx) + int(r, 6, 30);
  }
  const out = blurGray(img, r() < 0.35 ? 0.3 + 0.5 * r() : 0);
  addNoise(out, r() < 0.5 ? 1 + 4 * r() : 0, r);
  return { image: out, lines };
}

/** Encodes a gray image as PNG (for looking at samples). */
export async function toPng(img: GrayImage): Promise<Buffer> {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 1 } }).png().toBuffer();
}
