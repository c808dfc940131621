// Edge Gateway dashboard: plain JavaScript on the gateway's own API.
// Everything shown is set with textContent (never HTML): a sensor reading
// "<script>" is shown as those characters.
"use strict";

const state = { session: null, sensors: {}, actuators: {}, rules: {}, stream: null, chart: null };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function button(text, onClick, enabled = true) {
  const b = el("button", text);
  b.type = "button";
  b.disabled = !enabled;
  b.addEventListener("click", onClick);
  return b;
}

function row(...cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function clock(iso) { return iso ? new Date(iso).toLocaleTimeString() : ""; }

function shown(value) {
  if (value === true) return "on";
  if (value === false) return "off";
  if (value === null || value === undefined) return "-";
  return String(value);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = state.session?.csrf ?? "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = r.headers.get("Content-Type")?.startsWith("application/json") ? await r.json() : null;
  if (r.status === 401 && path !== "/api/v1/session") { showLogin(); throw new Error("logged out"); }
  if (!r.ok) throw new Error(answer?.error?.message ?? `${r.status}`);
  return answer;
}

function problem(err) {
  const p = $("problem");
  p.textContent = err ? String(err.message ?? err) : "";
  p.hidden = !err;
}

async function act(fn) {
  try { problem(null); await fn(); } catch (err) { problem(err); }
}

// ------------------------------------------------------------------ login

function showLogin() {
  state.stream?.close();
  state.stream = null;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
}

async function start() {
  try {
    state.session = await api("GET", "/api/v1/session");
  } catch { showLogin(); return; }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  const s = state.session;
  $("who").textContent = `${s.name}${s.read_only ? " (read-only)" : ""}`;
  await refresh();
  listen();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    state.session = await api("POST", "/api/v1/session", { token: $("token").value });
    $("token").value = "";
    await start();
  } catch (err) { $("login-error").textContent = String(err.message); }
});

$("logout").addEventListener("click", () => act(async () => {
  await api("DELETE", "/api/v1/session");
  state.session = null;
  showLogin();
}));

// ------------------------------------------------------------------ drawing

async function refresh() {
  await act(async () => {
    const [status, sensors, actuators, rules] = await Promise.all([
      api("GET", "/api/v1/status"), api("GET", "/api/v1/sensors"),
      api("GET", "/api/v1/actuators"), api("GET", "/api/v1/rules"),
    ]);
    $("title").textContent = `Edge Gateway: ${status.name}`;
    state.sensors = sensors; state.actuators = actuators; state.rules = rules;
    drawSensors(); drawActuators(); drawRules(); drawInputs(status.inputs);
    await drawOutbox();
  });
}

function drawSensors() {
  const body = $("sensors");
  body.replaceChildren();
  for (const [id, s] of Object.entries(state.sensors)) {
    const value = s.available === false ? el("span", "unavailable", "unavailable")
      : el("span", s.state ?? shown(s.value), s.state ? `state-${s.state}` : "");
    const name = button(id, () => act(() => chart(id)));
    name.className = "link";
    const tr = row(name, value, el("span", ago(s.last_updated), "muted"));
    tr.dataset.sensor = id;
    body.append(tr);
  }
}

function drawActuators() {
  const body = $("actuators");
  body.replaceChildren();
  const may = !state.session.read_only;
  for (const [id, a] of Object.entries(state.actuators)) {
    const status = el("span", a.level !== undefined && a.level !== null ? `${a.state} ${a.level}` : a.state,
      `state-${a.state}`);
    const cell = document.createElement("span");
    cell.append(status);
    if (a.until) cell.append(el("div", `switches back at ${clock(a.until)}`, "muted"));
    if (a.deferred) cell.append(el("div", `${a.deferred.state} at ${clock(a.deferred.at)} (min_on/off)`, "muted"));
    const controls = document.createElement("span");
    const pick = el("select");
    for (const [label, secs] of [["1 min", 60], ["5 min", 300], ["15 min", 900], ["1 h", 3600]]) {
      const o = el("option", label); o.value = String(secs); pick.append(o);
    }
    pick.disabled = !may;
    const send = (body) => act(async () => { await api("POST", `/api/v1/actuators/${encodeURIComponent(id)}`, body); await reloadActuator(id); });
    controls.append(
      button("On", () => send({ state: "on" }), may),
      button("Off", () => send({ state: "off" }), may),
      button("Toggle", () => send({ state: "toggle" }), may),
      button("On for", () => send({ state: "on", for: `${pick.value}s` }), may), pick,
    );
    const tr = row(id, cell, controls);
    tr.dataset.actuator = id;
    body.append(tr);
  }
}

