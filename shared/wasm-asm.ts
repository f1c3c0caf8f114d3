// A small WebAssembly assembler: flat WAT text (functions only, SIMD included) → a module importing env.memory.
//
// Enough for short numeric kernels that work in another module's memory (shared/fft.ts, shared/smi-host.ts):
// they are written as WAT in the source, so they can be read and reviewed as such, and assembled at load time.
// Accepted text, a subset of the WebAssembly text format:
//   (func $name (param $p i32)* (result i32)? (local $l v128)* instruction*)   ; one or more, all exported
// Instructions are in the flat (non-folded) form, one per line or space-separated, `;;` comments:
//   local.get $p · i32.const 4 · f32.const 1.5 · v128.load offset=16 · v128.const i32x4 1 2 3 4 ·
//   i8x16.shuffle 0 1 2 3 … (16 lane indices) · i32x4.extract_lane 2 · block $out · loop $top · br_if $top · end
// Labels, params and locals must be named ($name); block / loop / if take no result type.
// Unknown instructions and names are errors (thrown at assembly, not at run time).

type Imm = 'none' | 'local' | 'label' | 'block' | 'mem' | 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'shuffle' | 'lane';

interface OpInfo {
  bytes: number[]; // the opcode, with the 0xfd prefix and the LEB128 sub-opcode for SIMD
  imm: Imm;
  align?: number; // natural alignment (log2 bytes) of a memory access
}

const TYPES: Record<string, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

const OPS = new Map<string, OpInfo>();

function def(imm: Imm, table: Record<string, number>, align?: number): void {
  for (const [name, code] of Object.entries(table)) OPS.set(name, { bytes: [code], imm, align });
}

function defSimd(imm: Imm, table: Record<string, number>, align?: number): void {
  for (const [name, code] of Object.entries(table)) OPS.set(name, { bytes: [0xfd, ...uleb(code)], imm, align });
}

