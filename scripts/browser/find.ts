// Finds a Chromium or Chrome for the browser tests and scripts (CHROMIUM, then the usual names and places, then playwright's own
// download), or says in one line why there is none and how to get one; under CI a missing browser fails the test.
import { accessSync, constants, statSync } from 'node:fs';
import { posix, win32 } from 'node:path';
import { homedir } from 'node:os';

/** Where to look; every field defaults to this machine's (tests pass fake directories). */
export interface BrowserLookupEnv {
  env?: Readonly<Record<string, string | undefined>>;
  platform?: NodeJS.Platform;
  home?: string;
  /** where the fixed Linux and macOS places are rooted ['/'] */
  root?: string;
  /** playwright-core's own Chromium (chromium.executablePath(): its download cache; computed offline) */
  playwrightChromium?: () => string | undefined;
}

export type BrowserLookup =
  | { found: true; path: string; via: string }
  | { found: false; reason: string; tried: string[] };

/** How to get a browser, for the one-line reason. */
export const INSTALL_HINT = 'install one with `npx playwright-core install chromium` (any OS; Debian/Ubuntu: `apt-get install chromium`; macOS: `brew install --cask chromium`)';

/** Executable names on PATH, in order: Debian/Fedora/Arch Chromium, Ubuntu's older name, Google Chrome. */
const PATH_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'google-chrome-beta', 'chrome'];

/**
 * Fixed places: Chromium's distribution paths, then Chrome's channels where playwright-core 1.65's registry
 * looks for them (lib/coreBundle.js, _createChromiumChannel: chrome, chrome-beta, chrome-dev, chrome-canary).
 */
function fixedPlaces(platform: NodeJS.Platform, home: string, root: string, env: Readonly<Record<string, string | undefined>>): string[] {
  if (platform === 'darwin') {
    const apps = ['Chromium.app/Contents/MacOS/Chromium', 'Google Chrome.app/Contents/MacOS/Google Chrome', 'Google Chrome Beta.app/Contents/MacOS/Google Chrome Beta',
      'Google Chrome Dev.app/Contents/MacOS/Google Chrome Dev', 'Google Chrome Canary.app/Contents/MacOS/Google Chrome Canary'];
    return [...apps.map((a) => posix.join(root, 'Applications', a)), ...apps.map((a) => posix.join(home, 'Applications', a))];
  }
  if (platform === 'win32') {
    const roots = [env.LOCALAPPDATA, env.PROGRAMFILES, env['PROGRAMFILES(X86)']].filter((r): r is string => Boolean(r));
    const apps = ['Chromium\\Application\\chrome.exe', 'Google\\Chrome\\Application\\chrome.exe', 'Google\\Chrome Beta\\Application\\chrome.exe',
      'Google\\Chrome Dev\\Application\\chrome.exe', 'Google\\Chrome SxS\\Application\\chrome.exe'];
    return roots.flatMap((r) => apps.map((a) => win32.join(r, a)));
  }
  return ['usr/bin/chromium', 'usr/bin/chromium-browser', 'usr/lib/chromium/chromium', 'usr/lib64/chromium-browser/chromium-browser', 'snap/bin/chromium',
    'opt/google/chrome/chrome', 'opt/google/chrome-beta/chrome', 'opt/google/chrome-unstable/chrome', 'opt/google/chrome-canary/chrome'].map((p) => posix.join(root, p));
}

function isExecutable(path: string, platform: NodeJS.Platform): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    if (platform !== 'win32') accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** playwright-core's downloaded Chromium for this version, where it would be (it may not be installed). */
async function playwrightChromium(): Promise<string | undefined> {
  try {
    const { chromium } = await import('playwright-core');
    return chromium.executablePath();
  } catch {
    return undefined;
  }
}

/**
 * The browser to launch. CHROMIUM, when set, is the only place looked at (an explicit choice is not second-guessed);
 * else the names on PATH, the fixed places of this platform, and playwright-core's own download, in that order.
 */
export async function findBrowser(o: BrowserLookupEnv = {}): Promise<BrowserLookup> {
  const env = o.env ?? process.env;
  const platform = o.platform ?? process.platform;
  const home = o.home ?? homedir();
  if (env.CHROMIUM !== undefined && env.CHROMIUM !== '') {
    return isExecutable(env.CHROMIUM, platform)
      ? { found: true, path: env.CHROMIUM, via: 'CHROMIUM' }
      : { found: false, reason: `CHROMIUM=${env.CHROMIUM} is not an executable file: point it at a Chromium or Chrome, or unset it to search the usual places; ${INSTALL_HINT}`, tried: [env.CHROMIUM] };
  }
  const tried: string[] = [];
  const exe = platform === 'win32' ? '.exe' : '';
  const dirs = (env.PATH ?? env.Path ?? '').split(platform === 'win32' ? win32.delimiter : posix.delimiter).filter(Boolean);
  for (const name of PATH_NAMES) {
    for (const dir of dirs) {
      const p = (platform === 'win32' ? win32 : posix).join(dir, name + exe);
      tried.push(p);
      if (isExecutable(p, platform)) return { found: true, path: p, via: `${name} on PATH` };
    }
  }
  for (const p of fixedPlaces(platform, home, o.root ?? '/', env)) {
    tried.push(p);
    if (isExecutable(p, platform)) return { found: true, path: p, via: 'a usual place' };
  }
  const pw = await (o.playwrightChromium ? Promise.resolve(o.playwrightChromium()) : playwrightChromium());
  if (pw) {
    tried.push(pw);
    if (isExecutable(pw, platform)) return { found: true, path: pw, via: "playwright-core's download" };
  }
  return { found: false, reason: `no Chromium or Chrome found (CHROMIUM unset; looked on PATH for ${PATH_NAMES.join(', ')}, in ${platform}'s usual places and playwright-core's download): ${INSTALL_HINT}, or set CHROMIUM=/path/to/chrome`, tried };
}

/** Whether this run is CI's, where a browser test that cannot run is a failure rather than a skip. */
export function isCi(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false';
}
