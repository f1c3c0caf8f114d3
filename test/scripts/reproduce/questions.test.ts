// The reproduction report's three questions (issue 15): comparisons and their plain-language readings, and the
// report's sections on a tiny synthetic set of finished runs whose outcomes are known; reproduce's plan flags.
import t from 'tap';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImage } from '@napi-rs/canvas';
import { DATA, readLog, runScript, tempDir } from '../../helpers.ts';
import { judge } from '../../../scripts/reproduce/verdicts.ts';
import { compareFrom, controlsConclusion, modesConclusion, type Compared } from '../../../scripts/reproduce/questions.ts';

const cmp = (d: number[], margin = 0.01): Compared => compareFrom(judge(d, { kind: 'equivalent', margin }), margin);

t.test('compareFrom: lower / higher when the interval excludes 0, on par inside the margin, else inconclusive', async (t) => {
  t.equal(cmp([-0.03, -0.031, -0.029]).verdict, 'lower');
  t.equal(cmp([0.05, 0.051, 0.049]).verdict, 'higher');
  t.match(cmp([0.05, 0.051, 0.049]).detail, /beyond ±1%/);
  t.equal(cmp([0.003, 0.0031, 0.0029]).verdict, 'higher', 'a small but real difference is a difference');
  t.match(cmp([0.003, 0.0031, 0.0029]).detail, /whole interval lies within ±1%/);
  t.equal(cmp([0.001, -0.001, 0.0005]).verdict, 'on par');
  t.equal(cmp([0.03, -0.04, 0.02]).verdict, 'inconclusive', 'wide interval across 0');
  t.equal(cmp([0.001]).verdict, 'inconclusive', 'n = 1: no interval');
  t.equal(cmp([]).verdict, 'missing');
  t.equal(cmp([Infinity, 0.1]).verdict, 'inconclusive', 'a threshold never reached');
  t.match(cmp([0.001, -0.001, 0.0005]).detail, /n = 3: 2 degrees of freedom, \|t\| must exceed 4\.30/, 'the degrees of freedom are n − 1');
  t.match(cmp([0.001, -0.001]).detail, /n = 2: 1 degree of freedom, \|t\| must exceed 12\.7/);
});

