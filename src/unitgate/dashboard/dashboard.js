// unitgate's dashboard: a card per service, kept current by one serviceStatusChanged
// subscription (graphql-ws), with the actions and logs the token allows. No build step.
"use strict";

const FIELDS = `id name description activeState subState mainPid memoryBytes uptimeSeconds activeSince
  restartCount canReload result mainExitStatus`;
const LABELS = { restart: "Restart", reload: "Reload", start: "Start", stop: "Stop" };
const DOING = { restart: "Restarting", reload: "Reloading", start: "Starting", stop: "Stopping" };
const TOKEN_KEY = "unitgate-token";

let token = sessionStorage.getItem(TOKEN_KEY);
let me = null;
let client = null;
let dropped = false;
const cards = new Map(); // id (instance/name) -> { element, status, follow }
let ownInstance = null; // this server's instance name; a hub's cards name other hosts

// The host a status is of: its id is "instance/name".
const hostOf = (status) => status.id.slice(0, status.id.length - status.name.length - 1);

class Unauthenticated extends Error {}

const $ = (selector, root = document) => root.querySelector(selector);

async function request(query, variables = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  if (response.status === 401) throw new Unauthenticated();
  const body = await response.json();
  if (body.errors && !body.data) throw new Error(body.errors[0].message);
  return body.data;
}

function show(element, visible) {
  element.hidden = !visible;
}

// --- Formatting: the text people read; data-value keeps the raw value for tools and tests.

