// Parallel coordinates on a canvas: one vertical axis per field, one polyline per row, coloured
// by a numeric field. What the canvas shows is also written as text beside it (axes, their
// ranges, each row's colour value) so screen readers and tests can read it.
import { html, useEffect, useMemo, useRef, useState } from "../vendor/standalone.module.js";

// Viridis, sampled (dark purple = low, green = high), safe for red-green blindness; its last,
// pale yellow stretch is left out because it does not show on white.
const RAMP = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#a0da39"];
const MISSING = "#b0b7c3";
const PAD = { top: 44, bottom: 30, left: 70, right: 90 };

function hex(c) {
  return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
}

// The ramp's colour at t in [0, 1] (low values dark purple, high values yellow).
export function rampColor(t) {
  if (t === null || t === undefined || !Number.isFinite(t)) return MISSING;
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const a = hex(RAMP[i]);
  const b = hex(RAMP[i + 1]);
  const f = x - i;
  return "#" + a.map((v, k) => Math.round(v + (b[k] - v) * f).toString(16).padStart(2, "0")).join("");
}

function fmtTick(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

// How each axis maps a value to [0, 1] (bottom to top), or null for a value it cannot place.
export function scaleOf(axis, values) {
  if (axis.kind === "categorical") {
    const cats = [...new Set(values.filter((v) => v !== null && v !== undefined).map(String))].sort();
    const place = (v) => (v === null || v === undefined ? null : cats.length > 1 ? cats.indexOf(String(v)) / (cats.length - 1) : 0.5);
    return { ...axis, cats, place, ticks: cats.map((c) => [place(c), c]) };
  }
  const nums = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const lo = nums.length ? Math.min(...nums) : 0;
  const hi = nums.length ? Math.max(...nums) : 1;
  // a learning rate of 1e-4 … 3e-2 spreads out only on a log axis
  const log = lo > 0 && hi / lo >= 100;
  const f = log ? Math.log10 : (v) => v;
  const span = f(hi) - f(lo);
  const place = (v) => (v === null || v === undefined || !Number.isFinite(v) ? null : span > 0 ? (f(v) - f(lo)) / span : 0.5);
  const ticks = span > 0 ? [[0, fmtTick(lo)], [0.5, fmtTick(log ? Math.pow(10, (f(lo) + f(hi)) / 2) : (lo + hi) / 2)], [1, fmtTick(hi)]] : [[0.5, fmtTick(lo)]];
  return { ...axis, lo, hi, log, place, ticks };
}

function draw(canvas, width, height, scales, rows, colors, highlight) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const plotW = Math.max(width - PAD.left - PAD.right, 10);
  const plotH = Math.max(height - PAD.top - PAD.bottom, 10);
  const xOf = (i) => PAD.left + (scales.length > 1 ? (i * plotW) / (scales.length - 1) : plotW / 2);
  const yOf = (t) => PAD.top + (1 - t) * plotH;
  const line = (r, k) => {
    ctx.strokeStyle = colors[k];
    ctx.globalAlpha = highlight === null || highlight === r.id ? 0.9 : 0.15;
    ctx.lineWidth = highlight === r.id ? 3 : 1.6;
    ctx.beginPath();
    let open = false;
    scales.forEach((s, i) => {
      const t = s.place(r.values[s.key]);
      if (t === null) { open = false; return; }
      if (open) ctx.lineTo(xOf(i), yOf(t));
      else ctx.moveTo(xOf(i), yOf(t));
      open = true;
    });
    ctx.stroke();
  };
  rows.forEach((r, k) => { if (r.id !== highlight) line(r, k); });
  rows.forEach((r, k) => { if (r.id === highlight) line(r, k); });
  ctx.globalAlpha = 1;
  ctx.font = "12px system-ui, sans-serif";
  ctx.lineJoin = "round";
  scales.forEach((s, i) => {
    const x = xOf(i);
    ctx.strokeStyle = "#1d2430";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, PAD.top);
    ctx.lineTo(x, PAD.top + plotH);
    ctx.stroke();
    ctx.textAlign = "center";
    ctx.fillStyle = "#1d2430";
    ctx.font = "600 12px system-ui, sans-serif";
    const room = scales.length > 1 ? plotW / (scales.length - 1) - 6 : plotW;
    ctx.fillText(fit(ctx, s.label, Math.max(room, 40)), x, PAD.top - 22);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#667085";
    ctx.fillText([s.note, s.kind === "categorical" ? "category" : s.log ? "log" : ""].filter(Boolean).join(", "), x, PAD.top - 9);
    const every = Math.ceil(s.ticks.length / Math.max(Math.floor(plotH / 16), 1));
    ctx.textAlign = "left";
    s.ticks.forEach(([t, label], j) => {
      if (j % every) return;
      const y = yOf(t) + 4;
      const text = fit(ctx, label, 80);
      ctx.strokeStyle = "rgba(255,255,255,.9)";
      ctx.lineWidth = 3;
      ctx.strokeText(text, x + 5, y);
      ctx.fillStyle = "#1d2430";
      ctx.fillText(text, x + 5, y);
    });
  });
}

