// Where the dynamic loader would find a shared library that libtensorflow dlopens by name: LD_LIBRARY_PATH, then
// ld.so's cache (`ldconfig -p`), then the default directories (glibc's ld.so(8) order for a library without RUNPATH).
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The dynamic loader's view of this machine; every field is injectable for tests. */
export interface LoaderView {
  ldLibraryPath: string[]; // LD_LIBRARY_PATH's directories, in order
  cache: Map<string, string[]>; // soname → paths, from `ldconfig -p` (ld.so.cache)
  cacheNote?: string; // why the cache could not be read, if it could not
  defaultDirs: string[];
  /** the file names in a directory ([] when it cannot be read) */
  list: (dir: string) => string[];
}

export interface LibraryFound {
  soname: string;
  path?: string;
  via?: 'LD_LIBRARY_PATH' | 'ld.so cache' | 'default directory';
  /** other versions of the same library seen anywhere on the search path (e.g. libcudart.so.12 for libcudart.so.11.0) */
  others: string[];
}

/** glibc's trusted directories on x86-64 (Debian and Ubuntu's multiarch ones first, as their ld.so has them), then Fedora's and the plain ones. */
export const DEFAULT_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];

/** soname → paths from `ldconfig -p`; on x86-64 only the x86-64 entries (a 32-bit library cannot be loaded). */
export function parseLdconfig(text: string, arch = process.arch): Map<string, string[]> {
  const cache = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\s+(\S+) \(([^)]*)\)(?: OS ABI: [^=]*)? => (\S+)\s*$/.exec(line);
    if (!m) continue;
    if (arch === 'x64' && !m[2]!.includes('x86-64')) continue;
    cache.set(m[1]!, [...(cache.get(m[1]!) ?? []), m[3]!]);
  }
  return cache;
}

/** This machine's loader view: LD_LIBRARY_PATH from `env`, the cache from `ldconfig -p` (PATH, then /sbin and /usr/sbin). */
export function machineLoaderView(env: Readonly<Record<string, string | undefined>> = process.env): LoaderView {
  let cache = new Map<string, string[]>();
  let cacheNote: string | undefined = 'ldconfig not found (on PATH, /sbin, /usr/sbin): the ld.so cache was not read';
  for (const cmd of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      cache = parseLdconfig(execFileSync(cmd, ['-p'], { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }));
      cacheNote = undefined;
      break;
    } catch {
      // the next place
    }
  }
  return {
    ldLibraryPath: (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    cache,
    cacheNote,
    defaultDirs: DEFAULT_DIRS,
    list: (dir) => {
      try {
        return readdirSync(dir).filter((f) => {
          try {
            return statSync(join(dir, f)).isFile();
          } catch {
            return false; // a dangling link: the loader cannot open it either
          }
        });
      } catch {
        return [];
      }
    },
  };
}

/** Where `soname` (e.g. libcudart.so.11.0) would be found, and which other versions of it are around. */
export function findLibrary(soname: string, view: LoaderView): LibraryFound {
  const stem = soname.slice(0, soname.indexOf('.so') + 3); // libcudart.so
  const isOther = (f: string) => f !== soname && f.startsWith(`${stem}.`) && /^\d/.test(f.slice(stem.length + 1));
  const others = new Set<string>();
  let found: Pick<LibraryFound, 'path' | 'via'> | undefined;
  const dirs = (list: string[], via: 'LD_LIBRARY_PATH' | 'default directory') => {
    for (const dir of list) {
      const files = view.list(dir);
      for (const f of files) if (isOther(f)) others.add(`${f} (${dir})`);
      if (!found && files.includes(soname)) found = { path: join(dir, soname), via };
    }
  };
  dirs(view.ldLibraryPath, 'LD_LIBRARY_PATH');
  const cached = view.cache.get(soname);
  if (!found && cached?.length) found = { path: cached[0]!, via: 'ld.so cache' };
  for (const [name, paths] of view.cache) if (isOther(name)) others.add(`${name} (${paths[0]})`);
  dirs(view.defaultDirs, 'default directory');
  return { soname, ...found, others: [...others].filter((o) => !o.startsWith(`${soname} `)).sort() };
}
