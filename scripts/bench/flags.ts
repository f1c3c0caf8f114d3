// Flag helpers the bench subcommands share.
import { ConfigError } from '../../shared/errors.ts';

export const S = 'run' as const;

/** A flag's value as a positive integer (`d` when absent), else an E_BAD_FLAG ConfigError. */
export function positiveInt(v: Record<string, string | boolean | undefined>, flag: string, d: number): number {
  const n = Number(v[flag] ?? d);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError('E_BAD_FLAG', `--${flag} takes a positive integer, got ${String(v[flag])}`);
  return n;
}

