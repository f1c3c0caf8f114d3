// What `npm run train` / `npm start` repeats from its local workers' logs on its own console: a worker that cannot start
// (exit 2: its backend, its flags) ends the launch with the worker's error, and the advice a worker logs for GPUs it leaves unused.
import type { ChildProcess } from 'node:child_process';

/** Watches worker i's output; `fail` ends the launch (the launcher would otherwise wait for that worker forever). */
export function relayWorker(child: ChildProcess, i: number, print: (line: string) => void, fail: (line: string) => void): void {
  let error = '';
  let advised = false;
  child.stderr!.on('data', (d: Buffer) => {
    const m = /^error \[(\w+)\]: (.*)$/m.exec(String(d));
    if (m) error = `error [${m[1]}]: worker ${i}: ${m[2]}`;
  });
  child.stdout!.on('data', (d: Buffer) => {
    const m = /the GPUs are not used: .*$/m.exec(String(d));
    if (m && !advised) print(`worker ${i}: ${m[0]}`);
    advised ||= m !== null;
  });
  child.once('exit', (code) => {
    if (code === 2) fail(error || `error: worker ${i} exited with code 2 (see its log)`);
  });
}
