// The .qir parser: parseModel() reads the text printModel() writes (grammar in ./print.ts) back into a Model.
//
// Tensor data: value lists (`[1, 2.5, nan, 0x7fc00001]`) of any length are read exactly, in the tensor's dtype.
// Summaries (`{sha=0x..., first=[...]}`), which the printer writes for tensors over 16 elements, cannot be
// inverted. By default (`summaries: 'fill'`) they become placeholder tensors filled deterministically: the
// `first` values, then pseudo-random values seeded by the digest, dtype and dims (floats in [-1, 1), small
// integers), and such a tensor prints back its original summary text while it is unchanged, so that
// print(parse(print(m))) === print(m). A tensor computed from a placeholder prints its real digest.
// With `summaries: 'reject'` a summary is an E_IR_PARSE error.
//
// Without a `model` header line the model gets opset {"":21}, IR version 10 and no producer.
// Values must be defined before they are used (graph outputs may name values defined later in the body).
// Nodes without `@name` get `<OpType>_<k>` names. Errors are QccError E_IR_PARSE with the line and column;
// undefined values are E_MODEL_DANGLING_INPUT, redefinitions E_MODEL_DUPLICATE_PRODUCER.

import { DTYPES, dtypeToOnnx, rawByteLength, type DType } from './dtype.js';
import { QccError, type ErrorCode } from './errors.js';
import { Graph, Model, Node, Tensor, Value, elementCount, type Attr, type Dim, type Int64, type Msg, type ValueType } from './ir.js';
import { encodeFloat4E2M1, encodeFp8, f32ToBf16Bits, f32ToF16Bits, type Fp8DType } from './numerics.js';
import { typeToMsg } from './onnx/writer.js';
import { formatElements, placeholderSummaries, summaryText } from './print.js';
import { appendNode, invalidateNames, linkUse } from './rewriter.js';
import { mulberry32 } from './random.js';

export interface ParseOptions {
  /** File name for error locations. */
  file?: string;
  /** What to do with summarized tensor data (see the header). Default 'fill'. */
  summaries?: 'fill' | 'reject';
}

// ---------------------------------------------------------------------------------------------------------------
// Lexer

type TokKind = 'vname' | 'nname' | 'ident' | 'num' | 'str' | 'punct' | 'eof';
interface Tok {
  readonly kind: TokKind;
  /** identifier / punctuation / number text, or the decoded string / name */
  readonly text: string;
  readonly pos: number;
  /** true when the token follows the previous one with no whitespace in between */
  readonly glued: boolean;
}

const NAME_CH = /[A-Za-z0-9_.$/\-]/;
const IDENT_START = /[A-Za-z_$]/;
const NUM_RE = /-?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf\b|nan\b)/y;
const PUNCT = new Set(['(', ')', '[', ']', '{', '}', '<', '>', ',', '=', ':', '!', '?']);

function lex(text: string, err: (msg: string, pos: number) => never): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let glued = false;
  const n = text.length;
  const readString = (start: number): [string, number] => {
    let j = start + 1;
    while (j < n && text[j] !== '"') {
      if (text[j] === '\\') j++;
      if (text[j] === '\n') err('unterminated string', start);
      j++;
    }
    if (j >= n) err('unterminated string', start);
    try {
      return [JSON.parse(text.slice(start, j + 1)) as string, j + 1];
    } catch {
      return err('invalid string escape', start);
    }
  };
  const readName = (start: number): [string, number] => {
    if (text[start] === '"') return readString(start);
    let j = start;
    for (;;) {
      const c = text[j];
      if (c !== undefined && NAME_CH.test(c)) j++;
      else if (c === ':' && j + 1 < n && (NAME_CH.test(text[j + 1]!) || text[j + 1] === ':')) j++;
      else break;
    }
    if (j === start) err('expected a name', start);
    return [text.slice(start, j), j];
  };
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      glued = false;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
      glued = false;
      continue;
    }
    const start = i;
    if (c === '%' || c === '@') {
      const [name, j] = readName(i + 1);
      toks.push({ kind: c === '%' ? 'vname' : 'nname', text: name, pos: start, glued });
      i = j;
    } else if (c === '"') {
      const [s, j] = readString(i);
      toks.push({ kind: 'str', text: s, pos: start, glued });
      i = j;
    } else if (c === '-' && text[i + 1] === '>') {
      toks.push({ kind: 'punct', text: '->', pos: start, glued });
      i += 2;
    } else if (/[0-9.\-]/.test(c)) {
      NUM_RE.lastIndex = i;
      const m = NUM_RE.exec(text);
      if (!m) err(`unexpected character '${c}'`, i);
      toks.push({ kind: 'num', text: m[0], pos: start, glued });
      i += m[0].length;
    } else if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && NAME_CH.test(text[j]!)) j++;
      toks.push({ kind: 'ident', text: text.slice(i, j), pos: start, glued });
      i = j;
    } else if (PUNCT.has(c)) {
      toks.push({ kind: 'punct', text: c, pos: start, glued });
      i++;
    } else err(`unexpected character ${JSON.stringify(c)}`, i);
    glued = true;
  }
  toks.push({ kind: 'eof', text: '', pos: n, glued: false });
  return toks;
}

