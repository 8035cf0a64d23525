/**
 * The status page's HTML, style and script, served from memory (no build step, no framework, no
 * third-party request). The script renders only with textContent and sets only http(s) links, so
 * nothing a NotebookServer carries can become markup; the page's Content-Security-Policy allows
 * scripts and styles from its own origin only.
 */

export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nbswarm status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>nbswarm</h1>
  <span id="conn" class="conn connecting">connecting…</span>
</header>
<section id="health" aria-label="Operator health">
  <div class="card"><div class="label">Leader</div><div class="value" id="h-leader">–</div></div>
  <div class="card"><div class="label">Docker</div><div class="value" id="h-docker">–</div></div>
  <div class="card"><div class="label">Work queue</div><div class="value" id="h-queue">–</div></div>
  <div class="card"><div class="label">Reconciles/s</div><div class="value" id="h-rate">–</div></div>
  <div class="card"><div class="label">Servers</div><div class="value" id="h-servers">–</div></div>
</section>
<main>
  <section>
    <div class="bar"><h2>Notebook servers</h2><input id="filter" type="search" placeholder="filter by name, user, phase, node…" aria-label="Filter"></div>
    <table id="servers">
      <thead><tr><th>Name</th><th>User</th><th>Server</th><th>Mode</th><th>Phase</th><th>Progress</th><th>Node</th><th>Endpoint</th><th>Age</th><th>CPU</th><th>Memory</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="empty" class="muted">No NotebookServers yet.</p>
  </section>
  <section>
    <h2>Recent events</h2>
    <table id="events">
      <thead><tr><th>Time</th><th>Type</th><th>Server</th><th>Reason</th><th>Message</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
</body>
</html>
`;

export function loginHtml(message: string): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>nbswarm status: log in</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/app.css"></head>
<body class="login">
<form method="post" action="/login">
  <h1>nbswarm status</h1>
  <p>Paste a bearer token: the token of a kubeconfig that may list NotebookServers
  (<code>kubectl config view --raw -o jsonpath='{.users[0].user.token}'</code>), or one from the operator's --status-token-file.</p>
  ${message ? `<p class="error">${esc(message)}</p>` : ''}
  <input type="password" name="token" autocomplete="off" required autofocus aria-label="Token">
  <button type="submit">Open the status page</button>
</form>
</body>
</html>
`;
}

export const APP_CSS = `
:root { --fg: #1d2330; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --card: #fff;
  --run: #15803d; --start: #b45309; --fail: #b91c1c; --stop: #6b7280; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1.2rem; background: #111827; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; letter-spacing: .02em; }
.conn { font-size: .8rem; padding: .1rem .5rem; border-radius: 999px; background: #374151; }
.conn.live { background: var(--run); }
.conn.lost { background: var(--fail); }
#health { display: flex; flex-wrap: wrap; gap: .8rem; padding: 1rem 1.2rem 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .5rem .8rem; min-width: 10rem; }
.card .label { color: var(--muted); font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 1rem; font-weight: 600; margin-top: .15rem; }
.card .value.bad { color: var(--fail); }
.card .value.good { color: var(--run); }
main { padding: 0 1.2rem 2rem; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
.bar { display: flex; align-items: baseline; gap: 1rem; }
.bar input { flex: 0 1 20rem; padding: .25rem .5rem; border: 1px solid var(--line); border-radius: 6px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.stopped td { color: var(--stop); opacity: .55; }
tr.hidden { display: none; }
.phase { font-weight: 600; white-space: nowrap; }
.phase.Running { color: var(--run); }
.phase.Creating, .phase.Pending, .phase.Stopping, .phase.Terminating { color: var(--start); }
.phase.Failed { color: var(--fail); }
.phase.Stopped { color: var(--stop); }
.steps { display: inline-flex; gap: 3px; vertical-align: middle; margin-right: .4rem; }
.steps i { display: inline-block; width: 9px; height: 9px; border-radius: 50%; background: var(--line); }
.steps i.done { background: var(--run); }
.steps i.now { background: var(--start); }
.msg { color: var(--muted); max-width: 32rem; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
a { color: var(--accent); }
#events td:first-child { white-space: nowrap; color: var(--muted); }
#events .Warning { color: var(--fail); font-weight: 600; }
body.login { display: grid; place-items: center; min-height: 100vh; }
body.login form { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1.5rem; max-width: 32rem; display: grid; gap: .8rem; }
body.login input { padding: .4rem; }
.error { color: var(--fail); }
`;

