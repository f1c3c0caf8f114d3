// `npm run sample`: generate text from a run's weights and report tokens/s, as nanoGPT's sample.py.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../shared/backend/backend.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { BACKENDS, oneOf, type TrainConfig } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { decode, encode } from '../shared/model/data.ts';
import { GPT } from '../shared/model/gpt.ts';
import { Rng, STREAM } from '../shared/model/rng.ts';
import { loadSafetensors } from '../shared/train/safetensors.ts';
import { loadCheckpoint } from '../shared/train/checkpoint.ts';
import { runMain } from '../shared/cli/main.ts';

const S = 'run' as const;
const OPTIONS = {
  checkpoint: { type: 'string' as const, arg: 'DIR', section: S, help: 'a run directory (config.json + model.safetensors, or checkpoint/)' },
  tokens: { type: 'string' as const, arg: 'N', section: S, help: 'new tokens to generate [500]' },
  temperature: { type: 'string' as const, arg: 'X', section: S, help: 'softmax temperature [0.8]' },
  'top-k': { type: 'string' as const, arg: 'K', section: S, help: 'sample among the K likeliest tokens [200]' },
  seed: { type: 'string' as const, arg: 'S', section: S, help: 'sampling seed [1337]' },
  start: { type: 'string' as const, arg: 'TEXT', section: S, help: 'prompt [a newline]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [auto]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

const HELP = `Usage: npm run sample -- --checkpoint DIR [--tokens 500] [--temperature 0.8] [--top-k 200] [--seed S] [--start TEXT]

Prints generated text, then its speed in tokens/s.
Example: npm run sample -- --checkpoint runs/2026-11-29T18-00-00 --tokens 200
Exit codes: 0 done, 1 failed, 2 bad arguments or checkpoint.`;

function number(v: unknown, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError('E_BAD_FLAG', `--${flag} takes a number, got '${String(v)}'`);
  return n;
}

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const dir = v.checkpoint as string | undefined;
  if (!dir) throw new ConfigError('E_BAD_FLAG', '--checkpoint DIR is required');
  const cfgFile = join(dir, 'config.json');
  if (!existsSync(cfgFile)) throw new ConfigError('E_CHECKPOINT', `${dir} has no config.json: not a run directory`);
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as TrainConfig & { vocab: string };
  const backend = await initBackend(v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS), (l) => console.error(l));
  const model = new GPT(cfg, cfg.seed);
  const final = join(dir, 'model.safetensors');
  if (existsSync(final)) model.importWeights(loadSafetensors(final).tensors);
  else model.assignAll(loadCheckpoint(dir).weights.map((w) => w.data)); // an unfinished run: its last checkpoint
  const chars = [...cfg.vocab];
  const n = number(v.tokens, 'tokens', 500);
  const rng = new Rng(number(v.seed, 'seed', 1337), STREAM.sample);
  const prompt = encode(chars, (v.start as string | undefined) ?? '\n');
  const t0 = performance.now();
  const ids = model.generate(prompt, n, number(v.temperature, 'temperature', 0.8), number(v['top-k'], 'top-k', 200), () => rng.uniform());
  const s = (performance.now() - t0) / 1000;
  console.log(decode(chars, ids));
  console.error(`${n} tokens in ${s.toFixed(2)} s: ${(n / s).toFixed(1)} tokens/s (${backend.name})`);
  model.dispose();
  return 0;
});