// ---------------------------------------------------------------------------------------------------------------
// Parser

interface Scope {
  readonly graph: Graph;
  readonly values: Map<string, Value>;
  readonly parent: Scope | null;
}

const te = new TextEncoder();
const INT_RANGE: Partial<Record<DType, readonly [bigint, bigint]>> = {
  i8: [-128n, 127n], u8: [0n, 255n], i16: [-32768n, 32767n], u16: [0n, 65535n],
  i32: [-(2n ** 31n), 2n ** 31n - 1n], u32: [0n, 2n ** 32n - 1n], i64: [-(2n ** 63n), 2n ** 63n - 1n], u64: [0n, 2n ** 64n - 1n],
  i4: [-8n, 7n], u4: [0n, 15n], i2: [-2n, 1n], u2: [0n, 3n], bool: [0n, 1n],
};

class Parser {
  private readonly toks: Tok[];
  private p = 0;
  private readonly unnamed: Node[] = [];
  private readonly nodeNames = new Set<string>();

  constructor(
    private readonly text: string,
    private readonly opts: ParseOptions,
  ) {
    this.toks = lex(text, (m, pos) => this.failAt(m, pos));
  }

  // -- errors and token helpers --------------------------------------------------------------------------------

  private lineCol(pos: number): string {
    let line = 1;
    let last = -1;
    for (let i = 0; i < pos && i < this.text.length; i++) if (this.text.charCodeAt(i) === 10) (line++, (last = i));
    return `${line}:${pos - last}`;
  }

  failAt(msg: string, pos: number, code: ErrorCode = 'E_IR_PARSE'): never {
    throw new QccError(code, `${msg} at line ${this.lineCol(pos)}`, { file: this.opts.file, byteOffset: pos });
  }

  private fail(msg: string, t: Tok = this.peek(), code?: ErrorCode): never {
    return this.failAt(msg, t.pos, code);
  }

  private peek(k = 0): Tok {
    return this.toks[Math.min(this.p + k, this.toks.length - 1)]!;
  }
  private next(): Tok {
    const t = this.peek();
    if (t.kind !== 'eof') this.p++;
    return t;
  }
  private is(text: string, k = 0): boolean {
    const t = this.peek(k);
    return (t.kind === 'punct' || t.kind === 'ident') && t.text === text;
  }
  private accept(text: string): boolean {
    if (this.is(text)) {
      this.p++;
      return true;
    }
    return false;
  }
  private expect(text: string, what = `'${text}'`): Tok {
    if (!this.is(text)) this.fail(`expected ${what}, found ${this.describe(this.peek())}`);
    return this.next();
  }
  private describe(t: Tok): string {
    switch (t.kind) {
      case 'eof':
        return 'end of input';
      case 'vname':
        return `%${t.text}`;
      case 'nname':
        return `@${t.text}`;
      case 'str':
        return JSON.stringify(t.text);
      default:
        return `'${t.text}'`;
    }
  }
  /** An identifier or a quoted string. */
  private name(what: string): string {
    const t = this.peek();
    if (t.kind === 'ident' || t.kind === 'str') return (this.p++, t.text);
    return this.fail(`expected ${what}, found ${this.describe(t)}`);
  }
  private int(what: string): number {
    const t = this.next();
    if (t.kind !== 'num' || !/^\d+$/.test(t.text)) this.fail(`expected ${what}, found ${this.describe(t)}`, t);
    const v = Number(t.text);
    if (!Number.isSafeInteger(v)) this.fail(`${what} ${t.text} is too large`, t);
    return v;
  }

  // -- model ---------------------------------------------------------------------------------------------------

