// Bundles the browser worker (worker/browser/main.ts with worker/ and shared/) with esbuild, in memory: X.browser.ts replaces X.ts, Node-only imports fail the build.
import { build, type Plugin } from 'esbuild';
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
export const BROWSER_ENTRY = join(ROOT, 'worker/browser/main.ts');
const BUFFER_SHIM = join(ROOT, 'worker/browser/buffer-shim.ts');

/** Node's own modules, with and without `node:` ('buffer' is left out: the bundle takes the npm package of that name). */
const BUILTIN = new RegExp(`^(node:.*|${builtinModules.filter((m) => m !== 'buffer' && !m.startsWith('_')).map((m) => m.replace(/[/]/g, '\\/')).join('|')})$`);
/** Node-only packages the project's own files must not import in the bundle (each has a .browser.ts seam). */
const NODE_ONLY_PACKAGES = /^(ws|wabt\/.*|@tensorflow\/tfjs-node(-gpu)?)$/;

export interface BrowserBundle {
  js: string;
  /** Node modules that third-party code names in branches a browser never takes (Emscripten's Node loaders), each stubbed as an empty module: "module ← importer". */
  stubbed: string[];
  ms: number;
}

const inNodeModules = (p: string) => p.split(/[\\/]/).includes('node_modules');

/**
 * The seams: for a project file, `./x.ts` resolves to `./x.browser.ts` where that exists; a Node built-in or a
 * Node-only package imported by a project file is a build error naming the file; one imported by a package in
 * node_modules is replaced by an empty module and listed (they sit in `if (ENVIRONMENT_IS_NODE)` branches).
 */
function seams(stubbed: Set<string>): Plugin {
  return {
    name: 'browser-seams',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (inNodeModules(args.importer) || !args.path.endsWith('.ts')) return undefined;
        const alt = resolve(args.resolveDir, args.path.replace(/\.ts$/, '.browser.ts'));
        return existsSync(alt) ? { path: alt } : undefined;
      });
      b.onResolve({ filter: /.*/ }, (args) => {
        const builtin = BUILTIN.test(args.path);
        if (!builtin && !NODE_ONLY_PACKAGES.test(args.path)) return undefined;
        if (args.importer && !inNodeModules(args.importer)) {
          return { errors: [{ text: `${relative(ROOT, args.importer)} imports ${args.path}, which a browser does not have: give that file a .browser.ts seam beside it` }] };
        }
        if (!builtin) return undefined;
        stubbed.add(`${args.path} ← ${relative(ROOT, args.importer)}`);
        return { path: args.path, namespace: 'node-stub' };
      });
      b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
    },
  };
}

/** Builds the bundle of `entry` [worker/browser/main.ts] as one ES module (a module Web Worker's script). */
export async function bundleBrowserWorker(entry = BROWSER_ENTRY, o: { minify?: boolean } = {}): Promise<BrowserBundle> {
  const t0 = performance.now();
  const stubbed = new Set<string>();
  const r = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    nodePaths: [join(ROOT, 'node_modules')], // an entry outside the project (a test's) still finds the packages
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome113', // WebAssembly SIMD and, where the browser has it, WebGPU
    minify: o.minify ?? true,
    logLevel: 'silent',
    inject: [BUFFER_SHIM], // frames.ts and msgpackr use Node's Buffer: the `buffer` package stands in for it
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
    plugins: [seams(stubbed)],
  });
  const js = r.outputFiles[0]!.text;
  return { js, stubbed: [...stubbed].sort(), ms: performance.now() - t0 };
}

/** The .wasm files the browser worker fetches from /worker/assets/, from node_modules (never copied into the repository). */
export function wasmAssets(): Record<string, string> {
  const tfjsWasm = join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  return {
    'tfjs-backend-wasm.wasm': join(tfjsWasm, 'tfjs-backend-wasm.wasm'),
    'tfjs-backend-wasm-simd.wasm': join(tfjsWasm, 'tfjs-backend-wasm-simd.wasm'),
    'tfjs-backend-wasm-threaded-simd.wasm': join(tfjsWasm, 'tfjs-backend-wasm-threaded-simd.wasm'),
    'kissfft.wasm': join(ROOT, 'node_modules/kissfft-wasm/lib/kissfft.wasm'),
    'pffft.wasm': join(dirname(join(ROOT, 'node_modules/@echogarden/pffft-wasm/dist/simd/pffft.js')), 'pffft.wasm'),
  };
}
