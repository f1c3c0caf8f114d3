// `npm run bench -- scale --quick` end to end (test preset, real runs): every table filled, bytes exact, cpu_ms logged, files written.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScaleResult } from '../../scripts/bench/scale.ts';
import { exchangeBytes } from '../../scripts/bench/scale-model.ts';
import { netnsUnavailable } from '../../scripts/dev/netns.ts';
import { DATA, readLog, runScript, tempDir } from '../helpers.ts';

t.test('the quick variant runs every probe once and writes scale.json and scale.md', async (t) => {
  const dir = tempDir('smi-bench-scale-');
  const out = join(dir, 'report');
  const runs = join(dir, 'runs');
  const r = await runScript('bench', ['scale', '--quick', '--data', DATA, '--out', out, '--runs', runs], { timeoutMs: 600_000 });
  t.equal(r.code, 0, 'exits 0', { output: r.stdout + r.stderr });
  const res = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8')) as ScaleResult;
  const md = readFileSync(join(out, 'scale.md'), 'utf8');
  const twoHosts = netnsUnavailable() === null;
  const ids = ['probe-local', 'probe-synced-weak', 'probe-synced-strong', 'probe-global-weak', 'probe-global-strong', 'cpu-local', 'cpu-1', 'cpu-2', ...(twoHosts ? ['two-hosts', 'two-hosts-bf16'] : [])];
  t.same(res.rows.map((x) => x.spec.id), ids, `one row per probe${twoHosts ? ', the two-host run included' : ''}`);
  if (!twoHosts) t.match(md, /Skipped: the two-host run: /, 'the two-host run says why it was skipped');
  for (const row of res.rows) {
    const f = row.figures;
    t.ok(f.steps === 6 && f.msPerStep > 0 && f.tokensPerSec > 0 && f.cpuMs > 0, `${row.spec.id}: 6 steps counted, ms/step, tokens/s and the coordinator's CPU`);
    t.equal(f.params, row.spec.model.params, `${row.spec.id}: the log's parameter count is the sizes' (scale-model.ts)`);
    if (row.spec.workers === 0) continue;
    t.ok(row.vsBase.length === 1 && row.vsBase[0]! > 0 && f.outsideMs >= 0, `${row.spec.id}: a ratio and the time outside compute`);
    const ws = f.bytes.filter((b) => b.process !== 'coordinator');
    t.equal(ws.length, row.spec.workers, `${row.spec.id}: bytes of every worker`);
    const magnitudes = row.spec.mode === 'synced' ? row.spec.model.magnitudes : 0;
    if (f.update === 'coordinator') {
      // the star: every worker byte is a coordinator byte; each worker moves its gradient (and magnitudes) and a weight
      // copy per step: the formula, plus the token windows and framing
      const c = f.bytes.find((b) => b.process === 'coordinator')!;
      t.equal(c.sent + c.received, ws.reduce((a, b) => a + b.sent + b.received, 0), `${row.spec.id}: the star: every worker byte is a coordinator byte`);
      const formula = exchangeBytes(row.spec.workers, f.params, { magnitudes }).starWorker;
      for (const w of ws) t.ok(w.sent + w.received >= formula && w.sent + w.received < 1.02 * formula, `${row.spec.id} ${w.process}: ${w.sent + w.received} bytes/step, formula ${formula}`);
    } else if (row.spec.workers >= 2) {
      // the owners: 2·(N−1)/N of (gradient + values) per process, worker to worker, no magnitudes (exact for N = 2
      // whatever the plan's balance; the framing and the coordinator's token windows within 2%)
      const formula = exchangeBytes(row.spec.workers, f.params, { magnitudes, gradBytes: row.spec.wire === 'bf16' ? 2 : 4 }).sharded;
      for (const w of ws) t.ok(w.sent + w.received >= 0.98 * formula && w.sent + w.received < 1.02 * formula, `${row.spec.id} ${w.process}: ${w.sent + w.received} bytes/step, the sharded formula ${formula}`);
    }
  }
  for (const heading of ['### Probe', '### Weak scaling', '### Bytes per process per step', ...(twoHosts ? ['### Two hosts, emulated'] : [])]) t.match(md, heading);
  t.match(md, /--quick: the test preset, a smoke run/, 'says it is the smoke variant');
  t.notMatch(md, /\(≥ 1\.8\)/, 'and shows no bars of the paper-size figures beside test-preset numbers');
  for (const run of readdirSync(runs)) {
    t.ok(readLog(join(runs, run)).filter((x) => x.kind === 'step').every((x) => typeof x.cpu_ms === 'number' && x.cpu_ms > 0), `${run}: every step record has cpu_ms`);
  }
});
