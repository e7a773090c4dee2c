// Usage explorer: filters, grouping, a chart of the chosen measure, the table, CSV export.
import * as api from "./api.js";
import { barChart } from "./charts.js";
import { clear, errorBox, h, num, table, usd } from "./dom.js";

const GROUPS = ["day", "hour", "model", "key", "channel"];
const MEASURES = {
  requests: { title: "Requests", value: (r) => r.requests, format: (v) => num(Math.round(v)) },
  total_tokens: { title: "Tokens", value: (r) => r.total_tokens, format: (v) => num(Math.round(v)) },
  cost: { title: "Spend (USD)", value: (r) => Number(r.cost_nanos) / 1e9, format: (v) => `$${v.toPrecision(3)}` },
  errors: { title: "Errors", value: (r) => r.errors + r.interrupted, format: (v) => num(Math.round(v)) },
};

export async function render(view) {
  const input = (name, placeholder) => h("input", { name, placeholder, size: 14 });
  const f = {
    group_by: h("select", { name: "group_by" }, GROUPS.map((g) => h("option", { value: g }, g))),
    key: input("key", "any key"), model: input("model", "any model"), channel: input("channel", "any channel"),
    since: input("since", "YYYY-MM-DD"), until: input("until", "YYYY-MM-DD"),
    measure: h("select", { name: "measure" }, Object.entries(MEASURES).map(([k, m]) => h("option", { value: k }, m.title))),
  };
  const out = h("div");
  const csv = h("a", { class: "plain", id: "usage-csv", download: "" }, "Download CSV");
  const params = () => ({ group_by: f.group_by.value, key: f.key.value.trim(), model: f.model.value.trim(),
    channel: f.channel.value.trim(), since: f.since.value.trim(), until: f.until.value.trim() });
  const run = async () => {
    const p = params();
    csv.href = `/admin/api/usage?${api.query({ ...p, format: "csv" })}`;
    let data;
    try { data = await api.get("/usage", p); } catch (err) { clear(out).append(errorBox(err)); return; }
    const m = MEASURES[f.measure.value];
    const g = p.group_by;
    clear(out).append(
      barChart(`${m.title} by ${g}`, data.rows.map((r) => ({ label: String(r[g] ?? "(none)"), value: m.value(r) })), { format: m.format }),
      table([
        { title: g, cell: (r) => String(r[g] ?? "(none)") },
        { title: "Requests", num: true, cell: (r) => num(r.requests) },
        { title: "Errors", num: true, cell: (r) => num(r.errors) },
        { title: "Prompt", num: true, cell: (r) => num(r.prompt_tokens) },
        { title: "Cached", num: true, cell: (r) => num(r.cached_tokens) },
        { title: "Thoughts", num: true, cell: (r) => num(r.thoughts_tokens) },
        { title: "Output text", num: true, cell: (r) => num(r.output_text) },
        { title: "Output image", num: true, cell: (r) => num(r.output_image) },
        { title: "Output audio", num: true, cell: (r) => num(r.output_audio) },
        { title: "Total", num: true, cell: (r) => num(r.total_tokens) },
        { title: "Cost", num: true, cell: (r) => h("span", { title: `${r.cost_usd} USD` }, usd(r.cost_usd)) },
      ], data.rows));
  };
  const form = h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); run(); } },
    Object.entries(f).map(([k, el]) => h("label", {}, k.replace("_", " "), el)),
    h("button", { type: "submit" }, "Apply"), csv);
  f.measure.addEventListener("change", run);
  view.append(h("h1", {}, "Usage"), form, out);
  await run();
}