def('none', { unreachable: 0x00, nop: 0x01, else: 0x05, end: 0x0b, return: 0x0f, drop: 0x1a, select: 0x1b });
def('block', { block: 0x02, loop: 0x03, if: 0x04 });
def('label', { br: 0x0c, br_if: 0x0d });
def('local', { 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22 });
def('mem', { 'i32.load': 0x28, 'f32.load': 0x2a, 'i32.store': 0x36, 'f32.store': 0x38 }, 2);
def('mem', { 'i64.load': 0x29, 'f64.load': 0x2b, 'i64.store': 0x37, 'f64.store': 0x39 }, 3);
def('mem', { 'i32.load8_u': 0x2d, 'i32.store8': 0x3a }, 0);
def('i32', { 'i32.const': 0x41 });
def('i64', { 'i64.const': 0x42 });
def('f32', { 'f32.const': 0x43 });
def('f64', { 'f64.const': 0x44 });
def('none', {
  'i32.eqz': 0x45, 'i32.eq': 0x46, 'i32.ne': 0x47, 'i32.lt_s': 0x48, 'i32.lt_u': 0x49, 'i32.gt_s': 0x4a,
  'i32.gt_u': 0x4b, 'i32.le_s': 0x4c, 'i32.le_u': 0x4d, 'i32.ge_s': 0x4e, 'i32.ge_u': 0x4f,
  'f32.eq': 0x5b, 'f32.ne': 0x5c, 'f32.lt': 0x5d, 'f32.gt': 0x5e, 'f32.le': 0x5f, 'f32.ge': 0x60,
  'f64.eq': 0x61, 'f64.ne': 0x62, 'f64.lt': 0x63, 'f64.gt': 0x64, 'f64.le': 0x65, 'f64.ge': 0x66,
  'i32.clz': 0x67, 'i32.ctz': 0x68, 'i32.popcnt': 0x69, 'i32.add': 0x6a, 'i32.sub': 0x6b, 'i32.mul': 0x6c,
  'i32.div_s': 0x6d, 'i32.div_u': 0x6e, 'i32.rem_s': 0x6f, 'i32.rem_u': 0x70, 'i32.and': 0x71, 'i32.or': 0x72,
  'i32.xor': 0x73, 'i32.shl': 0x74, 'i32.shr_s': 0x75, 'i32.shr_u': 0x76, 'i32.rotl': 0x77, 'i32.rotr': 0x78,
  'f32.abs': 0x8b, 'f32.neg': 0x8c, 'f32.sqrt': 0x91, 'f32.add': 0x92, 'f32.sub': 0x93, 'f32.mul': 0x94,
  'f32.div': 0x95, 'f32.min': 0x96, 'f32.max': 0x97,
  'f64.abs': 0x99, 'f64.neg': 0x9a, 'f64.sqrt': 0x9f, 'f64.add': 0xa0, 'f64.sub': 0xa1, 'f64.mul': 0xa2,
  'f64.div': 0xa3, 'f64.min': 0xa4, 'f64.max': 0xa5,
  'f32.demote_f64': 0xb6, 'f64.promote_f32': 0xbb, 'i32.reinterpret_f32': 0xbc, 'f32.reinterpret_i32': 0xbe,
});
defSimd('mem', { 'v128.load': 0x00, 'v128.store': 0x0b }, 4);
defSimd('v128', { 'v128.const': 0x0c });
defSimd('shuffle', { 'i8x16.shuffle': 0x0d });
defSimd('lane', { 'i32x4.extract_lane': 0x1b, 'f32x4.extract_lane': 0x1f, 'f64x2.extract_lane': 0x21 });
defSimd('none', {
  'i8x16.swizzle': 0x0e, 'i32x4.splat': 0x11, 'i64x2.splat': 0x12, 'f32x4.splat': 0x13, 'f64x2.splat': 0x14,
  'i32x4.eq': 0x37, 'i32x4.ne': 0x38, 'i32x4.lt_u': 0x3a, 'i32x4.gt_u': 0x3c, 'i32x4.le_u': 0x3e, 'i32x4.ge_u': 0x40,
  'f32x4.eq': 0x41, 'f32x4.ne': 0x42, 'f32x4.lt': 0x43, 'f32x4.gt': 0x44, 'f32x4.le': 0x45, 'f32x4.ge': 0x46,
  'v128.not': 0x4d, 'v128.and': 0x4e, 'v128.andnot': 0x4f, 'v128.or': 0x50, 'v128.xor': 0x51,
  'v128.bitselect': 0x52, 'v128.any_true': 0x53,
  'f32x4.demote_f64x2_zero': 0x5e, 'f64x2.promote_low_f32x4': 0x5f,
  'i32x4.all_true': 0xa3, 'i32x4.bitmask': 0xa4, 'i32x4.shl': 0xab, 'i32x4.shr_s': 0xac, 'i32x4.shr_u': 0xad,
  'i32x4.add': 0xae, 'i32x4.sub': 0xb1, 'i32x4.mul': 0xb5, 'i32x4.min_u': 0xb7, 'i32x4.max_u': 0xb9,
  'f32x4.abs': 0xe0, 'f32x4.neg': 0xe1, 'f32x4.sqrt': 0xe3, 'f32x4.add': 0xe4, 'f32x4.sub': 0xe5,
  'f32x4.mul': 0xe6, 'f32x4.div': 0xe7, 'f32x4.min': 0xe8, 'f32x4.max': 0xe9,
  'f64x2.abs': 0xec, 'f64x2.neg': 0xed, 'f64x2.sqrt': 0xef, 'f64x2.add': 0xf0, 'f64x2.sub': 0xf1,
  'f64x2.mul': 0xf2, 'f64x2.div': 0xf3,
});

