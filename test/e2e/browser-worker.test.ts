// A browser tab is a worker: a coordinator, a Node worker and a headless Chromium on /worker train the test preset ≡ --local; closing the tab at step 10 loses nothing.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Browser } from 'playwright-core';
import { launchChromium, openWorkerPage, pageState, waitForPageStep } from '../../scripts/browser/worker-page.ts';
import { findBrowser, isCi } from '../browser.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, weights } from '../helpers.ts';

// CHROMIUM, else the usual places (test/browser.ts); CI installs Debian's chromium. Without one: skipped, under CI failed.
const BROWSER = await findBrowser();
const skip = !BROWSER.found && !isCi() ? BROWSER.reason : false;
const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--smi', 'cosine', '--spectral', 'global'];
const TOKEN = 'browsertok123';
const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');

/** Every file under `dir`, read as text. */
const filesUnder = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? filesUnder(join(dir, f)) : [readFileSync(join(dir, f), 'latin1')]));

let reference: Map<string, { data: Float32Array }> | undefined;
async function localWeights(t: Test): Promise<Map<string, { data: Float32Array }>> {
  if (reference) return reference;
  const local = join(tempDir('smi-browser-local-'), 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, '--local exits 0', { stderr: r.stderr });
  reference = weights(local);
  return reference;
}

/** A coordinator waiting for two workers and a Node worker that owns the tensors; the browser is the other. */
function startRun(out: string) {
  const coord = startScript('coordinator/main', [...small, '--out', out, '--host', '127.0.0.1', '--port', '0', '--token', TOKEN, '--min-workers', '2']);
  return coord;
}

