// Which module may import which: no cycles, entry points import downward only (`npm run lint:deps`, test/deps.test.ts).
//
// Layers, lowest first; a module imports only from its own layer or lower ones:
//   shared/ root (config, errors, stats) < shared/wasm < shared/model < shared/smi < shared/backend
//   < shared/parallel, shared/net < shared/train < shared/cli   (the core: knows no coordinator, worker or script)
//   < coordinator/, worker/ (each imports shared/ only, never the other)   < scripts/   < test/
// Entry points (scripts/*.ts, coordinator/main.ts, worker/main.ts) are imported by nothing.
const SHARED_LAYERS = [
  ['root', '^shared/[^/]+\\.ts$'],
  ['wasm', '^shared/wasm/'],
  ['model', '^shared/model/'],
  ['smi', '^shared/smi/'],
  ['backend', '^shared/backend/'],
  ['parallel', '^shared/parallel/', 5],
  ['net', '^shared/net/', 5],
  ['train', '^shared/train/'],
  ['cli', '^shared/cli/'],
].map(([name, path, rank], i) => ({ name, path, rank: rank ?? i }));

const upward = SHARED_LAYERS.flatMap((from) => {
  const higher = SHARED_LAYERS.filter((to) => to.rank > from.rank || (to.rank === from.rank && to !== from));
  return higher.length === 0 ? [] : [{
    name: `shared-${from.name}-imports-down`,
    comment: `shared/${from.name} may import only from its own layer or lower ones (see the top of .dependency-cruiser.cjs)`,
    severity: 'error',
    from: { path: from.path },
    to: { path: higher.map((h) => h.path).join('|') },
  }];
});

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'a cycle makes two modules one concern', severity: 'error', from: {}, to: { circular: true } },
    { name: 'shared-is-the-core', comment: 'shared/ knows no coordinator, worker, script or test', severity: 'error', from: { path: '^shared/' }, to: { path: '^(coordinator|worker|scripts|test)/' } },
    { name: 'coordinator-imports-shared', comment: 'the coordinator imports shared/ only (not the worker, scripts or tests)', severity: 'error', from: { path: '^coordinator/' }, to: { path: '^(worker|scripts|test)/' } },
    { name: 'worker-imports-shared', comment: 'the worker imports shared/ only (not the coordinator, scripts or tests)', severity: 'error', from: { path: '^worker/' }, to: { path: '^(coordinator|scripts|test)/' } },
    { name: 'scripts-not-tests', comment: 'scripts never import tests', severity: 'error', from: { path: '^scripts/' }, to: { path: '^test/' } },
    { name: 'entry-points-are-leaves', comment: 'an entry point (scripts/*.ts, coordinator/main.ts, worker/main.ts) is started, never imported', severity: 'error', from: {}, to: { path: '^(scripts/[^/]+\\.ts|coordinator/main\\.ts|worker/main\\.ts)$' } },
    { name: 'engine-below-server-users', comment: "the coordinator's engine does not import its callers", severity: 'error', from: { path: '^coordinator/engine/' }, to: { path: '^coordinator/(main|run|launcher)\\.ts$' } },
    { name: 'browser-code-has-no-node', comment: "worker/browser/ and a .browser.ts seam run in the browser worker's bundle: no Node module (the bundle's build refuses one too, coordinator/browser-bundle.ts)", severity: 'error', from: { path: '(^worker/browser/|\\.browser\\.ts$)' }, to: { dependencyTypes: ['core'], pathNot: '^buffer$' } }, // buffer: the npm package, which the bundle takes
    { name: 'browser-code-has-no-ws', comment: "the browser's WebSocket stands in for ws there (shared/net/socket.browser.ts)", severity: 'error', from: { path: '(^worker/browser/|\\.browser\\.ts$)' }, to: { path: 'node_modules/(ws|@tensorflow/tfjs-node)' } },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules' },
    tsPreCompilationDeps: true, // type-only imports count: a cycle of types is a cycle of concerns
    moduleSystems: ['es6'],
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
