// The browser worker's page: takes the token from the URL fragment (and drops it), starts the worker in a Web Worker, shows what it does.
const $ = (id) => document.getElementById(id);

// #token=T&backend=B: the fragment never reaches a server (no query string, no Referer); drop it from the address bar and history at once
const params = new URLSearchParams(location.hash.slice(1));
if (location.hash) history.replaceState(null, '', location.pathname);
const token = params.get('token');
const backend = ['auto', 'webgpu', 'wasm', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;

const state = (text) => ($('state').textContent = text);
const log = (line) => {
  const el = $('log');
  el.textContent += `${new Date().toISOString().slice(11, 19)} ${line}\n`;
  el.scrollTop = el.scrollHeight;
};
const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
const TRANSFER = ['reduce_scatter', 'all_gather_send'];
let sent = 0;
let received = 0;

const worker = new Worker('/worker/app.js', { type: 'module' });
window.smiWorker = { steps: [], backend: null, exit: null }; // for tests and the screenshot script
worker.onerror = (e) => {
  state(`failed: ${e.message}`);
  window.smiWorker.exit = { reason: 'error', message: e.message };
};
worker.onmessage = ({ data: m }) => {
  switch (m.type) {
    case 'log':
      return log(m.line);
    case 'backend':
      window.smiWorker.backend = m;
      $('backend').textContent = m.name;
      $('reason').textContent = `${m.name} on ${m.device}: ${m.reason}`;
      state('joining the run…');
      $('stop').disabled = false;
      return;
    case 'step': {
      window.smiWorker.steps.push(m);
      const transfer = TRANSFER.reduce((s, k) => s + (m.phases[k] ?? 0), 0);
      const other = Object.entries(m.phases).filter(([k]) => k !== 'compute' && !TRANSFER.includes(k)).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
      sent += m.bytesSent;
      received += m.bytesReceived;
      state('training');
      $('step').textContent = m.step;
      $('compute').textContent = fmt(m.phases.compute);
      $('transfer').textContent = fmt(transfer);
      $('period').textContent = fmt(m.periodMs, 0);
      $('bytes').textContent = `${fmt(sent / 1e6)} / ${fmt(received / 1e6)}`;
      const row = document.createElement('tr');
      for (const v of [m.step, fmt(m.phases.compute), fmt(transfer), other || '–', fmt(m.periodMs, 0), fmt(m.bytesSent / 1e3), fmt(m.bytesReceived / 1e3)]) {
        const td = document.createElement('td');
        td.textContent = v;
        row.appendChild(td);
      }
      const body = $('steps');
      body.prepend(row);
      while (body.rows.length > 12) body.deleteRow(-1);
      return;
    }
    case 'exit':
      window.smiWorker.exit = m;
      state(m.reason === 'done' ? `the run is over: ${m.message}` : m.reason === 'stopped' ? 'stopped: this tab left the run' : `${m.reason}: ${m.message}`);
      $('stop').disabled = true;
      log(`${m.reason}: ${m.message}`);
      return;
  }
};
$('stop').onclick = () => {
  $('stop').disabled = true;
  state('leaving after this step…');
  worker.postMessage({ type: 'stop' });
};
if (!token) log('no #token=… in the address: the coordinator refuses a worker without its token unless it runs without one');
worker.postMessage({ type: 'start', url, token, backend });
