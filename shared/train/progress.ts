// Progress lines: step, loss, lr, α, ms/step, tokens/s, ETA; redrawn in place on a TTY, one plain line otherwise.

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export interface ProgressFields {
  step: number;
  maxIters: number;
  loss: number;
  lr: number;
  alpha: number;
  msPerStep: number;
  tokensPerSec: number;
  etaMs: number;
}

export function progressLine(f: ProgressFields): string {
  return (
    `step ${String(f.step).padStart(String(f.maxIters).length)}/${f.maxIters} | loss ${f.loss.toFixed(4)} | ` +
    `lr ${f.lr.toExponential(2)} | α ${f.alpha.toFixed(3)} | ${f.msPerStep.toFixed(1)} ms/step | ` +
    `${Math.round(f.tokensPerSec)} tok/s | ETA ${formatDuration(f.etaMs)}`
  );
}

/** Writes progress to a stream: in place (carriage return) on a TTY, a line per call otherwise. */
export class Progress {
  private pending = false;
  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  get tty(): boolean {
    return this.out.isTTY === true;
  }

  update(line: string): void {
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line}`);
      this.pending = true;
    } else {
      this.out.write(line + '\n');
    }
  }

  /** A line that stays (eval results, notices); ends any in-place line first. */
  print(line: string): void {
    if (this.pending) this.out.write('\n');
    this.pending = false;
    this.out.write(line + '\n');
  }
}
