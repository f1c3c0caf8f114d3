// Shared entry-point wrapper: a run's known errors print their message and exit with their code's exit code (2: bad input).
import { RendezvousError, RunError } from '../errors.ts';

/**
 * Runs `main`; a RunError whose code means bad input (RUN_ERROR_CODES: config, flags, data, weights or checkpoint
 * files) exits 2 with its message, a RendezvousError exits 1 with its message, anything else exits 1 with its stack.
 */
export function runMain(main: () => Promise<number | void>): void {
  main().then(
    (code) => process.exit(code ?? 0),
    (e: unknown) => {
      if (e instanceof RunError && (e.exitCode === 2 || e instanceof RendezvousError)) {
        process.stderr.write(`error [${e.code}]: ${e.message}\n`);
        process.exit(e.exitCode);
      }
      const err = e as Error & { code?: string };
      process.stderr.write(`error${err.code ? ` [${err.code}]` : ''}: ${err.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
