// A child of `npm run doctor`: loads one tfjs-node package, or starts one backend through initBackend, and prints what
// happened as one marked JSON line; a crash, a hang or libtensorflow's own output stays in this process.
import type { BackendChoice } from '../../shared/config.ts';
import { applyTensorflowEnv, initBackend } from '../../shared/backend/backend.ts';

const PROBE_MARK = 'DOCTOR-PROBE '; // facts.ts reads the line after this mark

const out = (o: object) => process.stdout.write(`${PROBE_MARK}${JSON.stringify(o)}\n`);
const [mode, arg] = process.argv.slice(2);

if (mode === 'package') {
  applyTensorflowEnv(); // as a training process has them when tfjs-node loads
  try {
    await import(arg!);
    const tf = await import('@tensorflow/tfjs');
    const backend = tf.engine().findBackend('tensorflow') as { isUsingGpuDevice?: unknown } | null;
    out({ loaded: true, gpuDevice: backend?.isUsingGpuDevice === true });
  } catch (e) {
    out({ loaded: false, message: (e as Error).message ?? String(e) });
  }
} else if (mode === 'backend') {
  try {
    const info = await initBackend(arg as BackendChoice);
    out({ ok: true, name: info.name, device: info.device, reason: info.reason });
  } catch (e) {
    out({ ok: false, code: (e as { code?: string }).code ?? 'E_INTERNAL', message: (e as Error).message ?? String(e) });
  }
}
process.exit(0);
