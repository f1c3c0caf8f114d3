// The error table (shared/errors.ts): stable codes, unique close codes, and docs/errors.md equal to it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, ERROR_CODE_NAMES, codeForClose, errorTableMarkdown, protocolError } from '../../shared/errors.ts';
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