  model(): Model {
    const opsets = new Map<string, number>();
    let irVersion: Int64 = 10;
    let producer: string | undefined;
    let producerVersion: string | undefined;
    let sawOpset = false;
    if (this.accept('model')) {
      for (;;) {
        if (this.accept('opset')) {
          sawOpset = true;
          this.expect('{');
          while (!this.accept('}')) {
            const d = this.next();
            if (d.kind !== 'str') this.fail(`expected an opset domain string, found ${this.describe(d)}`, d);
            this.expect(':');
            opsets.set(d.text === 'ai.onnx' ? '' : d.text, this.int('opset version'));
            if (!this.is('}')) this.expect(',', "',' or '}'");
          }
        } else if (this.accept('ir')) {
          const t = this.next();
          if (t.kind !== 'num' || !/^\d+$/.test(t.text)) this.fail('expected an IR version', t);
          const v = BigInt(t.text);
          irVersion = v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
        } else if (this.accept('producer')) {
          const t = this.next();
          if (t.kind !== 'str') this.fail('expected the producer name as a string', t);
          producer = t.text;
          if (this.peek().kind === 'str') producerVersion = this.next().text;
        } else break;
      }
    }
    if (!sawOpset) opsets.set('', 21);
    const graph = new Graph('');
    const m = new Model(graph, { irVersion, opsetImports: opsets });
    m.producerName = producer;
    m.producerVersion = producerVersion;
    this.graphInto(graph, null);
    if (this.peek().kind !== 'eof') this.fail(`expected end of input after the main graph, found ${this.describe(this.peek())}`);
    // unnamed nodes: `<OpType>_<k>`, avoiding every explicit name
    let k = 0;
    for (const n of this.unnamed) {
      let name: string;
      do name = `${n.opType || 'node'}_${k++}`;
      while (this.nodeNames.has(name));
      this.nodeNames.add(name);
      n._name = name;
    }
    invalidateNames(graph);
    return m;
  }

  // -- graphs --------------------------------------------------------------------------------------------------

  private graph(owner: Node, parent: Scope): Graph {
    const g = new Graph('', owner);
    this.graphInto(g, parent);
    return g;
  }

  private graphInto(g: Graph, parent: Scope | null): void {
    this.expect('graph', "'graph'");
    g.name = this.name('a graph name');
    const scope: Scope = { graph: g, values: new Map(), parent };
    this.expect('(');
    while (!this.accept(')')) {
      const t = this.next();
      if (t.kind !== 'vname') this.fail(`expected a graph input %name, found ${this.describe(t)}`, t);
      const v = new Value(g, t.text, this.accept(':') ? this.type() : undefined);
      this.define(scope, v, t);
      g._inputs.push(v);
      if (!this.is(')')) this.expect(',', "',' or ')'");
    }
    this.expect('->');
    this.expect('(');
    const outs: { tok: Tok; type: ValueType | undefined }[] = [];
    while (!this.accept(')')) {
      const t = this.next();
      if (t.kind !== 'vname') this.fail(`expected a graph output %name, found ${this.describe(t)}`, t);
      outs.push({ tok: t, type: this.accept(':') ? this.type() : undefined });
      if (!this.is(')')) this.expect(',', "',' or ')'");
    }
    this.expect('{');
    while (!this.accept('}')) {
      if (this.peek().kind === 'eof') this.fail(`graph '${g.name}' is not closed: expected '}'`);
      this.statement(g, scope);
    }
    for (const o of outs) {
      const v = lookup(scope, o.tok.text);
      if (!v) this.fail(`graph output %${o.tok.text} is not defined`, o.tok, 'E_MODEL_DANGLING_INPUT');
      if (o.type !== undefined && (v._type === undefined || v._producer)) v._type = o.type;
      g._outputs.push(v);
    }
  }

  private define(scope: Scope, v: Value, at: Tok): void {
    if (scope.values.has(v.name)) this.fail(`value %${v.name} is defined twice`, at, 'E_MODEL_DUPLICATE_PRODUCER');
    scope.values.set(v.name, v);
  }

