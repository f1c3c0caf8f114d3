// `npm run prepare-data`: download Tiny Shakespeare from its canonical URL, check its sha256, write it atomically.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseWithTable } from '../shared/cli/options.ts';
import { DATA_SHA256, DATA_URL, DEFAULT_DATA_PATH, loadCorpus } from '../shared/model/data.ts';
import { DataError } from '../shared/errors.ts';
import { writeFileAtomic } from '../shared/train/safetensors.ts';
import { runMain } from '../shared/cli/main.ts';

const OPTIONS = {
  out: { type: 'string' as const, arg: 'FILE', section: 'run' as const, help: `where to write it [${DEFAULT_DATA_PATH}]` },
  from: { type: 'string' as const, arg: 'URL', section: 'run' as const, help: `source URL [${DATA_URL}]` },
  help: { type: 'boolean' as const, section: 'run' as const, help: 'this text' },
};

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(`Usage: npm run prepare-data -- [--out FILE] [--from URL]\n\nDownloads Tiny Shakespeare and checks its sha256 (${DATA_SHA256}).\nExit codes: 0 done, 2 download failed or the file did not match.`);
    return 0;
  }
  const out = (v.out as string | undefined) ?? DEFAULT_DATA_PATH;
  const url = (v.from as string | undefined) ?? DATA_URL;
  if (existsSync(out)) {
    try {
      loadCorpus(out);
      console.log(`${out} is already there and verified (sha256 ${DATA_SHA256})`);
      return 0;
    } catch {
      console.log(`${out} exists but does not verify: downloading again`);
    }
  }
  let bytes: Buffer;
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    bytes = Buffer.from(await res.arrayBuffer());
  } catch (e) {
    throw new DataError('E_DATA_DOWNLOAD', `could not download ${url} (${(e as Error).message}). Copy a verified input.txt there yourself, or pass --data FILE when training.`);
  }
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== DATA_SHA256) throw new DataError('E_DATA_CORRUPT', `downloaded file has sha256 ${sha}, expected ${DATA_SHA256}: not written`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileAtomic(out, bytes);
  console.log(`wrote ${out} (${bytes.length} bytes, sha256 verified)`);
  return 0;
});
