// Line charts on a canvas (uPlot): many series, many points, smoothing and a log scale.
import { html, useEffect, useRef } from "../vendor/standalone.module.js";
import uPlot from "../vendor/uPlot.esm.js";

const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173",
];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

// Exponential moving average as TensorBoard draws it (debiased), weight in [0, 1).
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * v;
    count++;
    out[i] = last / (1 - Math.pow(weight, count));
  }
  return out;
}

// `series`: [{label, x: [...], y: [...], color?}] (x ascending); drawn on one set of axes.
// `spanGaps`: draw a line across missing values (false shows gaps, e.g. windows without traffic).
// A series of few points shows its points, so a single value is not invisible.
export function LineChart({ series, xLabel = "step", yLabel = "", logY = false, smoothing = 0, height = 260, time = false, title = "", spanGaps = true }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    el.dataset.ready = "false";
    const tables = series.map((s) => [s.x, smooth(s.y, smoothing)]);
    const data = tables.length ? uPlot.join(tables) : [[]];
    const opts = {
      width: Math.max(el.clientWidth || 600, 200),
      height,
      title,
      scales: { x: { time }, y: { distr: logY ? 3 : 1 } },
      axes: [{ label: xLabel }, { label: yLabel, size: 60 }],
      series: [{ label: xLabel }, ...series.map((s, i) => ({ label: s.label, stroke: s.color || color(i), width: 1.5, spanGaps, points: { show: s.x.length <= 60, size: 5, fill: s.color || color(i) } }))],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    if (logY) {
      for (let i = 1; i < data.length; i++) data[i] = data[i].map((v) => (v !== null && v > 0 ? v : null));
    }
    const plot = new uPlot(opts, data, el.querySelector(".chart-canvas"));
    el.dataset.ready = "true";
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 200), height }));
    resize.observe(el);
    return () => { resize.disconnect(); plot.destroy(); };
  }, [series, logY, smoothing, height, xLabel, time, spanGaps]);
  return html`<div class="chart" ref=${box} data-testid="chart" data-series=${series.length} data-ready="false">
    <div class="chart-canvas"></div>
  </div>`;
}