/*
 * The page's script. Plain ES2017, no modules, no dependencies. ASCII only (write \u2026, not the
 * character): a raw template keeps what it holds, and one non-ASCII character in the bundled CLI makes
 * V8 keep the whole bundle's source at two bytes a character (scripts/bundle.mjs refuses it).
 */
export const APP_JS = String.raw`'use strict';
(function () {
  var STAGES = ['Created', 'Scheduled', 'Image', 'Starting', 'Ready'];
  var servers = new Map();   // key -> row
  var rowsByKey = new Map(); // key -> <tr>
  var order = [];            // sorted keys
  var stats = {};
  var events = new Map();    // uid -> event row
  var offset = 0;            // server clock - browser clock
  var filter = '';

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function now() { return Date.now() + offset; }
  function age(iso) {
    var t = Date.parse(iso);
    if (!isFinite(t)) return '';
    var s = Math.max(0, Math.floor((now() - t) / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s < 600 ? (s % 60) + 's' : '');
    if (s < 86400) return Math.floor(s / 3600) + 'h' + (s < 36000 ? Math.floor((s % 3600) / 60) + 'm' : '');
    return Math.floor(s / 86400) + 'd';
  }
  function bytes(n) {
    if (typeof n !== 'number') return '';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }
  function safeUrl(u) { return /^https?:\/\//i.test(u || '') ? u : ''; }

  function fillRow(tr, r) {
    tr.textContent = '';
    tr.className = (r.stopped || r.phase === 'Stopped' ? 'stopped' : '') + (matches(r) ? '' : ' hidden');
    tr.dataset.key = r.key;
    tr.dataset.phase = r.phase || '';
    var name = el('td');
    name.appendChild(el('span', 'muted', r.namespace + '/'));
    name.appendChild(el('span', 'name', r.name));
    tr.appendChild(name);
    tr.appendChild(el('td', 'user', r.user));
    tr.appendChild(el('td', 'server', r.server));
    tr.appendChild(el('td', 'mode', r.mode));
    tr.appendChild(el('td', 'phase ' + (r.phase || 'Unknown'), r.phase || '\u2026'));
    var prog = el('td', 'progress');
    if (r.stage >= 0) {
      var steps = el('span', 'steps');
      steps.title = STAGES[r.stage] || '';
      for (var i = 0; i < STAGES.length; i++) steps.appendChild(el('i', i < r.stage ? 'done' : i === r.stage ? 'now' : ''));
      prog.appendChild(steps);
      prog.appendChild(el('span', 'stage', STAGES[r.stage]));
      if (r.message) prog.appendChild(el('div', 'msg', r.message));
    } else if (r.message) {
      prog.appendChild(el('div', 'msg', r.message));
    }
    tr.appendChild(prog);
    tr.appendChild(el('td', 'node', r.node));
    var ep = el('td', 'endpoint');
    var url = safeUrl(r.url);
    if (url && !r.stopped) {
      var a = el('a', '', url);
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      ep.appendChild(a);
    }
    tr.appendChild(ep);
    var ag = el('td', 'age num', age(r.createdAt));
    ag.dataset.created = r.createdAt || '';
    tr.appendChild(ag);
    var s = stats[r.key] || {};
    tr.appendChild(el('td', 'cpu num', typeof s.cpuPercent === 'number' && !r.stopped ? s.cpuPercent.toFixed(1) + '%' : ''));
    tr.appendChild(el('td', 'mem num', typeof s.memoryBytes === 'number' && !r.stopped ? bytes(s.memoryBytes) + (s.memoryLimitBytes ? ' / ' + bytes(s.memoryLimitBytes) : '') : ''));
  }

  function matches(r) {
    if (!filter) return true;
    var hay = [r.namespace, r.name, r.user, r.server, r.mode, r.phase, r.node, r.url].join(' ').toLowerCase();
    return hay.indexOf(filter) >= 0;
  }

  function indexFor(key) {
    var lo = 0, hi = order.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (order[mid] < key) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function upsert(r) {
    servers.set(r.key, r);
    var tr = rowsByKey.get(r.key);
    if (!tr) {
      tr = el('tr');
      var i = indexFor(r.key);
      var tbody = $('servers').tBodies[0];
      var before = i < order.length ? rowsByKey.get(order[i]) : null;
      tbody.insertBefore(tr, before || null);
      order.splice(i, 0, r.key);
      rowsByKey.set(r.key, tr);
    }
    fillRow(tr, r);
  }

  function remove(key) {
    servers.delete(key);
    var tr = rowsByKey.get(key);
    if (tr) tr.remove();
    rowsByKey.delete(key);
    var i = indexFor(key);
    if (order[i] === key) order.splice(i, 1);
  }

  function summary() {
    var byPhase = {};
    servers.forEach(function (r) { var p = r.phase || 'Unknown'; byPhase[p] = (byPhase[p] || 0) + 1; });
    var parts = Object.keys(byPhase).sort().map(function (p) { return byPhase[p] + ' ' + p; });
    $('h-servers').textContent = servers.size + (parts.length ? ' (' + parts.join(', ') + ')' : '');
    $('empty').style.display = servers.size ? 'none' : '';
  }

  function setHealth(h) {
    if (!h) return;
    var leader = $('h-leader');
    leader.textContent = h.leader ? 'this replica' : h.leaderIdentity ? 'standby (leader: ' + h.leaderIdentity + ')' : 'none';
    leader.className = 'value ' + (h.leader || h.leaderIdentity ? 'good' : 'bad');
    var docker = $('h-docker');
    docker.textContent = h.dockerReachable === null ? 'checking\u2026' : h.dockerReachable ? 'reachable (' + h.backend + ')' : 'UNREACHABLE';
    docker.className = 'value ' + (h.dockerReachable === false ? 'bad' : h.dockerReachable ? 'good' : '');
    $('h-queue').textContent = h.queueDepth + ' queued, ' + h.inFlight + ' running, ' + h.delayed + ' waiting';
    $('h-rate').textContent = h.reconcilesPerSecond + (h.reconcileErrors ? ' (' + h.reconcileErrors + ' errors in all)' : '');
  }

  function setStats(s) {
    stats = s || {};
    servers.forEach(function (r) { var tr = rowsByKey.get(r.key); if (tr) fillRow(tr, r); });
  }

  function addEvents(rows) {
    rows.forEach(function (e) { events.set(e.uid, e); });
    var list = Array.from(events.values()).sort(function (a, b) { return a.time < b.time ? 1 : a.time > b.time ? -1 : 0; });
    list.slice(50).forEach(function (e) { events.delete(e.uid); });
    var tbody = $('events').tBodies[0];
    tbody.textContent = '';
    list.slice(0, 50).forEach(function (e) {
      var tr = el('tr');
      tr.appendChild(el('td', '', age(e.time) + ' ago'));
      tr.appendChild(el('td', e.type, e.type));
      tr.appendChild(el('td', '', e.namespace + '/' + e.object));
      tr.appendChild(el('td', '', e.reason + (e.count > 1 ? ' \u00d7' + e.count : '')));
      tr.appendChild(el('td', 'msg', e.message));
      tbody.appendChild(tr);
    });
  }

  function snapshot(s) {
    offset = s.now - Date.now();
    stats = s.stats || {};
    var keep = new Set(s.servers.map(function (r) { return r.key; }));
    Array.from(servers.keys()).forEach(function (k) { if (!keep.has(k)) remove(k); });
    s.servers.forEach(upsert);
    events.clear();
    addEvents(s.events || []);
    setHealth(s.health);
    summary();
  }

  function connect() {
    var conn = $('conn');
    var es = new EventSource('/events');
    es.onopen = function () { conn.textContent = 'live'; conn.className = 'conn live'; };
    es.onerror = function () { conn.textContent = 'reconnecting\u2026'; conn.className = 'conn lost'; };
    es.addEventListener('snapshot', function (m) { snapshot(JSON.parse(m.data)); });
    es.addEventListener('servers', function (m) {
      var d = JSON.parse(m.data);
      offset = d.now - Date.now();
      d.remove.forEach(remove);
      d.upsert.forEach(upsert);
      summary();
    });
    es.addEventListener('kevents', function (m) { addEvents(JSON.parse(m.data)); });
    es.addEventListener('health', function (m) { setHealth(JSON.parse(m.data)); });
    es.addEventListener('stats', function (m) { setStats(JSON.parse(m.data)); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('filter').addEventListener('input', function (e) {
      filter = e.target.value.trim().toLowerCase();
      servers.forEach(function (r) { var tr = rowsByKey.get(r.key); if (tr) tr.classList.toggle('hidden', !matches(r)); });
    });
    setInterval(function () {
      rowsByKey.forEach(function (tr) { var c = tr.querySelector('td.age'); if (c) c.textContent = age(c.dataset.created); });
    }, 1000);
    connect();
  });
})();
`;
