import { instantiate } from '../../shared/wasm-asm.ts';
const mem = new WebAssembly.Memory({ initial: 1 });
const k = instantiate<{ add4(a: number, b: number, out: number, n: number): void; sum(a: number, n: number): number }>(`
(func $add4 (param $a i32) (param $b i32) (param $out i32) (param $n i32) (local $e i32)
  local.get $out  local.get $n  i32.const 4  i32.shl  i32.add  local.set $e
  block $done
    local.get $out local.get $e i32.ge_u br_if $done
    loop $top
      local.get $out
      local.get $a v128.load
      local.get $b v128.load offset=0
      f32x4.add
      v128.store
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
`, mem);
const f = new Float32Array(mem.buffer);
for (let i = 0; i < 8; i++) { f[i] = i; f[8 + i] = 10 * i; }
k.add4(0, 32, 64, 2);
console.log(Array.from(f.subarray(16, 24)), k.sum(64, 8));
