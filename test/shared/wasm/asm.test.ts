// The WAT assembler module (shared/wasm/asm.ts, wabt underneath): kernels run as written, bad text is a clear error.
import t from 'tap';
import { halfSpectrumQuantile, quantile } from '../../../shared/smi/quantile.ts';
import { assemble, initWasmAsm, instantiate, wasmAsmReady } from '../../../shared/wasm/asm.ts';

// Before initWasmAsm(): a clear error, and quantiles of large inputs take the selection path (same results).
t.notOk(wasmAsmReady(), 'not loaded at import');
t.throws(() => assemble('(module)'), /await initWasmAsm\(\) first/, 'assembling before initWasmAsm()');
const values = Float32Array.from({ length: 6000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453) - 0.5);
const H = Float32Array.from({ length: 65 * 64 }, (_, i) => Math.abs(Math.cos(i * 0.37)) * (1 + (i % 7)));
const before = [quantile(values, 0.1), quantile(values, 0.5), quantile(values, 0.97), halfSpectrumQuantile(H, 64, 128, 0.75)];
await initWasmAsm();
t.ok(wasmAsmReady(), 'loaded');

t.test('quantiles are the same through the wasm radix pass as through selection alone', async (t) => {
  const after = [quantile(values, 0.1), quantile(values, 0.5), quantile(values, 0.97), halfSpectrumQuantile(H, 64, 128, 0.75)];
  t.same(after, before);
});

t.test('a SIMD and a scalar kernel run as written on an imported memory', async (t) => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = instantiate<{
    add4(a: number, b: number, out: number, n: number): void;
    sum(a: number, n: number): number;
    consts(out: number): number;
    lanes(v: number): number;
  }>(`
    (module
      (import "env" "memory" (memory 0))
      ;; out[i] = a[i] + b[i], 4 floats at a time (n a multiple of 4)
      (func (export "add4") (param $a i32) (param $b i32) (param $out i32) (param $n i32) (local $e i32)
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
      (func (export "sum") (param $a i32) (param $n i32) (result f64) (local $s f64)
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
      (func (export "consts") (param $out i32) (result i32)
        local.get $out v128.const f32x4 1.5 -2 0.25 1e30 v128.store
        local.get $out v128.const i32x4 -1 0x7fffffff 0x80000000 7 v128.store offset=16
        local.get $out f32.const -0.5 f32.store offset=32
        local.get $out f64.const 3.25 f64.store offset=40
        i32.const -123456)
      ;; lanes 3, 2, 1, 0 of the int32 vector at v, reversed by a shuffle, then lane 0 + 10 · lane 3
      (func (export "lanes") (param $v i32) (result i32) (local $x v128)
        local.get $v v128.load local.get $v v128.load
        i8x16.shuffle 12 13 14 15 8 9 10 11 4 5 6 7 0 1 2 3 local.set $x
        local.get $x i32x4.extract_lane 0 local.get $x i32x4.extract_lane 3 i32.const 10 i32.mul i32.add))
  `, { env: { memory } });
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

t.test('bad text is an error at assembly, naming the file, line and column', async (t) => {
  const wrap = (body: string) => `(module\n  (func (export "f") (param $p i32)\n    ${body}))`;
  const cases: [string, RegExp][] = [
    [wrap('local.get $p i32.frobnicate drop'), /k\.wat:3:18: error: unexpected token i32\.frobnicate/],
    [wrap('local.get $x drop'), /k\.wat:3:15: error: undefined local variable "\$x"/],
    [wrap('block $a br $b end'), /k\.wat:3:17: error: undefined label variable "\$b"/],
    [wrap('local.get $p'), /validate failed:\nk\.wat:3:5: error: type mismatch at end of function/], // a value left on the stack
    [wrap('local.get $p f32.sqrt drop'), /k\.wat:3:18: error: type mismatch in f32\.sqrt/],
    ['(func $f', /k\.wat:1:9: error: unexpected token EOF/],
  ];
  for (const [text, err] of cases) t.throws(() => assemble(text, 'k.wat'), err, text);
  t.throws(() => instantiate('(module (func (export "f") i32.frobnicate))', {}), /parseWat failed:\nkernel\.wat:1:28/, 'default file name');
});
