// Node module-resolution hook for tests: `@tensorflow/tfjs-node(-gpu)` resolve to the stand-in (tfjs-node.ts).
const STANDIN = new URL('./tfjs-node.ts', import.meta.url);
const PACKAGES = new Set(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);

export async function resolve(specifier, context, next) {
  if (!PACKAGES.has(specifier)) return next(specifier, context);
  const url = new URL(STANDIN);
  url.searchParams.set('package', specifier); // one module instance per package, as two installed packages would be
  return next(url.href, context); // resolved by the rest of the chain, so that a TypeScript loader (tsx) takes it
}