async function reloadActuator(id) {
  state.actuators[id] = await api("GET", `/api/v1/actuators/${encodeURIComponent(id)}`);
  drawActuators();
}

function drawRules() {
  const body = $("rules");
  body.replaceChildren();
  const may = state.session.manage;
  for (const [id, r] of Object.entries(state.rules)) {
    const name = el("div", id);
    if (r.description) name.append(el("div", r.description, "muted"));
    if (!r.enabled) name.append(el("span", "disabled", "badge"));
    const last = el("div", r.last_result ?? "never");
    if (r.last_why) last.append(el("div", r.last_why, "muted"));
    last.append(el("div", r.last_triggered ? `ran ${ago(r.last_triggered)}` : "not run yet", "muted"));
    if (r.running || r.queued) last.append(el("div", `${r.running} running, ${r.queued} queued`, "muted"));
    const path = `/api/v1/rules/${encodeURIComponent(id)}`;
    const after = () => act(async () => { state.rules[id] = await api("GET", path); drawRules(); });
    const controls = document.createElement("span");
    controls.append(
      button("Traces", () => act(() => traces(id))),
      button(r.enabled ? "Disable" : "Enable",
        () => act(async () => { await api("POST", `${path}/${r.enabled ? "disable" : "enable"}`); after(); }), may),
      button("Run now", () => act(async () => { await api("POST", `${path}/run`); after(); traces(id); }), may),
    );
    const tr = row(name, last, controls);
    tr.dataset.rule = id;
    body.append(tr);
  }
}

async function traces(id) {
  const answer = await api("GET", `/api/v1/rules/${encodeURIComponent(id)}/traces`);
  $("trace-box").hidden = false;
  $("trace-title").textContent = `Traces of ${id}`;
  const list = $("traces");
  list.replaceChildren();
  if (!answer.traces.length) list.append(el("li", "no traces yet", "muted"));
  for (const t of answer.traces) {
    const item = el("li");
    item.className = "trace";
    const took = t.duration !== null ? ` in ${t.duration.toFixed(3)} s` : "";
    item.append(el("strong", `${new Date(t.started).toLocaleString()}  ${t.result}${took}`));
    item.append(el("div", `trigger: ${t.trigger}${t.who ? ` (by ${t.who})` : ""}`, "muted"));
    const steps = el("ul");
    for (const c of t.conditions) steps.append(el("li", `${c.holds ? "yes" : "NO"}: if ${c.condition}`, c.holds ? "" : "error"));
    for (const s of t.steps) steps.append(el("li", `${clock(s.at)} ${s.action}: ${s.outcome}`, s.ok ? "" : "error"));
    if (t.why) steps.append(el("li", `${t.result}: ${t.why}`, "muted"));
    item.append(steps);
    list.append(item);
  }
}

async function drawOutbox() {
  let outbox, dead;
  try {
    [outbox, dead] = await Promise.all([
      api("GET", "/api/v1/outbox"), api("GET", "/api/v1/outbox/messages?state=dead&limit=50"),
    ]);
  } catch (err) {
    $("outbox-summary").textContent = `not shown: ${err.message}`;
    return;
  }
  $("outbox-summary").textContent =
    `${outbox.pending} pending, ${outbox.dead} dead; uplink ${outbox.link}`;
  const body = $("endpoints");
  body.replaceChildren();
  for (const [name, e] of Object.entries(outbox.endpoints)) {
    const states = [e.disabled ? "disabled (410)" : "", e.circuit ? `circuit ${e.circuit}` : ""].filter(Boolean);
    body.append(row(name, e.pending, e.dead, states.join(", ") || "ok"));
  }
  const list = $("dead");
  list.replaceChildren();
  const may = state.session.outbox && !state.session.read_only;
  for (const m of dead.messages) {
    const retry = button("Retry", () => act(async () => {
      await api("POST", `/api/v1/outbox/${encodeURIComponent(m.id)}/retry`); await drawOutbox();
    }), may);
    const what = el("div", m.event);
    what.append(el("div", m.id, "muted"));
    const tr = row(what, m.endpoint, m.last_error ?? `HTTP ${m.last_status}`, retry);
    tr.dataset.message = m.id;
    list.append(tr);
  }
  if (!dead.messages.length) list.append(row(el("span", "none", "muted")));
}

