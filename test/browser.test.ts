// The browser lookup of the page test, against fake directories: CHROMIUM, PATH, the usual places, playwright's
// download; none found → the page test is skipped with the reason, and under CI=true it fails.
import t from 'tap';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { findBrowser, isCi } from './browser.ts';
import { runScript, tempDir } from './helpers.ts';

/** An executable file (mode 755) or, with exec false, a plain one. */
function fakeBrowser(path: string, exec = true): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, '#!/bin/sh\nexit 0\n');
  chmodSync(path, exec ? 0o755 : 0o644);
  return path;
}

const nowhere = () => join(tempDir('smi-nobrowser-'), 'not-installed', 'chrome');

t.test('CHROMIUM names the browser; when it is not there nothing else is tried', async (t) => {
  const root = tempDir('smi-browser-');
  const mine = fakeBrowser(join(root, 'my', 'chrome'));
  const onPath = fakeBrowser(join(root, 'bin', 'chromium'));
  t.same(await findBrowser({ env: { CHROMIUM: mine, PATH: dirname(onPath) }, root, playwrightChromium: nowhere }), { found: true, path: mine, via: 'CHROMIUM' });
  const r = await findBrowser({ env: { CHROMIUM: '/nonexistent', PATH: dirname(onPath) }, root, playwrightChromium: nowhere });
  t.equal(r.found, false, 'an explicit CHROMIUM that is not there is not replaced by the one on PATH');
  if (!r.found) {
    t.match(r.reason, /^CHROMIUM=\/nonexistent is not an executable file: .*`npx playwright-core install chromium`/);
    t.notMatch(r.reason, /\n/, 'one line');
  }
});

t.test('on PATH, by the usual names, before the fixed places', async (t) => {
  const root = tempDir('smi-browser-');
  fakeBrowser(join(root, 'opt/google/chrome/chrome'));
  const chrome = fakeBrowser(join(root, 'home/bin/google-chrome'));
  const r = await findBrowser({ env: { PATH: `${join(root, 'empty')}:${dirname(chrome)}` }, platform: 'linux', root, playwrightChromium: nowhere });
  t.same(r, { found: true, path: chrome, via: 'google-chrome on PATH' });
  const notExec = tempDir('smi-browser-');
  fakeBrowser(join(notExec, 'bin', 'chromium'), false);
  const n = await findBrowser({ env: { PATH: join(notExec, 'bin') }, platform: 'linux', root: notExec, playwrightChromium: nowhere });
  t.equal(n.found, false, 'a file that is not executable is not a browser');
});

t.test("the usual places of Linux and macOS, then playwright-core's own download", async (t) => {
  const linux = tempDir('smi-browser-');
  const opt = fakeBrowser(join(linux, 'opt/google/chrome/chrome'));
  t.same(await findBrowser({ env: { PATH: '' }, platform: 'linux', root: linux, playwrightChromium: nowhere }), { found: true, path: opt, via: 'a usual place' });
  const mac = tempDir('smi-browser-');
  const app = fakeBrowser(join(mac, 'Applications/Google Chrome.app/Contents/MacOS/Google Chrome'));
  t.same(await findBrowser({ env: { PATH: '' }, platform: 'darwin', root: mac, home: join(mac, 'home'), playwrightChromium: nowhere }), { found: true, path: app, via: 'a usual place' });
  const user = fakeBrowser(join(mac, 'home/Applications/Chromium.app/Contents/MacOS/Chromium'));
  t.same(await findBrowser({ env: { PATH: '' }, platform: 'darwin', root: tempDir(), home: join(mac, 'home'), playwrightChromium: nowhere }), { found: true, path: user, via: 'a usual place' }, '~/Applications too');
  const pw = fakeBrowser(join(tempDir('smi-pw-'), 'chromium-1255/chrome-linux64/chrome'));
  t.same(await findBrowser({ env: { PATH: '' }, platform: 'linux', root: tempDir(), playwrightChromium: () => pw }), { found: true, path: pw, via: "playwright-core's download" });
});

t.test('none: one line naming CHROMIUM and the install command', async (t) => {
  const r = await findBrowser({ env: { PATH: tempDir() }, platform: 'linux', root: tempDir(), playwrightChromium: nowhere });
  t.equal(r.found, false);
  if (!r.found) {
    t.match(r.reason, /^no Chromium or Chrome found \(CHROMIUM unset; .*\): install one with `npx playwright-core install chromium` .* or set CHROMIUM=\/path\/to\/chrome$/);
    t.notMatch(r.reason, /\n/, 'one line');
    t.ok(r.tried.length > 10, `${r.tried.length} places tried`);
  }
  t.ok(isCi({ CI: 'true' }) && isCi({ CI: '1' }) && !isCi({}) && !isCi({ CI: 'false' }) && !isCi({ CI: '' }), 'CI is set unless empty, 0 or false');
});

t.test('the page test without a browser: skipped with the reason (exit 0); under CI=true, failed', async (t) => {
  const env = { CHROMIUM: '/nonexistent', CI: '' };
  const skipped = await runScript('test/coordinator/page.test', [], { env });
  t.equal(skipped.code, 0, 'exit 0', { stdout: skipped.stdout });
  t.match(skipped.stdout, /ok 1 - live page in headless Chromium # SKIP CHROMIUM=\/nonexistent is not an executable file: .*npx playwright-core install chromium/);
  const ci = await runScript('test/coordinator/page.test', [], { env: { ...env, CI: 'true' } });
  t.not(ci.code, 0, 'CI=true: exit non-zero');
  t.match(ci.stdout, /not ok 1 - CI=true: the page test must run: CHROMIUM=\/nonexistent is not an executable file/);
});
