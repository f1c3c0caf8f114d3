// `npm run reproduce` on the test preset, whole runs: the report is filled, its figures decode, a second run does not retrain.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImage } from '@napi-rs/canvas';
import { DATA, runScript, tempDir } from '../helpers.ts';

t.test('reproduce on the test preset: report filled, figures decode, a second run does not retrain', async (t) => {
  const out = join(tempDir('smi-repro-'), 'r');
  const args = ['--preset', 'test', '--seeds', '1337', '--runs', 'baseline,cosine', '--max-iters', '20', '--data', DATA, '--out', out];
  const t0 = Date.now();
  const r1 = await runScript('reproduce', args, { timeoutMs: 120_000 });
  t.equal(r1.code, 0, 'exits 0', { stderr: r1.stderr, stdout: r1.stdout });
  t.comment(`first run: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  t.notMatch(md, /NaN|undefined|\[object/, 'no NaN or undefined anywhere in the report');
  t.match(md, /npm run reproduce -- --preset test --seeds 1337 --runs baseline,cosine --max-iters 20/, 'the exact command at the top');
  t.match(md, /Machine that ran it: .+, \d+ cores, Node v\d+/, 'the machine');
  for (const title of ['Table 1 analogue', 'Table 7 analogue', 'Tables 2–4 analogue', 'Verdicts per claim']) t.match(md, title);
  const rows = md.split('\n').filter((l) => l.startsWith('| '));
  for (const method of ['Baseline (AdamW)', 'Cosine α']) t.ok(rows.filter((l) => l.startsWith(`| ${method} |`)).length >= 2, `${method} in Tables 1 and 7`);
  t.ok(rows.some((l) => l.startsWith('| Spectral norm variance |')), 'parameter-quality table');
  t.match(md, /± n\/a/, 'one seed: SEM n/a');
  t.match(md, /\*\*inconclusive\*\*/, 'verdicts at n = 1 are inconclusive');
  const pngs = [...md.matchAll(/!\[[^\]]*\]\(([^)]+\.png)\)/g)].map((m) => m[1]!);
  t.ok(pngs.length >= 5, `figures referenced: ${pngs.join(', ')}`);
  for (const p of pngs) {
    const file = join(out, p);
    t.ok(existsSync(file), `${p} exists`);
    const img = await loadImage(readFileSync(file));
    t.ok(img.width > 100 && img.height > 100, `${p} decodes (${img.width}×${img.height})`);
  }
  const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  t.equal(json.measured.length, 2);

  const logs = ['baseline', 'cosine'].map((run) => readFileSync(join(out, 'runs', `${run}-seed1337`, 'log.jsonl')));
  const r2 = await runScript('reproduce', args, { timeoutMs: 120_000 });
  t.equal(r2.code, 0, r2.stderr);
  t.match(r2.stdout, /2 of 2 runs already finished; training 0/, 'says the runs were finished');
  t.notMatch(r2.stdout, /training (baseline|cosine) seed/, 'trains nothing');
  ['baseline', 'cosine'].forEach((run, i) => t.ok(readFileSync(join(out, 'runs', `${run}-seed1337`, 'log.jsonl')).equals(logs[i]!), `${run}: log.jsonl unchanged`));

  // a run that is not there: reported as missing, the rest still filled
  const r3 = await runScript('reproduce', ['--preset', 'test', '--seeds', '1337', '--runs', 'baseline,cosine,top75', '--data', DATA, '--out', out, '--report-only'], { timeoutMs: 120_000 });
  t.equal(r3.code, 0, r3.stderr);
  const md3 = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(md3, /Missing from this report.*top75 seed 1337 \(not trained\)/, 'names the missing run');
  t.notMatch(md3, /NaN|undefined/, 'still no NaN');

  // npm run analyze on a finished run
  const a = await runScript('analyze', ['--checkpoint', join(out, 'runs', 'cosine-seed1337'), '--compare', join(out, 'runs', 'baseline-seed1337'), '--json', '--data', DATA]);
  t.equal(a.code, 0, a.stderr);
  const aj = JSON.parse(a.stdout);
  t.equal(aj.runs.length, 2);
  t.ok(Number.isFinite(aj.runs[0].quality.weights.spectralNormMean) && aj.runs[0].quality.activation.overall >= 0, 'metrics filled');
  const text = await runScript('analyze', ['--checkpoint', join(out, 'runs', 'cosine-seed1337'), '--data', DATA]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /spectral norm, variance\s+\d/, 'a table');
  const bad = await runScript('analyze', ['--checkpoint', join(out, 'nowhere')]);
  t.equal(bad.code, 2, 'a missing directory: exit 2');
  t.match(bad.stderr, /does not exist/);
  const notRun = await runScript('analyze', ['--checkpoint', out]);
  t.equal(notRun.code, 2, 'a directory that is not a run: exit 2');
  t.match(notRun.stderr, /no config\.json/);
  t.comment(`whole test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
