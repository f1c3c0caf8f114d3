// What a worker's hello says about where it runs (this machine's name, memory and process id); the browser bundle takes host.browser.ts.
import { hostname, totalmem } from 'node:os';

export function hostInfo(): { host: string; memoryBytes: number; pid: number } {
  return { host: hostname(), memoryBytes: totalmem(), pid: process.pid };
}
