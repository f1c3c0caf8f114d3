// `npm run train -- --init-from FILE` with the files a nanoGPT user has: bias=True, an untied head, an extra layer are
// refused (exit 2, the tensors named, nothing written); --init-from-drop-extra loads them and the run log lists what it dropped.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, readLog, runScript, tempDir } from '../helpers.ts';
import { nanoGptStateDict } from '../nanogpt.ts';
import { resolveConfig } from '../../shared/config.ts';
import { saveSafetensors, type NamedTensor } from '../../shared/train/safetensors.ts';

const cfg = resolveConfig({ preset: 'test' });
const dir = tempDir('smi-init-from-');
const write = (name: string, sd: Map<string, NamedTensor>) => {
  const file = join(dir, `${name}.safetensors`);
  saveSafetensors(file, sd, { format: 'pt' });
  return file;
};
const withLayer9 = () => {
  const sd = nanoGptStateDict(cfg, 1);
  for (const [k, v] of nanoGptStateDict({ ...cfg, n_layer: 10 }, 2)) if (k.startsWith('transformer.h.9.')) sd.set(k, v);
  return sd;
};
const files = {
  bias: write('bias-true', nanoGptStateDict(cfg, 1, { bias: true })),
  untied: write('untied-head', nanoGptStateDict(cfg, 1, { untied: true })),
  layer9: write('extra-layer', withLayer9()),
};
const train = (out: string, ...more: string[]) => runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--max-iters', '1', '--eval-iters', '1', '--out', out, ...more]);

t.test('each file is refused with exit 2, naming its tensors and what the project expects; nothing is written', async (t) => {
  const cases = [
    [files.bias, /13 bias tensor\(s\) \(transformer\.h\.0\.ln_1\.bias, transformer\.h\.0\.attn\.c_attn\.bias, .*transformer\.ln_f\.bias\): this project's GPT has no biases, as nanoGPT's GPT\(bias=False\)/],
    [files.untied, /lm_head\.weight differs from transformer\.wte\.weight: this project ties the output head to the token embedding/],
    [files.layer9, /6 tensor\(s\) of layers this configuration lacks \(transformer\.h\.9\.\*; n_layer=2\)/],
  ] as const;
  for (const [file, re] of cases) {
    const out = join(tempDir(), 'run');
    const r = await train(out, '--init-from', file);
    t.equal(r.code, 2, `${file}: exit 2`, { stderr: r.stderr });
    t.match(r.stderr, /^error \[E_INIT_FROM\]: --init-from .*: not a nanoGPT GPT\(bias=False\) with a tied head of this configuration \(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65\)/m);
    t.match(r.stderr, re, 'names the tensors');
    t.match(r.stderr, /add --init-from-drop-extra/, 'says how to drop them on purpose');
    t.notOk(existsSync(out), 'no run directory');
  }
});

t.test('--init-from-drop-extra: the run starts, says what it dropped, and the start record lists it', async (t) => {
  const out = join(tempDir(), 'run');
  const r = await train(out, '--init-from', files.layer9, '--init-from-drop-extra');
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const layer9 = ['ln_1.weight', 'attn.c_attn.weight', 'attn.c_proj.weight', 'ln_2.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight'].map((k) => `transformer.h.9.${k}`);
  t.match(r.stdout, /--init-from .*extra-layer\.safetensors: dropped 6 tensor\(s\) on purpose/);
  const start = readLog(out).find((rec) => rec.kind === 'start')! as { init_from: { file: string; dropped: string[] } };
  t.same(start.init_from.dropped, layer9, 'log.jsonl start record: init_from.dropped');
  t.equal(start.init_from.file, files.layer9);
  const flag = await runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--init-from-drop-extra']);
  t.equal(flag.code, 2, '--init-from-drop-extra alone is a bad flag');
  t.match(flag.stderr, /E_BAD_FLAG.*--init-from-drop-extra goes with --init-from FILE/);
});