t.test('controlsConclusion: each of the issue\'s readings from the val-loss comparisons', async (t) => {
  const lower = cmp([-0.03, -0.031, -0.029]);
  const higher = cmp([0.03, 0.031, 0.029]);
  const par = cmp([0.001, -0.001, 0.0005]);
  const open = cmp([0.03, -0.04, 0.02]);
  const reading = (c: Parameters<typeof controlsConclusion>[0]) => controlsConclusion(c).reading;
  t.equal(reading({ cosineVsBaseline: par, randomVsCosine: par, shrinkVsCosine: par }), 'noise', 'cosine on par with AdamW');
  t.match(controlsConclusion({ cosineVsBaseline: par, randomVsCosine: par, shrinkVsCosine: par }).text, /All four end within the margin/);
  t.equal(reading({ cosineVsBaseline: lower, randomVsCosine: higher, shrinkVsCosine: higher }), 'filter that helps', 'both controls worse than cosine, cosine better than AdamW');
  t.equal(reading({ cosineVsBaseline: lower, randomVsCosine: higher, shrinkVsCosine: par }), 'step-size change', 'shrink does what cosine does');
  t.equal(reading({ cosineVsBaseline: higher, randomVsCosine: open, shrinkVsCosine: par }), 'step-size change', 'also when SMI hurts');
  t.equal(reading({ cosineVsBaseline: lower, randomVsCosine: par, shrinkVsCosine: higher }), 'not the frequencies', 'a random mask of the same size does as well');
  t.equal(reading({ cosineVsBaseline: higher, randomVsCosine: lower, shrinkVsCosine: lower }), 'hurts');
  t.equal(reading({ cosineVsBaseline: lower, randomVsCosine: open, shrinkVsCosine: higher }), 'open', 'the controls do not say why');
  t.equal(reading({ cosineVsBaseline: open, randomVsCosine: par, shrinkVsCosine: par }), 'open', 'cosine vs AdamW unsettled');
  t.equal(reading({}), 'not measured');
  t.match(controlsConclusion({ cosineVsBaseline: lower, randomVsCosine: higher, shrinkVsCosine: par }).text, /-3\.00%, n = 3/, 'with the measured change and its n');
  const slightly = controlsConclusion({ cosineVsBaseline: cmp([0.0015, 0.0016, 0.0014]), randomVsCosine: higher, shrinkVsCosine: lower });
  t.equal(slightly.reading, 'hurts');
  t.match(slightly.text, /SMI slightly hurts here.*slightly higher than AdamW's \(\+0\.15%, n = 3; the whole interval inside ±1%\)/, 'a real but tiny change is called slight');
});

t.test('modesConclusion: does local mode (own histories) end like synced (one shared history)?', async (t) => {
  const par = cmp([0.001, -0.001, 0.0005]);
  const vs = [{ mode: 'synced', c: par }, { mode: 'local', c: par }];
  t.match(modesConclusion({ vsLocalProcess: vs, localVsSynced: par }).short, /own history is enough/);
  t.match(modesConclusion({ vsLocalProcess: vs, localVsSynced: cmp([0.03, 0.031, 0.029]) }).short, /shared history helps/);
  t.match(modesConclusion({ vsLocalProcess: vs, localVsSynced: cmp([-0.03, -0.031, -0.029]) }).short, /does not help/);
  t.match(modesConclusion({ vsLocalProcess: vs }).short, /not measured/);
  t.match(modesConclusion({ vsLocalProcess: [] }).text, /No distributed run/);
  t.match(modesConclusion({ vsLocalProcess: vs, localVsSynced: par }).text, /synced on par \(\+0\.02%, n = 3\), local on par/);
});

// ---- the report on synthetic runs -------------------------------------------------------------------------

const SEEDS = [1, 2, 3];
const STEPS = 40;

/** Final val loss per run and seed, made so that the outcome is known: cosine 3% below AdamW, shrink on par with cosine, random-mask 5% above. */
function finalVal(run: string, seed: number): number {
  const i = seed - 1;
  const base = [2.0, 2.02, 1.98][i]!;
  const cosine = base * 0.97 * (1 + [0.001, -0.001, 0.0005][i]!);
  switch (run) {
    case 'baseline': return base;
    case 'cosine': return cosine;
    case 'shrink': return cosine * (1 + [0.0005, -0.0003, 0.0001][i]!);
    case 'random-mask': return cosine * (1.05 + [0.002, -0.001, 0.001][i]!);
    case 'synced': return cosine * (1 + [0.001, 0, -0.0005][i]!);
    case 'local': return cosine * (1 + [0.001, 0, -0.0005][i]!) * (1 + [0.0002, -0.0001, 0.0001][i]!);
    default: throw new Error(run);
  }
}

/** A finished run directory: a real config.json and model from `template`, a synthetic log ending at `val`. */
function syntheticRun(template: string, dir: string, smi: string, seed: number, val: number, spectral?: string, resumedAt?: number): void {
  mkdirSync(dir, { recursive: true });
  cpSync(join(template, 'model.safetensors'), join(dir, 'model.safetensors'));
  const cfg = JSON.parse(readFileSync(join(template, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, smi, seed, max_iters: STEPS, eval_interval: 20, ...(spectral ? { spectral } : {}) }, null, 2));
  const lines: unknown[] = [{ kind: 'start', step: 0, backend: 'wasm', device: 'synthetic', params: 1, resumed: false }];
  lines.push({ kind: 'eval', step: 0, train_loss: 4.2, val_loss: 4.2 });
  for (let s = 1; s <= STEPS; s++) {
    if (s === resumedAt) lines.push({ kind: 'start', step: s - 1, backend: 'wasm', device: 'synthetic', params: 1, resumed: true });
    const loss = val + (4.2 - val) * Math.exp(-s / 8) + 0.01 * Math.sin(s * 1.7 + seed);
    lines.push({ kind: 'step', step: s, loss, lr: 1e-3, alpha: 0.3, ms: 10 + (s % 3), tokens: 128, workers: spectral ? 2 : 1, grad_norm: 1 });
    if (s % 20 === 0) lines.push({ kind: 'eval', step: s, train_loss: val * 0.95 + (s === STEPS ? 0 : 0.3), val_loss: val + (s === STEPS ? 0 : 0.3) });
  }
  lines.push({ kind: 'done', step: STEPS, ms: 400, tokens_per_sec: 1, train_loss: val * 0.95, val_loss: val });
  writeFileSync(join(dir, 'log.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

t.test('the report\'s question sections on synthetic runs with known outcomes: verdicts, readings, figures, JSON', async (t) => {
  const root = tempDir('smi-questions-');
  const template = join(root, 'template');
  const tr = await runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--max-iters', '2', '--eval-interval', '1', '--out', template]);
  t.equal(tr.code, 0, tr.stderr);
  const out = join(root, 'repro');
  for (const seed of SEEDS) {
    for (const run of ['baseline', 'cosine', 'random-mask', 'shrink']) syntheticRun(template, join(out, 'runs', `${run}-seed${seed}`), run, seed, finalVal(run, seed));
    for (const mode of ['synced', 'local']) syntheticRun(template, join(out, 'runs', `cosine-${mode}-w2-seed${seed}`), 'cosine', seed, finalVal(mode, seed), mode, mode === 'local' && seed === 2 ? 21 : undefined);
  }
  const plan = ['--preset', 'test', '--seeds', '1,2,3', '--runs', 'baseline,cosine,random-mask,shrink', '--distributed', 'synced,local', '--workers', '2', '--distributed-seeds', '1,2,3', '--out', out];
  const r = await runScript('reproduce', [...plan, '--report-only', '--data', DATA], { env: { SMI_INFERENCE_ROUNDS: '1' }, timeoutMs: 240_000 });
  t.equal(r.code, 0, 'exits 0', { stdout: r.stdout, stderr: r.stderr });
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  t.notMatch(md, /NaN|undefined|\[object/, 'no NaN or undefined anywhere');
  const at = (h: string) => md.indexOf(h);
  t.ok(at('## What SMI does on this model, as measured') > 0 && at('## What SMI does on this model, as measured') < at('## Verdicts on the headline claims'), 'the plain-language conclusion comes first');
  t.match(md, /a disguised step-size change: shrinking the gradient/, 'summary: shrink on par with cosine, cosine below AdamW → a step-size change');
  t.match(md, /each worker's own history is enough/, 'summary: local on par with synced');
  t.match(md, /Final validation loss\*\*: cosine against AdamW: lower \(-(2\.9|3\.0)\d%, n = 3\)/, 'summary: the measured change with its n');
  t.match(md, /The last column judges the same claim on the first two seeds only \(1, 2/, 'question 1: the earlier seeds compared');
  t.match(md, /\| Val loss on par with AdamW \(cosine\) \| 3 \| .*n = 3: 2 degrees of freedom, \\\|t\\\| must exceed 4\.30\) \| \*\*not reproduced\*\* \| /, 'question 1: n = 3, 2 degrees of freedom, -3% is outside the ±1% "on par"');
  const row = (label: string, metric: string) => md.split('\n').find((l) => l.startsWith(`| ${label} | ${metric} |`));
  t.match(row('cosine vs baseline', 'final val loss'), /\*\*lower\*\* \|$/);
  t.match(row('shrink vs cosine', 'final val loss'), /\*\*on par\*\* \|$/);
  t.match(row('random-mask vs cosine', 'final val loss'), /\+5\.\d% .*beyond ±1% \| \*\*higher\*\* \|$/);
  t.match(row('shrink vs baseline', 'final val loss'), /\*\*lower\*\* \|$/);
  t.match(row('synced ×2 vs --local cosine', 'final val loss'), /\*\*on par\*\* \|$/);
  t.match(row('local vs synced (both 2 workers)', 'final val loss'), /\*\*on par\*\* \|$/);
  t.match(md, /\| cosine, synced, 2 workers \| 3 \| /, 'question 3: a row per mode');
  t.match(md, /global batch \(8 sequences: 4 \+ 4\)/, 'the batch split as the coordinator makes it');
  t.match(md, /Random mask \(control\) \| 3 \| .* not in the paper \(a control\) \|/, 'the controls in Table 1, without paper numbers');
  t.notMatch(md, /\(random-mask\): \*\*/, "no paper claim is judged on a control");
  t.match(md, /## Closing note: every verdict with its n[^]*- Val loss on par with AdamW \(within ±1%\) \(cosine\): \*\*not reproduced\*\*, n = 3[^]*- local vs synced \(both 2 workers\), final val loss: \*\*on par\*\*, n = 3/, 'the closing note lists every verdict with its n');
  t.match(md, /Resumed from a checkpoint after an interruption \(1\): cosine local ×2 seed 2\. .*per-worker histories are not in the checkpoint/, 'a resumed run is named');
  t.match(md, /Wall time of the runs .*one-process runs: .*distributed runs: /, 'and the wall time');
  for (const fig of ['fig6-seed-effects.png', 'fig7-controls.png', 'fig8-modes-val-diff.png', 'fig9-modes.png']) {
    t.match(md, `](${fig})`, `${fig} referenced`);
    const img = await loadImage(readFileSync(join(out, fig)));
    t.ok(img.width >= 800 && img.height >= 450, `${fig} decodes (${img.width}×${img.height})`);
  }
  const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  t.equal(json.questions.controls.reading, 'step-size change');
  t.equal(json.distributed.length, 6, 'the distributed runs measured');
  t.equal(json.measured.length, 12, 'the one-process runs measured');
  const c = json.questions.controls.comparisons.find((x: { label: string; metric: string }) => x.label === 'random-mask vs cosine' && x.metric === 'final val loss');
  t.equal(c.verdict, 'higher');
  t.equal(c.n, 3);
  t.ok(c.lo > 0.04 && c.hi < 0.06, `interval ${c.lo}–${c.hi} around +5%`);
  t.equal(json.questions.seeds.headline[0].early.n, 2, 'the early-seed verdicts use n = 2');

  // --prior: the same report from the first one's report.json once the run directories are gone (all one-process
  // runs and one distributed run), with five distributed runs still on disk
  const out2 = join(root, 'repro-again');
  mkdirSync(join(out2, 'runs'), { recursive: true });
  for (const seed of SEEDS) for (const mode of ['synced', 'local']) if (!(mode === 'local' && seed === 3)) cpSync(join(out, 'runs', `cosine-${mode}-w2-seed${seed}`), join(out2, 'runs', `cosine-${mode}-w2-seed${seed}`), { recursive: true });
  const plan2 = plan.map((a) => (a === out ? out2 : a));
  const p = await runScript('reproduce', [...plan2, '--report-only', '--data', DATA, '--prior', join(out, 'report.json')], { timeoutMs: 240_000 });
  t.equal(p.code, 0, '--prior: exits 0', { stdout: p.stdout, stderr: p.stderr });
  const md2 = readFileSync(join(out2, 'report.md'), 'utf8');
  const json2 = JSON.parse(readFileSync(join(out2, 'report.json'), 'utf8'));
  t.notMatch(md2, /NaN|undefined|\[object|Missing from this report/, '--prior: no NaN, nothing missing');
  t.match(md2, /\*\*From a prior report\*\* \(13 run\(s\) whose directories are gone\): baseline seed 1, .*cosine local ×2 seed 3\. .*interleaved inference timing/, 'the runs taken from the prior file are named');
  t.same(json2.measured, json.measured, 'the one-process runs as the first report measured them');
  t.same(json2.distributed.map((d: { seed: number; spectral: string; val: number }) => [d.spectral, d.seed, d.val]).sort(), json.distributed.map((d: { seed: number; spectral: string; val: number }) => [d.spectral, d.seed, d.val]).sort(), 'the distributed runs: five read again, one from the prior file');
  t.same(json2.verdicts, json.verdicts, 'every claim judged as before (thresholds and inference timing from the prior report)');
  t.same(json2.questions, json.questions, 'every question answered as before');
  t.same(json2.thresholds, json.thresholds);
  t.same(json2.prior.runs.length, 13);
  t.ok(readFileSync(join(out2, 'fig3-train-loss-diff.png')).equals(readFileSync(join(out, 'fig3-train-loss-diff.png'))), 'Figure 3: the prior report\'s own, of the same runs');
  t.match(md2, /Figure 3 analogue: .*drawn by the prior report from the same runs/);
  t.notMatch(md2, /fig8-modes-val-diff/, 'Figure 8 (curves against one-process cosine) left out: those curves are gone');
  // one one-process run back on disk: the two sources cannot mix; a prior of another preset is refused
  cpSync(join(out, 'runs', 'cosine-seed1'), join(out2, 'runs', 'cosine-seed1'), { recursive: true });
  const mix = await runScript('reproduce', [...plan2, '--report-only', '--data', DATA, '--prior', join(out, 'report.json')], { timeoutMs: 120_000 });
  t.equal(mix.code, 2, 'mixed sources: exit 2');
  t.match(mix.stderr, /E_PRIOR_MIX.*11 one-process run\(s\) would come from it and 1 from their directories/);
  writeFileSync(join(root, 'cpu-report.json'), JSON.stringify({ ...json, preset: 'cpu' }));
  const other = await runScript('reproduce', [...plan2, '--report-only', '--data', DATA, '--prior', join(root, 'cpu-report.json')], { timeoutMs: 120_000 });
  t.equal(other.code, 2, 'a prior of another preset: exit 2');
  t.match(other.stderr, /E_BAD_PRIOR.*of the cpu preset, this report's of test/);
});

t.test('reproduce trains a distributed run (2 local workers), resumes one that was stopped, and checks its plan flags', async (t) => {
  const out = join(tempDir('smi-repro-dist-'), 'r');
  const dist = join(out, 'runs', 'cosine-local-w2-seed1337');
  // a run stopped at step 5 in the planned directory: reproduce must resume it, not start again
  const stopped = await runScript('train', ['--workers', '2', '--spectral', 'local', '--preset', 'test', '--smi', 'cosine', '--seed', '1337', '--max-iters', '10', '--data', DATA, '--out', dist, '--stop-at', '5']);
  t.equal(stopped.code, 0, stopped.stderr);
  const args = ['--preset', 'test', '--seeds', '1337', '--runs', 'cosine', '--distributed', 'local', '--workers', '2', '--max-iters', '10', '--data', DATA, '--out', out, '--train-only'];
  const r = await runScript('reproduce', args, { timeoutMs: 180_000 });
  t.equal(r.code, 0, 'exits 0', { stdout: r.stdout, stderr: r.stderr });
  t.match(r.stdout, /training cosine local ×2 seed 1337 \(resume\)/, 'the distributed run resumed');
  const steps = readLog(dist).filter((x) => x.kind === 'step');
  t.same(steps.map((s) => s.step), Array.from({ length: 10 }, (_, i) => i + 1), 'every step once');
  t.ok(steps.every((s) => s.workers === 2), 'on 2 workers');
  t.ok(existsSync(join(dist, 'worker-1.log')), 'the workers\' logs in the run directory');
  t.ok(readLog(join(out, 'runs', 'cosine-seed1337')).some((x) => x.kind === 'done'), 'the one-process run finished too');
  const again = await runScript('reproduce', args, { timeoutMs: 60_000 });
  t.match(again.stdout, /2 of 2 runs already finished; training 0/, 'a second call trains nothing');
  for (const [flags, why] of [
    [['--workers', '2'], /--workers is for the --distributed runs/],
    [['--seeds-of', 'cosine'], /--seeds-of takes RUN1,RUN2=SEED1,SEED2/],
    [['--runs', 'cosine', '--seeds-of', 'top75=1'], /--seeds-of names top75, which --runs does not train/],
    [['--distributed', 'synched'], /did you mean 'synced'/],
    [['--seeds', '1,1'], /names a seed twice/],
  ] as [string[], RegExp][]) {
    const bad = await runScript('reproduce', [...flags, '--out', join(out, 'bad'), '--train-only']);
    t.equal(bad.code, 2, `${flags.join(' ')}: exit 2`);
    t.match(bad.stderr, why);
  }
  const help = await runScript('reproduce', ['--help']);
  t.match(help.stdout, /--distributed synced,global,local --workers 2/, 'the help shows the issue-15 plan');
});
