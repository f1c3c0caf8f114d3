// The command line of train and coordinator (shared/cli/options.ts): typed flags, "did you mean", each command's help.
import t from 'tap';
import { parseTrainArgs, trainHelp } from '../../../shared/cli/options.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupRun } from '../../../shared/cli/setup.ts';
import { closest, resolveConfig } from '../../../shared/config.ts';
import { ConfigError } from '../../../shared/errors.ts';
import { DATA, runScript, tempDir } from '../../helpers.ts';

t.test('flags: unknown flag, preset and run name name the closest valid one', async (t) => {
  t.equal(closest('cosin', ['baseline', 'cosine']), 'cosine');
  t.throws(() => parseTrainArgs(['--max-iter', '5']), /unknown flag --max-iter: did you mean --max-iters\?/);
  t.throws(() => parseTrainArgs(['--preset', 'cpuu']), /did you mean 'cpu'/);
  t.throws(() => parseTrainArgs(['--smi', 'top-75']), /did you mean 'top75'/);
  t.throws(() => parseTrainArgs(['--n-layer', 'two']), /--n-layer takes an integer/);
  const a = parseTrainArgs(['--local', '--preset', 'test', '--learning-rate', '0.01', '--gpus', '0,2']);
  t.equal(a.overrides.learning_rate, 0.01);
  t.same(a.gpus, [0, 2]);
});

t.test("help: each command states its own defaults and leaves out the other command's options", async (t) => {
  const train = trainHelp('train');
  const coordinator = trainHelp('coordinator');
  t.match(train, /--host H +coordinator listen address \[127\.0\.0\.1/, 'train binds loopback: its workers are local');
  t.match(coordinator, /--host H +coordinator listen address \[0\.0\.0\.0/, 'npm run coordinator binds every interface');
  t.match(train, /--min-workers N +workers to wait for before step 1 \[the workers it starts\]/);
  t.match(coordinator, /--min-workers N +workers to wait for before step 1 \[1\]/);
  t.match(train, /--local/);
  t.notMatch(coordinator, /--local|--workers N|--gpus|--coordinator-gpu/, 'the launcher\'s options are not the coordinator\'s');
  t.match(coordinator, /--tls-cert FILE/);
  t.notMatch(train, /--tls-cert/, 'local workers connect over loopback');
  t.match(train, /^Usage: npm run train -- /);
  t.match(coordinator, /^Usage: npm run coordinator -- /);
});

t.test('--wire-dtype: fp32 by default, bf16 when asked, carried into the config; a bad value is E_BAD_FLAG (exit 2); fixed on --resume', async (t) => {
  t.equal(parseTrainArgs([]).wireDtype, undefined);
  t.equal(parseTrainArgs(['--wire-dtype', 'bf16']).wireDtype, 'bf16');
  t.equal(resolveConfig({ preset: 'test' }).wire_dtype, 'fp32', 'exact by default');
  const refused = (v: string) => {
    try {
      parseTrainArgs(['--wire-dtype', v]);
    } catch (e) {
      return e;
    }
    return undefined;
  };
  const e = refused('bf61');
  t.ok(e instanceof ConfigError && e.code === 'E_BAD_FLAG' && e.exitCode === 2, 'a bad value is a ConfigError E_BAD_FLAG, exit 2');
  t.match((e as Error).message, /--wire-dtype takes fp32 or bf16, got 'bf61': did you mean 'bf16'\?/);
  t.ok(refused('fp16') instanceof ConfigError, 'fp16 is not offered (bf16 keeps float32\'s range)');
  for (const which of ['train', 'coordinator'] as const) t.match(trainHelp(which), /--wire-dtype fp32\|bf16 +gradients on the wire: .*\[fp32\]/, `${which}'s help lists it`);

  const dir = tempDir('smi-wire-dtype-');
  const cfg = setupRun(parseTrainArgs(['--preset', 'test', '--data', DATA, '--wire-dtype', 'bf16', '--out', dir])).cfg;
  t.equal(cfg.wire_dtype, 'bf16', 'the flag reaches the resolved config');
  const { wire_dtype: _, ...old } = cfg; // a config.json written before the flag existed
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...old, data: DATA, vocab: 'x' }));
  t.equal(setupRun(parseTrainArgs(['--resume', dir, '--data', DATA])).cfg.wire_dtype, 'fp32', 'resuming an older run: fp32, as it was sent');
  t.throws(() => setupRun(parseTrainArgs(['--resume', dir, '--data', DATA, '--wire-dtype', 'bf16'])), /E_RESUME|only --max-iters may change \(got wire-dtype\)/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, wire_dtype: 'fp8' }));
  t.throws(() => setupRun(parseTrainArgs(['--resume', dir, '--data', DATA])), /wire_dtype must be one of fp32, bf16, got fp8/, 'a bad value in config.json is refused');

  const r = await runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--wire-dtype', 'bf17', '--max-iters', '1']);
  t.equal(r.code, 2, 'the command exits 2');
  t.match(r.stderr, /E_BAD_FLAG/);
});

t.test('--update and --commit-interval reach the parsed arguments', async (t) => {
  t.equal(parseTrainArgs(['--update', 'coordinator']).update, 'coordinator');
  t.equal(parseTrainArgs(['--update', 'owners', '--commit-interval', '7']).commitInterval, 7);
  t.equal(parseTrainArgs([]).update, undefined, 'unset: the engine chooses (owners)');
  t.throws(() => parseTrainArgs(['--update', 'owner']), /did you mean 'owners'/);
  t.throws(() => parseTrainArgs(['--commit-interval', '0']), /positive number of steps/);
});
