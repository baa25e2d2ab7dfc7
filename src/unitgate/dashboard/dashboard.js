// unitgate's dashboard: a card per service, kept current by one serviceStatusChanged
// subscription (graphql-ws), with the actions and logs the token allows. No build step.
"use strict";

const FIELDS = `id name description activeState subState mainPid memoryBytes uptimeSeconds activeSince
  restartCount canReload result mainExitStatus reason`;
const LABELS = { restart: "Restart", reload: "Reload", start: "Start", stop: "Stop" };
const DOING = { restart: "Restarting", reload: "Reloading", start: "Starting", stop: "Stopping" };
const TOKEN_KEY = "unitgate-token";

let token = sessionStorage.getItem(TOKEN_KEY);
let me = null;
let client = null;
let dropped = false;
const statuses = new Map(); // id (instance/name) -> the latest status, of every service the page knows
const cards = new Map(); // id -> { element, status, follow, cursor }: cards built (their host is open)
const hosts = new Map(); // instance name -> its group: element, open, online, lastSeen, tallies
const totals = { total: 0, active: 0, failed: 0, activating: 0, inactive: 0 };
let ownInstance = null; // this server's instance name; a hub's cards name other hosts
let hubMode = false;
const OPEN_ALL_UP_TO = 12; // hosts; past it, a host's cards are built when it is opened
// Cards on screen: the uptime ticker touches these only (thousands built are not thousands shown).
const onScreen = new Set();
const screen = new IntersectionObserver((seen) => {
  for (const entry of seen) {
    if (entry.isIntersecting) onScreen.add(entry.target); else onScreen.delete(entry.target);
  }
}, { rootMargin: "200px" });

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
  if (element.hidden === visible) element.hidden = !visible;
}

// Written only when it changes: an event rewrites a card's every field, and an unchanged text
// set again still costs the page a style and layout pass over thousands of cards.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
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
  const value = raw === null || raw === undefined ? "" : String(raw);
  if (element.dataset.value !== value) element.dataset.value = value;
  setText(element, text === undefined ? (value === "" ? "—" : value) : text);
}

function uptimeOf(status) {
  if (!status.activeSince) return null;
  return Math.max(0, Math.floor((Date.now() - Date.parse(status.activeSince)) / 1000));
}

function reasonOf(status) {
  if (status.activeState !== "failed" || !status.result || status.result === "success") return null;
  return `Failed: ${status.reason || status.result}`;
}

function ago(time) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(time).toLocaleString();
}

// --- Tallies: the header's counts for the whole fleet and each host's, kept as events arrive.

function bucket(state) {
  if (state === "active" || state === "reloading") return "active";
  if (state === "inactive" || state === "deactivating") return "inactive";
  return state === "failed" || state === "activating" ? state : null;
}

function tally(tallies, status, sign) {
  tallies.total += sign;
  const name = bucket(status.activeState);
  if (name) tallies[name] += sign;
}

function counts() {
  for (const [name, value] of Object.entries(totals)) setText($(`[data-count="${name}"]`), String(value));
  if (!hubMode) return;
  const offline = [...hosts.values()].filter((host) => !host.online).length;
  setText($('[data-count="hosts"]'), String(hosts.size));
  setText($('[data-count="offline"]'), String(offline));
}

// --- Hosts: a group of cards each; on a hub, the ones that need someone come first.

function hostFor(name) {
  let host = hosts.get(name);
  if (host) return host;
  const element = $("[data-host-template]").content.firstElementChild.cloneNode(true);
  element.dataset.host = name;
  host = {
    name, element, box: $("[data-host-cards]", element), open: false, online: true, lastSeen: null,
    tallies: { total: 0, active: 0, failed: 0, activating: 0, inactive: 0 }, rank: null,
  };
  hosts.set(name, host);
  $("[data-host-name]", element).textContent = name;
  show($(".host-head", element), hubMode);
  $("[data-host-toggle]", element).addEventListener("click", () => setOpen(host, !host.open));
  const filter = $("[data-host-filter]");
  const option = new Option(name, name);
  const after = [...filter.options].slice(1).find((other) => other.value > name);
  filter.add(option, after || null);
  placeHost(host);
  setOpen(host, !hubMode || hostCount() <= OPEN_ALL_UP_TO);
  return host;
}

function hostCount() {
  return Math.max(hosts.size, expectedHosts);
}
let expectedHosts = 0;

function rankOf(host) {
  return `${host.tallies.failed ? 0 : host.online ? 2 : 1}${host.name}`;
}

// Moved only when its rank changes (a first failure, a last one, offline, back).
function placeHost(host) {
  const rank = rankOf(host);
  if (rank === host.rank) return;
  host.rank = rank;
  const groups = $("[data-cards]");
  const next = [...hosts.values()]
    .filter((other) => other !== host && other.rank !== null && other.rank > rank)
    .sort((a, b) => (a.rank < b.rank ? -1 : 1))[0];
  groups.insertBefore(host.element, next ? next.element : null);
  host.element.classList.toggle("has-failed", host.tallies.failed > 0);
}

