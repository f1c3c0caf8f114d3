// `npx tsx scripts/browser/screenshot.ts [OUT.png]`: the worker page during a run (test preset, a Node worker and this tab), for the README [docs/browser-worker.png].
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runMain } from '../../shared/cli/main.ts';
import { findBrowser } from './find.ts';
import { runWithBrowserWorker } from './run.ts';
import { waitForPageStep } from './worker-page.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

runMain(async () => {
  const file = resolve(process.argv[2] ?? join(ROOT, 'docs', 'browser-worker.png'));
  const b = await findBrowser();
  if (!b.found) throw new Error(b.reason);
  const out = mkdtempSync(join(tmpdir(), 'smi-screenshot-'));
  await runWithBrowserWorker({
    flags: ['--preset', 'test', '--max-iters', '40', '--eval-interval', '1000', '--eval-iters', '1', '--spectral', 'global', '--out', out],
    chromium: b.path,
    onPage: async (w) => {
      await waitForPageStep(w.page, 14);
      await w.page.screenshot({ path: file, fullPage: true });
      console.log(`wrote ${file}`);
    },
  });
  return 0;
});
