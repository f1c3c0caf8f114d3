// Shared entry-point wrapper: known errors print their message and exit 2 (bad input) or 1 (failed run).
import { ConfigError } from '../config.ts';
import { CheckpointError } from '../train/checkpoint.ts';
import { DataError } from '../model/data.ts';
import { SafetensorsError } from '../train/safetensors.ts';

/** Runs `main`; bad input (config, data, weights or checkpoint files) exits 2 with their message, anything else exits 1 with its stack. */
export function runMain(main: () => Promise<number | void>): void {
  main().then(
    (code) => process.exit(code ?? 0),
    (e: unknown) => {
      if (e instanceof ConfigError || e instanceof DataError || e instanceof SafetensorsError || e instanceof CheckpointError) {
        process.stderr.write(`error [${e.code}]: ${e.message}\n`);
        process.exit(2);
      }
      const err = e as Error & { code?: string };
      process.stderr.write(`error${err.code ? ` [${err.code}]` : ''}: ${err.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
