// egoworld play: one WebSocket per page (= one session). Key presses go up as "act" messages;
// frames come back chunk by chunk and are played at the model's frame rate (faster when behind).
"use strict";

const $ = (id) => document.getElementById(id);
const STRIP = 12;
const ICONS = { forward: "↑", backward: "↓", turn_left: "↶", turn_right: "↷", strafe_left: "⇠", strafe_right: "⇢", stay: "·" };
const LAYOUT = ["turn_left", "forward", "turn_right", "strafe_left", "backward", "strafe_right", "stay"];
const KEY_NAMES = { ArrowUp: "↑", ArrowDown: "↓", ArrowLeft: "←", ArrowRight: "→", " ": "space" };

const app = {
  sid: null, ws: null, info: null, controller: null, fps: 5, ready: false,
  length: 0, shown: -1, urls: new Map(), queue: [], status: null, keyMap: new Map(),
};

function message(text, isError = false) {
  const el = $("message");
  el.textContent = text || "";
  el.classList.toggle("error", !!isError);
}

function send(obj) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify(obj));
  else message("not connected to the server; reconnecting…", true);
}

// --- connection ---------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws` + (app.sid ? `?session=${app.sid}` : ""));
  app.ws = ws;
  ws.onopen = () => { $("conn").textContent = "connected"; $("conn").classList.add("on"); };
  ws.onclose = () => {
    $("conn").textContent = "offline — reconnecting"; $("conn").classList.remove("on");
    setTimeout(connect, 1500);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    const handler = HANDLERS[msg.type];
    if (handler) handler(msg);
  };
}

const HANDLERS = {
  hello(msg) {
    if (app.sid && app.sid !== msg.session) message("the server had forgotten this page; it starts afresh");
    app.sid = msg.session;
    document.body.dataset.session = msg.session;
    if (!app.ready) setup(msg);
    for (const [id, file] of [["dl-mp4", "walk.mp4"], ["dl-gif", "walk.gif"], ["dl-actions", "walk_actions.json"]])
      $(id).href = `/api/sessions/${app.sid}/${file}`;
  },
  walk(msg) {  // the whole walk anew: new start image, undo, reset, reconnect
    app.urls.clear(); app.queue = [];
    msg.frames.forEach((url, i) => app.urls.set(msg.first + i, url));
    app.length = msg.length;
    show(msg.length - 1);
    $("empty").hidden = msg.length > 0;
    for (const id of ["dl-mp4", "dl-gif", "dl-actions"]) $(id).classList.toggle("disabled", msg.length === 0);
  },
  frames(msg) {
    msg.frames.forEach((url, i) => { app.urls.set(msg.first + i, url); app.queue.push(msg.first + i); });
    app.length = Math.max(app.length, msg.first + msg.frames.length);
  },
  status(msg) { app.status = msg; renderStatus(); },
  notice(msg) { message(msg.message); },
  error(msg) { message(msg.message, true); },
};

// --- playing frames -----------------------------------------------------------------------
function show(index) {
  if (index < 0 || !app.urls.has(index)) return;
  app.shown = index;
  const img = $("current");
  img.src = app.urls.get(index);
  img.dataset.index = String(index);
  $("stat-frame").textContent = index;
  const strip = $("strip");
  strip.replaceChildren();
  for (let i = Math.max(0, index - STRIP + 1); i <= index; i++) {
    if (!app.urls.has(i)) continue;
    const t = document.createElement("img");
    t.src = app.urls.get(i); t.dataset.index = String(i); t.title = `frame ${i}`;
    if (i === index) t.className = "latest";
    strip.appendChild(t);
  }
  for (const k of app.urls.keys()) if (k > 0 && k < index - 4 * STRIP) app.urls.delete(k);  // keep memory small
}

function player() {
  if (app.queue.length) show(app.queue.shift());
  const delay = 1000 / app.fps / (1 + app.queue.length / 4);  // catch up when behind
  setTimeout(player, Math.max(30, delay));
}