  private statement(g: Graph, scope: Scope): void {
    // left-hand side: `%a, _, %b =`
    const lhs: (Tok | null)[] = [];
    if (this.peek().kind === 'vname' || (this.is('_') && (this.is(',', 1) || this.is('=', 1)))) {
      for (;;) {
        const t = this.next();
        if (t.kind === 'vname') lhs.push(t);
        else if (t.kind === 'ident' && t.text === '_') lhs.push(null);
        else this.fail(`expected %name or '_', found ${this.describe(t)}`, t);
        if (this.accept('=')) break;
        this.expect(',', "',' or '='");
      }
    }
    if (this.is('const')) {
      const at = this.next();
      if (lhs.length !== 1 || lhs[0] === null) this.fail('a const defines exactly one %name', at);
      this.initializer(g, scope, lhs[0]!);
      return;
    }
    if (this.is('sparse_const')) this.fail('sparse initializers cannot be parsed', this.peek(), 'E_UNSUPPORTED');
    this.node(g, scope, lhs);
  }

  private initializer(g: Graph, scope: Scope, nameTok: Tok): void {
    const t = this.tensor(nameTok.text);
    const prior = scope.values.get(nameTok.text);
    let v: Value;
    if (prior && g._inputs.includes(prior) && !prior._initializer) v = prior; // a default-valued graph input
    else {
      v = new Value(g, nameTok.text);
      this.define(scope, v, nameTok);
    }
    v._initializer = t;
    g._initializers.push(v);
  }

  private node(g: Graph, scope: Scope, lhs: readonly (Tok | null)[]): void {
    const opTok = this.peek();
    let domain = '';
    let opType: string;
    if (this.is('op') && this.is('<', 1)) {
      this.p += 2;
      const d = this.next();
      this.expect(',');
      const o = this.next();
      this.expect('>');
      if (d.kind !== 'str' || o.kind !== 'str') this.fail('expected op<"domain", "OpType">', opTok);
      domain = d.text;
      opType = o.text;
    } else {
      const t = this.next();
      if (t.kind !== 'ident') this.fail(`expected an op, found ${this.describe(t)}`, t);
      const dot = t.text.lastIndexOf('.');
      domain = dot < 0 ? '' : t.text.slice(0, dot);
      opType = t.text.slice(dot + 1);
      if (opType === '') this.fail(`'${t.text}' is not an op name`, t);
    }
    const n = new Node(domain, opType, '');
    this.expect('(', "'(' after the op name");
    while (!this.accept(')')) {
      const t = this.next();
      if (t.kind === 'ident' && t.text === '_') n._inputs.push(null);
      else if (t.kind === 'vname') {
        const v = lookup(scope, t.text);
        if (!v) this.fail(`%${t.text} is not defined here (values are defined before their uses)`, t, 'E_MODEL_DANGLING_INPUT');
        linkUse(v, n, n._inputs.length);
        n._inputs.push(v);
      } else this.fail(`expected an operand (%name or '_'), found ${this.describe(t)}`, t);
      if (!this.is(')')) this.expect(',', "',' or ')'");
    }
    if (this.is('{')) this.attrs(n, scope);
    let types: (ValueType | undefined)[] | undefined;
    if (this.accept(':')) {
      types = [];
      for (;;) {
        if (this.is('_') && !this.is('[', 1)) (this.p++, types.push(undefined));
        else types.push(this.type());
        if (!this.accept(',')) break;
      }
      if (types.length !== lhs.length) this.fail(`${types.length} result types for ${lhs.length} results`, opTok);
    }
    if (this.peek().kind === 'nname') {
      const t = this.next();
      if (this.nodeNames.has(t.text)) this.fail(`node @${t.text} is defined twice`, t);
      this.nodeNames.add(t.text);
      n._name = t.text;
    } else this.unnamed.push(n);
    if (this.is('{')) this.attrs(n, scope);
    lhs.forEach((t, i) => {
      if (t === null) {
        n._outputs.push(null);
        return;
      }
      const v = new Value(g, t.text, types?.[i]);
      v._producer = n;
      v._producerIndex = i;
      this.define(scope, v, t);
      n._outputs.push(v);
    });
    appendNode(g, n);
  }

  // -- attributes ----------------------------------------------------------------------------------------------

  private attrs(n: Node, scope: Scope): void {
    this.expect('{');
    while (!this.accept('}')) {
      const kt = this.peek();
      const key = this.name('an attribute name');
      this.expect('=');
      if (n._attrs.has(key)) this.fail(`attribute '${key}' appears twice`, kt);
      n._attrs.set(key, this.attrValue(n, scope));
      this.accept(',');
    }
  }

