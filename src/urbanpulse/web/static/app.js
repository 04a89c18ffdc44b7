/* urbanpulse live operations page (docs/live-page.md).
 *
 * Everything comes from the service's API with the key entered in the page (sessionStorage):
 *   /live/config   tiles, colour scales, units             (no key)
 *   /sensors       the registry: positions, metrics, status (viewer key, or open data)
 *   /live/stream   snapshot, latest committed readings and alert changes: the page's one
 *                  connection (SSE over fetch, so the key is a header, not in the URL)
 *   /alerts, /maintenance                                    (viewer key; changes need operator)
 *   /readings, /quality                                      (viewer key, or open data)
 * window.urbanpulseLive exposes what tests and benchmarks read (arrival times of readings).
 */
(function () {
  "use strict";

  const STATUSES = ["alerting", "silent", "maintenance", "ok"];
  const BAND_NAMES = ["low", "moderate", "elevated", "high", "very high"];
  const BAND_COLOURS = ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"];
  // a value of a metric with no colour scale (an unbounded range, /live/config says null, and no
  // live.scales entry): one colour, and no band name (calling it "low" would be a claim)
  const NO_SCALE = -2, NO_SCALE_COLOUR = "#bcbddc";
  const SILENT_FACTOR = 3;          // no reading for this many expected intervals: silent
  const KEY_STORE = "urbanpulse.key";

  const $ = (id) => document.getElementById(id);
  const state = {
    config: null, key: sessionStorage.getItem(KEY_STORE) || "",
    sensors: new Map(),             // id -> {reg, marker, latest: {metric: [ts_ms, value]}, status}
    alerts: new Map(),              // id -> alert (open or acknowledged)
    windows: [],                    // maintenance windows [{sensor (pattern), starts_at, ends_at}]
    colourMetric: null, selected: null, chart: null,
    map: null, tiles: null, streams: [], tableDirty: true, started: false, generation: 0,
  };

  // what tests and benchmarks read: arrival time of each live reading, after the page shows it
  const hook = window.urbanpulseLive = {
    arrivals: [], snapshots: 0, frames: 0, ready: false, readyAt: null, sensorsAt: null, markers: 0, paused: false,
    drain() { const a = this.arrivals; this.arrivals = []; return a; },
  };

  // -- API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail, code) { super(detail); this.status = status; this.code = code; }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (state.key) h.Authorization = "Bearer " + state.key;
    return h;
  }

  async function failure(res) {
    let detail = res.statusText, code = "";
    try { const body = await res.json(); detail = body.detail || detail; code = body.error || ""; } catch (e) { /* not JSON */ }
    return new ApiError(res.status, detail, code);
  }

  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: headers(opts.body !== undefined ? { "Content-Type": "application/json" } : {}),
                   cache: "no-store" };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    const res = await fetch(path, init);
    if (!res.ok) throw await failure(res);
    return res.status === 204 ? null : res.json();
  }

  /** Server-Sent Events over fetch (EventSource cannot send an Authorization header). */
  async function sse(path, onEvent, signal, lastId) {
    const res = await fetch(path, { headers: headers(lastId ? { "Last-Event-ID": String(lastId) } : {}), signal, cache: "no-store" });
    if (!res.ok) throw await failure(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        let event = "message", data = "", id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += (data ? "\n" : "") + line.slice(6);
          else if (line.startsWith("id: ")) id = line.slice(4);
        }
        if (data) onEvent(event, data, id);
      }
    }
  }

  /** Keep a stream open: reconnect after 2 s when it ends or fails (401/403 stop it). */
  function keepStreaming(name, path, onEvent) {
    const ctl = new AbortController();
    const gen = state.generation;
    state.streams.push(ctl);
    (async () => {
      while (!ctl.signal.aborted && gen === state.generation) {
        try {
          setConn("live", "Live");
          await sse(path, onEvent, ctl.signal, null);
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e instanceof ApiError && (e.status === 401 || e.status === 403)) { setConn("error", name + ": " + e.message); return; }
          if (e instanceof ApiError && e.status === 503) { setConn("error", name + ": " + e.message); }
        }
        if (!ctl.signal.aborted) { setConn("error", "Reconnecting…"); await sleep(2000); }
      }
    })();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function setConn(kind, text) { const c = $("conn"); c.dataset.state = kind; c.textContent = text; }

  function say(text, kind) { const m = $("action-msg"); m.dataset.kind = kind || "info"; m.textContent = text; }

  function explain(e) {
    if (!(e instanceof ApiError)) return String(e && e.message || e);
    const what = { 401: "Not signed in", 403: "Not allowed", 404: "Not found", 409: "Not possible now", 503: "Unavailable" }[e.status] || "Failed";
    return what + " (" + e.status + "): " + e.message;
  }

  // -- scales, status, markers -----------------------------------------------------------------

  function edgesOf(metric) {
    const s = state.config.scales[metric];
    if (s) return s;
    const m = state.config.metrics[metric];
    if (!m || m.min === null || m.max === null) return [];  // unbounded range and no scale: one colour
    const step = (m.max - m.min) / 5;
    return [1, 2, 3, 4].map((i) => m.min + i * step);
  }

  function bandOf(metric, value) {
    if (value === null || value === undefined || Number.isNaN(value)) return -1;
    const edges = edgesOf(metric);
    if (!edges.length) return NO_SCALE;
    let b = 0;
    while (b < edges.length && value >= edges[b]) b++;
    return Math.min(b, BAND_COLOURS.length - 1);
  }

  function bandName(band) { return band === NO_SCALE ? "no colour scale" : BAND_NAMES[band]; }

  function unitOf(metric) { const m = state.config.metrics[metric]; return m ? m.unit : ""; }
  // a silence trigger's value is the gap in seconds, not a reading of the metric
  function triggerText(detector, metric, value) {
    return detector === "silence" ? fmt(value) + " s without a reading" : fmt(value) + " " + escapeHtml(unitOf(metric));
  }

  function fmt(v) { return v === null || v === undefined ? "–" : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)); }

  function globMatch(pattern, text) {
    const re = new RegExp("^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    return re.test(text);
  }

  function inMaintenance(id, now) {
    return state.windows.some((w) => Date.parse(w.starts_at) <= now && now < Date.parse(w.ends_at) && globMatch(w.sensor, id));
  }

  function expectedInterval(reg) {
    const ivs = Object.values(reg.metrics || {}).map((m) => m.interval_s).filter((x) => x > 0);
    return ivs.length ? Math.max.apply(null, ivs) : null;
  }

  /** sensor id -> {alerting, silent}: what its open and acknowledged alerts say (rebuilt on change). */
  let alertIndex = new Map();
  function indexAlerts() {
    alertIndex = new Map();
    for (const a of state.alerts.values()) {
      const e = alertIndex.get(a.sensor_id) || { alerting: false, silent: false };
      if (a.detector === "silence") e.silent = true; else e.alerting = true;
      alertIndex.set(a.sensor_id, e);
    }
  }

  function statusOf(s, now) {
    if (s.reg.status === "maintenance" || (state.windows.length && inMaintenance(s.reg.id, now))) return "maintenance";
    const a = alertIndex.get(s.reg.id);
    if (a && a.alerting) return "alerting";
    if (a && a.silent) return "silent";
    const iv = expectedInterval(s.reg);
    const newest = Math.max(0, ...Object.values(s.latest).map((x) => x[0]));
    if (iv && (!newest || now - newest > SILENT_FACTOR * iv * 1000)) return "silent";
    return "ok";
  }

  function shape(status, band) {
    const fill = band === NO_SCALE ? NO_SCALE_COLOUR : band < 0 ? "#e0e0e0" : BAND_COLOURS[band];
    const ink = band >= 3 ? "#fff" : "#111";
    const label = band === NO_SCALE ? "•" : band < 0 ? "–" : String(band + 1);
    let body;
    if (status === "alerting") body = '<polygon points="11,1 21,20 1,20" fill="' + fill + '" stroke="#a30000" stroke-width="2.5"/>';
    else if (status === "silent") body = '<circle cx="11" cy="11" r="9" fill="#f4f4f4" stroke="#5b4db0" stroke-width="2" stroke-dasharray="3 2"/>';
    else if (status === "maintenance") body = '<rect x="2" y="2" width="18" height="18" fill="' + fill + '" stroke="#8a4b00" stroke-width="2.5"/>';
    else body = '<circle cx="11" cy="11" r="8" fill="' + fill + '" stroke="#222" stroke-width="1.5"/>';
    const text = status === "silent" ? "?" : label;
    const colour = status === "silent" ? "#333" : ink;
    return '<svg width="22" height="22" viewBox="0 0 22 22" aria-hidden="true">' + body +
      '<text x="11" y="' + (status === "alerting" ? 17 : 15) + '" text-anchor="middle" font-size="10" font-weight="700" fill="' +
      colour + '">' + text + "</text></svg>";
  }

  function describe(s) {
    const m = state.colourMetric, v = s.latest[m];
    const value = v ? fmt(v[1]) + " " + unitOf(m) + " (" + bandName(bandOf(m, v[1])) + ")" : "no " + m + " reading";
    return s.reg.name + " (" + s.reg.id + "): " + s.status + ", " + m + " " + value;
  }

  function render(s) {
    const el = s.marker.getElement();
    const m = state.colourMetric, v = s.latest[m];
    const band = v ? bandOf(m, v[1]) : -1;
    const key = s.status + "|" + band;
    if (el) {
      if (el.dataset.key !== key) { el.innerHTML = shape(s.status, band); el.dataset.key = key; }
      el.dataset.status = s.status;
      el.dataset.band = String(band);
      el.dataset.value = v ? String(v[1]) : "";
      el.setAttribute("title", describe(s));
    }
  }

  function refresh(s, now) {
    s.status = statusOf(s, now);
    render(s);
  }

  function refreshAll() {
    const now = Date.now();
    for (const s of state.sensors.values()) refresh(s, now);
    state.tableDirty = true;
  }

  // -- map -------------------------------------------------------------------------------------

  function buildMap() {
    const map = state.map = L.map("map", { preferCanvas: false, keyboard: true, zoomSnap: 0.5, attributionControl: true });
    map.attributionControl.setPrefix("");
    const t = state.config.tiles;
    if (t.url) {
      let loaded = 0, failed = 0;
      state.tiles = L.tileLayer(t.url, { maxZoom: t.max_zoom, subdomains: t.subdomains, attribution: escapeHtml(t.attribution) });
      state.tiles.on("tileload", () => { loaded++; $("tiles-note").textContent = ""; });
      state.tiles.on("tileerror", () => {
        failed++;
        if (!loaded && failed >= 2 && state.tiles) {
          map.removeLayer(state.tiles); state.tiles = null;
          $("tiles-note").textContent = "Map tiles cannot be reached: sensors are shown on a plain background.";
          $("map").dataset.tiles = "fallback";
        }
      });
      state.tiles.addTo(map);
      $("map").dataset.tiles = "tiles";
    } else {
      $("tiles-note").textContent = "No map tiles configured (live.tiles.url): sensors are shown on a plain background.";
      $("map").dataset.tiles = "none";
    }
    map.setView([0, 0], 2);
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function legend() {
    const parts = [];
    const names = { ok: "ok", alerting: "alerting (triangle)", silent: "silent (dashed, ?)", maintenance: "maintenance (square)" };
    for (const st of ["ok", "alerting", "silent", "maintenance"]) parts.push("<span>" + shape(st, 1) + names[st] + "</span>");
    const m = state.colourMetric, edges = edgesOf(m), u = unitOf(m);
    if (!edges.length) {  // no range to divide into bands: one entry, saying how to get bands
      parts.push("<span>" + shape("ok", NO_SCALE) + "any " + escapeHtml(m) + " value: one colour (" + escapeHtml(m) +
        " has no bounded range; set live.scales." + escapeHtml(m) + " for bands)</span>");
      $("legend").innerHTML = parts.join("");
      return;
    }
    BAND_COLOURS.forEach((c, i) => {
      const lo = i === 0 ? "below " + edges[0] : i >= edges.length ? "≥ " + edges[edges.length - 1] : edges[i - 1] + "–" + edges[i];
      parts.push("<span>" + shape("ok", i) + (i + 1) + " " + BAND_NAMES[i] + ": " + lo + " " + escapeHtml(u) + "</span>");
    });
    $("legend").innerHTML = parts.join("");
  }

  async function loadSensors() {
    const items = [];
    let cursor = null;
    do {
      const page = await api("/sensors?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    for (const s of state.sensors.values()) s.marker.remove();
    state.sensors.clear();
    const counts = {};
    const bounds = [];
    for (const reg of items) {
      if (reg.status === "retired") continue;
      for (const m of Object.keys(reg.metrics || {})) counts[m] = (counts[m] || 0) + 1;
      const marker = L.marker([reg.lat, reg.lon], {
        icon: L.divIcon({ className: "up-marker", html: "", iconSize: [22, 22], iconAnchor: [11, 11] }),
        keyboard: false, riseOnHover: true,
      });
      const s = { reg, marker, latest: {}, status: "ok" };
      marker.on("click", () => select(reg.id));
      marker.addTo(state.map);
      const el = marker.getElement();
      el.dataset.sensor = reg.id;
      el.setAttribute("role", "img");
      state.sensors.set(reg.id, s);
      bounds.push([reg.lat, reg.lon]);
    }
    const metrics = Object.keys(counts).sort((a, b) => counts[b] - counts[a] || a.localeCompare(b));
    const sel = $("colour-metric");
    sel.innerHTML = metrics.map((m) => '<option value="' + escapeHtml(m) + '">' + escapeHtml(m) + "</option>").join("");
    state.colourMetric = metrics[0] || "pm2_5";
    if (bounds.length) state.map.fitBounds(bounds, { padding: [20, 20], maxZoom: 15 });
    hook.markers = state.sensors.size;
    hook.sensorsAt = performance.now();
    $("marker-count").textContent = state.sensors.size + " sensors";
    legend();
    refreshAll();
  }

  // -- live readings ------------------------------------------------------------------------------

  function applyReadings(rows) {
    const now = Date.now();
    const touched = new Set();
    for (const [sensor, metric, ts, value] of rows) {
      const s = state.sensors.get(sensor);
      if (!s) continue;
      const prev = s.latest[metric];
      if (prev && prev[0] > ts) continue;      // an older reading than the one shown
      s.latest[metric] = [ts, value];
      touched.add(s);
      if (state.selected && state.selected.id === sensor && state.selected.metric === metric) chartAppend(ts, value);
    }
    for (const s of touched) refresh(s, now);
    if (touched.size) state.tableDirty = true;
    return touched;
  }

  function onLive(event, data) {
    const msg = JSON.parse(data);
    if (event === "alerts") {
      if (msg.reload) loadAlerts().catch((e) => say(explain(e), "error"));
      for (const e of msg.events) onAlertEvent(e);
      return;
    }
    if (event === "snapshot") {
      applyReadings(msg.readings);
      // every (re)connection starts with a snapshot: alert changes missed meanwhile are re-read
      if (alertsWanted()) loadAlerts().catch((e) => say(explain(e), "error"));
      hook.snapshots++;
      if (!hook.ready) hook.readyAt = performance.now();   // ms since navigation start: map + values shown
      hook.ready = true;
      return;
    }
    if (event !== "readings") return;
    applyReadings(msg.readings);
    hook.frames++;
    const shown = Date.now();
    for (const r of msg.readings) { if (hook.arrivals.length < 500000) hook.arrivals.push([r[0], r[1], r[2], shown]); }
  }

  // -- alerts ---------------------------------------------------------------------------------

  const alertsWanted = () => !!(state.key && state.config.alerts);
  const resolvedAt = new Map();     // alert id -> updated_at of its resolution seen on the stream

  const newer = (a, b) => String(a.updated_at || "") > String(b.updated_at || "");

  async function loadAlerts() {
    const items = [];
    let cursor = null;
    do {
      const page = await api("/alerts?state=open,acknowledged&limit=500" + (cursor ? "&cursor=" + cursor : ""));
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < 5000);
    // changes that came on the stream while this list was read win over it (they are newer)
    const fresh = new Map();
    for (const a of items) {
      const seen = state.alerts.get(a.id), gone = resolvedAt.get(a.id);
      if (gone && gone >= String(a.updated_at || "")) continue;
      fresh.set(a.id, seen && newer(seen, a) ? seen : a);
    }
    state.alerts = fresh;
    renderAlerts();
    refreshAll();
  }

  async function loadMaintenance() {
    try { state.windows = (await api("/maintenance")).items; } catch (e) { state.windows = []; }
  }

  function onAlertEvent(e) {
    const a = e.alert;
    if (!a) return;
    const seen = state.alerts.get(a.id);
    if (seen && newer(seen, a)) return;
    if (a.state === "resolved") { state.alerts.delete(a.id); resolvedAt.set(a.id, String(a.updated_at || "")); }
    else state.alerts.set(a.id, a);
    renderAlerts();
    const s = state.sensors.get(a.sensor_id);
    if (s) { refresh(s, Date.now()); state.tableDirty = true; }
  }

  let alertsDrawPending = false;
  /** Redraw the alert list at most every 100 ms however many alert changes arrive (and re-index them). */
  function renderAlerts() {
    indexAlerts();
    if (alertsDrawPending) return;
    alertsDrawPending = true;
    setTimeout(() => { alertsDrawPending = false; drawAlerts(); }, 100);
  }

  function drawAlerts() {
    const list = $("alert-list");
    const items = [...state.alerts.values()].sort((a, b) => (a.state === b.state ? 0 : a.state === "open" ? -1 : 1) ||
      String(b.last_triggered_at).localeCompare(String(a.last_triggered_at)));
    $("alert-count").textContent = "(" + items.length + ")";
    list.innerHTML = "";
    for (const a of items.slice(0, 200)) {
      const li = document.createElement("li");
      li.dataset.alert = a.id; li.dataset.state = a.state; li.dataset.sensor = a.sensor_id;
      const when = a.last_triggered_at ? new Date(a.last_triggered_at).toLocaleString() : "";
      const last = a.triggers && a.triggers.length ? a.triggers[a.triggers.length - 1] : null;
      li.innerHTML = '<span class="sev sev-' + a.severity + '">' + a.severity + '</span> <span class="what">' +
        escapeHtml(a.sensor_id) + " · " + escapeHtml(a.metric) + " · " + escapeHtml(a.detector) +
        (last && last.value !== null ? " · " + triggerText(a.detector, a.metric, last.value) : "") + "</span>" +
        '<div class="help">' + escapeHtml(when) + (a.acknowledged_by ? " · acknowledged by " + escapeHtml(a.acknowledged_by) : "") + "</div>";
      const row = document.createElement("div");
      row.className = "controls";
      const label = a.sensor_id + " " + a.metric + " " + a.detector + " alert " + a.id;
      row.append(
        button("Show", "Show sensor " + a.sensor_id, () => select(a.sensor_id, a.metric), false, "show"),
        button("Acknowledge", "Acknowledge " + label, () => act(a, "ack"), a.state !== "open", "ack"),
        button("Resolve", "Resolve " + label, () => act(a, "resolve"), false, "resolve"),
        button("Maintenance 1 h", "Start one hour of maintenance for " + a.sensor_id, () => maintenance(a.sensor_id, 1, "from alert " + a.id), false, "maint"));
      li.append(row);
      list.append(li);
    }
  }

  function button(text, label, onClick, disabled, action) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.setAttribute("aria-label", label);
    if (action) b.dataset.action = action;
    b.disabled = !!disabled;
    b.addEventListener("click", onClick);
    return b;
  }

  async function act(a, what) {
    try {
      const done = await api("/alerts/" + a.id + "/" + what, { method: "POST" });
      if (done.state === "resolved") state.alerts.delete(done.id); else state.alerts.set(done.id, done);
      renderAlerts(); refreshAll();
      say("Alert " + a.id + " " + (what === "ack" ? "acknowledged" : "resolved") + " by " + (done.acknowledged_by || done.resolved_by || "you") + ".", "ok");
    } catch (e) {
      say(explain(e), "error");
    }
  }

  async function maintenance(sensor, hours, reason) {
    const now = new Date();
    try {
      await api("/maintenance", { method: "POST", body: { sensor, starts_at: now.toISOString(),
        ends_at: new Date(now.getTime() + hours * 3600e3).toISOString(), reason: reason || "set from the live page" } });
      await loadMaintenance(); refreshAll();
      say("Maintenance for " + sensor + " for " + hours + " h started.", "ok");
    } catch (e) {
      say(explain(e), "error");
    }
  }

  // -- sensor table -------------------------------------------------------------------------------

  function renderTable() {
    if (!state.tableDirty) return;
    state.tableDirty = false;
    const q = $("sensor-filter").value.trim().toLowerCase(), want = $("status-filter").value;
    const rank = (st) => STATUSES.indexOf(st);
    const rows = [...state.sensors.values()].filter((s) => (!want || s.status === want) &&
      (!q || s.reg.id.toLowerCase().includes(q) || (s.reg.name || "").toLowerCase().includes(q) || (s.reg.area || "").toLowerCase().includes(q)))
      .sort((a, b) => rank(a.status) - rank(b.status) || a.reg.id.localeCompare(b.reg.id)).slice(0, 200);
    const m = state.colourMetric;
    const html = rows.map((s) => {
      const v = s.latest[m];
      const value = v ? fmt(v[1]) + " " + escapeHtml(unitOf(m)) + " · " + bandName(bandOf(m, v[1])) : "–";
      const t = v ? new Date(v[0]).toLocaleTimeString() : "–";
      return '<tr data-sensor="' + escapeHtml(s.reg.id) + '" data-status="' + s.status + '" data-value="' + (v ? v[1] : "") + '">' +
        '<td><button type="button" class="link" data-select="' + escapeHtml(s.reg.id) + '">' + escapeHtml(s.reg.id) + "</button> " +
        escapeHtml(s.reg.name || "") + "</td><td>" + escapeHtml(s.reg.area || "") + '</td><td class="st st-' + s.status + '">' + s.status +
        "</td><td>" + escapeHtml(m) + " " + value + "</td><td>" + t + "</td></tr>";
    }).join("");
    $("sensor-table").tBodies[0].innerHTML = html;
  }

  // -- sensor detail and chart ------------------------------------------------------------------------

  async function select(id, metric) {
    const s = state.sensors.get(id);
    if (!s) return;
    const metrics = Object.keys(s.reg.metrics || {}).concat(Object.keys(s.latest)).filter((m, i, a) => a.indexOf(m) === i).sort();
    metric = metric || (metrics.includes(state.colourMetric) ? state.colourMetric : metrics[0]);
    state.selected = { id, metric };
    $("detail-hint").hidden = true;
    $("detail-body").hidden = false;
    $("detail-h").textContent = "Sensor " + s.reg.name + " (" + id + ")";
    $("detail-info").textContent = [s.reg.area && "area " + s.reg.area, s.reg.type, "status " + s.status,
      s.reg.lat.toFixed(4) + ", " + s.reg.lon.toFixed(4)].filter(Boolean).join(" · ");
    $("detail-metric").innerHTML = metrics.map((m) => "<option" + (m === metric ? " selected" : "") + ">" + escapeHtml(m) + "</option>").join("");
    await loadChart();
  }

  async function loadChart() {
    const sel = state.selected;
    if (!sel) return;
    const hours = Number($("detail-range").value);
    const end = Date.now(), start = end - hours * 3600e3;
    const startIso = new Date(start).toISOString();
    const bucket = hours > 6 ? "&bucket=5m&agg=mean" : "";
    const chart = state.chart = { id: sel.id, metric: sel.metric, start, end, points: [], alerts: [], bucketed: !!bucket };
    try {
      const page = await api("/readings?sensor=" + encodeURIComponent(sel.id) + "&metric=" + encodeURIComponent(sel.metric) +
        "&start=" + encodeURIComponent(startIso) + "&limit=10000" + bucket);
      chart.points = page.items.map((r) => [Date.parse(r.ts || r.bucket), r.value !== undefined ? r.value : r.mean]).filter((p) => p[1] !== null);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) say(explain(e), "error");
    }
    if (state.key && state.config.alerts) {
      try {
        const page = await api("/alerts?sensor=" + encodeURIComponent(sel.id) + "&metric=" + encodeURIComponent(sel.metric) +
          "&since=" + encodeURIComponent(startIso) + "&limit=200");
        chart.alerts = page.items;
      } catch (e) { chart.alerts = []; }
    }
    if (state.chart === chart) drawChart();
  }

  function chartAppend(ts, value) {
    const c = state.chart;
    if (!c || c.bucketed) return;
    c.points.push([ts, value]);
    c.end = Math.max(c.end, ts);
    drawChart();
  }

  function drawChart() {
    const c = state.chart, svg = $("chart");
    const W = 640, H = 220, L0 = 44, R0 = 8, T0 = 8, B0 = 22;
    const pts = c.points;
    const unit = unitOf(c.metric);
    const keep = [...svg.querySelectorAll("title, desc")];
    svg.innerHTML = "";
    keep.forEach((n) => svg.append(n));
    const marks = [];
    for (const a of c.alerts) for (const t of (a.triggers || [])) marks.push([Date.parse(t.ts), t.value, a]);
    const values = pts.map((p) => p[1]).concat(marks.map((m) => m[1]).filter((v) => v !== null));
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!values.length) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 1; hi += 1; }
    const x = (t) => L0 + (t - c.start) / Math.max(1, c.end - c.start) * (W - L0 - R0);
    const y = (v) => T0 + (hi - v) / (hi - lo) * (H - T0 - B0);
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4;
      parts.push('<line class="grid" x1="' + L0 + '" x2="' + (W - R0) + '" y1="' + y(v) + '" y2="' + y(v) + '"/>' +
        '<text class="axis" x="' + (L0 - 4) + '" y="' + (y(v) + 4) + '" text-anchor="end">' + fmt(v) + "</text>");
    }
    parts.push('<text class="axis" x="' + L0 + '" y="' + (H - 6) + '">' + new Date(c.start).toLocaleTimeString() + "</text>" +
      '<text class="axis" x="' + (W - R0) + '" y="' + (H - 6) + '" text-anchor="end">' + new Date(c.end).toLocaleTimeString() + "</text>");
    for (const a of c.alerts) {
      const a0 = Date.parse(a.opened_at || a.last_triggered_at), a1 = a.resolved_at ? Date.parse(a.resolved_at) : c.end;
      if (a0 && a1 >= c.start) parts.push('<rect class="alert-span" x="' + x(Math.max(a0, c.start)) + '" y="' + T0 + '" width="' +
        Math.max(2, x(a1) - x(Math.max(a0, c.start))) + '" height="' + (H - T0 - B0) + '"><title>' + escapeHtml(a.detector + " alert " + a.id + " (" + a.state + ")") + "</title></rect>");
    }
    if (pts.length) {
      parts.push('<polyline class="line" points="' + pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") + '"/>');
    }
    for (const [t, v, a] of marks) {
      if (v === null || t < c.start) continue;
      const cx = x(t), cy = y(v);
      parts.push('<path class="alert-mark" data-alert="' + a.id + '" d="M' + cx + "," + (cy - 7) + " l6,11 l-12,0 z" + '"><title>' +
        escapeHtml(a.detector + " alert " + a.id + ": " + fmt(v) + " " + unit) + "</title></path>");
    }
    svg.insertAdjacentHTML("beforeend", parts.join(""));
    const desc = pts.length ? c.metric + " of " + c.id + ": " + pts.length + " points from " + fmt(Math.min(...pts.map((p) => p[1]))) +
      " to " + fmt(Math.max(...pts.map((p) => p[1]))) + " " + unit + ", latest " + fmt(pts[pts.length - 1][1]) + " " + unit +
      "; " + c.alerts.length + " alert(s) marked as red triangles." : "No readings of " + c.metric + " in this range.";
    $("chart-desc").textContent = desc;
    $("chart-title").textContent = c.metric + " of " + c.id;
    $("chart-caption").textContent = desc;
    svg.dataset.points = String(pts.length);
    svg.dataset.alerts = String(marks.length);
  }

  // -- data quality -----------------------------------------------------------------------------------

  async function loadQuality() {
    const body = $("quality-body");
    try {
      const q = await api("/quality?period=P1D");
      const reasons = {};
      for (const s of q.series) for (const [r, n] of Object.entries(s.quarantined || {})) reasons[r] = (reasons[r] || 0) + n;
      const pct = (x) => x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %";
      // a series without a registered interval has unknown gaps (null), not 0: say so instead of a count
      const gaps = (n, unknown) => n === null || n === undefined ? '<span title="no interval registered">unknown</span>'
        : unknown ? n + ' <span title="' + unknown + ' series without a registered interval not counted">(+' + unknown + " unknown)</span>" : String(n);
      const areas = q.areas.map((a) => "<tr><td>" + escapeHtml(a.area || "(none)") + "</td><td>" + a.series + "</td><td>" + pct(a.completeness) +
        "</td><td>" + gaps(a.gap_count, a.series_without_interval) + "</td><td>" + a.late + "</td><td>" + Object.values(a.quarantined || {}).reduce((x, y) => x + y, 0) + "</td></tr>").join("");
      const worst = q.series.filter((s) => s.completeness !== null).sort((a, b) => a.completeness - b.completeness).slice(0, 8)
        .map((s) => "<tr><td>" + escapeHtml(s.sensor_id) + "</td><td>" + escapeHtml(s.metric) + "</td><td>" + pct(s.completeness) +
          "</td><td>" + gaps(s.gap_count, s.gap_count === null ? 1 : 0) + "</td><td>" + (s.last_seen ? new Date(s.last_seen).toLocaleString() : "never") + "</td></tr>").join("");
      const quarantine = Object.keys(reasons).length ? Object.entries(reasons).sort((a, b) => b[1] - a[1])
        .map(([r, n]) => "<li>" + escapeHtml(r) + ": " + n + "</li>").join("") : "<li>none</li>";
      body.innerHTML = '<table id="quality-areas"><caption class="help">By area</caption><thead><tr><th scope="col">Area</th><th scope="col">Series</th>' +
        '<th scope="col">Completeness</th><th scope="col">Gaps</th><th scope="col">Late</th><th scope="col">Quarantined</th></tr></thead><tbody>' +
        areas + "</tbody></table>" +
        '<h3 class="help">Quarantined readings by reason</h3><ul id="quality-quarantine">' + quarantine + "</ul>" +
        '<table id="quality-worst"><caption class="help">Least complete series</caption><thead><tr><th scope="col">Sensor</th><th scope="col">Metric</th>' +
        '<th scope="col">Completeness</th><th scope="col">Gaps</th><th scope="col">Last seen</th></tr></thead><tbody>' + worst + "</tbody></table>";
    } catch (e) {
      body.innerHTML = '<p class="help">' + escapeHtml(explain(e)) + "</p>";
    }
  }

  // -- start ------------------------------------------------------------------------------------

  function stop() {
    state.generation++;
    for (const c of state.streams) c.abort();
    state.streams = [];
  }

  async function start() {
    stop();
    const canRead = state.key || state.config.open_data;
    if (!canRead) {
      setConn("idle", "Enter an API key to see the sensors (this service does not publish open data without one).");
      return;
    }
    setConn("idle", "Loading…");
    try {
      await loadSensors();
    } catch (e) {
      setConn("error", explain(e));
      return;
    }
    if (alertsWanted()) {
      await loadMaintenance();   // the open alerts are read when the stream's snapshot arrives
    } else {
      $("alert-list").innerHTML = "<li class='help'>" + (state.config.alerts ? "Alerts need a viewer key." : "Alerts do not run on this service (detection is off).") + "</li>";
    }
    // one stream per page (readings and alert changes): browsers allow 6 connections per host in all
    keepStreaming("Live", "/live/stream", onLive);
    loadQuality();
    state.started = true;
  }

  // A tab hidden for a while lets go of its stream (a browser has 6 connections per host for all
  // its tabs); shown again, it reconnects and starts from a fresh snapshot and alert list.
  const HIDDEN_PAUSE_MS = 30000;
  let hiddenTimer = null, paused = false;
  function onVisibility() {
    if (document.visibilityState === "hidden") {
      if (!hiddenTimer && state.started) hiddenTimer = setTimeout(() => {
        hiddenTimer = null;
        if (document.visibilityState === "hidden") { stop(); paused = true; hook.paused = true; setConn("idle", "Paused while hidden"); }
      }, HIDDEN_PAUSE_MS);
      return;
    }
    if (hiddenTimer) { clearTimeout(hiddenTimer); hiddenTimer = null; }
    if (paused) { paused = false; hook.paused = false; keepStreaming("Live", "/live/stream", onLive); }
  }

  async function main() {
    document.addEventListener("visibilitychange", onVisibility);
    state.config = await api("/live/config");
    buildMap();
    $("key").value = "";
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const k = $("key").value.trim();
      if (!k) return;
      state.key = k; sessionStorage.setItem(KEY_STORE, k); $("key").value = "";
      say("Key set for this tab.", "ok");
      start();
    });
    $("key-forget").addEventListener("click", () => {
      state.key = ""; sessionStorage.removeItem(KEY_STORE); say("Key forgotten.", "ok");
      stop(); state.alerts.clear(); renderAlerts(); start();
    });
    $("colour-metric").addEventListener("change", (ev) => { state.colourMetric = ev.target.value; legend(); refreshAll(); });
    $("sensor-filter").addEventListener("input", () => { state.tableDirty = true; renderTable(); });
    $("status-filter").addEventListener("change", () => { state.tableDirty = true; renderTable(); });
    $("sensor-table").addEventListener("click", (ev) => { const id = ev.target.dataset && ev.target.dataset.select; if (id) select(id); });
    $("detail-metric").addEventListener("change", (ev) => { if (state.selected) { state.selected.metric = ev.target.value; loadChart(); } });
    $("detail-range").addEventListener("change", loadChart);
    $("maint-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (state.selected) maintenance(state.selected.id, Number($("maint-hours").value), $("maint-reason").value);
    });
    setInterval(renderTable, 1000);
    setInterval(() => { if (state.started) refreshAll(); }, 5000);            // silence by the clock
    setInterval(() => { if (state.started) loadQuality(); }, 60000);
    setInterval(() => { if (state.started && state.key && state.config.alerts) loadMaintenance(); }, 60000);
    await start();
  }

  main().catch((e) => setConn("error", explain(e)));
})();
