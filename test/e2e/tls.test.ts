// wss://: a coordinator with --tls-cert/--tls-key, a worker that trusts it with --ca, one that does not (a certificate made here).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';
import { DATA, readLog, runScript, startScript, tempDir } from '../helpers.ts';

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl (on this machine and in CI). */
function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=smi-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  return { cert, key };
}

t.test('wss: a worker with --ca trains over TLS, one without it is refused; the live page is https', async (t) => {
  const dir = tempDir('smi-tls-');
  const { cert, key } = selfSigned(dir);
  const out = join(dir, 'run');
  const run = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--spectral', 'global'];
  const coord = startScript('coordinator/main', [...run, '--out', out, '--host', '127.0.0.1', '--port', '0', '--token', 'tok', '--tls-cert', cert, '--tls-key', key, '--min-workers', '1']);
  const [, port] = await coord.waitFor(/listening on wss:\/\/[^:]+:(\d+)/);
  const url = `wss://127.0.0.1:${port}`;

  const untrusting = await runScript('worker/main', ['--connect', url, '--token', 'tok', '--retry-for', '0']);
  t.equal(untrusting.code, 2, 'a worker without the CA exits 2 (rejected), at once rather than retrying');
  t.match(untrusting.stdout, /certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT/);

  const status = await new Promise<number>((resolve, reject) => {
    get(`https://127.0.0.1:${port}/api/state?steps=0`, { ca: readFileSync(cert) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  t.equal(status, 200, 'the monitor answers over https to a client that trusts the certificate');

  const worker = startScript('worker/main', ['--connect', url, '--token', 'tok', '--ca', cert]);
  t.equal(await coord.exited, 0, 'the run finishes over wss', { output: coord.output() });
  t.equal(await worker.exited, 0, 'the worker with --ca took part');
  t.equal(readLog(out).filter((r) => r.kind === 'step').length, 20);

  const plain = await runScript('worker/main', ['--connect', `ws://127.0.0.1:${port}`, '--ca', cert]);
  t.equal(plain.code, 2, '--ca with a ws:// URL is a flag error');
  const half = await runScript('coordinator/main', [...run, '--out', join(dir, 'x'), '--tls-cert', cert]);
  t.equal(half.code, 2, '--tls-cert without --tls-key is a flag error');
  t.match(half.stderr + half.stdout, /--tls-cert and --tls-key go together/);
  const local = await runScript('train', [...run, '--workers', '1', '--out', join(dir, 'y'), '--tls-cert', cert, '--tls-key', key]);
  t.equal(local.code, 2, '`npm run train` refuses TLS flags: its workers are local');
});

t.test('wss on the exchange (--update owners): workers serve it with --tls-cert/--tls-key and trust each other with --ca', async (t) => {
  const dir = tempDir('smi-tls-exchange-');
  const { cert, key } = selfSigned(dir);
  const out = join(dir, 'run');
  const run = ['--preset', 'test', '--data', DATA, '--max-iters', '10', '--eval-interval', '10', '--spectral', 'global'];
  const coord = startScript('coordinator/main', [...run, '--out', out, '--host', '127.0.0.1', '--port', '0', '--token', 'tok', '--tls-cert', cert, '--tls-key', key, '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on wss:\/\/[^:]+:(\d+)/);
  const flags = ['--connect', `wss://127.0.0.1:${port}`, '--token', 'tok', '--ca', cert, '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key];
  const ws = [startScript('worker/main', flags), startScript('worker/main', flags)];
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  for (const w of ws) {
    t.equal(await w.exited, 0, 'a worker ends cleanly');
    t.match(w.output(), /exchange listening on wss:\/\/127\.0\.0\.1:\d+/, 'its exchange is wss://');
  }
  t.match(coord.output(), /plan 1 at step 0: \S+ owns \d+ tensors .*, \S+ owns \d+ tensors/, 'two owners, exchanging over wss');
  t.equal(readLog(out).filter((r) => r.kind === 'step').length, 10);
  const half = await runScript('worker/main', ['--connect', `wss://127.0.0.1:${port}`, '--tls-cert', cert]);
  t.equal(half.code, 2, 'a worker with --tls-cert and no --tls-key: exit 2');
  const co = await runScript('worker/main', ['--connect', `wss://127.0.0.1:${port}`, '--compute-only', '--tls-cert', cert, '--tls-key', key]);
  t.equal(co.code, 2, '--compute-only has no exchange to serve: exit 2');
});
