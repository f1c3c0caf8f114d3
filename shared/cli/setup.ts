// What `train` and `coordinator` share: from parsed flags to a resolved config, the corpus and the run directory.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listGpus } from '../backend/backend.ts';
import type { TrainArgs } from './options.ts';
import { ConfigError } from '../errors.ts';
import { resolveConfig, validateConfig, type TrainConfig } from '../config.ts';
import { DEFAULT_DATA_PATH, loadCorpus, type Corpus } from '../model/data.ts';

export interface RunSetup {
  cfg: TrainConfig;
  corpus: Corpus;
  dataPath: string;
  outDir: string;
  resume: boolean;
}

/** Resolves flags (or the resumed run's config.json) and loads the data; throws ConfigError/DataError on bad input. */
export function setupRun(args: TrainArgs): RunSetup {
  const dataPath = args.data ?? DEFAULT_DATA_PATH;
  const corpus = loadCorpus(dataPath);
  let cfg: TrainConfig;
  let outDir: string;
  if (args.resume) {
    outDir = args.resume;
    const cfgFile = join(outDir, 'config.json');
    if (!existsSync(cfgFile)) throw new ConfigError('E_RESUME', `--resume ${outDir}: no config.json there`);
    const given = Object.keys(args.overrides).filter((k) => k !== 'max_iters');
    const other = [...given, args.preset && 'preset', args.smi && 'smi', args.spectral && 'spectral', args.wireDtype && 'wire-dtype', args.initFrom && 'init-from'].filter(Boolean);
    if (other.length > 0) throw new ConfigError('E_RESUME', `--resume takes the run's own config.json; only --max-iters may change (got ${other.join(', ')})`);
    const saved = JSON.parse(readFileSync(cfgFile, 'utf8')) as TrainConfig & { data?: unknown; vocab?: unknown };
    // config.json also records the data path and the vocabulary (shared/train/loop.ts): not config fields (a worker's
    // welcome guard refuses unknown fields, so a resumed distributed run would get no worker)
    delete saved.data;
    delete saved.vocab;
    cfg = { ...saved, wire_dtype: saved.wire_dtype ?? 'fp32' }; // runs from before --wire-dtype sent fp32
    if (args.overrides.max_iters !== undefined) cfg.max_iters = args.overrides.max_iters;
    validateConfig(cfg);
  } else {
    const preset = args.preset ?? (listGpus().length > 0 ? 'paper' : 'cpu');
    cfg = resolveConfig({ preset, smi: args.smi, spectral: args.spectral, backend: args.backend, wireDtype: args.wireDtype, overrides: args.overrides }, corpus.chars.length);
    outDir = args.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19));
    if (existsSync(join(outDir, 'config.json'))) {
      throw new ConfigError('E_OUT_EXISTS', `${outDir} already holds a run: use --resume ${outDir} to continue it, or another --out`);
    }
  }
  if (cfg.vocab_size !== corpus.chars.length) {
    throw new ConfigError('E_BAD_CONFIG', `the run's vocabulary has ${cfg.vocab_size} characters, the data ${corpus.chars.length}`);
  }
  return { cfg, corpus, dataPath, outDir, resume: args.resume !== undefined };
}

/** Ctrl-C once: finish the step, checkpoint, stop. Twice: quit at once. */
export function interruptSignal(log: (l: string) => void): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    log('\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)');
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return controller.signal;
}
