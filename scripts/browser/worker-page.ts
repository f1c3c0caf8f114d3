// Opens the coordinator's /worker page in a headless Chromium (playwright-core): a browser worker, for the tests, the scaling benchmark and the screenshot.
import { chromium, type Browser, type Page } from 'playwright-core';

/** Headless flags as the live page's test uses them (no GPU: the wasm backend). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** WebGPU on SwiftShader, Chromium's software Vulkan (no GPU needed; slow). */
export const WEBGPU_ARGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface WorkerPage {
  page: Page;
  /** Every request the page made (URL, and its Referer header if any): a test checks that the token is in none. */
  requests: { url: string; referer?: string }[];
  problems: string[]; // page errors and console errors
}

/** What the page keeps in window.smiWorker (worker/browser/page/page.js). */
export interface WorkerPageState {
  steps: { step: number; round: number; phases: Record<string, number>; bytesSent: number; bytesReceived: number; periodMs: number | null; numTensors: number }[];
  backend: { name: string; reason: string; device: string } | null;
  exit: { reason: string; message: string } | null;
}

export function launchChromium(executablePath: string, args = CHROMIUM_ARGS): Promise<Browser> {
  return chromium.launch({ executablePath, args, timeout: 30_000 });
}

/** Opens `base`/worker#token=…&backend=… in a new tab of `browser`. */
export async function openWorkerPage(browser: Browser, base: string, token: string, backend = 'wasm', viewport = { width: 1100, height: 820 }): Promise<WorkerPage> {
  const page = await browser.newPage({ viewport });
  const requests: WorkerPage['requests'] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push({ url: r.url(), referer: r.headers().referer }));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  page.on('worker', (w) => w.on('console', (m) => m.type() === 'error' && problems.push(`worker console error: ${m.text()}`)));
  await page.goto(`${base}/worker#token=${encodeURIComponent(token)}&backend=${backend}`);
  return { page, requests, problems };
}

export function pageState(page: Page): Promise<WorkerPageState> {
  return page.evaluate(() => (window as unknown as { smiWorker: WorkerPageState }).smiWorker);
}

/** Waits until the page has reported step `step` (or exited: then throws with its reason). */
export async function waitForPageStep(page: Page, step: number, timeoutMs = 180_000): Promise<WorkerPageState> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await pageState(page);
    if (s.steps.some((x) => x.step >= step)) return s;
    if (s.exit) throw new Error(`the browser worker exited before step ${step}: ${s.exit.reason} ${s.exit.message}`);
    if (Date.now() > end) throw new Error(`the browser worker reported no step ${step} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
