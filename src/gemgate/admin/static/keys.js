// Keys: create (the key shown once), copy it, edit, revoke, top up.
import * as api from "./api.js";
import { clear, errorBox, h, num, tag, table, toast, usd, when } from "./dom.js";

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

function field(label, input) { return h("label", {}, label, input); }

function settingsForm(key, models) {
  const inputs = {
    name: h("input", { name: "name", value: key ? key.name : "", required: true, maxlength: 200 }),
    models: h("input", { name: "models", value: key && key.models ? key.models.join(", ") : "",
      placeholder: "all models", list: "model-ids" }),
    allowed_ips: h("input", { name: "allowed_ips", value: key && key.allowed_ips ? key.allowed_ips.join(", ") : "",
      placeholder: "any address, or e.g. 10.0.0.0/8" }),
    expires_at: h("input", { name: "expires_at", value: key && key.expires_at ? key.expires_at.slice(0, 10) : "",
      placeholder: "never, or YYYY-MM-DD" }),
    budget_usd: h("input", { name: "budget_usd", inputmode: "decimal",
      value: key && key.budget_usd ? key.budget_usd.replace(/\.?0+$/, "") : "", placeholder: "no budget" }),
    rpm: h("input", { name: "rpm", inputmode: "numeric", value: key && key.rpm ? String(key.rpm) : "", placeholder: "no limit" }),
    log_bodies: h("input", { name: "log_bodies", type: "checkbox", checked: Boolean(key && key.log_bodies) }),
  };
  const values = () => ({
    name: inputs.name.value.trim(),
    models: inputs.models.value.trim() ? list(inputs.models.value) : null,
    allowed_ips: inputs.allowed_ips.value.trim() ? list(inputs.allowed_ips.value) : null,
    expires_at: inputs.expires_at.value.trim() || null,
    budget_usd: inputs.budget_usd.value.trim() || null,
    rpm: inputs.rpm.value.trim() ? Number(inputs.rpm.value) : null,
    log_bodies: inputs.log_bodies.checked,
  });
  const nodes = [
    h("datalist", { id: "model-ids" }, models.map((m) => h("option", { value: m }))),
    field("Name", inputs.name), field("Models (comma separated)", inputs.models),
    field("IP allowlist (comma separated)", inputs.allowed_ips), field("Expires (UTC)", inputs.expires_at),
    field("Budget (USD)", inputs.budget_usd), field("Requests per minute", inputs.rpm),
    h("label", { class: "inline" }, inputs.log_bodies, " Keep request and response bodies (redacted)"),
  ];
  return { nodes, values };
}

function showOnce(created) {
  const secret = h("div", { class: "secret", id: "new-key" }, created.key);
  const dialog = h("dialog", { id: "key-dialog" },
    h("h2", {}, `Key ${created.record.name} created`),
    h("p", {}, "Copy the key now: it is not shown again."),
    secret,
    h("div", { class: "row" },
      h("button", { type: "button", id: "copy-key", onclick: async () => {
        await navigator.clipboard.writeText(created.key);
        toast("Key copied");
      } }, "Copy"),
      h("button", { type: "button", class: "plain", id: "close-key", onclick: () => dialog.close() }, "Done")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

function editDialog(key, models, done) {
  const form = settingsForm(key, models);
  const error = h("p", { class: "error" });
  const dialog = h("dialog", { id: "edit-dialog" },
    h("form", { method: "dialog", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api.post(`/keys/${key.id}`, form.values());
        dialog.close();
        toast("Saved");
        done();
      } catch (err) { error.textContent = err.message; }
    } }, h("h2", {}, `Edit ${key.name}`), form.nodes, error,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "plain", onclick: () => dialog.close() }, "Cancel"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

async function topUp(key, done) {
  const usdText = prompt(`Add how many USD to ${key.name}'s budget?`, "10");
  if (!usdText) return;
  try { await api.post(`/keys/${key.id}/top-up`, { usd: usdText.trim() }); toast("Topped up"); done(); }
  catch (err) { toast(err.message); }
}

async function revoke(key, done) {
  if (!confirm(`Revoke ${key.name}? Every replica refuses it within a second.`)) return;
  await api.post(`/keys/${key.id}/revoke`);
  toast(`${key.name} revoked`);
  done();
}

export async function render(view) {
  const channels = await api.get("/channels");
  const models = [...new Set(channels.channels.map((c) => c.model))];
  const holder = h("div", { id: "key-list" });
  const refresh = async () => {
    try {
      const { keys } = await api.get("/keys");
      clear(holder).append(table([
        { title: "Name", cell: (k) => k.name },
        { title: "Prefix", cell: (k) => h("code", {}, `${k.prefix}...`) },
        { title: "Status", cell: (k) => tag(k.status) },
        { title: "Models", cell: (k) => (k.models ? k.models.join(", ") : "all") },
        { title: "Expires", cell: (k) => when(k.expires_at) },
        { title: "RPM", num: true, cell: (k) => (k.rpm ? num(k.rpm) : "-") },
        { title: "Budget", num: true, cell: (k) => usd(k.budget_usd) },
        { title: "Spent", num: true, cell: (k) => usd(k.spent_usd) },
        { title: "", cell: (k) => h("div", { class: "row", "data-key": k.name },
          h("button", { type: "button", class: "plain", onclick: () => editDialog(k, models, refresh) }, "Edit"),
          h("button", { type: "button", class: "plain", onclick: () => topUp(k, refresh) }, "Top up"),
          k.status === "revoked" ? null
            : h("button", { type: "button", class: "danger", onclick: () => revoke(k, refresh) }, "Revoke")) },
      ], keys));
    } catch (err) { clear(holder).append(errorBox(err)); }
  };
  const form = settingsForm(null, models);
  const error = h("p", { class: "error" });
  const create = h("form", { class: "card", id: "create-key", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const created = await api.post("/keys", form.values());
      create.reset();
      showOnce(created);
      refresh();
    } catch (err) { error.textContent = err.message; }
  } }, h("h2", {}, "New key"), form.nodes, error, h("button", { type: "submit" }, "Create key"));
  view.append(h("h1", {}, "Keys"), holder, create);
  await refresh();
}
