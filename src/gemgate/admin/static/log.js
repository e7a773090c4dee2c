// Request log: filters, keyset pages (older / newer), and one request in detail.
import * as api from "./api.js";
import { clear, errorBox, h, num, tag, table, usd, when } from "./dom.js";

const FILTERS = ["key", "model", "channel", "door", "method", "status", "code", "error", "since", "until"];

function detail(view, id) {
  return api.get(`/log/${id}`).then((r) => {
    const rows = [
      ["Request id", r.request_id], ["Started", when(r.started_at)], ["Finished", when(r.finished_at)],
      ["Key", r.key_name || "-"], ["Model", r.model], ["Channel", r.channel || "-"],
      ["Upstream key", r.upstream_key || "-"], ["Door / method", `${r.door} / ${r.method}`],
      ["Status", `${r.status} (${r.http_status})`], ["Error", r.error || "-"],
      ["Prompt tokens", `${num(r.prompt_tokens)} (text ${num(r.prompt_text)}, image ${num(r.prompt_image)}, audio ${num(r.prompt_audio)}, video ${num(r.prompt_video)}, document ${num(r.prompt_document)})`],
      ["Cached / tool / thoughts", `${num(r.cached_tokens)} / ${num(r.tool_use_prompt_tokens)} / ${num(r.thoughts_tokens)}`],
      ["Output", `text ${num(r.output_text)}, image ${num(r.output_image)}, audio ${num(r.output_audio)}`],
      ["Total tokens", num(r.total_tokens)], ["Cost", `${r.cost_usd} USD${r.estimated ? " (estimated)" : ""}`],
      ["Latency / first byte", `${r.latency_ms} ms / ${r.ttfb_ms ?? "-"} ms`], ["Attempts", r.attempts],
    ];
    view.append(
      h("p", {}, h("a", { href: "#/log" }, "Back to the log")),
      h("h1", {}, `Request ${r.id}`),
      h("div", { class: "card" }, h("dl", { class: "detail", id: "log-detail" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))),
      r.failed_attempts.length ? h("div", { class: "card" }, h("h2", {}, "Failed attempts"), h("pre", {}, JSON.stringify(r.failed_attempts, null, 2))) : null,
      r.bodies ? h("div", { class: "card" }, h("h2", {}, "Request body (redacted)"), h("pre", {}, r.bodies.request || "-"),
        h("h2", {}, "Response body (redacted)"), h("pre", {}, r.bodies.response || "-")) : null);
  });
}

export async function render(view, args) {
  if (args[0]) return detail(view, args[0]);
  const f = Object.fromEntries(FILTERS.map((k) => [k, k === "status"
    ? h("select", { name: k }, ["", "ok", "error", "interrupted", "failed"].map((s) => h("option", { value: s }, s || "any")))
    : h("input", { name: k, size: k === "error" ? 18 : 12, placeholder: k === "since" || k === "until" ? "YYYY-MM-DD" : "" })]));
  const out = h("div", { id: "log-rows" });
  const nav = h("div", { class: "row" });
  const cursors = [null];
  const load = async () => {
    const params = { limit: 50, before: cursors[cursors.length - 1] };
    for (const [k, el] of Object.entries(f)) params[k] = el.value.trim();
    let page;
    try { page = await api.get("/log", params); } catch (err) { clear(out).append(errorBox(err)); return; }
    clear(out).append(page.rows.length ? table([
      { title: "Time", cell: (r) => when(r.started_at) },
      { title: "Key", cell: (r) => r.key_name || "-" },
      { title: "Model", cell: (r) => r.model },
      { title: "Channel", cell: (r) => r.channel || "-" },
      { title: "Method", cell: (r) => `${r.door} ${r.method}` },
      { title: "Status", cell: (r) => h("span", {}, tag(r.status), ` ${r.http_status}`) },
      { title: "Tokens", num: true, cell: (r) => num(r.total_tokens) },
      { title: "Cost", num: true, cell: (r) => usd(r.cost_usd) },
      { title: "ms", num: true, cell: (r) => num(r.latency_ms) },
      { title: "Error", cell: (r) => (r.error ? r.error.slice(0, 80) : "") },
    ], page.rows, (r) => { location.hash = `#/log/${r.id}`; }) : h("p", { class: "muted" }, "No requests match."));
    clear(nav).append(
      h("button", { type: "button", class: "plain", disabled: cursors.length < 2, onclick: () => { cursors.pop(); load(); } }, "Newer"),
      h("button", { type: "button", class: "plain", disabled: page.next === null, onclick: () => { cursors.push(page.next); load(); } }, "Older"));
  };
  const form = h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); cursors.length = 1; load(); } },
    Object.entries(f).map(([k, el]) => h("label", {}, k, el)), h("button", { type: "submit" }, "Search"));
  view.append(h("h1", {}, "Request log"), form, out, nav);
  await load();
}