function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = Number(value);
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) { amount /= 1024; unit += 1; }
  return `${amount.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function setField(card, field, raw, text) {
  const element = $(`[data-field="${field}"]`, card);
  element.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  element.textContent = text === undefined ? (raw === null || raw === undefined ? "—" : String(raw)) : text;
}

function uptimeOf(status) {
  if (!status.activeSince) return null;
  return Math.max(0, Math.floor((Date.now() - Date.parse(status.activeSince)) / 1000));
}

function reasonOf(status) {
  if (status.activeState !== "failed" || !status.result || status.result === "success") return null;
  const code = status.mainExitStatus;
  if (status.result === "exit-code" && code !== null) return `Failed: exited with status ${code}`;
  if (status.result === "signal" && code !== null) return `Failed: killed by signal ${code}`;
  return `Failed: ${status.result}`;
}

// --- Cards

function cardFor(status) {
  let entry = cards.get(status.id);
  if (!entry) {
    const element = $("[data-card-template]").content.firstElementChild.cloneNode(true);
    const host = hostOf(status);
    element.dataset.service = status.name;
    element.dataset.instance = host;
    $("[data-name]", element).textContent = host === ownInstance ? status.name : `${host} · ${status.name}`;
    entry = { element, status, follow: null, cursor: null };
    cards.set(status.id, entry);
    buildActions(entry);
    buildLogs(entry);
    const all = [...cards.keys()].sort();
    const next = all[all.indexOf(status.id) + 1];
    $("[data-cards]").insertBefore(element, next ? cards.get(next).element : null);
  }
  return entry;
}

function render(status) {
  const entry = cardFor(status);
  entry.status = status;
  const card = entry.element;
  card.className = `card s-${status.activeState}`;
  $("[data-description]", card).textContent = status.description || "";
  setField(card, "activeState", status.activeState);
  setField(card, "subState", status.subState);
  setField(card, "mainPid", status.mainPid);
  setField(card, "restartCount", status.restartCount);
  setField(card, "memoryBytes", status.memoryBytes, bytes(status.memoryBytes));
  const uptime = uptimeOf(status);
  setField(card, "uptimeSeconds", uptime, duration(uptime));
  const reason = reasonOf(status);
  const reasonElement = $('[data-field="reason"]', card);
  reasonElement.textContent = reason || "";
  show(reasonElement, Boolean(reason));
  const reload = $('[data-action="reload"]', card);
  if (reload) show(reload, status.canReload);
  counts();
}

function counts() {
  const states = [...cards.values()].map((entry) => entry.status.activeState);
  const count = (...names) => states.filter((state) => names.includes(state)).length;
  const values = {
    total: states.length,
    active: count("active", "reloading"),
    failed: count("failed"),
    activating: count("activating"),
    inactive: count("inactive", "deactivating"),
  };
  for (const [name, value] of Object.entries(values)) $(`[data-count="${name}"]`).textContent = String(value);
}

// --- Actions: a confirmation, progress, then the typed outcome.

function buildActions(entry) {
  const box = $("[data-actions]", entry.element);
  for (const action of me.actions) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = LABELS[action] || action;
    button.addEventListener("click", () => confirmAction(entry, action));
    box.append(button);
  }
}

function confirmAction(entry, action) {
  const card = entry.element;
  const box = $("[data-confirm-box]", card);
  $("[data-confirm-text]", card).textContent = `${LABELS[action]} ${entry.status.name}?`;
  const yes = $("[data-confirm]", card);
  yes.textContent = LABELS[action];
  yes.onclick = () => { show(box, false); act(entry, action); };
  $("[data-cancel]", card).onclick = () => show(box, false);
  show(box, true);
  yes.focus();
}

function outcome(entry, text, bad, lines = []) {
  const element = $("[data-outcome]", entry.element);
  element.className = `outcome${bad ? " bad" : ""}`;
  element.textContent = text;
  if (lines.length) {
    const list = document.createElement("ul");
    for (const line of lines) {
      const item = document.createElement("li");
      item.textContent = line.message;
      list.append(item);
    }
    element.append(list);
  }
  show(element, true);
}

async function act(entry, action) {
  const card = entry.element;
  const buttons = [...card.querySelectorAll("[data-action]")];
  buttons.forEach((button) => { button.disabled = true; });
  outcome(entry, `${DOING[action]} ${entry.status.name}…`, false);
  const field = `${action}Service`;
  const query = `mutation($name: String!, $instance: String) { ${field}(name: $name, instance: $instance) {
    __typename
    ... on ${LABELS[action]}Succeeded { service { ${FIELDS} } }
    ... on Error { message }
    ... on ${LABELS[action]}Failed { exitCode recentLogs { message } }
    ... on RateLimited { retryAfterSeconds }
  } }`;
  try {
    const result = (await request(query, target(entry)))[field];
    const element = $("[data-outcome]", card);
    element.dataset.outcomeType = result.__typename;
    if (result.service) {
      render(result.service);
      outcome(entry, `${LABELS[action]}: done.`, false);
    } else if (result.__typename === "RateLimited") {
      outcome(entry, `Too many actions lately: try again in ${result.retryAfterSeconds} s.`, true);
    } else {
      outcome(entry, result.message, true, result.recentLogs || []);
    }
    element.dataset.outcomeType = result.__typename;
  } catch (error) {
    if (error instanceof Unauthenticated) return signIn("The token is no longer accepted.");
    outcome(entry, String(error.message || error), true);
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

// --- Logs: the last lines, and a follow toggle that resumes from the last cursor.

function buildLogs(entry) {
  const panel = $("[data-logs-panel]", entry.element);
  if (me.role !== "operator") return;
  show(panel, true);
  panel.addEventListener("toggle", () => { if (panel.open) loadLogs(entry); });
  $("[data-follow]", entry.element).addEventListener("change", (event) => {
    if (event.target.checked) follow(entry); else unfollow(entry);
  });
}

function appendLines(entry, lines) {
  const pre = $("[data-logs]", entry.element);
  for (const line of lines) {
    pre.append(`${new Date(line.time).toLocaleTimeString()}  ${line.message}\n`);
    entry.cursor = line.cursor;
  }
  pre.scrollTop = pre.scrollHeight;
}

async function loadLogs(entry) {
  const query = `query($name: String!, $instance: String) { serviceLogs(name: $name, lines: 50, instance: $instance) {
    __typename ... on ServiceLogs { lines { time message cursor } } ... on Error { message } } }`;
  const result = (await request(query, target(entry))).serviceLogs;
  const pre = $("[data-logs]", entry.element);
  pre.textContent = "";
  if (result.lines) appendLines(entry, result.lines); else pre.textContent = result.message;
}

function follow(entry) {
  unfollow(entry);
  const query = `subscription($name: String!, $after: String, $instance: String) {
    serviceLogsFollowed(name: $name, afterCursor: $after, instance: $instance) {
    __typename ... on LogLine { time message cursor } ... on LogStreamLagged { lastCursor } ... on Error { message } } }`;
  entry.follow = client.subscribe(
    { query, variables: { ...target(entry), after: entry.cursor } },
    {
      next: ({ data }) => {
        const event = data.serviceLogsFollowed;
        if (event.__typename === "LogLine") appendLines(entry, [event]);
        else if (event.__typename === "LogStreamLagged") { entry.cursor = event.lastCursor || entry.cursor; follow(entry); }
        else appendLines(entry, [{ time: Date.now(), message: `[${event.message}]`, cursor: entry.cursor }]);
      },
      error: () => {},
      complete: () => {},
    },
  );
}

// What names a card's service to the API: its name, and its host.
function target(entry) {
  return { name: entry.status.name, instance: hostOf(entry.status) };
}

function unfollow(entry) {
  if (entry.follow) { entry.follow(); entry.follow = null; }
}

// --- Live: one subscription for every card; after a drop, a fresh snapshot.

const STATUS_QUERY = `{ services { ... on ServiceList { services { ${FIELDS} } } ... on Error { message } } }`;

async function snapshot() {
  const result = (await request(STATUS_QUERY)).services;
  if (!result.services) return showError(result.message);
  showError(null);
  const ids = new Set(result.services.map((status) => status.id));
  for (const [id, entry] of cards) if (!ids.has(id)) { entry.element.remove(); cards.delete(id); }
  result.services.forEach(render);
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  client = graphqlWs.createClient({
    url,
    connectionParams: () => (token ? { Authorization: `Bearer ${token}` } : {}),
    lazy: false,
    keepAlive: 10000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: async (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(30000, 500 * 2 ** retries))),
    on: {
      connected: () => {
        if (!dropped) return;
        dropped = false;
        show($("[data-connection]"), false);
        snapshot().catch(() => {});
        for (const entry of cards.values()) if (entry.follow) follow(entry); // resume after the cursor
      },
      closed: (event) => {
        if (event && event.code === 4403) return signIn("The token is no longer accepted.");
        dropped = true;
        const banner = $("[data-connection]");
        banner.textContent = "Connection lost: reconnecting…";
        show(banner, true);
      },
    },
  });
  client.subscribe(
    { query: `subscription { serviceStatusChanged { __typename ... on ServiceStatus { ${FIELDS} } ... on Error { message } } }` },
    {
      next: ({ data }) => {
        const event = data.serviceStatusChanged;
        if (event.__typename === "ServiceStatus") render(event); else showError(event.message);
      },
      error: () => {},
      complete: () => {},
    },
  );
}

function showError(message) {
  const element = $("[data-error]");
  element.textContent = message || "";
  show(element, Boolean(message));
}

// --- Sign-in: the token lives in this tab's sessionStorage only, never in a URL.

function signIn(message) {
  if (client) { client.dispose(); client = null; }
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  for (const entry of cards.values()) entry.element.remove();
  cards.clear();
  counts();
  show($("[data-signin]"), true);
  const error = $("[data-signin-error]");
  error.textContent = message || "";
  show(error, Boolean(message));
  $("#token").focus();
}

async function start() {
  try {
    const data = await request("{ me { name role actions } instance { name } }");
    me = data.me;
    ownInstance = data.instance.name;
  } catch (error) {
    if (error instanceof Unauthenticated) return signIn(token ? "That token was not accepted." : null);
    return showError(String(error.message || error));
  }
  show($("[data-signin]"), false);
  $("[data-instance]").textContent = ownInstance;
  $("[data-who]").textContent = `${me.name} (${me.role})`;
  await snapshot();
  connect();
  setInterval(() => {
    for (const entry of cards.values()) {
      const uptime = uptimeOf(entry.status);
      setField(entry.element, "uptimeSeconds", uptime, duration(uptime));
    }
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("[data-signin]").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("#token").value.trim();
    $("#token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  start();
});