// ---- encoding helpers -------------------------------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function sleb(n: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function bytesOf(view: (dv: DataView) => void, n: number): number[] {
  const dv = new DataView(new ArrayBuffer(n));
  view(dv);
  return [...new Uint8Array(dv.buffer)];
}

function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

// ---- parsing ------------------------------------------------------------------------------------------------

class AsmError extends Error {
  constructor(message: string) {
    super(`wasm-asm: ${message}`);
    this.name = 'AsmError';
  }
}

/** Tokens: parentheses and whitespace-separated words, `;;` comments dropped. */
function tokenize(text: string): string[] {
  return text
    .replace(/;;[^\n]*/g, ' ')
    .replace(/([()])/g, ' $1 ')
    .split(/\s+/)
    .filter(Boolean);
}

interface FuncDef {
  name: string;
  params: number[];
  results: number[];
  locals: number[];
  body: number[];
}

function intToken(tok: string | undefined, what: string): bigint {
  if (tok === undefined || !/^-?(0x[0-9a-f]+|[0-9]+)$/i.test(tok)) throw new AsmError(`${what}: expected an integer, got ${tok}`);
  return tok.startsWith('-') ? -BigInt(tok.slice(1)) : BigInt(tok);
}

function floatToken(tok: string | undefined, what: string): number {
  const v = Number(tok);
  if (tok === undefined || (Number.isNaN(v) && tok !== 'nan')) throw new AsmError(`${what}: expected a number, got ${tok}`);
  return v;
}

function parseFunc(toks: string[], at: number): [FuncDef, number] {
  // toks[at] = '(' and toks[at+1] = 'func'
  let i = at + 2;
  const name = toks[i++];
  if (!name?.startsWith('$')) throw new AsmError(`function name expected, got ${name}`);
  const names = new Map<string, number>();
  const params: number[] = [];
  const results: number[] = [];
  const locals: number[] = [];
  // (param $x t) / (result t) / (local $x t)
  while (toks[i] === '(' && ['param', 'result', 'local'].includes(toks[i + 1] ?? '')) {
    const kind = toks[i + 1];
    i += 2;
    if (kind === 'result') {
      results.push(typeOf(toks[i++]));
    } else {
      const id = toks[i++];
      if (!id?.startsWith('$') || names.has(id)) throw new AsmError(`${name}: bad or repeated ${kind} name ${id}`);
      if (kind === 'param' && locals.length > 0) throw new AsmError(`${name}: param ${id} after a local`);
      names.set(id, params.length + locals.length);
      (kind === 'param' ? params : locals).push(typeOf(toks[i++]));
    }
    if (toks[i++] !== ')') throw new AsmError(`${name}: ')' expected after ${kind}`);
  }
  const body: number[] = [];
  const labels: string[] = []; // innermost last
  while (toks[i] !== ')') {
    const op = toks[i++];
    if (op === undefined) throw new AsmError(`${name}: unexpected end of text`);
    const info = OPS.get(op);
    if (!info) throw new AsmError(`${name}: unknown instruction ${op}`);
    body.push(...info.bytes);
    switch (info.imm) {
      case 'none':
        if (op === 'end') {
          if (labels.length === 0) throw new AsmError(`${name}: 'end' without a block`);
          labels.pop();
        }
        break;
      case 'block': {
        const label = toks[i]?.startsWith('$') ? toks[i++] : '';
        labels.push(label);
        body.push(0x40);
        break;
      }
      case 'label': {
        const label = toks[i++];
        const depth = label === undefined ? -1 : labels.length - 1 - labels.lastIndexOf(label);
        if (label === undefined || !labels.includes(label)) throw new AsmError(`${name}: unknown label ${label}`);
        body.push(...uleb(depth));
        break;
      }
      case 'local': {
        const id = toks[i++];
        const idx = id === undefined ? undefined : names.get(id);
        if (idx === undefined) throw new AsmError(`${name}: unknown local ${id}`);
        body.push(...uleb(idx));
        break;
      }
      case 'mem': {
        let offset = 0;
        let align = info.align ?? 0;
        for (; /^(offset|align)=/.test(toks[i] ?? ''); i++) {
          const [k, v] = toks[i].split('=');
          const n = Number(intToken(v, `${op} ${k}`));
          if (k === 'offset') offset = n;
          else align = Math.log2(n);
        }
        body.push(...uleb(align), ...uleb(offset));
        break;
      }
      case 'i32':
        body.push(...sleb(BigInt.asIntN(32, intToken(toks[i++], op))));
        break;
      case 'i64':
        body.push(...sleb(BigInt.asIntN(64, intToken(toks[i++], op))));
        break;
      case 'f32': {
        const v = floatToken(toks[i++], op);
        body.push(...bytesOf((dv) => dv.setFloat32(0, v, true), 4));
        break;
      }
      case 'f64': {
        const v = floatToken(toks[i++], op);
        body.push(...bytesOf((dv) => dv.setFloat64(0, v, true), 8));
        break;
      }
      case 'v128': {
        const shape = toks[i++];
        if (shape === 'i32x4') {
          const lanes = [0, 1, 2, 3].map(() => Number(BigInt.asIntN(32, intToken(toks[i++], op))));
          body.push(...bytesOf((dv) => lanes.forEach((v, j) => dv.setInt32(4 * j, v, true)), 16));
        } else if (shape === 'f32x4') {
          const lanes = [0, 1, 2, 3].map(() => floatToken(toks[i++], op));
          body.push(...bytesOf((dv) => lanes.forEach((v, j) => dv.setFloat32(4 * j, v, true)), 16));
        } else {
          throw new AsmError(`${name}: v128.const ${shape} is not supported (i32x4 or f32x4)`);
        }
        break;
      }
      case 'shuffle':
        for (let j = 0; j < 16; j++) {
          const lane = Number(intToken(toks[i++], op));
          if (lane < 0 || lane > 31) throw new AsmError(`${name}: shuffle lane ${lane} out of range`);
          body.push(lane);
        }
        break;
      case 'lane':
        body.push(Number(intToken(toks[i++], op)));
        break;
      default: {
        const never: never = info.imm;
        throw new AsmError(`unknown immediate kind ${String(never)}`);
      }
    }
  }
  if (labels.length !== 0) throw new AsmError(`${name}: ${labels.length} block(s) not closed`);
  return [{ name: name.slice(1), params, results, locals, body }, i + 1];
}