  private attrValue(n: Node, scope: Scope): Attr {
    const t = this.peek();
    if (t.kind === 'num') {
      this.p++;
      return isFloatText(t.text) ? { type: 'float', value: floatOf(t.text) } : { type: 'int', value: this.intAttr(t) };
    }
    if (t.kind === 'str') return (this.p++, { type: 'string', value: te.encode(t.text) });
    if (t.kind !== 'ident' && !this.is('[')) this.fail(`expected an attribute value, found ${this.describe(t)}`);
    if (this.is('[')) return this.attrList(n, scope);
    switch (t.text) {
      case 'nan':
      case 'inf':
        this.p++;
        return { type: 'float', value: floatOf(t.text) };
      case 'hex':
        return { type: 'string', value: this.hexString() };
      case 'tensor':
        this.p++;
        return { type: 'tensor', value: this.tensor('') };
      case 'graph':
        return { type: 'graph', value: this.graph(n, scope) };
      case 'type':
        return { type: 'type_proto', value: this.typeProto() };
      case 'ints':
      case 'floats':
      case 'strings':
      case 'tensors':
      case 'graphs':
      case 'type_protos':
        this.p++;
        this.expect('[');
        this.expect(']', `']' (only empty lists are written ${t.text}[])`);
        return { type: t.text, value: [] } as Attr;
      case 'ref': {
        this.p++;
        this.expect('<');
        const s = this.next();
        if (s.kind !== 'str') this.fail('expected ref<"name", type>', s);
        this.expect(',');
        const rt = this.int('an attribute type code');
        this.expect('>');
        return { type: 'ref', value: s.text, refType: rt };
      }
      case 'sparse_tensor':
      case 'sparse_tensors':
        return this.fail(`${t.text} attributes cannot be parsed`, t, 'E_UNSUPPORTED');
      default:
        return this.fail(`expected an attribute value, found ${this.describe(t)}`);
    }
  }

