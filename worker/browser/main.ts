// The browser worker (a Web Worker its page starts): a backend, then the same session as `npm run worker -- --compute-only`, reporting each step to the page.
//
// In a Web Worker rather than the page itself: a step's compute (synchronous, as in Node) does not freeze the page.
import * as tf from '@tensorflow/tfjs';
import type { Message } from '../../shared/net/protocol.ts';
import { runWorker } from '../session.ts';
import { initBrowserBackend, type BrowserBackendChoice } from './backend.ts';

/** The page's messages: start with the coordinator's URL and token (from the page's fragment), or stop (the page's Stop button). */
export type FromPage = { type: 'start'; url: string; token: string | null; backend: BrowserBackendChoice } | { type: 'stop' };

/** What the page is told. */
export type ToPage =
  | { type: 'log'; line: string }
  | { type: 'backend'; name: string; reason: string; device: string }
  | { type: 'step'; step: number; round: number; phases: Record<string, number>; bytesSent: number; bytesReceived: number; periodMs: number | null; numTensors: number }
  | { type: 'exit'; reason: string; message: string };

const scope = globalThis as unknown as { postMessage(m: ToPage): void; onmessage: ((e: { data: FromPage }) => void) | null };
const post = (m: ToPage) => scope.postMessage(m);
const log = (line: string) => post({ type: 'log', line });
const stop = new AbortController();
let started = false;

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'stop') return stop.abort();
  if (started) return;
  started = true;
  run(m).catch((err: Error) => post({ type: 'exit', reason: 'error', message: err.message }));
};

async function run(m: Extract<FromPage, { type: 'start' }>): Promise<void> {
  const assets = new URL('assets/', globalThis.location.href).href;
  const backend = await initBrowserBackend(m.backend, assets, log);
  post({ type: 'backend', name: backend.name, reason: backend.reason, device: backend.device });
  log(`backend: ${backend.name} on ${backend.device} (${backend.reason})`);
  let lastDone: number | null = null;
  const onSent = (msg: Message) => {
    if (msg.type !== 'done') return;
    const now = performance.now();
    post({ type: 'step', step: msg.step, round: msg.round, phases: msg.phases, bytesSent: msg.bytesSent, bytesReceived: msg.bytesReceived, periodMs: lastDone === null ? null : now - lastDone, numTensors: tf.memory().numTensors });
    lastDone = now;
  };
  // compute-only (listen: null): a page cannot listen, so it opens links to the owners instead
  const exit = await runWorker({ url: m.url, token: m.token ?? undefined, backend, listen: null, retryForMs: 60_000, log, onSent, signal: stop.signal });
  post({ type: 'exit', reason: exit.reason, message: exit.message });
}
