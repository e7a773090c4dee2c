// Bar charts drawn as inline SVG: one bar per point, a labelled axis, a title per bar.
import { h } from "./dom.js";

const W = 600, H = 190, L = 86, B = 24, T = 10;

function nice(max) {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

export function barChart(title, points, { format = String, bad = false, labelEvery } = {}) {
  const max = nice(Math.max(0, ...points.map((p) => p.value)));
  const n = Math.max(points.length, 1);
  const slot = (W - L - 4) / n;
  const every = labelEvery || Math.max(1, Math.ceil(n / 8));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = h("svg", { svg: true, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (const f of [0, 0.5, 1]) {
    svg.append(h("line", { svg: true, class: "axis", x1: L, x2: W, y1: y(max * f), y2: y(max * f) }));
    svg.append(h("text", { svg: true, x: L - 4, y: y(max * f) + 3, "text-anchor": "end" }, format(max * f)));
  }
  points.forEach((p, i) => {
    const x = L + i * slot + slot * 0.12;
    const top = y(p.value);
    const bar = h("rect", { svg: true, class: bad ? "bar bad" : "bar", x, y: top,
      width: Math.max(1, slot * 0.76), height: Math.max(0, H - B - top), "data-label": p.label,
      "data-value": p.value });
    bar.append(h("title", { svg: true }, `${p.label}: ${format(p.value)}`));
    svg.append(bar);
    if (i % every === 0) {
      svg.append(h("text", { svg: true, x: x + slot * 0.38, y: H - 6, "text-anchor": "middle" }, p.short || p.label));
    }
  });
  if (!points.length) svg.append(h("text", { svg: true, x: W / 2, y: H / 2, "text-anchor": "middle" }, "no requests"));
  return h("figure", { class: "card chart" }, h("figcaption", {}, title), svg);
}

export function rankList(title, rows, format) {
  const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
  const body = rows.map((r) => h("tr", {},
    h("td", {}, r.label),
    h("td", { class: "num" }, format(r.value)),
    h("td", { style: null }, h("svg", { svg: true, viewBox: "0 0 100 8", width: 120, height: 8 },
      h("rect", { svg: true, class: "bar", x: 0, y: 0, height: 8, width: (100 * r.value) / max })))));
  return h("div", { class: "card chart" }, h("h2", {}, title),
    rows.length ? h("table", {}, h("tbody", {}, body)) : h("p", { class: "muted" }, "no requests"));
}