// --- status, minimap ----------------------------------------------------------------------
function fmt(s) { return s == null ? "–" : (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`); }

function renderStatus() {
  const s = app.status;
  $("stat-length").textContent = s.length;
  $("stat-chunks").textContent = s.chunks;
  $("stat-latency").textContent = fmt(s.latency_s);
  $("stat-model").textContent = fmt(s.model_s);
  $("stat-fps").textContent = s.fps == null ? "–" : s.fps.toFixed(1);
  $("stat-queue").textContent = `${s.pending}/${s.max_pending}`;
  $("stat-dropped").textContent = s.dropped;
  $("busy").hidden = !(s.busy || s.pending > 0);
  document.body.dataset.busy = String(s.busy);
  drawMap(s.path, s.length);
}

function drawMap(path, done) {
  const c = $("minimap"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!path || !path.length) {
    g.fillStyle = "#9097a6"; g.font = "12px system-ui"; g.textAlign = "center";
    g.fillText(app.controller && app.controller.kind !== "keys" ? "no map for this action space" : "no walk yet", c.width / 2, c.height / 2);
    return;
  }
  // robot frame at the start: x forward (up on the map), y left (left on the map)
  const pts = path.map(([x, y]) => [-y, -x]);
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [u, v] of pts) { x0 = Math.min(x0, u); x1 = Math.max(x1, u); y0 = Math.min(y0, v); y1 = Math.max(y1, v); }
  const span = Math.max(x1 - x0, y1 - y0, 1.0), pad = 16;
  const k = Math.min(c.width - 2 * pad, c.height - 2 * pad) / span;
  const cx = c.width / 2 - k * (x0 + x1) / 2, cy = c.height / 2 - k * (y0 + y1) / 2;
  const P = ([u, v]) => [cx + k * u, cy + k * v];
  g.strokeStyle = "#2e3340"; g.lineWidth = 1;  // 1 m grid
  for (let m = Math.floor(x0 - span); m <= x1 + span; m++) { const [u] = P([m, 0]); g.beginPath(); g.moveTo(u, 0); g.lineTo(u, c.height); g.stroke(); }
  for (let m = Math.floor(y0 - span); m <= y1 + span; m++) { const [, v] = P([0, m]); g.beginPath(); g.moveTo(0, v); g.lineTo(c.width, v); g.stroke(); }
  const line = (from, to, style, dash) => {
    if (to - from < 1) return;
    g.setLineDash(dash); g.strokeStyle = style; g.lineWidth = 2; g.beginPath();
    for (let i = from; i <= to; i++) { const [u, v] = P(pts[i]); i === from ? g.moveTo(u, v) : g.lineTo(u, v); }
    g.stroke(); g.setLineDash([]);
  };
  const last = Math.min(done, pts.length) - 1;
  line(0, last, "#f0b04a", []);
  line(last, pts.length - 1, "#9097a6", [4, 3]);  // queued presses
  const [u, v] = P(pts[last]), yaw = path[last][2];
  const dir = [-Math.sin(yaw), -Math.cos(yaw)];
  g.fillStyle = "#f0b04a"; g.beginPath();
  g.moveTo(u + 9 * dir[0], v + 9 * dir[1]);
  g.lineTo(u - 5 * dir[0] + 5 * dir[1], v - 5 * dir[1] - 5 * dir[0]);
  g.lineTo(u - 5 * dir[0] - 5 * dir[1], v - 5 * dir[1] + 5 * dir[0]);
  g.fill();
  const [su, sv] = P(pts[0]); g.fillStyle = "#7bd88f"; g.fillRect(su - 3, sv - 3, 6, 6);
}

// --- controls -----------------------------------------------------------------------------
function setup(msg) {
  app.ready = true;
  app.info = msg; app.controller = msg.controller; app.fps = msg.model.fps || 5;
  const m = msg.model;
  $("model-info").textContent =
    `${m.name} · ${m.family} · ${m.width}×${m.height} · ${m.chunk} frames/chunk · ${m.steps} sampler steps`;
  for (const s of msg.samples) {
    const b = document.createElement("button");
    b.type = "button"; b.title = s.title; b.dataset.sample = s.name;
    b.innerHTML = `<img alt="${s.title}" src="/samples/${s.name}.png">`;
    b.onclick = () => chooseSample(s.name);
    $("samples").appendChild(b);
  }
  const c = msg.controller;
  $("note").textContent = c.note;
  if (c.kind === "keys") {
    const keys = $("keys"); keys.hidden = false;
    const byName = Object.fromEntries(c.moves.map((mv) => [mv.name, mv]));
    for (const name of LAYOUT) {
      const mv = byName[name]; if (!mv) continue;
      const b = document.createElement("button");
      b.type = "button"; b.id = `move-${name}`; b.dataset.move = name;
      if (!mv.trained) { b.classList.add("untrained"); b.title = "the model never saw this move in training"; }
      b.innerHTML = `${ICONS[name] || ""} ${mv.label}<kbd>${mv.keys.map((k) => KEY_NAMES[k] || k.toUpperCase()).join(" / ")}</kbd>`;
      b.onclick = () => act(name);
      keys.appendChild(b);
      for (const k of mv.keys) app.keyMap.set(k.length === 1 ? k.toLowerCase() : k, name);
    }
  } else if (c.kind === "sliders") {
    const box = $("sliders"); box.hidden = false;
    const group = (title, specs, cls) => {
      const h = document.createElement("h3"); h.textContent = title; box.appendChild(h);
      for (const s of specs) {
        const l = document.createElement("label");
        l.innerHTML = `<span title="${s.name}">${s.name}</span><input type="range" class="${cls}" min="${s.min}" max="${s.max}" step="${s.step}" value="${s.value}"><output>${s.value}</output>`;
        const input = l.querySelector("input"), out = l.querySelector("output");
        input.oninput = () => { out.textContent = Number(input.value).toFixed(3); };
        box.appendChild(l);
      }
    };
    group("action (one step)", c.sliders, "act-slider");
    if (c.state.length) group("robot state", c.state, "state-slider");
    const b = document.createElement("button");
    b.type = "button"; b.id = "step"; b.textContent = "step ⏎"; b.onclick = () => act(null);
    box.appendChild(b);
  } else {
    $("note").classList.add("blocked");
    $("note").textContent = `This model needs another controller: ${c.note}`;
  }
  player();
}

function act(name) {
  if (app.length === 0) { message("pick a start image first", true); return; }
  if (app.controller.kind === "keys") {
    send({ type: "act", command: name });
    const b = $(`move-${name}`);
    if (b) { b.classList.add("flash"); setTimeout(() => b.classList.remove("flash"), 120); }
  } else if (app.controller.kind === "sliders") {
    const values = (cls) => [...document.querySelectorAll(`.${cls}`)].map((i) => Number(i.value));
    const msg = { type: "act", vector: values("act-slider") };
    if (app.controller.state.length) msg.state = values("state-slider");
    send(msg);
  }
}

window.addEventListener("keydown", (e) => {
  if (!app.controller || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "range" && t.type !== "file"))) return;
  if (app.controller.kind === "keys") {
    const name = app.keyMap.get(e.key.length === 1 ? e.key.toLowerCase() : e.key);
    if (!name) return;
    e.preventDefault();
    act(name);
  } else if (app.controller.kind === "sliders" && e.key === "Enter") {
    e.preventDefault();
    act(null);
  }
});

$("undo").onclick = () => send({ type: "undo" });
$("reset").onclick = () => send({ type: "reset" });

// --- start images -------------------------------------------------------------------------
async function post(url, body, headers = {}) {
  const r = await fetch(url, { method: "POST", body, headers });
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return r.json();
}

async function upload(file) {
  if (!file || !app.sid) return;
  const limit = app.info.limits.max_upload_bytes;
  if (file.size > limit) {
    message(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB; expected an image of at most ${limit / 1e6} MB`, true);
    return;
  }
  message(`uploading ${file.name}…`);
  try {
    await post(`/api/sessions/${app.sid}/image?name=${encodeURIComponent(file.name)}`, file,
      { "Content-Type": file.type || "application/octet-stream" });
    message(`start image: ${file.name} — steer with the arrow keys / WASD`);
  } catch (err) { message(err.message, true); }
  $("file").value = "";
}

async function chooseSample(name) {
  try {
    const r = await post(`/api/sessions/${app.sid}/sample/${name}`);
    message(`start image: ${r.image} — steer with the arrow keys / WASD`);
  } catch (err) { message(err.message, true); }
}

$("file").addEventListener("change", (e) => upload(e.target.files[0]));
for (const el of document.querySelectorAll(".drop-target")) {
  el.addEventListener("dragover", (e) => { e.preventDefault(); el.classList.add("over"); });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (e) => {
    e.preventDefault(); el.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
}
window.addEventListener("dragover", (e) => e.preventDefault());  // a stray drop must not navigate away
window.addEventListener("drop", (e) => e.preventDefault());

connect();
