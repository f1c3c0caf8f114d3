// `npm run train`: parse flags, resolve the config, load data, pick the backend, train.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend, listGpus } from '../shared/backend.ts';
import { parseTrainArgs, trainHelp } from '../shared/cli.ts';
import { ConfigError, resolveConfig, validateConfig, type TrainConfig } from '../shared/config.ts';
import { DEFAULT_DATA_PATH, loadCorpus } from '../shared/data.ts';
import { trainLocal } from '../shared/train.ts';
import { runMain } from './cli-main.ts';

runMain(async () => {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(trainHelp());
    return 0;
  }
  if (!args.local) {
    throw new ConfigError('E_NOT_YET', 'distributed training (coordinator + workers) is not built yet: run with --local');
  }
  const dataPath = args.data ?? DEFAULT_DATA_PATH;
  const corpus = loadCorpus(dataPath);

  let cfg: TrainConfig;
  let outDir: string;
  if (args.resume) {
    outDir = args.resume;
    const cfgFile = join(outDir, 'config.json');
    if (!existsSync(cfgFile)) throw new ConfigError('E_RESUME', `--resume ${outDir}: no config.json there`);
    const given = Object.keys(args.overrides).filter((k) => k !== 'max_iters');
    if (given.length > 0 || args.preset || args.smi || args.initFrom) {
      throw new ConfigError('E_RESUME', `--resume takes the run's own config.json; only --max-iters may change (got ${[...given, args.preset && 'preset', args.smi && 'smi', args.initFrom && 'init-from'].filter(Boolean).join(', ')})`);
    }
    cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as TrainConfig;
    if (args.overrides.max_iters !== undefined) cfg.max_iters = args.overrides.max_iters;
    validateConfig(cfg);
  } else {
    const preset = args.preset ?? (listGpus().length > 0 ? 'paper' : 'cpu');
    cfg = resolveConfig({ preset, smi: args.smi, spectral: args.spectral, backend: args.backend, overrides: args.overrides }, corpus.chars.length);
    outDir = args.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19));
    if (existsSync(join(outDir, 'config.json'))) {
      throw new ConfigError('E_OUT_EXISTS', `${outDir} already holds a run: use --resume ${outDir} to continue it, or another --out`);
    }
  }
  if (cfg.vocab_size !== corpus.chars.length) {
    throw new ConfigError('E_BAD_CONFIG', `the run's vocabulary has ${cfg.vocab_size} characters, the data ${corpus.chars.length}`);
  }
  const backend = await initBackend(args.backend ?? (args.resume ? 'auto' : cfg.backend), (l) => console.log(l));
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.log('\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)');
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  const result = await trainLocal({
    cfg, corpus, dataPath, outDir, backend, resume: args.resume !== undefined, initFrom: args.initFrom,
    logBatches: args.logBatches, stopAt: args.stopAt, checkpointInterval: args.checkpointInterval, signal: controller.signal,
  });
  return result.finished || args.stopAt !== undefined ? 0 : 130;
});