function describeHost(host) {
  if (!hubMode) return;
  const t = host.tallies;
  setText($("[data-host-counts]", host.element), `${t.total} services${t.failed ? ` · ${t.failed} failed` : ""}`);
  const state = $("[data-host-state]", host.element);
  setText(state, host.online ? "online" : `offline · last seen ${host.lastSeen ? ago(host.lastSeen) : "never"}`);
  host.element.classList.toggle("offline", !host.online);
  if (host.element.dataset.online !== String(host.online)) host.element.dataset.online = String(host.online);
  placeHost(host);
}

function setOpen(host, open) {
  host.open = open;
  $("[data-host-toggle]", host.element).setAttribute("aria-expanded", String(open));
  host.element.classList.toggle("closed", !open);
  if (!open) return;
  // Its cards, built now, in name order, in one insertion.
  const missing = [...statuses.values()]
    .filter((status) => hostOf(status) === host.name && !cards.has(status.id))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const fragment = document.createDocumentFragment();
  for (const status of missing) fragment.append(cardFor(status, host, false).element);
  host.box.append(fragment);
  for (const status of missing) update(cards.get(status.id), status);
  sortCards(host);
}

function sortCards(host) {
  const sorted = [...host.box.children].sort((a, b) => (a.dataset.service < b.dataset.service ? -1 : 1));
  if (sorted.some((element, i) => element !== host.box.children[i])) host.box.append(...sorted);
}

function instanceChanged(instance) {
  const host = hostFor(instance.name);
  host.online = instance.online;
  host.lastSeen = instance.lastSeen;
  describeHost(host);
  counts();
}

// --- Cards

function cardFor(status, host, insert = true) {
  let entry = cards.get(status.id);
  if (!entry) {
    const element = $("[data-card-template]").content.firstElementChild.cloneNode(true);
    element.dataset.service = status.name;
    element.dataset.instance = host.name;
    $("[data-name]", element).textContent = host.name === ownInstance ? status.name : `${host.name} · ${status.name}`;
    entry = { element, status, follow: null, cursor: null, historyTimer: null };
    cards.set(status.id, entry);
    element.unitgateEntry = entry;
    screen.observe(element);
    buildActions(entry);
    buildLogs(entry);
    buildHistory(entry);
    if (insert) {
      host.box.append(element);
      sortCards(host);
    }
  }
  return entry;
}

// A status event: the tallies, and the one card it is about (when its host is open).
function render(status) {
  const previous = statuses.get(status.id);
  statuses.set(status.id, status);
  const host = hostFor(hostOf(status));
  if (previous) { tally(totals, previous, -1); tally(host.tallies, previous, -1); }
  tally(totals, status, 1);
  tally(host.tallies, status, 1);
  if (host.open) update(cardFor(status, host), status);
  describeHost(host);
  counts();
}

function forget(id) {
  const status = statuses.get(id);
  const host = hosts.get(hostOf(status));
  tally(totals, status, -1);
  tally(host.tallies, status, -1);
  statuses.delete(id);
  const entry = cards.get(id);
  if (entry) {
    unfollow(entry);
    screen.unobserve(entry.element);
    onScreen.delete(entry.element);
    entry.element.remove();
    cards.delete(id);
  }
  describeHost(host);
}

function update(entry, status) {
  const changed = entry.status !== status && entry.status.activeState !== status.activeState;
  entry.status = status;
  const card = entry.element;
  const className = `card s-${status.activeState}`;
  if (card.className !== className) card.className = className;
  setText($("[data-description]", card), status.description || "");
  setField(card, "activeState", status.activeState);
  setField(card, "subState", status.subState);
  setField(card, "mainPid", status.mainPid);
  setField(card, "restartCount", status.restartCount);
  setField(card, "memoryBytes", status.memoryBytes, bytes(status.memoryBytes));
  const uptime = uptimeOf(status);
  setField(card, "uptimeSeconds", uptime, duration(uptime));
  const reason = reasonOf(status);
  const reasonElement = $('[data-field="reason"]', card);
  setText(reasonElement, reason || "");
  show(reasonElement, Boolean(reason));
  const reload = $('[data-action="reload"]', card);
  if (reload) show(reload, status.canReload);
  if (changed && $("[data-history-panel]", card).open) refreshHistory(entry);
}

// --- Filters: a host, failed services only; each a class or a hidden group, no re-render.

function applyFilters() {
  const only = $("[data-host-filter]").value;
  const failed = $("[data-state-filter]").value === "failed";
  $("[data-cards]").classList.toggle("only-failed", failed);
  for (const host of hosts.values()) {
    const shown = !only || host.name === only;
    show(host.element, shown);
    if (shown && !host.open && (only || (failed && host.tallies.failed))) setOpen(host, true);
  }
}

// --- History: what happened to the service, from systemd's journal and unitgate's audit.

const HISTORY_QUERY = `query($name: String!, $instance: String) {
  serviceHistory(name: $name, instance: $instance, limit: 50) {
    __typename
    ... on ServiceHistory { journalStart events { time kind result exitCode signal signalName restarts actor action outcome } }
    ... on Error { message }
  } }`;