t.test('a coordinator, a Node worker and a browser worker (wasm) train the test preset in global mode ≡ --local', { skip }, async (t) => {
  if (!BROWSER.found) return void t.fail(`CI=${process.env.CI}: the browser worker test must run: ${BROWSER.reason}`);
  const ref = await localWeights(t);
  const out = join(tempDir('smi-browser-'), 'run');
  const coord = startRun(out);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const [pageLine] = await coord.waitFor(/or open in a browser: .*\n/);
  t.match(pageLine, new RegExp(`http://<this host>:${port}/worker#token=${TOKEN}\n$`), 'the coordinator prints the page with the token in its fragment');
  const node = startScript('worker/main', ['--connect', `ws://127.0.0.1:${port}`, '--token', TOKEN, '--listen', '127.0.0.1:0']);
  let browser: Browser | undefined;
  t.teardown(async () => {
    await browser?.close();
    coord.child.kill();
    node.child.kill();
  });
  browser = await launchChromium(BROWSER.path);
  const base = `http://127.0.0.1:${port}`;
  const w = await openWorkerPage(browser, base, TOKEN, 'wasm');
  t.equal(await w.page.evaluate(() => location.href), `${base}/worker`, 'the page drops the fragment from its address at once');
  const first = await waitForPageStep(w.page, 1);
  t.equal(first.backend?.name, 'wasm', `backend: ${first.backend?.name} (${first.backend?.reason})`);
  t.match(first.backend?.reason ?? '', /requested; wasm with SIMD and the project's kernels/);
  const state = await (await fetch(`${base}/api/state`)).json() as { workers: { backend: string; host: string; device: string }[] };
  const tab = state.workers.find((x) => x.host.includes('Chrome'));
  t.ok(tab, `the live page's worker table has the browser worker (${JSON.stringify(state.workers.map((x) => x.host))})`);
  t.equal(tab?.backend, 'wasm', 'with its backend');
  t.match(tab?.device ?? '', /^browser, \d+ logical cores$/);

  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  t.equal(await node.exited, 0, 'the Node worker ends cleanly');
  const end = await pageState(w.page);
  t.equal(end.exit?.reason, 'done', `the browser worker ends with the run (${end.exit?.message})`);
  t.same(end.steps.map((s) => s.step), Array.from({ length: 20 }, (_, i) => i + 1), 'the page reported every step');
  t.ok(end.steps.every((s) => s.phases.compute! > 0 && s.bytesSent > 0 && s.bytesReceived > 0), 'each with its compute time and bytes');
  const live = new Set(end.steps.slice(1).map((s) => s.numTensors));
  t.equal(live.size, 1, `the tab's live tensors flat from step 2 on (${[...live].join(', ')})`);
  t.match(coord.output(), /plan \d+ at step 0: \S+ owns 15 tensors .*; 1 compute-only/, 'the Node worker owns every tensor, the tab computes');
  t.ok(steps(out).every((s) => s.workers === 2), 'every step computed by both');
  const diff = maxRelativeDiff(weights(out), ref);
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
  // the token: in no request the page made, no Referer, no file of the run
  t.ok(w.requests.length >= 5 && w.requests.every((r) => !r.url.includes(TOKEN) && !(r.referer ?? '').includes(TOKEN)), `in none of the page's ${w.requests.length} requests nor their Referer`);
  t.same(w.requests.filter((r) => r.referer), [], 'no request carries a Referer at all (the page sets no-referrer)');
  t.notOk(filesUnder(out).some((f) => f.includes(TOKEN)), 'in no file of the run directory');
  t.same(w.problems, [], 'no page or console errors');
});

/** --local's weights, then a coordinator, an owning Node worker and a tab (wasm) on its /worker page; all closed at the test's end. */
async function tabRun(t: Test, prefix: string) {
  if (!BROWSER.found) throw new Error(BROWSER.reason); // the callers check first
  const ref = await localWeights(t);
  const out = join(tempDir(prefix), 'run');
  const coord = startRun(out);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const node = startScript('worker/main', ['--connect', `ws://127.0.0.1:${port}`, '--token', TOKEN, '--listen', '127.0.0.1:0']);
  let browser: Browser | undefined;
  t.teardown(async () => {
    await browser?.close();
    coord.child.kill();
    node.child.kill();
  });
  browser = await launchChromium(BROWSER.path);
  const w = await openWorkerPage(browser, `http://127.0.0.1:${port}`, TOKEN, 'wasm');
  return { ref, out, coord, node, w };
}

t.test('the tab closed at step 10: the run goes on with the Node worker and ends with the undisturbed weights', { skip }, async (t) => {
  if (!BROWSER.found) return void t.fail(`CI=${process.env.CI}: the browser worker test must run: ${BROWSER.reason}`);
  const { ref, out, coord, node, w } = await tabRun(t, 'smi-browser-close-');
  await waitForPageStep(w.page, 10);
  await w.page.close(); // the tab, its Web Worker and its sockets go
  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  t.equal(await node.exited, 0, 'the Node worker ends cleanly');
  const s = steps(out);
  t.same(s.map((r) => r.step), Array.from({ length: 20 }, (_, i) => i + 1), 'every step once in the log');
  t.ok(s.some((r) => r.workers === 2) && s.at(-1)!.workers === 1, `two workers, then one (${s.map((r) => r.workers).join('')})`);
  const diff = maxRelativeDiff(weights(out), ref);
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});

t.test("the page's Stop button at step 5: the tab leaves after its step, says so, and the run ends with the undisturbed weights", { skip }, async (t) => {
  if (!BROWSER.found) return void t.fail(`CI=${process.env.CI}: the browser worker test must run: ${BROWSER.reason}`);
  const { ref, out, coord, node, w } = await tabRun(t, 'smi-browser-stop-');
  await waitForPageStep(w.page, 5);
  await w.page.click('#stop');
  await w.page.waitForFunction(() => (window as unknown as { smiWorker: { exit: unknown } }).smiWorker.exit !== null, undefined, { timeout: 60_000 });
  const s = await pageState(w.page);
  t.equal(s.exit?.reason, 'stopped', `the worker says it left (${s.exit?.message})`);
  t.equal(await w.page.textContent('#state'), 'stopped: this tab left the run');
  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  t.equal(await node.exited, 0, 'the Node worker ends cleanly');
  t.match(coord.output(), /left: /, 'the coordinator logs the tab leaving');
  const steps2 = steps(out);
  t.same(steps2.map((r) => r.step), Array.from({ length: 20 }, (_, i) => i + 1), 'every step once in the log');
  t.equal(steps2.at(-1)!.workers, 1, 'the last steps on the Node worker alone');
  const diff = maxRelativeDiff(weights(out), ref);
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});
