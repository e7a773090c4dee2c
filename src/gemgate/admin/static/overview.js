// Overview: requests, tokens, spend and error rate per day and per hour; top keys and models.
import * as api from "./api.js";
import { barChart, rankList } from "./charts.js";
import { ago, h, num, pct, usd } from "./dom.js";

const nanoUsd = (n) => Number(n) / 1e9;
const count = (v) => (v > 0 && v < 1 ? v.toFixed(1) : num(Math.round(v)));
const money = (v) => (v >= 1 ? `$${v.toFixed(2)}` : `$${v.toPrecision(2)}`);

function series(rows, key, value, short) {
  return rows.map((r) => ({ label: r[key], short: short(r[key]), value: value(r) }));
}

function charts(title, rows, key, short) {
  return h("div", {}, h("h2", {}, title), h("div", { class: "grid charts" },
    barChart("Requests", series(rows, key, (r) => r.requests, short), { format: count }),
    barChart("Tokens", series(rows, key, (r) => r.total_tokens, short), { format: count }),
    barChart("Spend (USD)", series(rows, key, (r) => nanoUsd(r.cost_nanos), short), { format: money }),
    barChart("Error rate", series(rows, key, (r) => (r.requests ? (r.errors + r.interrupted) / r.requests : 0), short),
      { format: pct, bad: true })));
}

function fillDays(rows, days) {
  const by = new Map(rows.map((r) => [r.day, r]));
  const out = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(Date.now() - i * 86400e3).toISOString().slice(0, 10);
    out.push(by.get(day) || { day, requests: 0, total_tokens: 0, cost_nanos: 0, errors: 0, interrupted: 0 });
  }
  return out;
}

function fillHours(rows, hours) {
  const by = new Map(rows.map((r) => [r.hour, r]));
  const out = [];
  for (let i = hours - 1; i >= 0; i--) {
    const hour = new Date(Date.now() - i * 3600e3).toISOString().slice(0, 13).replace("T", " ") + ":00";
    out.push(by.get(hour) || { hour, requests: 0, total_tokens: 0, cost_nanos: 0, errors: 0, interrupted: 0 });
  }
  return out;
}

export async function render(view) {
  const since = ago(24 * 13).slice(0, 10);
  const [days, hours, keys, models, total] = await Promise.all([
    api.get("/usage", { group_by: "day", since }),
    api.get("/usage", { group_by: "hour", since: ago(23) }),
    api.get("/usage", { group_by: "key", since }),
    api.get("/usage", { group_by: "model", since }),
    api.get("/usage", { since }),
  ]);
  const t = total.rows[0] || { requests: 0, total_tokens: 0, cost_usd: "0.000000000", errors: 0, interrupted: 0 };
  const top = (rows, field) => rows.rows.filter((r) => r[field] !== null)
    .sort((a, b) => b.cost_nanos - a.cost_nanos || b.requests - a.requests).slice(0, 8)
    .map((r) => ({ label: r[field], value: r.requests, cost: r.cost_usd }));
  view.append(
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("div", { class: "muted" }, "Requests, 14 days"), h("div", { class: "stat", id: "total-requests" }, num(t.requests))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Tokens"), h("div", { class: "stat" }, num(t.total_tokens))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Spend"), h("div", { class: "stat", title: `${t.cost_usd} USD` }, usd(t.cost_usd))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Error rate"),
        h("div", { class: "stat" }, pct(t.requests ? (t.errors + t.interrupted) / t.requests : 0)))),
    h("section", { id: "by-day" }, charts("Per day (UTC)", fillDays(days.rows, 14), "day", (d) => d.slice(5))),
    h("section", { id: "by-hour" }, charts("Per hour, last 24 (UTC)", fillHours(hours.rows, 24), "hour", (x) => x.slice(11, 13))),
    h("div", { class: "grid" },
      rankList("Top keys (requests)", top(keys, "key"), num),
      rankList("Top models (requests)", top(models, "model"), num)),
  );
}
