// `npm run doctor`: for this machine, what each backend needs and what is there, what to run to fix what is missing;
// exit 0 when the backend that --backend (default auto) takes starts, 1 when it does not.
import { parseWithTable } from '../shared/cli/options.ts';
import { BACKENDS, oneOf, type BackendChoice } from '../shared/config.ts';
import { DEFAULT_DATA_PATH } from '../shared/model/data.ts';
import { runMain } from '../shared/cli/main.ts';
import { formatReport } from './doctor/checks.ts';
import { runDoctor } from './doctor/facts.ts';

const S = 'run' as const;
const OPTIONS = {
  backend: { type: 'string' as const, arg: 'B', section: S, help: `the backend to judge: ${BACKENDS.join('|')} [auto: the one npm start would take]` },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `the corpus to verify [${DEFAULT_DATA_PATH}]` },
  json: { type: 'boolean' as const, section: S, help: 'print the report as JSON (checks, backends, outcome, exit)' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run doctor -- [--backend B] [--data FILE] [--json]

Checks, for this machine, what each backend needs (Node and N-API, @tensorflow/tfjs-node(-gpu), nvidia-smi's GPUs,
CUDA_VISIBLE_DEVICES, the CUDA 11 libraries libtensorflow 2.9.1 loads, wasm SIMD, the FFT, the corpus), one line
each with the fix, then starts --backend B as npm start and npm run worker would. On a GPU worker host:
npm run doctor -- --backend tensorflow-gpu. See docs/gpu.md.
Exit codes: 0 the backend starts here, 1 it does not, 2 bad arguments.`;

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const wanted: BackendChoice = v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS);
  const report = await runDoctor({ wanted, data: (v.data as string | undefined) ?? DEFAULT_DATA_PATH });
  console.log(v.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.exit;
});