const KIND_WORDS = {
  STARTING: "Starting", STARTED: "Started", START_FAILED: "Start failed", STOPPING: "Stopping",
  STOPPED: "Stopped", RELOADING: "Reloading", RELOADED: "Reloaded", DEACTIVATED: "Stopped cleanly",
  SKIPPED: "Skipped: a condition was not met",
};

function eventText(event) {
  if (event.kind === "ACTION") return `${LABELS[event.action] || event.action} by ${event.actor}: ${event.outcome}`;
  if (event.kind === "PROCESS_EXITED") {
    if (event.signal !== null) return `Killed by signal ${event.signal}${event.signalName ? ` (${event.signalName})` : ""}`;
    return `Exited with status ${event.exitCode}`;
  }
  if (event.kind === "FAILED") return `Failed (${event.result})`;
  if (event.kind === "RESTART_SCHEDULED") return `Automatic restart${event.restarts ? ` (#${event.restarts})` : ""}`;
  return KIND_WORDS[event.kind] || event.kind;
}

// Restarts in the last hour: starts that followed a stop, a failure or a kill, by anyone.
function restartsInLastHour(events) {
  const hourAgo = Date.now() - 3600 * 1000;
  let stopped = false;
  let restarts = 0;
  for (const event of [...events].reverse()) {
    if (Date.parse(event.time) < hourAgo) continue;
    if (["STOPPING", "STOPPED", "FAILED", "PROCESS_EXITED"].includes(event.kind)) stopped = true;
    if (event.kind === "STARTED" && stopped) { restarts += 1; stopped = false; }
  }
  return restarts;
}

function buildHistory(entry) {
  const panel = $("[data-history-panel]", entry.element);
  panel.addEventListener("toggle", () => { if (panel.open) loadHistory(entry); });
}

function refreshHistory(entry) {
  clearTimeout(entry.historyTimer);
  entry.historyTimer = setTimeout(() => loadHistory(entry), 300); // once systemd has written it all
}

async function loadHistory(entry) {
  const result = (await request(HISTORY_QUERY, target(entry))).serviceHistory;
  const list = $("[data-history]", entry.element);
  const summary = $("[data-history-summary]", entry.element);
  list.textContent = "";
  if (!result.events) { summary.textContent = result.message; return; }
  const restarts = restartsInLastHour(result.events);
  summary.textContent = `${restarts} restart${restarts === 1 ? "" : "s"} in the last hour`;
  summary.dataset.restarts = String(restarts);
  for (const event of result.events.slice(0, 20)) {
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    const when = document.createElement("time");
    when.dateTime = event.time;
    when.textContent = ago(event.time);
    item.append(when, ` ${eventText(event)}`);
    list.append(item);
  }
  if (!result.events.length) list.append(Object.assign(document.createElement("li"), { textContent: "Nothing recorded." }));
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
  for (const id of [...statuses.keys()]) if (!ids.has(id)) forget(id);
  result.services.forEach(render);
  if (hubMode && statuses.size > 0) {
    // A large fleet opens with the hosts that need someone: those with a failed service.
    for (const host of hosts.values()) if (!host.open && host.tallies.failed) setOpen(host, true);
  }
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
  if (hubMode) {
    client.subscribe(
      { query: "subscription { instanceStatusChanged { name online lastSeen } }" },
      { next: ({ data }) => instanceChanged(data.instanceStatusChanged), error: () => {}, complete: () => {} },
    );
  }
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
  for (const entry of cards.values()) unfollow(entry);
  for (const host of hosts.values()) host.element.remove();
  screen.disconnect();
  onScreen.clear();
  cards.clear();
  statuses.clear();
  hosts.clear();
  for (const name of Object.keys(totals)) totals[name] = 0;
  const filter = $("[data-host-filter]");
  while (filter.options.length > 1) filter.remove(1);
  counts();
  show($("[data-signin]"), true);
  const error = $("[data-signin-error]");
  error.textContent = message || "";
  show(error, Boolean(message));
  $("#token").focus();
}

async function start() {
  try {
    const data = await request("{ me { name role actions } instance { name } instances { name online lastSeen } }");
    me = data.me;
    ownInstance = data.instance.name;
    hubMode = data.instances.some((instance) => instance.name !== ownInstance);
    expectedHosts = data.instances.length;
    show($("[data-toolbar]"), hubMode);
    show($("[data-hosts]"), hubMode);
    for (const instance of data.instances) if (hubMode) instanceChanged(instance);
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
    for (const element of onScreen) {
      const entry = element.unitgateEntry;
      const uptime = uptimeOf(entry.status);
      setField(entry.element, "uptimeSeconds", uptime, duration(uptime));
    }
    for (const host of hosts.values()) if (!host.online) describeHost(host);
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("[data-host-filter]").addEventListener("change", applyFilters);
  $("[data-state-filter]").addEventListener("change", applyFilters);
  $("[data-signin]").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("#token").value.trim();
    $("#token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  start();
});
