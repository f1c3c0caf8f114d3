// --wire-dtype bf16 in whole runs: the shares toward the owners take half the bytes, the values stay fp32, the run trains as fp32's does.
import t from 'tap';
import { join } from 'node:path';
import { DATA, readLog, runScript, tempDir, weights } from '../helpers.ts';

type Worker = { sent: number; received: number; shares_sent: number; shares_received: number; values_sent: number; values_received: number };
const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step') as { step: number; loss: number; owners_step: Record<string, Worker> }[];
const finalVal = (dir: string) => (readLog(dir).find((r) => r.kind === 'done') as { val_loss: number }).val_loss;

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '12', '--eval-interval', '12', '--smi', 'cosine', '--workers', '2'];

for (const spectral of ['global', 'synced'] as const) {
  t.test(`${spectral}, 2 workers: bf16 shares are about half fp32's bytes, exactly counted per worker; values unchanged; the run completes and trains as fp32's`, async (t) => {
    const dir = tempDir('smi-wire-');
    const out = { fp32: join(dir, 'fp32'), bf16: join(dir, 'bf16') };
    for (const wire of ['fp32', 'bf16'] as const) {
      const r = await runScript('train', [...small, '--spectral', spectral, '--wire-dtype', wire, '--out', out[wire]]);
      t.equal(r.code, 0, `${wire} exits 0`, { output: r.stdout + r.stderr });
    }
    const [f, b] = [steps(out.fp32), steps(out.bf16)];
    t.equal(b.length, 12, 'bf16: every step logged');
    // step 1 also carries the plan's load; from step 2 a step's bytes are the step's own
    // worker ids differ between runs: the workers are matched by their share bytes, sorted (the same plan in both)
    const sorted = (s: (typeof f)[number]) => Object.values(s.owners_step).sort((x, y) => x.shares_sent - y.shares_sent);
    for (let i = 1; i < f.length; i++) {
      const [xs, ys] = [sorted(f[i]!), sorted(b[i]!)];
      xs.forEach((x, w) => {
        const y = ys[w]!;
        const ratio = y.shares_sent / x.shares_sent;
        if (!(ratio > 0.49 && ratio < 0.52)) t.fail(`step ${i + 1}, worker ${w}: bf16 shares ${y.shares_sent} B, fp32 ${x.shares_sent} B (${ratio.toFixed(4)})`);
        if (y.shares_received !== ys[1 - w]!.shares_sent) t.fail(`step ${i + 1}, worker ${w}: received ${y.shares_received} B of shares, the other sent ${ys[1 - w]!.shares_sent} B`);
        if (y.values_sent !== x.values_sent) t.fail(`step ${i + 1}, worker ${w}: values ${y.values_sent} B in bf16's run, ${x.values_sent} B in fp32's`);
        if (!(y.shares_sent + y.values_sent <= y.sent)) t.fail(`step ${i + 1}: the links' bytes are part of the worker's total`);
      });
    }
    const r2 = (k: 'shares_sent' | 'values_sent', s: typeof f) => Object.values(s[1]!.owners_step).reduce((a, w) => a + w[k], 0);
    t.pass(`step 2, both workers: shares ${r2('shares_sent', f)} B fp32 → ${r2('shares_sent', b)} B bf16; values ${r2('values_sent', f)} B in both`);
    t.ok(r2('shares_sent', b) / r2('shares_sent', f) > 0.49 && r2('shares_sent', b) / r2('shares_sent', f) < 0.52, 'shares: about half');
    const [vf, vb] = [finalVal(out.fp32), finalVal(out.bf16)];
    t.ok(Math.abs(vb - vf) < 0.02 * vf, `final val loss: fp32 ${vf.toFixed(4)}, bf16 ${vb.toFixed(4)}`);
    const wf = weights(out.fp32);
    const wb = weights(out.bf16);
    t.ok([...wf].some(([name, x]) => x.data.some((v, i) => v !== wb.get(name)!.data[i])), 'the weights differ: the gradients were rounded');
  });
}

t.test('--wire-dtype bf16 with --update coordinator (the star sends fp32) is refused: E_BAD_FLAG, exit 2', async (t) => {
  const r = await runScript('train', [...small, '--spectral', 'global', '--update', 'coordinator', '--wire-dtype', 'bf16', '--out', join(tempDir('smi-wire-'), 'star')]);
  t.equal(r.code, 2, 'exit 2', { output: r.stdout + r.stderr });
  t.match(r.stderr, /E_BAD_FLAG.*--wire-dtype bf16 applies to the owners' exchange/);
});
