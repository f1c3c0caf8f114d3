// The flat-WAT assembler (shared/wasm-asm.ts): encodings that run as written, and errors for text it rejects.
import t from 'tap';
import { assemble, instantiate } from '../../shared/wasm-asm.ts';

t.test('a SIMD and a scalar kernel run as written on an imported memory', async (t) => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = instantiate<{
    add4(a: number, b: number, out: number, n: number): void;
    sum(a: number, n: number): number;
    consts(out: number): number;
    lanes(v: number): number;
  }>(`
    ;; out[i] = a[i] + b[i], 4 floats at a time (n a multiple of 4)
    (func $add4 (param $a i32) (param $b i32) (param $out i32) (param $n i32) (local $e i32)
      local.get $out local.get $n i32.const 2 i32.shl i32.add local.set $e
      block $done
        local.get $out local.get $e i32.ge_u br_if $done
        loop $top
          local.get $out local.get $a v128.load local.get $b v128.load f32x4.add v128.store
          local.get $a i32.const 16 i32.add local.set $a
          local.get $b i32.const 16 i32.add local.set $b
          local.get $out i32.const 16 i32.add local.tee $out
          local.get $e i32.lt_u br_if $top
        end
      end)
    (func $sum (param $a i32) (param $n i32) (result f64) (local $s f64)
      block $done
        loop $top
          local.get $n i32.eqz br_if $done
          local.get $s local.get $a f32.load f64.promote_f32 f64.add local.set $s
          local.get $a i32.const 4 i32.add local.set $a
          local.get $n i32.const -1 i32.add local.set $n
          br $top
        end
      end
      local.get $s)
    (func $consts (param $out i32) (result i32)
      local.get $out v128.const f32x4 1.5 -2 0.25 1e30 v128.store
      local.get $out v128.const i32x4 -1 0x7fffffff 0x80000000 7 v128.store offset=16
      local.get $out f32.const -0.5 f32.store offset=32
      local.get $out f64.const 3.25 f64.store offset=40
      i32.const -123456)
    ;; lanes 3, 2, 1, 0 of the int32 vector at v, reversed by a shuffle, then lane 0 + 10 · lane 3
    (func $lanes (param $v i32) (result i32) (local $x v128)
      local.get $v v128.load local.get $v v128.load
      i8x16.shuffle 12 13 14 15 8 9 10 11 4 5 6 7 0 1 2 3 local.set $x
      local.get $x i32x4.extract_lane 0 local.get $x i32x4.extract_lane 3 i32.const 10 i32.mul i32.add)
  `, memory);
  const f = new Float32Array(memory.buffer);
  for (let i = 0; i < 8; i++) {
    f[i] = i;
    f[8 + i] = 10 * i;
  }
  k.add4(0, 32, 64, 8);
  t.same(Array.from(f.subarray(16, 24)), [0, 11, 22, 33, 44, 55, 66, 77], 'add4');
  t.equal(k.sum(64, 8), 308, 'sum (f64 accumulation, negative i32.const)');
  t.equal(k.consts(128), -123456, 'i32 result');
  t.same(Array.from(new Float32Array(memory.buffer, 128, 4)), [1.5, -2, 0.25, Math.fround(1e30)], 'v128.const f32x4');
  t.same(Array.from(new Int32Array(memory.buffer, 144, 4)), [-1, 0x7fffffff, -0x80000000, 7], 'v128.const i32x4');
  t.equal(new Float32Array(memory.buffer, 160, 1)[0], -0.5, 'f32.const');
  t.equal(new Float64Array(memory.buffer, 168, 1)[0], 3.25, 'f64.const');
  new Int32Array(memory.buffer, 256, 4).set([1, 2, 3, 4]);
  t.equal(k.lanes(256), 4 + 10 * 1, 'shuffle + extract_lane');
});

t.test('instructions the kernels do not run here still encode into a valid module', async (t) => {
  const bytes = assemble(`(func $f (param $p i32) (local $v v128) (local $d f64)
    local.get $p i32x4.splat i32x4.bitmask drop
    local.get $p i32x4.splat i32.const 3 i32x4.shr_u i32x4.all_true drop
    local.get $p i32x4.splat local.get $p i32x4.splat i32x4.min_u local.get $p i32x4.splat i32x4.max_u local.set $v
    local.get $v f64x2.promote_low_f32x4 f64x2.sqrt f32x4.demote_f64x2_zero local.get $v f32x4.ge v128.any_true drop
    local.get $p f32.load f64.promote_f32 f64.sqrt local.set $d
    local.get $p i32.load8_u local.get $p i32.store8)`);
  t.ok(WebAssembly.validate(bytes), 'validates');
});

t.test('text it does not understand is an error at assembly', async (t) => {
  const cases: [string, RegExp][] = [
    ['(func $f i32.frobnicate)', /unknown instruction i32.frobnicate/],
    ['(func $f local.get $x drop)', /unknown local \$x/],
    ['(func $f block $a br $b end)', /unknown label \$b/],
    ['(func $f block $a)', /not closed/],
    ['(func $f end)', /'end' without a block/],
    ['(func $f (param $x f16))', /unknown value type f16/],
    ['(func $f (local $x i32) (param $y i32))', /param \$y after a local/],
    ['(func $f (param $x i32) (local $x i32))', /repeated local name \$x/],
    ['(func $f v128.const i64x2 1 2 drop)', /v128.const i64x2 is not supported/],
    ['(func $f i32.const 0 i32.const 0 i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 32 drop)', /shuffle lane 32/],
    ['(module)', /'\(func' expected/],
  ];
  for (const [text, err] of cases) t.throws(() => assemble(text), err, text);
});