  private intAttr(t: Tok): Int64 {
    let v: bigint;
    try {
      v = BigInt(t.text);
    } catch {
      return this.fail(`'${t.text}' is not an integer`, t);
    }
    if (v < -(2n ** 63n) || v >= 2n ** 63n) this.fail(`${t.text} does not fit int64`, t);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private hexString(): Uint8Array {
    const h = this.next();
    const s = this.next();
    if (s.kind !== 'str' || !s.glued || !/^(?:[0-9a-fA-F]{2})*$/.test(s.text)) this.fail('expected hex"<hex digit pairs>"', h);
    return Uint8Array.from(Buffer.from(s.text, 'hex'));
  }

  private attrList(n: Node, scope: Scope): Attr {
    this.expect('[');
    const first = this.peek();
    if (this.accept(']')) return { type: 'ints', value: [] };
    if (first.kind === 'str' || (first.kind === 'ident' && first.text === 'hex')) {
      const value: Uint8Array[] = [];
      do {
        const t = this.peek();
        if (t.kind === 'str') value.push((this.p++, te.encode(t.text)));
        else if (this.is('hex')) value.push(this.hexString());
        else this.fail(`expected a string, found ${this.describe(t)}`);
      } while (this.accept(','));
      this.expect(']', "',' or ']'");
      return { type: 'strings', value };
    }
    if (this.is('tensor')) {
      const value: Tensor[] = [];
      do value.push((this.expect('tensor'), this.tensor('')));
      while (this.accept(','));
      this.expect(']', "',' or ']'");
      return { type: 'tensors', value };
    }
    if (this.is('type')) {
      const value: Msg[] = [];
      do value.push(this.typeProto());
      while (this.accept(','));
      this.expect(']', "',' or ']'");
      return { type: 'type_protos', value };
    }
    if (this.is('graph')) {
      const value: Graph[] = [];
      do value.push(this.graph(n, scope));
      while (this.accept(','));
      this.expect(']', "',' or ']'");
      return { type: 'graphs', value };
    }
    const toks: Tok[] = [];
    do {
      const t = this.next();
      if (!(t.kind === 'num' || (t.kind === 'ident' && (t.text === 'nan' || t.text === 'inf')))) this.fail(`expected a number, found ${this.describe(t)}`, t);
      toks.push(t);
    } while (this.accept(','));
    this.expect(']', "',' or ']'");
    if (toks.some((t) => isFloatText(t.text))) return { type: 'floats', value: toks.map((t) => floatOf(t.text)) };
    return { type: 'ints', value: toks.map((t) => this.intAttr(t)) };
  }

  /** `type<T>`: a TypeProto attribute. */
  private typeProto(): Msg {
    this.expect('type');
    this.expect('<');
    const t = this.type();
    this.expect('>');
    return t === undefined ? {} : typeToMsg(t);
  }

  // -- types ---------------------------------------------------------------------------------------------------

  private type(): ValueType | undefined {
    const t = this.peek();
    if (this.accept('?')) return this.is('[') ? { kind: 'tensor', dtype: undefined, shape: this.shape() } : undefined;
    if (this.accept('!')) {
      this.expect('other', "'other' after '!'");
      return { kind: 'other', proto: {} };
    }
    if (t.kind !== 'ident') return this.fail(`expected a type, found ${this.describe(t)}`);
    const wrap = (key: string, build: (inner: Msg) => Msg): ValueType => {
      this.p++;
      this.expect('<');
      const inner = this.type();
      this.expect('>');
      return { kind: 'other', proto: { [key]: build(inner === undefined ? {} : typeToMsg(inner)) } };
    };
    switch (t.text) {
      case 'seq':
        return wrap('sequence_type', (m) => ({ elem_type: m }));
      case 'opt':
        return wrap('optional_type', (m) => ({ elem_type: m }));
      case 'sparse':
        return wrap('sparse_tensor_type', (m) => ({ ...((m.tensor_type as Msg | undefined) ?? {}) }));
      case 'map': {
        this.p++;
        this.expect('<');
        const kd = this.dtype();
        this.expect(',');
        const inner = this.type();
        this.expect('>');
        return { kind: 'other', proto: { map_type: { key_type: dtypeToOnnx(kd), value_type: inner === undefined ? {} : typeToMsg(inner) } } };
      }
    }
    const dtype = this.dtype();
    return { kind: 'tensor', dtype, shape: this.is('[') ? this.shape() : undefined };
  }

  private dtype(): DType {
    const t = this.next();
    if (t.kind !== 'ident' || !Object.hasOwn(DTYPES, t.text)) this.fail(`expected an element type (f32, i64, ...), found ${this.describe(t)}`, t);
    return t.text as DType;
  }

  private shape(): Dim[] {
    this.expect('[');
    const dims: Dim[] = [];
    while (!this.accept(']')) {
      const t = this.next();
      if (t.kind === 'num') {
        if (!/^\d+$/.test(t.text) || !Number.isSafeInteger(Number(t.text))) this.fail(`dimension ${t.text} is not a non-negative integer`, t, 'E_MODEL_DIM');
        dims.push(Number(t.text));
      } else if (t.kind === 'punct' && t.text === '?') dims.push({ param: null });
      else if (t.kind === 'ident' || t.kind === 'str') dims.push({ param: t.text });
      else this.fail(`expected a dimension, found ${this.describe(t)}`, t);
      if (!this.is(']')) this.expect(',', "',' or ']'");
    }
    return dims;
  }

  // -- tensors -------------------------------------------------------------------------------------------------

  private tensor(name: string): Tensor {
    const at = this.peek();
    const dtype = this.dtype();
    const shape = this.shape();
    const dims: number[] = [];
    for (const d of shape) {
      if (typeof d !== 'number') this.fail('constant tensors need static dimensions', at, 'E_MODEL_DIM');
      dims.push(d);
    }
    const count = elementCount(dims);
    if (count > 2 ** 31) this.fail(`tensor of ${count} elements is too large for text`, at, 'E_MODEL_TOO_LARGE');
    const flat = dtype === 'c64' || dtype === 'c128' ? 2 * count : count;
    if (this.is('{')) return this.summarized(name, dtype, dims, flat, at);
    const open = this.expect('[', "'[' (values) or '{' (summary)");
    const elems = this.elements();
    if (elems.length !== flat) this.fail(`${elems.length} values for ${dtype}[${dims.join(',')}] (${flat} expected)`, open, 'E_MODEL_DATA_SIZE');
    if (dtype === 'string') {
      return new Tensor(name, dtype, dims, { kind: 'fields', field: 'string_data', values: elems.map((t) => this.stringElem(t)) });
    }
    const bytes = new Uint8Array(rawByteLength(dtype, count));
    const dv = new DataView(bytes.buffer);
    elems.forEach((t, i) => this.writeTok(dtype, dv, bytes, i, t));
    return new Tensor(name, dtype, dims, { kind: 'raw', bytes });
  }

  /** Element tokens up to and including the closing ']' (hex strings are kept as two tokens: ident + str). */
  private elements(): Tok[] {
    const out: Tok[] = [];
    if (this.accept(']')) return out;
    do {
      const t = this.next();
      if (t.kind === 'ident' && t.text === 'hex') {
        const s = this.next();
        if (s.kind !== 'str' || !s.glued) this.fail('expected hex"..."', t);
        out.push({ kind: 'ident', text: `hex:${s.text}`, pos: t.pos, glued: false });
      } else if (t.kind === 'num' || t.kind === 'str' || (t.kind === 'ident' && /^(nan|inf|true|false)$/.test(t.text))) out.push(t);
      else this.fail(`expected a tensor value, found ${this.describe(t)}`, t);
    } while (this.accept(','));
    this.expect(']', "',' or ']'");
    return out;
  }

  private stringElem(t: Tok): Uint8Array {
    if (t.kind === 'str') return te.encode(t.text);
    if (t.text.startsWith('hex:') && /^(?:[0-9a-fA-F]{2})*$/.test(t.text.slice(4))) return Uint8Array.from(Buffer.from(t.text.slice(4), 'hex'));
    return this.fail(`expected a string, found ${this.describe(t)}`, t);
  }

  private writeTok(dtype: DType, dv: DataView, bytes: Uint8Array, i: number, t: Tok): void {
    if (t.kind === 'str' || t.text.startsWith('hex:')) this.fail(`a string is not a ${dtype} value`, t);
    if (/^0x/i.test(t.text)) {
      const bits = BigInt(t.text);
      const width = DTYPES[dtype].bits * (dtype === 'c64' || dtype === 'c128' ? 0.5 : 1);
      if (bits >= 1n << BigInt(width)) this.fail(`${t.text} does not fit ${width} bits`, t);
      writeBits(dtype, dv, bytes, i, bits);
      return;
    }
    const range = INT_RANGE[dtype];
    if (range) {
      let v: bigint;
      if (t.text === 'true') v = 1n;
      else if (t.text === 'false') v = 0n;
      else if (/^-?\d+$/.test(t.text)) v = BigInt(t.text);
      else return this.fail(`'${t.text}' is not a ${dtype} value`, t);
      if (v < range[0] || v > range[1]) this.fail(`${t.text} is out of range for ${dtype}`, t);
      writeBits(dtype, dv, bytes, i, BigInt.asUintN(DTYPES[dtype].bits, v));
      return;
    }
    if (t.text === 'true' || t.text === 'false') this.fail(`'${t.text}' is not a ${dtype} value`, t);
    writeFloat(dtype, dv, bytes, i, floatOf(t.text));
  }

  private summarized(name: string, dtype: DType, dims: number[], flat: number, at: Tok): Tensor {
    const open = this.expect('{');
    let sha: string | undefined;
    let first: Tok[] | undefined;
    while (!this.accept('}')) {
      const k = this.name("'sha' or 'first'");
      this.expect('=');
      if (k === 'sha') {
        const t = this.next();
        if (t.kind !== 'num' || !/^0x[0-9a-f]+$/.test(t.text)) this.fail('expected sha=0x<hex digest>', t);
        sha = t.text;
      } else if (k === 'first') {
        this.expect('[');
        first = this.elements();
      } else this.fail(`unknown summary field '${k}'`, open);
      this.accept(',');
    }
    if (this.opts.summaries === 'reject') this.fail('tensor data is summarized (only value lists can be parsed)', at);
    if (first && first.length > flat) this.fail(`${first.length} first values for ${flat} elements`, open, 'E_MODEL_DATA_SIZE');
    const t = this.fill(name, dtype, dims, flat, sha ?? '', first ?? []);
    if (sha !== undefined) {
      const shown = first ? first.map((x) => (x.kind === 'str' ? JSON.stringify(x.text) : x.text.startsWith('hex:') ? `hex"${x.text.slice(4)}"` : x.text)) : undefined;
      placeholderSummaries.set(t, summaryText(sha, shown ?? (dtype === 'string' ? [] : formatElements(dtype, t.bytes(), 0, Math.min(4, flat)))));
    }
    return t;
  }

  /** Placeholder data: `first`, then values from a PRNG seeded by (sha, dtype, dims). */
  private fill(name: string, dtype: DType, dims: number[], flat: number, sha: string, first: readonly Tok[]): Tensor {
    const rand = mulberry32(fnv1a(`${sha}|${dtype}|${dims.join(',')}`));
    if (dtype === 'string') {
      const values = Array.from({ length: flat }, (_, i) => (i < first.length ? this.stringElem(first[i]!) : new Uint8Array(0)));
      return new Tensor(name, dtype, dims, { kind: 'fields', field: 'string_data', values });
    }
    const bytes = new Uint8Array(rawByteLength(dtype, elementCount(dims)));
    const dv = new DataView(bytes.buffer);
    const range = INT_RANGE[dtype];
    for (let i = 0; i < flat; i++) {
      if (i < first.length) this.writeTok(dtype, dv, bytes, i, first[i]!);
      else if (dtype === 'bool') bytes[i] = rand() < 0.5 ? 0 : 1;
      else if (range) {
        const lo = range[0] < 0n ? -8 : 0; // small integers: valid indices and zero points
        const v = BigInt(Math.max(Number(range[0]), lo) + Math.floor(rand() * Math.min(16, Number(range[1] - range[0]) + 1)));
        writeBits(dtype, dv, bytes, i, BigInt.asUintN(DTYPES[dtype].bits, v));
      } else if (dtype === 'fp8e8m0') writeFloat(dtype, dv, bytes, i, 2 ** (Math.floor(rand() * 9) - 4));
      else writeFloat(dtype, dv, bytes, i, Math.round((rand() * 2 - 1) * 4096) / 4096);
    }
    return new Tensor(name, dtype, dims, { kind: 'raw', bytes });
  }
}

function lookup(s: Scope | null, name: string): Value | undefined {
  for (let cur = s; cur; cur = cur.parent) {
    const v = cur.values.get(name);
    if (v) return v;
  }
  return undefined;
}

function isFloatText(s: string): boolean {
  return !/^-?0x/i.test(s) && /[.eEni]/.test(s);
}

function floatOf(s: string): number {
  if (s === 'nan' || s === '-nan') return NaN;
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  return Number(s);
}

function writeBits(dtype: DType, dv: DataView, bytes: Uint8Array, i: number, bits: bigint): void {
  const w = DTYPES[dtype].bits;
  switch (dtype === 'c64' ? 32 : dtype === 'c128' ? 64 : w) {
    case 64:
      dv.setBigUint64(8 * i, bits, true);
      return;
    case 32:
      dv.setUint32(4 * i, Number(bits), true);
      return;
    case 16:
      dv.setUint16(2 * i, Number(bits), true);
      return;
    case 8:
      bytes[i] = Number(bits);
      return;
    case 4:
      bytes[i >>> 1] = (bytes[i >>> 1]! & ~(0xf << ((i & 1) << 2))) | (Number(bits) << ((i & 1) << 2));
      return;
    case 2:
      bytes[i >>> 2] = (bytes[i >>> 2]! & ~(3 << ((i & 3) << 1))) | (Number(bits) << ((i & 3) << 1));
      return;
  }
}

function writeFloat(dtype: DType, dv: DataView, bytes: Uint8Array, i: number, x: number): void {
  switch (dtype) {
    case 'f32':
    case 'c64':
      dv.setFloat32(4 * i, x, true);
      return;
    case 'f64':
    case 'c128':
      dv.setFloat64(8 * i, x, true);
      return;
    case 'f16':
      dv.setUint16(2 * i, f32ToF16Bits(x), true);
      return;
    case 'bf16':
      dv.setUint16(2 * i, f32ToBf16Bits(x), true);
      return;
    case 'fp4e2m1':
      writeBits(dtype, dv, bytes, i, BigInt(encodeFloat4E2M1(x)));
      return;
    case 'fp8e4m3':
    case 'fp8e4m3fnuz':
    case 'fp8e5m2':
    case 'fp8e5m2fnuz':
    case 'fp8e8m0':
      bytes[i] = encodeFp8(dtype as Fp8DType, x, false, 'nearest');
      return;
    default:
      throw new QccError('E_IR_PARSE', `${dtype} takes integer values`);
  }
}

function fnv1a(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}


/** Parses .qir text (the format printModel writes) into a Model. Throws only QccError. */
export function parseModel(text: string, opts: ParseOptions = {}): Model {
  try {
    return new Parser(text, opts).model();
  } catch (e) {
    if (e instanceof QccError) throw e;
    // a parser bug must still surface as a coded error, never as a raw exception
    throw new QccError('E_IR_PARSE', `cannot parse: ${(e as Error)?.message ?? String(e)}`, { file: opts.file }, { cause: e });
  }
}
