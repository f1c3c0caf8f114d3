// PNG charts for reports: Chart.js drawn on @napi-rs/canvas (prebuilt from npm, no network, no system libraries).
import { createCanvas, type Canvas } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration, type Plugin } from 'chart.js';

Chart.register(...registerables);

const whiteBackground: Plugin = {
  id: 'whiteBackground',
  beforeDraw(chart) {
    const { ctx, width, height } = chart;
    ctx.save();
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.restore();
  },
};

/** Renders a Chart.js configuration to PNG bytes (animation and responsiveness off). */
export async function renderChart(config: ChartConfiguration, width = 800, height = 450): Promise<Buffer> {
  const canvas = createCanvas(width, height);
  const chart = new Chart(canvas as unknown as HTMLCanvasElement, {
    ...config,
    options: { ...config.options, responsive: false, animation: false },
    plugins: [...(config.plugins ?? []), whiteBackground],
  } as ChartConfiguration);
  try {
    return await canvas.encode('png');
  } finally {
    chart.destroy();
  }
}

/** A blank canvas for pictures Chart.js does not draw (heat maps): draw, then `canvas.encode('png')`. */
export function blankCanvas(width: number, height: number): Canvas {
  return createCanvas(width, height);
}

/** A categorical palette that reads on white. */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
