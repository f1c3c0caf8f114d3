import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(import.meta.url);
const jsPath = require.resolve('@echogarden/pffft-wasm/simd');
console.log(jsPath);
const bytes = readFileSync(jsPath.replace(/\.js$/, '.wasm'));
let memory: WebAssembly.Memory | undefined;
const { default: load } = (await import('@echogarden/pffft-wasm/simd' as string)) as any;
let failed: Promise<never> | undefined;
const m = await load({
  instantiateWasm(imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void) {
    WebAssembly.instantiate(bytes, imports).then(({ instance, module }) => {
      memory = Object.values(instance.exports).find((e): e is WebAssembly.Memory => e instanceof WebAssembly.Memory);
      receive(instance, module);
    });
    return {};
  },
});
console.log(memory, m.HEAPF32.buffer === memory!.buffer, m._pffft_simd_size());
