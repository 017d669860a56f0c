// A stacked bar chart in SVG, one bar per day and one colour per series (model or key). Small on
// purpose: a chart library would be larger than the whole console, and SVG attributes (not
// inline styles) keep it within the strict Content-Security-Policy.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
  "#9d755d", "#bab0ac"];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
  return 10 * p;
}

/**
 * barChart({title, labels: ["2026-12-01", ...], series: [{name, values: [..]}], format})
 * returns a <figure> holding the SVG and a legend.
 */
export function barChart({title, labels, series, format = String}) {
  const width = 560, height = 220, left = 64, bottom = 34, top = 10, right = 10;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = width - left - right, plotH = height - top - bottom;
  const step = plotW / Math.max(labels.length, 1);
  const barW = Math.max(2, Math.min(40, step * 0.7));
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title,
    class: "chart"});
  root.append(svg("title", {}, title));
  for (let g = 0; g <= 4; g++) {  // grid lines and the y axis labels
    const y = top + plotH - (plotH * g) / 4;
    root.append(svg("line", {x1: left, x2: width - right, y1: y, y2: y, stroke: "#ddd"}));
    root.append(svg("text", {x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#555"},
      format((max * g) / 4)));
  }
  labels.forEach((label, i) => {
    const x = left + step * i + (step - barW) / 2;
    let y = top + plotH;
    series.forEach((s, k) => {
      const value = s.values[i] || 0;
      if (!value) return;
      const hgt = (value / max) * plotH;
      y -= hgt;
      const rect = svg("rect", {x, y, width: barW, height: Math.max(hgt, 0.5), fill: PALETTE[k % PALETTE.length],
        class: "bar", "data-series": s.name, "data-day": label, "data-value": value});
      rect.append(svg("title", {}, `${label} ${s.name}: ${format(value)}`));
      root.append(rect);
    });
    if (labels.length <= 16 || i % Math.ceil(labels.length / 16) === 0) {
      root.append(svg("text", {x: x + barW / 2, y: height - bottom + 14, "text-anchor": "middle",
        "font-size": 10, fill: "#555"}, label.slice(5)));
    }
  });
  const legend = document.createElement("ul");
  legend.className = "legend";
  series.forEach((s, k) => {
    const li = document.createElement("li");
    const swatch = svg("svg", {width: 10, height: 10, class: "swatch"});
    swatch.append(svg("rect", {width: 10, height: 10, fill: PALETTE[k % PALETTE.length]}));
    li.append(swatch, document.createTextNode(" " + s.name));
    legend.append(li);
  });
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, root, legend);
  return figure;
}
