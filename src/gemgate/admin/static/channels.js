// Channels: live health per model and channel; turn a channel or an upstream key off / on.
import * as api from "./api.js";
import { clear, errorBox, h, num, pct, tag, table, toast } from "./dom.js";

async function toggle(path, body, what) {
  try {
    await api.post(path, body);
    toast(`${what} turned ${body.enabled ? "on" : "off"}`);
  } catch (err) { toast(err.message); }
}

export async function render(view) {
  const holder = h("div");
  const refresh = async () => {
    let data;
    try { data = await api.get("/channels"); } catch (err) { clear(holder).append(errorBox(err)); return; }
    const switchChannel = (c) => h("button", {
      type: "button", class: c.enabled ? "danger" : "plain", "data-channel": c.channel,
      onclick: async () => { await toggle("/channels/state", { channel: c.channel, enabled: !c.enabled }, c.channel); refresh(); },
    }, c.enabled ? "Turn off" : "Turn on");
    const switchKey = (p, k) => h("button", {
      type: "button", class: k.state === "off" ? "plain" : "danger", "data-upstream-key": `${p.name}/${k.label}`,
      onclick: async () => { await toggle("/upstream-keys/state", { provider: p.name, key: k.label, enabled: k.state === "off" }, k.label); refresh(); },
    }, k.state === "off" ? "Turn on" : "Turn off");
    clear(holder).append(
      table([
        { title: "Model", cell: (c) => c.model },
        { title: "Channel", cell: (c) => c.channel },
        { title: "Priority", num: true, cell: (c) => c.priority },
        { title: "Weight", num: true, cell: (c) => c.weight },
        { title: "State", cell: (c) => (c.enabled ? tag(c.circuit) : tag("off")) },
        { title: "Error rate", num: true, cell: (c) => pct(c.error_rate) },
        { title: "Latency ms", num: true, cell: (c) => (c.latency_ms === null ? "-" : c.latency_ms.toFixed(1)) },
        { title: "OK / failed", num: true, cell: (c) => `${num(c.successes)} / ${num(c.failures)}` },
        { title: "", cell: switchChannel },
      ], data.channels),
      h("h2", {}, "Providers and upstream keys"),
      table([
        { title: "Provider", cell: (p) => p.name },
        { title: "Channels", cell: (p) => p.channels.join(", ") },
        { title: "Upstream keys", cell: (p) => (p.keys.length ? p.keys.map((k) => h("div", { class: "row" },
          h("code", {}, k.label), tag(k.state), switchKey(p, k))) : h("span", { class: "muted" }, "none needed")) },
      ], data.providers));
  };
  view.append(h("h1", {}, "Channels"), holder,
    h("p", { class: "muted" }, "A channel is a provider and its upstream model: turning it off takes it out of every model it serves, on every replica within a second."));
  await refresh();
}
