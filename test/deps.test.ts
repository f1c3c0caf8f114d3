// The dependency rules (.dependency-cruiser.cjs): this tree has no cycle and no upward import, and the rules catch both.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers.ts';

const depcruise = (cwd: string, ...paths: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), '--config', join(ROOT, '.dependency-cruiser.cjs'), '--output-type', 'err', ...paths], { cwd, encoding: 'utf8' });

t.test('the tree: no cycle, every import downward, entry points imported by nothing', async (t) => {
  const r = depcruise(ROOT, 'shared', 'coordinator', 'worker', 'scripts', 'test');
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /no dependency violations found/);
});

t.test('the rules catch a cycle, an upward import across folders and within shared/, and an imported entry point', async (t) => {
  const dir = tempDir('smi-deps-');
  cpSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  for (const d of ['shared/model', 'shared/train', 'coordinator', 'worker', 'scripts']) mkdirSync(join(dir, d), { recursive: true });
  const file = (path: string, text: string) => writeFileSync(join(dir, path), text);
  file('shared/config.ts', "export const x = 1;\n");
  file('shared/model/gpt.ts', "import { step } from '../train/step.ts';\nexport const gpt = step;\n"); // model → train: upward in shared/
  file('shared/train/step.ts', "import { x } from '../config.ts';\nexport const step = x;\n");
  file('shared/train/a.ts', "import { b } from './b.ts';\nexport const a = () => b;\n");
  file('shared/train/b.ts', "import { a } from './a.ts';\nexport const b = () => a;\n");
  file('coordinator/main.ts', "import { w } from '../worker/compute.ts';\nexport const m = w;\n"); // coordinator → worker
  file('worker/compute.ts', "export const w = 2;\n");
  file('worker/main.ts', "import { m } from '../coordinator/main.ts';\nexport const v = m;\n"); // worker → coordinator, an entry point
  file('shared/stats.ts', "import { s } from '../scripts/train.ts';\nexport const t = s;\n"); // shared → scripts
  file('scripts/train.ts', "export const s = 3;\n");
  const r = depcruise(dir, 'shared', 'coordinator', 'worker', 'scripts');
  t.not(r.status, 0, 'violations fail the check');
  for (const rule of ['no-circular', 'shared-model-imports-down', 'coordinator-imports-shared', 'worker-imports-shared', 'entry-points-are-leaves', 'shared-is-the-core']) {
    t.match(r.stdout, new RegExp(`error ${rule}:`), `${rule} is reported`);
  }
});
