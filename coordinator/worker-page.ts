// Serves the browser worker on the coordinator's port: /worker (the page), /worker/page.js, /worker/app.js (the bundle, built on first request) and /worker/assets/*.wasm.
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { ROOT, bundleBrowserWorker, wasmAssets, type BrowserBundle } from './browser-bundle.ts';

const PAGE_DIR = join(ROOT, 'worker/browser/page');
const ASSETS = wasmAssets();

// One bundle per process, built when a browser first asks (about 2 s of CPU that a run without browser workers never spends).
let bundle: Promise<BrowserBundle> | undefined;

/** The bundle, built once; a failed build is retried on the next request. */
export function workerBundle(): Promise<BrowserBundle> {
  bundle ??= bundleBrowserWorker().catch((e: unknown) => {
    bundle = undefined;
    throw e;
  });
  return bundle;
}

/** The page's address for a coordinator's HTTP base URL: the token goes in the fragment, which no request, log line or Referer carries. */
export function workerPageUrl(base: string, token: string): string {
  return `${base.replace(/\/$/, '')}/worker#token=${encodeURIComponent(token)}`;
}

function reply(req: http.IncomingMessage, res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, {
    'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache',
    'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Answers a GET/HEAD of the browser worker's paths; false for any other request (the live page's monitor takes it). */
export function handleWorkerPage(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (path !== '/worker' && !path.startsWith('/worker/')) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') return false; // the monitor answers 405 / 404
  const fail = (err: unknown) => {
    if (res.headersSent) return void res.destroy();
    reply(req, res, 500, 'text/plain; charset=utf-8', `${err instanceof Error ? err.message : String(err)}\n`);
  };
  if (path === '/worker' || path === '/worker/') {
    readFile(join(PAGE_DIR, 'index.html')).then((b) => reply(req, res, 200, 'text/html; charset=utf-8', b), fail);
    return true;
  }
  if (path === '/worker/page.js') {
    readFile(join(PAGE_DIR, 'page.js')).then((b) => reply(req, res, 200, 'text/javascript; charset=utf-8', b), fail);
    return true;
  }
  if (path === '/worker/app.js') {
    workerBundle().then((b) => reply(req, res, 200, 'text/javascript; charset=utf-8', b.js), fail);
    return true;
  }
  const name = path.startsWith('/worker/assets/') ? path.slice('/worker/assets/'.length) : '';
  const file = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!file) return false;
  readFile(file).then((b) => reply(req, res, 200, 'application/wasm', b), fail);
  return true;
}
