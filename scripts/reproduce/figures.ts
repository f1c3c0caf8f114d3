// The reproduction report's figures: the paper's Figures 2–5 drawn from the runs (line charts, and the spectral-filtering heatmaps on a canvas).

// ---- figures ---------------------------------------------------------------------------------------------
import type { ChartConfiguration } from 'chart.js';
import { SMI_RUN_NAMES, type SmiRunName } from '../../shared/config.ts';
import type { GPT } from '../../shared/model/gpt.ts';
import { initFft } from '../../shared/smi/fft.ts';
import { forward as fft2, magnitude, maskedBlend, threshold } from '../../shared/smi/steps.ts';
import { mean } from '../analysis/quality.ts';
import { PALETTE, blankCanvas } from '../report/charts.ts';

type Rgb = [number, number, number];
const VIRIDIS: Rgb[] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

/** Colour ramps are quantised to 32 levels: the heat maps stay readable and their PNGs small (noise compresses badly). */
const LEVELS = 32;

function ramp(stops: Rgb[], t: number): Rgb {
  const x = (Math.round(Math.min(1, Math.max(0, t)) * LEVELS) / LEVELS) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i]![c]! + (stops[i + 1]![c]! - stops[i]![c]!) * f)) as Rgb;
}

/** Blue (negative) – white – red (positive), v in [−1, 1]. */
function diverging(v: number): Rgb {
  const t = Math.min(1, Math.abs(v));
  return v < 0 ? ramp([[255, 255, 255], [33, 102, 172]], t) : ramp([[255, 255, 255], [178, 24, 43]], t);
}

interface Panel {
  title: string;
  values: Float64Array; // rows × cols, row-major
  /** diverging: blue < 0 < red, one symmetric range for all such panels; sequential: viridis min → max; mask: 0 dark, 1 white */
  kind: 'diverging' | 'sequential' | 'mask';
}

/** What the colours of a heat-map figure stand for (computed after pooling). */
interface HeatScale {
  pool: number;
  divergingClip: number;
  sequential: [number, number];
}

/** Block-mean pooling of a rows × cols matrix by factor f (each axis). */
function pool(v: ArrayLike<number>, rows: number, cols: number, f: number): { v: Float64Array; rows: number; cols: number } {
  const r2 = Math.ceil(rows / f);
  const c2 = Math.ceil(cols / f);
  const out = new Float64Array(r2 * c2);
  const cnt = new Float64Array(r2 * c2);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const i = Math.floor(r / f) * c2 + Math.floor(c / f);
    out[i]! += v[r * cols + c]!;
    cnt[i]! += 1;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= cnt[i]!;
  return { v: out, rows: r2, cols: c2 };
}

