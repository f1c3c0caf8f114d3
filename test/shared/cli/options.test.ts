// The command line of train and coordinator (shared/cli/options.ts): typed flags, "did you mean", each command's help.
import t from 'tap';
import { parseTrainArgs, trainHelp } from '../../../shared/cli/options.ts';
import { closest } from '../../../shared/config.ts';

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
