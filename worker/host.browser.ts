// What a browser worker's hello says about where it runs: the user agent (the live page's worker table shows it), the memory the page may report, a tab number.
const TAB = 1 + Math.floor(Math.random() * 0x7ffffffe); // a page has no process id: a random number names this tab for its life

export function hostInfo(): { host: string; memoryBytes: number; pid: number } {
  const nav = globalThis.navigator as Navigator & { deviceMemory?: number };
  // deviceMemory (GiB, rounded, capped at 8 by the browser) where the browser reports it; else 1 GiB, the least a tab gets
  const gib = typeof nav.deviceMemory === 'number' && nav.deviceMemory > 0 ? nav.deviceMemory : 1;
  const ua = nav.userAgent.replace(/\p{Cc}/gu, ' ').slice(0, 256) || 'a browser';
  return { host: ua, memoryBytes: Math.round(gib * 2 ** 30), pid: TAB };
}