/** Splits `text` into lines no wider than `width` pixels in the context's current font. */
function wrap(ctx: { measureText(t: string): { width: number } }, text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

export async function heatmapFigure(title: string, footer: (h: HeatScale) => string, panels: Panel[], rows: number, cols: number): Promise<Buffer> {
  const f = Math.max(1, Math.ceil(cols / 256), Math.ceil(rows / 128)); // at most 256 × 128 distinct cells a panel: small PNGs
  const pooled = panels.map((p) => pool(p.values, rows, cols, f));
  const divAbs = pooled.filter((_, i) => panels[i]!.kind === 'diverging').flatMap((p) => Array.from(p.v, Math.abs)).sort((a, b) => a - b);
  const clip = divAbs.length ? divAbs[Math.floor(0.99 * (divAbs.length - 1))]! || 1 : 1; // the 99th percentile of |value|
  let smin = Infinity;
  let smax = -Infinity;
  pooled.forEach((p, i) => {
    if (panels[i]!.kind === 'sequential') for (const v of p.v) (smin = Math.min(smin, v)), (smax = Math.max(smax, v));
  });
  const color = (kind: Panel['kind'], v: number): Rgb =>
    kind === 'diverging' ? diverging(v / clip) : kind === 'sequential' ? ramp(VIRIDIS, (v - smin) / (smax - smin || 1)) : ramp([[40, 40, 40], [255, 255, 255]], v);
  const pr = Math.ceil(rows / f);
  const pc = Math.ceil(cols / f);
  const scale = Math.max(1, Math.min(Math.floor(512 / pc), Math.floor(256 / pr)));
  const pw = pc * scale;
  const ph = pr * scale;
  const margin = 16;
  const titleH = 22;
  const perRow = 2;
  const nRows = Math.ceil(panels.length / perRow);
  const W = Math.max(perRow * pw + (perRow + 1) * margin, 700);
  const measure = blankCanvas(10, 10).getContext('2d');
  measure.font = 'bold 16px sans-serif';
  const titleLines = wrap(measure, title, W - 2 * margin);
  measure.font = '12px sans-serif';
  const footLines = wrap(measure, footer({ pool: f, divergingClip: clip, sequential: [smin, smax] }), W - 2 * margin);
  const head = 14 + titleLines.length * 21;
  const H = head + nRows * (titleH + ph + margin) + footLines.length * 16 + 8;
  const canvas = blankCanvas(W, H);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = '#000000';
  ctx.font = 'bold 16px sans-serif';
  titleLines.forEach((l, i) => ctx.fillText(l, margin, 24 + i * 21));
  panels.forEach((p, k) => {
    const x0 = margin + (k % perRow) * (pw + margin);
    const y0 = head + Math.floor(k / perRow) * (titleH + ph + margin);
    ctx.fillStyle = '#000000';
    ctx.font = '13px sans-serif';
    ctx.fillText(p.title, x0, y0 + 15);
    const pv = pooled[k]!;
    const img = ctx.createImageData(pw, ph);
    for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) {
      const [r, g, b] = color(p.kind, pv.v[Math.floor(y / scale) * pv.cols + Math.floor(x / scale)]!);
      const o = (y * pw + x) * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
    ctx.putImageData(img, x0, y0 + titleH);
    ctx.strokeStyle = '#888888';
    ctx.strokeRect(x0 - 0.5, y0 + titleH - 0.5, pw + 1, ph + 1);
  });
  ctx.fillStyle = '#333333';
  ctx.font = '12px sans-serif';
  const footTop = head + nRows * (titleH + ph + margin);
  footLines.forEach((l, i) => ctx.fillText(l, margin, footTop + 12 + i * 16));
  return canvas.encode('png');
}

/** Figure 5: a real gradient, its spectrum, the masks that keep 50% and 75% of the bins, and the filtered gradients. */
export async function spectralFigure(model: GPT, x: Int32Array, y: Int32Array, batch: number, label: string): Promise<{ png: Buffer; note: string }> {
  await initFft();
  const name = 'transformer.h.0.mlp.c_fc.weight';
  const idx = model.params.findIndex((p) => p.name === name);
  const { grads } = model.gradients(x, y, batch);
  const [rows, cols] = grads[idx]!.shape as [number, number]; // our layout [in, out] = PyTorch's transposed
  const G = grads[idx]!.dataSync() as Float32Array;
  const Gc = Float32Array.from(G);
  for (const g of grads) g.dispose();
  const spec = fft2(Gc, rows, cols);
  const M = magnitude(spec);
  const tau50 = threshold(M, rows, cols, 0.5);
  const tau25 = threshold(M, rows, cols, 0.25);
  const G50 = maskedBlend(spec, Gc, M, tau50, 1);
  const G25 = maskedBlend(spec, Gc, M, tau25, 1);
  // the full, fftshifted spectrum from the half one: X[k1][k2] = conj(X[−k1][−k2])
  const full = (H: Float32Array, fn: (h: number) => number): Float64Array => {
    const out = new Float64Array(rows * cols);
    for (let k1 = 0; k1 < rows; k1++) for (let k2 = 0; k2 < cols; k2++) {
      const h = k2 < spec.half ? H[k2 * rows + k1]! : H[(cols - k2) * rows + ((rows - k1) % rows)]!;
      const r = (k1 + Math.floor(rows / 2)) % rows;
      const c = (k2 + Math.floor(cols / 2)) % cols;
      out[r * cols + c] = fn(h);
    }
    return out;
  };
  const logM = full(M, (h) => Math.log10(h + 1e-12));
  const mask50 = full(M, (h) => +(h >= tau50));
  const mask25 = full(M, (h) => +(h >= tau25));
  const png = await heatmapFigure(
    `Spectral filtering of a real gradient: ${name} of ${label}, one validation batch (${rows}×${cols}, rows = input, cols = output)`,
    (h) => `${h.pool > 1 ? `Each cell is the mean of ${h.pool}×${h.pool} entries (masks: the fraction kept). ` : ''}Gradients: blue < 0 < red, clipped at ±${h.divergingClip.toExponential(2)} (99th percentile of |value|, the same scale in the three); spectrum: viridis over log10|Ĝ| from ${h.sequential[0].toFixed(1)} to ${h.sequential[1].toFixed(1)}, zero frequency at the centre; masks: white = kept. The history H is |Ĝ| of this one gradient.`,
    [
      { title: 'gradient G', values: Float64Array.from(G), kind: 'diverging' },
      { title: 'log10 |FFT2(G)| (fftshifted)', values: logM, kind: 'sequential' },
      { title: `mask Ω, q = 0.5 (kept ${(mean(mask50) * 100).toFixed(1)}%)`, values: mask50, kind: 'mask' },
      { title: `mask Ω, q = 0.25 (kept ${(mean(mask25) * 100).toFixed(1)}%)`, values: mask25, kind: 'mask' },
      { title: 'filtered G′ = Re(IFFT2(Ĝ ⊙ Ω)), 50% kept', values: Float64Array.from(G50), kind: 'diverging' },
      { title: 'filtered G′, 75% kept', values: Float64Array.from(G25), kind: 'diverging' },
    ],
    rows,
    cols,
  );
  const energy = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v * v, 0);
  const eG = energy(G);
  const note = `${name} of ${label} (${rows}×${cols}); energy kept ‖G′‖²/‖G‖²: ${(energy(G50) / eG * 100).toFixed(1)}% with 50% of the bins, ${(energy(G25) / eG * 100).toFixed(1)}% with 75%`;
  return { png, note };
}

