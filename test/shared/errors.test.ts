// The error tables (shared/errors.ts): stable codes, unique close codes, exit codes, and docs/errors.md equal to them.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError, ERROR_CODES, ERROR_CODE_NAMES, RUN_ERROR_CODES, RunError, TrainingError, codeForClose, errorTableMarkdown, protocolError, runErrorTableMarkdown } from '../../shared/errors.ts';
import { ROOT } from '../helpers.ts';

t.test('error codes: unique close codes in 4000–4999, documented in docs/errors.md', async (t) => {
  const closes = ERROR_CODE_NAMES.map((c) => ERROR_CODES[c].close);
  t.equal(new Set(closes).size, closes.length, 'close codes are unique');
  for (const c of closes) t.ok(c >= 4000 && c <= 4999, `${c} in the application range`);
  for (const c of ['E_VERSION', 'E_TOKEN', 'E_MALFORMED', 'E_TOO_LARGE', 'E_SHAPE', 'E_NONFINITE', 'E_UNEXPECTED', 'E_TIMEOUT', 'E_SHUTDOWN']) {
    t.ok(c in ERROR_CODES, `${c} exists`);
  }
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  t.ok(doc.includes(errorTableMarkdown()), 'docs/errors.md holds the table of ERROR_CODES verbatim');
  const e = protocolError('E_SHAPE', 'x');
  t.equal(e.closeCode, 4005);
  t.equal(codeForClose(4005), 'E_SHAPE');
  t.equal(codeForClose(1000), undefined);
});

t.test("a run's error codes: each with its exit code, documented in docs/errors.md, carried by every error class", async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  t.ok(doc.includes(runErrorTableMarkdown()), 'docs/errors.md holds the table of RUN_ERROR_CODES verbatim');
  for (const [code, { exit }] of Object.entries(RUN_ERROR_CODES)) t.ok(exit === 1 || exit === 2, `${code}: exit ${exit}`);
  const c = new ConfigError('E_BAD_FLAG', 'x');
  t.ok(c instanceof RunError && c.name === 'ConfigError' && c.exitCode === 2, 'bad input exits 2');
  t.equal(new DataError('E_DATA_MISSING', 'x').exitCode, 2);
  t.equal(new TrainingError('E_NONFINITE_LOSS', 'x').exitCode, 1, 'a failed run exits 1');
  t.same(Object.keys(ERROR_CODES).filter((k) => k in RUN_ERROR_CODES), [], 'the two tables share no code');
});
