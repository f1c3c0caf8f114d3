// The live page's script (plain browser JS, no build step): load /api/state, follow /events, redraw at most 4×/s.
// Why one file of ~450 lines: the page has no build step, so its script is one file the browser loads as served.
/* global Chart */
'use strict';

const BREAKDOWN_STEPS = 50; // steps averaged in "where a step goes" and the worker table
const PER_STEP_BARS = 60; // steps shown in "phases per step"
const RATE_WINDOW = 10; // steps in the throughput mean (as smi_tokens_per_second)
const OVERHEAD_WINDOW = 20; // steps in the overhead mean
const MIN_REDRAW_MS = 250;

// One colour per phase on every chart (Tableau 10), so a phase reads the same everywhere.
const PHASE_COLORS = {
  compute: '#4e79a7', spectral: '#f28e2b', encode: '#76b7b2', transfer: '#e15759', wait: '#bab0ac',
  reduce: '#59a14f', optimizer: '#edc948', broadcast: '#b07aa1', 'in flight': '#a0cbe8',
  reduce_scatter: '#ff9da7', update: '#9c755f', all_gather_send: '#d4a6c8',
};
// the star's worker phases, then the owners' (--update owners: a worker also reduces and updates the tensors it owns)
const WORKER_PHASES = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'reduce_scatter', 'reduce', 'update', 'all_gather_send'];
const COORDINATOR_PHASES = ['reduce', 'spectral', 'optimizer', 'broadcast', 'encode', 'wait'];

/** Everything the page knows; the test reads it as window.smiState. */
const model = {
  loaded: false,
  connected: false,
  seq: 0,
  title: 'smi-trainer',
  config: {},
  start: null,
  done: null,
  workers: [],
  errors: {},
  steps: [], // StepEntry: { record, tokens_per_sec, compute_ms, overhead, process_bytes, process_cpu_ms }
  plan: null, // --update owners: { version, owners: [{ worker, tensors, params }], compute_only }
  evals: [],
  totals: { steps: 0, tokens: 0, bytes_sent: 0, bytes_received: 0, errors: 0 },
  historyLimit: 2000,
  clockOffset: 0, // server clock − this clock, ms
  renders: 0,
};
window.smiState = model;

// ---- formatting ----

