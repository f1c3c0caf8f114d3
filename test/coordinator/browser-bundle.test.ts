// The browser worker's bundle: built from worker/ and shared/ with no Node import left; a project file that imports one fails the build; the page's paths and headers.
import http from 'node:http';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, bundleBrowserWorker } from '../../coordinator/browser-bundle.ts';
import { handleWorkerPage, workerPageUrl } from '../../coordinator/worker-page.ts';
import { tempDir } from '../helpers.ts';

t.test('the bundle has no node: import; Node modules are stubbed only for third-party code', async (t) => {
  const b = await bundleBrowserWorker(undefined, { minify: false });
  t.ok(b.js.length > 100_000, `${(b.js.length / 1e6).toFixed(1)} MB built in ${b.ms.toFixed(0)} ms`);
  t.same(b.js.match(/(?:\bfrom\s*|\brequire\(\s*|\bimport\(\s*)["']node:[^"']*["']/g) ?? [], [], 'no import, require or dynamic import of a node: module');
  t.notMatch(b.js, /from\s*["']ws["']/, 'no ws');
  t.ok(b.stubbed.length > 0 && b.stubbed.every((s) => / ← node_modules\//.test(s)), `stubbed, all from node_modules: ${b.stubbed.join('; ')}`);
  for (const seam of ['shared/net/socket.browser.ts', 'shared/smi/fft-modules.browser.ts', 'shared/wasm/wabt.browser.ts', 'worker/host.browser.ts', 'worker/exchange-server.browser.ts']) {
    t.match(b.js, new RegExp(`// ${seam.replace(/[./]/g, '\\$&')}`), `${seam} replaces its Node file`);
  }
  t.notMatch(b.js, /\/\/ worker\/exchange-server\.ts\n/, 'the Node exchange server is not in it');
  t.match(b.js, /\/\/ shared\/wasm\/kernels\.ts/, "the project's wasm kernels are in it");
  t.match(b.js, /\/\/ shared\/smi\/fft\.ts/, 'the host FFT is in it');
});

t.test('a project file that imports a Node module fails the build, naming the file', async (t) => {
  const dir = tempDir('smi-bundle-');
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, "import { readFileSync } from 'node:fs';\nconsole.log(readFileSync);\n");
  await t.rejects(bundleBrowserWorker(entry), /entry\.ts imports node:fs, which a browser does not have: give that file a \.browser\.ts seam/);
  const ws = join(dir, 'ws.ts');
  writeFileSync(ws, "import WebSocket from 'ws';\nconsole.log(WebSocket);\n");
  await t.rejects(bundleBrowserWorker(ws), /ws\.ts imports ws, which a browser does not have/);
  t.ok(ROOT.length > 0);
});

t.test('/worker: the page (no referrer), its script, the bundle and the .wasm assets; other paths fall through', async (t) => {
  const server = http.createServer((req, res) => {
    if (!handleWorkerPage(req, res)) res.writeHead(404).end('not mine');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const page = await fetch(`${base}/worker`);
  t.equal(page.status, 200);
  t.equal(page.headers.get('referrer-policy'), 'no-referrer');
  const html = await page.text();
  t.match(html, /<meta name="referrer" content="no-referrer">/);
  t.match(html, /<script type="module" src="\/worker\/page.js">/);
  const js = await fetch(`${base}/worker/page.js`);
  t.match(await js.text(), /history\.replaceState\(null, '', location\.pathname\)/, 'the page drops the fragment');
  const app = await fetch(`${base}/worker/app.js`);
  t.equal(app.status, 200);
  t.equal(app.headers.get('content-type'), 'text/javascript; charset=utf-8');
  for (const name of ['tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm.wasm', 'kissfft.wasm', 'pffft.wasm']) {
    const r = await fetch(`${base}/worker/assets/${name}`);
    t.equal(r.status, 200, name);
    t.same([...new Uint8Array(await r.arrayBuffer()).slice(0, 4)], [0, 0x61, 0x73, 0x6d], `${name} is wasm`);
  }
  t.equal((await fetch(`${base}/worker/assets/../../package.json`)).status, 404);
  t.equal((await fetch(`${base}/worker/assets/secret.wasm`)).status, 404);
  t.equal(await (await fetch(`${base}/`)).text(), 'not mine', 'the live page is not taken');
  t.equal(workerPageUrl('http://h:1/', 'a b'), 'http://h:1/worker#token=a%20b', 'the token in the fragment');
});