function drawInputs(inputs) {
  const body = $("inputs");
  body.replaceChildren();
  for (const [name, i] of Object.entries(inputs)) {
    const tr = row(name, i.type, el("span", i.state, i.state === "connected" ? "state-on" : "unavailable"));
    tr.dataset.input = name;
    body.append(tr);
  }
}

async function chart(id) {
  const answer = await api("GET", `/api/v1/sensors/${encodeURIComponent(id)}/history`);
  $("chart-box").hidden = false;
  $("chart-title").textContent = `${id}: the last 24 hours`;
  state.chart = id;
  const box = $("chart");
  box.replaceChildren();
  const points = answer.points.filter((p) => p.value !== null);
  if (!points.length) { box.append(el("p", "no history yet", "muted")); return; }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 400 160");
  svg.setAttribute("preserveAspectRatio", "none");
  const ts = points.map((p) => Date.parse(p.t));
  const vs = points.map((p) => p.value);
  const [t0, t1] = [Math.min(...ts), Math.max(...ts) || 1];
  const [lo, hi] = [Math.min(...vs), Math.max(...vs)];
  const x = (t) => 5 + 390 * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = (v) => 150 - 140 * (hi === lo ? 0.5 : (v - lo) / (hi - lo));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map((p, i) => `${x(ts[i])},${y(p.value)}`).join(" "));
  svg.append(line);
  for (const [v, yy] of [[hi, 12], [lo, 158]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "6"); label.setAttribute("y", String(yy));
    label.textContent = String(Math.round(v * 100) / 100);
    svg.append(label);
  }
  box.append(svg);
}

// ------------------------------------------------------------------ live

function logEvent(kind, data) {
  const list = $("events");
  let text = `${new Date((data.time ?? Date.now() / 1000) * 1000).toLocaleTimeString()} ${kind} `;
  switch (kind) {
    case "sensor": text += `${data.id} = ${data.available === false ? "unavailable" : shown(data.value)}`; break;
    case "actuator": text += `${data.id} ${shown(data.state)} by ${data.who}`; break;
    case "trace": text += `${data.rule} ${data.result}${data.why ? `: ${data.why}` : ""}`; break;
    case "webhook": text += `${data.id} to ${data.endpoint}: ${data.outcome}`; break;
    case "input": text += `${data.id} ${data.state}`; break;
    case "log": text += `${data.level} ${data.logger}: ${data.message}`; break;
    default: text += JSON.stringify(data);
  }
  const item = el("li", text);
  item.dataset.kind = kind;
  list.prepend(item);
  while (list.children.length > 100) list.lastChild.remove();
}

let outboxTimer = null;

function listen() {
  state.stream?.close();
  const stream = new EventSource("/api/v1/events");
  state.stream = stream;
  const live = $("live");
  stream.addEventListener("open", () => { live.textContent = "live"; live.className = "badge on"; });
  stream.addEventListener("error", () => { live.textContent = "reconnecting"; live.className = "badge bad"; });
  const on = (kind, fn) => stream.addEventListener(kind, (e) => {
    const data = JSON.parse(e.data);
    logEvent(kind, data);
    fn?.(data);
  });
  on("sensor", (d) => {
    const s = state.sensors[d.id] ?? { id: d.id };
    s.value = d.available ? d.value : null;
    s.available = d.available;
    s.state = !d.available ? "unavailable" : typeof d.value === "boolean" ? (d.value ? "on" : "off") : null;
    s.last_updated = new Date(d.time * 1000).toISOString();
    state.sensors[d.id] = s;
    drawSensors();
  });
  on("actuator", (d) => act(() => reloadActuator(d.id)));
  on("trace", (d) => act(async () => {
    state.rules[d.rule] = await api("GET", `/api/v1/rules/${encodeURIComponent(d.rule)}`);
    drawRules();
  }));
  on("webhook", () => {
    clearTimeout(outboxTimer);
    outboxTimer = setTimeout(() => act(drawOutbox), 1000);  // a burst is one refresh
  });
  on("input", (d) => {
    const tr = document.querySelector(`tr[data-input="${CSS.escape(d.id)}"]`);
    if (tr) tr.lastChild.firstChild.textContent = d.state;
  });
  on("log");
  on("hello");
}

setInterval(() => { if (state.session && !$("app").hidden) refresh(); }, 60000);
start();
