// The control runs (random-mask, shrink) in the distributed trainer: global mode reproduces --local, local mode
// trains, synced mode is refused (its shared mask has no control variant).
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, maxRelativeDiff, readLog, runScript, tempDir, weights } from '../helpers.ts';

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10'];

t.test('random-mask in global mode with 2 workers reproduces --local (the same seeded masks at the coordinator)', async (t) => {
  const dir = tempDir('smi-controls-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--smi', 'random-mask', '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const out = join(dir, 'global-2');
  const d = await runScript('train', [...small, '--smi', 'random-mask', '--workers', '2', '--spectral', 'global', '--out', out]);
  t.equal(d.code, 0, 'exits 0', { output: d.stdout + d.stderr });
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
  t.ok(readLog(out).filter((x) => x.kind === 'step').every((s) => s.workers === 2), 'every step on 2 workers');
});

t.test('shrink in local mode (each worker its own history) trains; the controls in synced mode exit 2 and write nothing', async (t) => {
  const dir = tempDir('smi-controls-');
  const out = join(dir, 'local-mode');
  const d = await runScript('train', [...small, '--smi', 'shrink', '--workers', '2', '--spectral', 'local', '--out', out]);
  t.equal(d.code, 0, 'local mode exits 0', { output: d.stdout + d.stderr });
  const e = readLog(out).filter((r) => r.kind === 'eval');
  t.ok((e.at(-1)!.val_loss as number) < (e[0]!.val_loss as number) - 0.3, 'the loss falls');
  for (const smi of ['random-mask', 'shrink']) {
    const bad = join(dir, `synced-${smi}`);
    const s = await runScript('train', [...small, '--smi', smi, '--workers', '1', '--out', bad]);
    t.equal(s.code, 2, `${smi}, synced (the default mode): exit 2`);
    t.match(s.stderr, new RegExp(`E_BAD_CONFIG.*--smi ${smi} is a control run, not supported in synced mode`), 'says why and what to use');
    t.notOk(existsSync(bad), 'no run directory');
  }
});