const $ = (id) => document.getElementById(id);
const fmt = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const fmtLoss = (x) => fmt(x, 4);
const fmtPct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)} %`);
function fmtSI(x) {
  if (!Number.isFinite(x)) return '–';
  const units = ['', 'k', 'M', 'G'];
  let i = 0;
  while (Math.abs(x) >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  return `${x.toFixed(x >= 100 || i === 0 ? 0 : 1)}${units[i]}`;
}
function fmtBytes(x) {
  if (!Number.isFinite(x)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return `${x.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
function fmtAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}
function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${r}s` : `${r}s`;
}
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  Object.assign(e, attrs);
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- charts ----

Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.font.size = 12;
Chart.defaults.color = '#656d76';
Chart.defaults.animation = false; // live data: redraw at once, never mid-animation
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.plugins.legend.labels.boxWidth = 12;

const stepAxis = { type: 'linear', title: { display: true, text: 'step' }, ticks: { precision: 0 } };
const line = (label, color, extra = {}) => ({ label, data: [], borderColor: color, backgroundColor: color, borderWidth: 1.5, pointRadius: 0, tension: 0, ...extra });

const charts = {
  loss: new Chart($('chart-loss'), {
    type: 'line',
    data: { datasets: [
      line('step loss', 'rgba(78,121,167,0.45)', { borderWidth: 1 }),
      line('train loss (eval)', '#4e79a7', { pointRadius: 3, borderWidth: 2 }),
      line('val loss (eval)', '#e15759', { pointRadius: 3, borderWidth: 2 }),
    ] },
    options: { interaction: { mode: 'nearest', axis: 'x', intersect: false }, scales: { x: stepAxis, y: { title: { display: true, text: 'loss (nats)' } } } },
  }),
  throughput: new Chart($('chart-throughput'), {
    type: 'line',
    data: { datasets: [
      line('per step', 'rgba(89,161,79,0.4)', { borderWidth: 1 }),
      line(`${RATE_WINDOW}-step mean`, '#59a14f', { borderWidth: 2 }),
    ] },
    options: { interaction: { mode: 'nearest', axis: 'x', intersect: false }, scales: { x: stepAxis, y: { beginAtZero: true, title: { display: true, text: 'tokens / s' }, ticks: { callback: (v) => fmtSI(v) } } } },
  }),
  overhead: new Chart($('chart-overhead'), {
    type: 'line',
    data: { datasets: [
      line('per step', 'rgba(225,87,89,0.4)', { borderWidth: 1 }),
      line(`${OVERHEAD_WINDOW}-step mean`, '#e15759', { borderWidth: 2 }),
    ] },
    options: { interaction: { mode: 'nearest', axis: 'x', intersect: false }, scales: { x: stepAxis, y: { min: 0, max: 100, title: { display: true, text: 'overhead (%)' } } } },
  }),
  breakdown: new Chart($('chart-breakdown'), {
    type: 'bar',
    data: { labels: [], datasets: [] },
    options: {
      indexAxis: 'y',
      scales: { x: { stacked: true, title: { display: true, text: 'ms per step' } }, y: { stacked: true } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.x, 1)} ms` } } },
    },
  }),
  phases: new Chart($('chart-phases'), {
    type: 'bar',
    data: { labels: [], datasets: [] },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: { x: { stacked: true, title: { display: true, text: 'step' } }, y: { stacked: true, beginAtZero: true, title: { display: true, text: 'ms' } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.y, 1)} ms` } } },
    },
  }),
};
window.smiCharts = charts;

// ---- derived data ----

const withPhases = () => model.steps.filter((s) => s.record.phases);

/** The processes seen in recent phases: 'coordinator' first, then worker ids in order of appearance. */
function processes() {
  const ids = [];
  for (const s of withPhases().slice(-BREAKDOWN_STEPS)) {
    for (const id of Object.keys(s.record.phases.workers || {})) if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** A process's phases in one step; the coordinator's time not in any of its own phases is 'in flight' (workers busy). */
function phasesOf(s, proc) {
  const p = s.record.phases;
  if (proc === 'coordinator') {
    const c = p.coordinator || {};
    const out = {};
    for (const k of COORDINATOR_PHASES) out[k] = c[k] || 0;
    out['in flight'] = Math.max(0, (c.step || s.record.ms) - COORDINATOR_PHASES.reduce((a, k) => a + (c[k] || 0), 0));
    return out;
  }
  const w = (p.workers || {})[proc];
  if (!w) return null;
  const out = {};
  for (const k of WORKER_PHASES) out[k] = w[k] || 0;
  return out;
}

function movingMean(points, n) {
  const out = [];
  let sum = 0;
  const q = [];
  for (const p of points) {
    q.push(p.y); sum += p.y;
    if (q.length > n) sum -= q.shift();
    out.push({ x: p.x, y: sum / q.length });
  }
  return out;
}

// ---- rendering ----

function renderCharts() {
  const steps = model.steps;
  const lossSets = charts.loss.data.datasets;
  lossSets[0].data = steps.map((s) => ({ x: s.record.step, y: s.record.loss }));
  lossSets[1].data = model.evals.map((e) => ({ x: e.step, y: e.train_loss }));
  lossSets[2].data = model.evals.map((e) => ({ x: e.step, y: e.val_loss }));
  charts.loss.update('none');

  const tps = steps.map((s) => ({ x: s.record.step, y: s.tokens_per_sec }));
  charts.throughput.data.datasets[0].data = tps;
  charts.throughput.data.datasets[1].data = movingMean(tps, RATE_WINDOW);
  charts.throughput.update('none');

  const ov = steps.filter((s) => s.overhead !== null).map((s) => ({ x: s.record.step, y: s.overhead * 100 }));
  charts.overhead.data.datasets[0].data = ov;
  charts.overhead.data.datasets[1].data = movingMean(ov, OVERHEAD_WINDOW);
  charts.overhead.update('none');

  const recent = withPhases().slice(-BREAKDOWN_STEPS);
  const procs = ['coordinator', ...processes()];
  const phaseNames = Object.keys(PHASE_COLORS);
  charts.breakdown.data.labels = recent.length ? procs : [];
  charts.breakdown.data.datasets = phaseNames.map((ph) => ({
    label: ph, backgroundColor: PHASE_COLORS[ph],
    data: procs.map((proc) => mean(recent.map((s) => phasesOf(s, proc)).filter(Boolean).map((p) => p[ph] ?? 0)) || 0),
  })).filter((d) => d.data.some((v) => v > 0));
  $('breakdown-note').textContent = recent.length
    ? `mean ms per step over the last ${recent.length} steps; "in flight": the coordinator waits on workers`
    : 'no phase timings yet (a local run has none)';
  charts.breakdown.update('none');

  const select = $('phase-process');
  const options = [...select.options].map((o) => o.value);
  if (options.join() !== procs.join()) {
    const keep = select.dataset.chosen; // the user's choice, while that process is still around
    select.replaceChildren(...procs.map((p) => el('option', { value: p }, p)));
    select.value = procs.includes(keep) ? keep : procs[1] ?? 'coordinator'; // the first worker by default
  }
  const proc = select.value || 'coordinator';
  const last = withPhases().slice(-PER_STEP_BARS);
  const names = proc === 'coordinator' ? [...COORDINATOR_PHASES, 'in flight'] : WORKER_PHASES;
  charts.phases.data.labels = last.map((s) => s.record.step);
  charts.phases.data.datasets = [
    ...names.map((ph) => ({ type: 'bar', label: ph, stack: 'phases', backgroundColor: PHASE_COLORS[ph], data: last.map((s) => (phasesOf(s, proc) || {})[ph] ?? null) })),
    { type: 'line', label: 'step wall time', stack: 'wall', borderColor: '#1f2328', backgroundColor: '#1f2328', borderWidth: 1.5, pointRadius: 0, data: last.map((s) => s.record.phases.coordinator?.step ?? s.record.ms) },
  ];
  charts.phases.update('none');
}

function renderTiles() {
  const last = model.steps[model.steps.length - 1];
  const r = last && last.record;
  const maxIters = model.config.max_iters;
  $('t-step').textContent = r ? fmt(r.step) : '–';
  $('t-step-detail').textContent = r
    ? `${Number.isFinite(maxIters) ? `of ${fmt(maxIters)} · ` : ''}${fmt(r.ms, 0)} ms/step · lr ${r.lr.toExponential(2)}`
    : '\u00a0';
  document.body.dataset.step = r ? String(r.step) : '';
  $('t-loss').textContent = r ? fmtLoss(r.loss) : '–';
  $('t-loss-detail').textContent = r ? `grad norm ${fmt(r.grad_norm, 3)} · α ${fmt(r.alpha, 3)}` : '\u00a0';

  const ev = model.evals[model.evals.length - 1];
  const done = model.done;
  const val = done && Number.isFinite(done.val_loss) ? done.val_loss : ev && ev.val_loss;
  $('t-val').textContent = fmtLoss(val);
  $('t-val-detail').textContent = done
    ? `final · train ${fmtLoss(done.train_loss)}`
    : ev ? `step ${fmt(ev.step)} · train ${fmtLoss(ev.train_loss)}` : 'no eval yet';

  const recent = model.steps.slice(-RATE_WINDOW);
  const ms = recent.reduce((a, s) => a + s.record.ms, 0);
  $('t-tps').textContent = ms > 0 ? fmtSI((recent.reduce((a, s) => a + s.record.tokens, 0) / ms) * 1000) : '–';
  $('t-tps-detail').textContent = done ? `run mean ${fmtSI(done.tokens_per_sec)} tokens / s` : `tokens / s, last ${RATE_WINDOW} steps`;

  const ov = model.steps.filter((s) => s.overhead !== null);
  const lastOv = ov[ov.length - 1];
  $('t-overhead').textContent = lastOv ? fmtPct(lastOv.overhead) : '–';
  $('t-overhead-detail').textContent = ov.length
    ? `mean ${fmtPct(mean(ov.slice(-OVERHEAD_WINDOW).map((s) => s.overhead)))} over ${Math.min(ov.length, OVERHEAD_WINDOW)} steps`
    : '1 − compute / step';

  $('t-workers').textContent = String(model.workers.length);
  $('t-workers-detail').textContent = r ? `${r.workers} in the last step` : '\u00a0';
  $('t-bytes').textContent = model.totals.bytes_sent + model.totals.bytes_received > 0 ? fmtBytes(model.totals.bytes_sent + model.totals.bytes_received) : '–';
  $('t-bytes-detail').textContent = `${fmtBytes(model.totals.bytes_sent)} sent / ${fmtBytes(model.totals.bytes_received)} received`;

  const errTotal = Object.values(model.errors).reduce((a, b) => a + b, 0);
  $('t-errors').textContent = String(errTotal);
  const worst = Object.entries(model.errors).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])[0];
  $('t-errors-detail').textContent = worst ? `most: ${worst[0]} (${worst[1]})` : 'none';
}

function renderHeader() {
  $('title').textContent = model.title;
  document.title = `${model.steps.length ? `step ${model.steps[model.steps.length - 1].record.step} · ` : ''}${model.title} · live`;
  const s = model.start;
  const parts = [];
  if (s) {
    parts.push(`${s.backend} · ${s.device}`, `${fmtSI(s.params)} parameters`);
    if (s.resumed) parts.push(`resumed at step ${fmt(s.step)}`);
  }
  if (model.config.spectral) parts.push(`spectral ${model.config.spectral}`);
  if (model.startedAt) {
    const end = model.done ? model.doneAt : Date.now() + model.clockOffset;
    parts.push(`${model.done ? 'ran' : 'up'} ${fmtDuration((end || Date.now()) - model.startedAt)}`);
  }
  $('run-info').textContent = parts.length ? parts.join(' · ') : 'waiting for the run to start…';
  const status = $('status');
  const [cls, text] = model.done ? ['finished', 'finished'] : model.connected ? ['live', 'live'] : model.loaded ? ['reconnecting', 'reconnecting…'] : ['', 'connecting…'];
  status.className = `pill ${cls}`;
  status.textContent = text;
}

function renderWorkers() {
  const recent = withPhases().slice(-BREAKDOWN_STEPS);
  const stat = (id, k) => mean(recent.map((s) => (s.record.phases.workers || {})[id]).filter(Boolean).map((w) => w[k] || 0));
  const body = $('workers');
  if (model.workers.length === 0) {
    body.replaceChildren(el('tr', {}, undefined));
    body.firstChild.append(el('td', { colSpan: 11, className: 'empty' }, 'no workers connected'));
    return;
  }
  const now = Date.now() + model.clockOffset;
  body.replaceChildren(...model.workers.map((w) => {
    const tr = el('tr');
    tr.append(
      el('td', { className: 'mono' }, w.id), el('td', {}, w.backend), el('td', {}, w.device), el('td', {}, w.host),
      el('td', { className: 'num' }, String(w.pid)), el('td', { title: new Date(w.joinedAt).toISOString() }, fmtAgo(now - w.joinedAt)),
      el('td', { className: 'num' }, fmt(stat(w.id, 'compute'), 1)), el('td', { className: 'num' }, fmt(stat(w.id, 'transfer'), 1)),
      el('td', { className: 'num' }, fmt(stat(w.id, 'wait'), 1)),
      el('td', { className: 'num' }, recent.length ? fmtBytes(stat(w.id, 'bytes_sent')) : '–'),
      el('td', { className: 'num' }, recent.length ? fmtBytes(stat(w.id, 'bytes_received')) : '–'),
    );
    return tr;
  }));
}

/** Every process of the last step: its bytes sent and received, and what it owns under the plan. */
function renderProcesses() {
  const last = model.steps.at(-1);
  const bytes = (last && last.process_bytes) || {};
  const cpu = (last && last.process_cpu_ms) || {};
  const owns = new Map(((model.plan && model.plan.owners) || []).map((o) => [o.worker, o]));
  const ids = [...new Set([...Object.keys(bytes), ...owns.keys(), ...((model.plan && model.plan.compute_only) || [])])];
  $('processes-note').textContent = `${last ? `step ${last.record.step}` : 'no step yet'}${model.plan ? ` · plan ${model.plan.version}` : ''}: bytes each process sent and received, from its own side; its CPU time in the step; what each worker owns`;
  if (ids.length === 0) {
    const tr = el('tr');
    tr.append(el('td', { colSpan: 6, className: 'empty' }, 'no step yet'));
    return $('processes').replaceChildren(tr);
  }
  $('processes').replaceChildren(...ids.map((id) => {
    const o = owns.get(id);
    const b = bytes[id];
    const plain = id === 'coordinator' || !model.plan;
    const tr = el('tr');
    tr.append(
      el('td', { className: 'mono' }, id),
      el('td', { className: 'num' }, plain ? '–' : String(o ? o.tensors : 0)),
      el('td', { className: 'num' }, plain ? '–' : fmtSI(o ? o.params : 0)),
      el('td', { className: 'num' }, b ? fmtBytes(b.sent) : '–'),
      el('td', { className: 'num' }, b ? fmtBytes(b.received) : '–'),
      el('td', { className: 'num' }, cpu[id] === undefined ? '–' : fmt(cpu[id], 1)),
    );
    return tr;
  }));
}

/** Codes seen, most frequent first; the codes never seen fold into one muted row (hover lists them). */
function renderErrors() {
  const rows = Object.entries(model.errors).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const seen = rows.filter(([, n]) => n > 0);
  const unseen = rows.filter(([, n]) => n === 0).map(([code]) => code);
  const row = (code, n, attrs = {}) => {
    const tr = el('tr', { className: n > 0 ? 'hot' : 'zero', ...attrs });
    tr.append(el('td', { className: 'mono' }, code), el('td', { className: 'num' }, String(n)));
    return tr;
  };
  $('errors').replaceChildren(
    ...seen.map(([code, n]) => row(code, n)),
    ...(unseen.length ? [row(seen.length ? `${unseen.length} other codes` : `all ${unseen.length} codes`, 0, { title: unseen.join(', ') })] : []),
  );
}

function renderConfig() {
  const entries = Object.entries(model.config);
  const dl = $('config');
  if (entries.length === 0) return dl.replaceChildren(el('dd', { className: 'empty' }, 'not given'));
  dl.replaceChildren(...entries.map(([k, v]) => {
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    const div = el('div', { className: text.length > 24 ? 'long' : '' });
    div.append(el('dt', {}, k), el('dd', {}, text));
    return div;
  }));
}

let timer = null;
let lastRender = 0;
function render() {
  timer = null;
  lastRender = Date.now();
  renderHeader();
  renderTiles();
  renderCharts();
  renderWorkers();
  renderProcesses();
  renderErrors();
  model.renders++;
}
function scheduleRender() {
  if (timer === null) timer = setTimeout(render, Math.max(0, lastRender + MIN_REDRAW_MS - Date.now()));
}
$('phase-process').addEventListener('change', (ev) => {
  ev.target.dataset.chosen = ev.target.value;
  scheduleRender();
});
setInterval(() => { renderHeader(); if (model.workers.length) renderWorkers(); }, 5000); // ages and uptime

// ---- data ----

function trimSteps() {
  if (model.steps.length > model.historyLimit) model.steps.splice(0, model.steps.length - model.historyLimit);
}

function applyState(s) {
  Object.assign(model, {
    title: s.title, config: s.config, seq: s.seq, start: s.start, done: s.done, workers: s.workers, errors: s.errors,
    steps: s.steps, evals: s.evals, totals: s.totals, historyLimit: s.historyLimit, startedAt: s.startedAt, plan: s.plan ?? null,
    clockOffset: s.now - Date.now(), doneAt: s.done ? s.now : null, loaded: true,
  });
  renderConfig();
}

/** One event from /events (already known to be newer than the state). */
function applyEvent(type, d) {
  model.seq = d.seq;
  switch (type) {
    case 'start':
      model.start = d.record;
      model.done = null;
      model.steps = model.steps.filter((s) => s.record.step <= d.record.step);
      model.evals = model.evals.filter((e) => e.step <= d.record.step);
      break;
    case 'step': {
      model.steps.push(d.entry);
      trimSteps();
      model.totals.steps++;
      model.totals.tokens += d.entry.record.tokens;
      if (d.entry.record.owners_plan) model.plan = d.entry.record.owners_plan;
      for (const w of Object.values((d.entry.record.phases || {}).workers || {})) {
        model.totals.bytes_sent += w.bytes_sent || 0;
        model.totals.bytes_received += w.bytes_received || 0;
      }
      break;
    }
    case 'eval': model.evals.push(d.record); break;
    case 'done': model.done = d.record; model.doneAt = Date.now() + model.clockOffset; break;
    case 'workers': model.workers = d.workers; break;
    case 'errors': model.errors = d.errors; break;
  }
}

/**
 * Opens /events first and buffers what comes, then loads /api/state and applies only the buffered events newer
 * than it (by seq): nothing is missed or applied twice. EventSource reconnects by itself; each (re)open reloads.
 */
function connect() {
  const es = new EventSource('/events');
  let buffered = [];
  let ready = false;
  const on = (type) => es.addEventListener(type, (ev) => {
    const d = JSON.parse(ev.data);
    if (!ready) return void buffered.push([type, d]);
    if (d.seq > model.seq) { applyEvent(type, d); scheduleRender(); }
  });
  ['start', 'step', 'eval', 'done', 'workers', 'errors'].forEach(on);
  es.onopen = async () => {
    ready = false;
    buffered = [];
    try {
      const res = await fetch('/api/state', { cache: 'no-store' });
      applyState(await res.json());
    } catch (err) {
      console.error('cannot load /api/state', err);
      return;
    }
    model.connected = true;
    ready = true;
    for (const [type, d] of buffered) if (d.seq > model.seq) applyEvent(type, d);
    buffered = [];
    scheduleRender();
  };
  es.onerror = () => {
    model.connected = false;
    scheduleRender();
  };
}

render();
connect();
