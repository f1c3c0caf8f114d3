// Fault injection for tests only: SMI_FAULT=POINT:STEP makes this worker SIGKILL itself at that point of that step.
//
// Points of the owners' step: before-shares (computed, nothing sent), after-share (one owner has its share, the
// others not), after-reduce (an owner with every share in, before it tells the coordinator), mid-values (an owner
// that has sent the first part of its new values to one worker, the rest still going out), gather (an owner asked for its state), evaluate (a
// worker asked for its evaluation batches' losses). Used by
// test/e2e/faults.test.ts, whose titles name the point; unset, it costs one comparison per point.
export const FAULT_POINTS = ['before-shares', 'after-share', 'after-reduce', 'mid-values', 'gather', 'evaluate'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

// globalThis.process: a browser worker has none (and no faults)
const spec = /^([a-z-]+):(\d+)$/.exec(globalThis.process?.env.SMI_FAULT ?? '');
const point = spec && (FAULT_POINTS as readonly string[]).includes(spec[1]!) ? (spec[1] as FaultPoint) : null;
const atStep = spec ? Number(spec[2]) : -1;

/** Kills this process (SIGKILL: no goodbye, no flush) when SMI_FAULT names this point and step. */
export function fault(p: FaultPoint, step: number): void {
  if (p === point && step === atStep) process.kill(process.pid, 'SIGKILL');
}

/** Whether SMI_FAULT names this point (a caller may then wait for the moment it names). */
export const faultArmed = (p: FaultPoint): boolean => p === point;