export function lineChart(title: string, xLabel: string, yLabel: string, datasets: { label: string; data: { x: number; y: number }[]; dash?: number[]; color?: string }[]): ChartConfiguration {
  return {
    type: 'line',
    data: {
      datasets: datasets.map((d, i) => ({
        label: d.label, data: d.data, borderColor: d.color ?? PALETTE[i % PALETTE.length], backgroundColor: d.color ?? PALETTE[i % PALETTE.length],
        borderWidth: 2, pointRadius: d.data.length > 40 ? 0 : 3, borderDash: d.dash ?? [], fill: false, tension: 0,
      })),
    },
    options: {
      plugins: {
        title: { display: true, text: title, font: { size: 16 } },
        legend: { position: 'bottom' },
      },
      scales: { x: { type: 'linear', title: { display: true, text: xLabel } }, y: { title: { display: true, text: yLabel } } },
    },
  } as ChartConfiguration;
}

/** One colour per run, the same in every figure. */
export const RUN_COLOR = (run: SmiRunName): string => PALETTE[SMI_RUN_NAMES.indexOf(run) % PALETTE.length]!;

export const thin = <T,>(xs: T[], max = 400): T[] => (xs.length <= max ? xs : xs.filter((_, i) => i % Math.ceil(xs.length / max) === 0 || i === xs.length - 1));