function fit(ctx, text, room) {
  if (ctx.measureText(text).width <= room) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(`${cut}…`).width > room) cut = cut.slice(0, -1);
  return `${cut}…`;
}

// axes: [{key, label, kind: "numeric" | "categorical", note?}], left to right (`note`: a word
// under the label, such as "metric"); rows: [{id, label, values: {axisKey: value}}] (numbers on
// numeric axes, text on categorical ones, null where missing); colorBy: the key of the numeric
// axis whose value colours each line.
export function ParallelCoordinates({ axes, rows, colorBy, height = 340 }) {
  const box = useRef(null);
  const canvas = useRef(null);
  const [width, setWidth] = useState(0);
  const [highlight, setHighlight] = useState(null);
  const scales = useMemo(() => axes.map((a) => scaleOf(a, rows.map((r) => r.values[a.key]))), [axes, rows]);
  const colorScale = scales.find((s) => s.key === colorBy && s.kind === "numeric") || null;
  const colors = useMemo(() => rows.map((r) => rampColor(colorScale ? colorScale.place(r.values[colorBy]) : null)), [rows, colorScale, colorBy]);

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    setWidth(el.clientWidth);
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  useEffect(() => {
    if (canvas.current && width > 0) draw(canvas.current, width, height, scales, rows, colors, highlight);
  }, [width, height, scales, rows, colors, highlight]);

  const names = scales.map((s) => s.label);
  return html`<figure class="parallel" data-testid="parallel" data-runs=${rows.length} data-axes=${scales.length}
      data-axis-names=${names.join("\n")} data-color-by=${colorScale ? colorScale.label : ""} data-colors=${colors.join(",")} style=${{ margin: 0 }}>
    <div ref=${box} style=${{ width: "100%" }}>
      <canvas ref=${canvas} role="img" aria-label=${`Parallel coordinates of ${rows.length} runs over ${scales.length} axes: ${names.join(", ")}; coloured by ${colorScale ? colorScale.label : "nothing"}`}></canvas>
    </div>
    <figcaption style=${{ display: "flex", gap: "24px", flexWrap: "wrap", fontSize: "12.5px", marginTop: "6px" }}>
      <div>
        <strong>${rows.length} runs</strong>, ${scales.length} axes:
        <ol data-testid="parallel-axes" style=${{ margin: "4px 0", paddingLeft: "20px" }}>${scales.map((s) => html`<li data-axis=${s.label} data-kind=${s.kind}>
          ${s.label} <span class="muted">(${s.note ? `${s.note}, ` : ""}${s.kind === "categorical" ? `${s.cats.length} categories` : `${fmtTick(s.lo)} – ${fmtTick(s.hi)}${s.log ? ", log" : ""}`})</span></li>`)}</ol>
      </div>
      <div style=${{ flex: "1 1 420px" }}>
        <span>Colour: ${colorScale ? colorScale.label : "—"}</span>
        ${colorScale ? html` <span class="muted">${fmtTick(colorScale.lo)}</span>
          <span aria-hidden="true" style=${{ display: "inline-block", width: "120px", height: "10px", verticalAlign: "middle", margin: "0 6px", background: `linear-gradient(to right, ${RAMP.join(",")})` }}></span>
          <span class="muted">${fmtTick(colorScale.hi)}</span>` : null}
        <ul data-testid="parallel-runs" style=${{ listStyle: "none", padding: 0, margin: "4px 0", display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(190px, 1fr))", gap: "2px 16px", minWidth: "420px" }}>${rows.map((r, k) => html`<li data-run-id=${r.id}
            data-color=${colors[k]} onMouseEnter=${() => setHighlight(r.id)} onMouseLeave=${() => setHighlight(null)}>
          <span aria-hidden="true" style=${{ display: "inline-block", width: "10px", height: "10px", borderRadius: "2px", background: colors[k], marginRight: "6px" }}></span>
          ${r.label}: ${fmtTick(colorScale ? r.values[colorBy] ?? null : null)}</li>`)}</ul>
      </div>
    </figcaption>
  </figure>`;
}