function typeOf(tok: string | undefined): number {
  const t = tok === undefined ? undefined : TYPES[tok];
  if (t === undefined) throw new AsmError(`unknown value type ${tok}`);
  return t;
}

/**
 * Assembles the functions in `text` into a module that imports its memory as env.memory (no minimum size)
 * and exports every function under its name without the `$`. Throws on text it does not understand.
 */
export function assemble(text: string): Uint8Array<ArrayBuffer> {
  const toks = tokenize(text);
  const funcs: FuncDef[] = [];
  for (let i = 0; i < toks.length; ) {
    if (toks[i] !== '(' || toks[i + 1] !== 'func') throw new AsmError(`'(func' expected, got ${toks[i]} ${toks[i + 1]}`);
    const [f, next] = parseFunc(toks, i);
    funcs.push(f);
    i = next;
  }
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]);
  const imports = [[...str('env'), ...str('memory'), 0x02, 0x00, 0x00]]; // memory, limits: min 0, no max
  const exports = funcs.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]);
  const bodies = funcs.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const code = [...locals, ...f.body, 0x0b];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec(imports)),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}

/** Assembles `text` and instantiates it on `memory`; returns its exports. */
export function instantiate<T>(text: string, memory: WebAssembly.Memory): T {
  const module = new WebAssembly.Module(assemble(text));
  return new WebAssembly.Instance(module, { env: { memory } }).exports as T;
}
