// A small DOM builder (text goes in as text, never as markup) and the console's formats.
export function h(tag, attrs = {}, ...children) {
  const ns = attrs.svg ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k in el && !ns && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const clear = (el) => { el.replaceChildren(); return el; };

export function usd(text) {
  // "12.345678900" -> "$12.3457"; exact digits stay in the title.
  if (text === null || text === undefined) return "-";
  const [whole, frac = ""] = String(text).split(".");
  const cut = frac.replace(/0+$/, "");
  if (whole === "0" && /^0000/.test(cut)) {
    const first = cut.search(/[1-9]/);  // tiny amounts: two significant digits
    return `$0.${cut.slice(0, first + 2)}`;
  }
  const shown = cut.length > 4 ? frac.slice(0, 4) : cut.padEnd(2, "0");
  return `$${whole}.${shown}`;
}

export const num = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
export const pct = (x) => `${(100 * x).toFixed(1)}%`;
export function when(iso) {
  if (!iso) return "-";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
}

export function tag(text, kind = text) { return h("span", { class: `tag ${kind}` }, text); }

export function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 2500);
}

export function table(columns, rows, onClick) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)));
  const body = rows.map((r) => h("tr", { class: onClick ? "click" : null, onclick: onClick ? () => onClick(r) : null },
    columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r)))));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

export function errorBox(err) { return h("p", { class: "error", role: "alert" }, err.message || String(err)); }

// Start of the UTC hour/day `back` units ago, as ISO.
export function ago(hours) { return new Date(Date.now() - hours * 3600e3).toISOString().slice(0, 13) + ":00:00Z"; }
