// The console's shell: sign-in, navigation between pages, sign-out.
import * as api from "./api.js";
import { clear, errorBox, h } from "./dom.js";

const pages = {
  overview: () => import("./overview.js"),
  keys: () => import("./keys.js"),
  channels: () => import("./channels.js"),
  usage: () => import("./usage.js"),
  log: () => import("./log.js"),
};

const $ = (id) => document.getElementById(id);
let signedIn = false;

function showSignIn(message = "") {
  signedIn = false;
  $("nav").hidden = true;
  $("signout").hidden = true;
  clear($("page"));
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("signin-key").focus();
  performance.mark("ready:sign-in");
}

async function route() {
  if (!signedIn) return;
  const [first, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const name = pages[first] ? first : "overview";
  const load = pages[name];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.page === name);
  const page = clear($("page"));
  page.append(h("p", { class: "muted" }, "Loading..."));
  try {
    const mod = await load();
    const view = h("div", { "data-page": name });
    await mod.render(view, rest.map(decodeURIComponent));
    clear(page).append(view);
    performance.mark(`ready:${name}`);
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return;
    clear(page).append(errorBox(err));
  }
}

function enter() {
  signedIn = true;
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  route();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("signin-key");
  const key = input.value;
  input.value = "";
  try {
    await api.signIn(key);
    enter();
  } catch (err) {
    showSignIn(err.message);
  }
});

$("signout").addEventListener("click", async () => {
  try { await api.signOut(); } catch { /* the session is gone either way */ }
  showSignIn("Signed out.");
});

window.addEventListener("signed-out", () => showSignIn("The session ended: sign in again."));
window.addEventListener("hashchange", route);

api.resume().then((s) => (s.csrf ? enter() : showSignIn()), () => showSignIn());
