// pffft-wasm ships no type declarations: its SIMD build's default export, an Emscripten module factory (typed where it is used, shared/smi/fft-modules.ts).
declare module '@echogarden/pffft-wasm/simd' {
  const factory: unknown;
  export default factory;
}
