"use strict";
const $ = (sel) => document.querySelector(sel);

function mmss(seconds) {
  if (seconds == null) return "";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2b59c3", "#d1495b", "#edae49", "#00798c", "#66a182", "#8e6c8a", "#f08a4b", "#3d405b", "#9bc53d", "#c3423f"];
let pathStart = null;  // {id, name}: the first end of a "Path to…" between two hits

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function heat(t) {  // 0 (worst window) .. 1 (best): pale grey-blue to deep orange
  const a = [226, 230, 240], b = [230, 90, 20];
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(", ")})`;
}

async function drawStrip(strip, audio, trackId, context) {
  const params = new URLSearchParams(context);
  try {
    const windows = await api(`/api/tracks/${trackId}/windows?${params}`);
    const scores = windows.map((w) => w.score);
    const lo = Math.min(...scores), hi = Math.max(...scores);
    const best = scores.indexOf(hi);
    windows.forEach((w, i) => {
      // within a track: worst to best window; a track of one sound: its score itself
      const t = hi - lo > 1e-6 ? (w.score - lo) / (hi - lo) : Math.min(1, Math.max(0, w.score));
      const label = `${mmss(w.start)}–${mmss(w.end)}: match ${w.score.toFixed(3)}`;
      const button = el("button", { type: "button", className: i === best ? "win best" : "win", title: label });
      button.setAttribute("aria-label", `Play from ${label}`);
      button.dataset.start = w.start;
      button.dataset.score = w.score;
      button.style.background = heat(t);
      button.addEventListener("click", () => { audio.currentTime = w.start; audio.play().catch(() => {}); });
      strip.append(button);
    });
  } catch (err) {
    strip.replaceChildren(el("span", { className: "error", textContent: err.message }));
  }
}

function renderHits(hits, emptyMessage, context) {
  const list = $("#results");
  list.replaceChildren();
  if (!hits.length) {
    $("#status").textContent = emptyMessage;
    return;
  }
  $("#status").textContent = `${hits.length} result${hits.length === 1 ? "" : "s"}`;
  for (const hit of hits) {
    const name = hit.artist ? `${hit.artist} – ${hit.title}` : hit.title;
    const audio = el("audio", { controls: true, preload: "none" });
    audio.src = `/api/tracks/${hit.track_id}/audio#t=${hit.segment_start}`;
    audio.setAttribute("aria-label", `Play ${name} from ${mmss(hit.segment_start)}`);
    const more = el("button", { type: "button", className: "secondary", textContent: "More like this" });
    more.addEventListener("click", () => similar(hit.track_id, name));
    const path = el("button", { type: "button", className: "secondary path",
                                textContent: pathStart ? "Path to here" : "Path from here" });
    path.addEventListener("click", () => pathFrom(hit.track_id, name));
    const tags = el("span");
    for (const t of hit.tags || []) tags.append(el("span", { className: "tag", textContent: t.label }), " ");
    const meta = [hit.album, hit.year, mmss(hit.duration)].filter(Boolean).join(" · ");
    const title = el("h3", { textContent: `${hit.rank}. ${name}` });
    if (hit.matched) title.append(el("span", { className: "matched", textContent: `matched: ${hit.matched}` }));
    const strip = el("div", { className: "strip" });
    strip.setAttribute("aria-label", "How well each part of the track matches");
    list.append(el("li", { className: "hit" }, title,
      el("div", { className: "meta", textContent: `${meta} — best match ${mmss(hit.segment_start)}–${mmss(hit.segment_end)} · score ${hit.score.toFixed(3)}` }),
      strip,
      el("div", { className: "row" }, audio, more, path, tags)));
    if (context) drawStrip(strip, audio, hit.track_id, context);
  }
}

function showError(err) {
  $("#results").replaceChildren();
  $("#status").innerHTML = "";
  $("#status").append(el("span", { className: "error", textContent: err.message }));
}

function varietyOf(form) {
  const out = {};
  const data = new FormData(form);
  const cap = data.get("max_per_artist");
  if (cap) out.max_per_artist = Number(cap);
  if (data.get("dedupe")) out.dedupe = true;
  const variation = Number(data.get("variation") || 0);
  if (variation > 0) out.variation = variation;
  if (data.get("order") === "smooth") out.order = "smooth";
  for (const key of ["exclude_artist", "exclude_genre"]) {
    const value = String(data.get(key) || "").trim();
    if (value) out[key] = [value];
  }
  return out;
}

async function search(event) {
  if (event) event.preventDefault();
  const form = $("#search-form");
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (key === "variation" && Number(value) === 0) continue;
    if (key === "order" && value === "score") continue;
    if (String(value).trim()) params.append(key, String(value).trim());
  }
  if (!params.get("q")) return;
  $("#status").textContent = "Searching…";
  const context = { q: params.get("q") };
  for (const n of params.getAll("not")) context.not = n;
  if (params.get("lexical") === "false") context.lexical = "false";
  try {
    renderHits(await api(`/api/search?${params}`), "Nothing matches this search and these filters.", context);
  } catch (err) {
    showError(err);
  }
}

async function similar(trackId, name) {
  $("#status").textContent = `Tracks like ${name}…`;
  try {
    const k = Number(new FormData($("#search-form")).get("k")) || 10;
    const hits = await api("/api/similar", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify({ track_id: trackId, k, ...varietyOf($("#search-form")) }) });
    renderHits(hits, "No other tracks to compare with.", { like: trackId });
    $("#status").textContent = `Tracks like ${name}: ${hits.length}`;
    $("#results").querySelector("button")?.focus();
  } catch (err) {
    $("#status").textContent = err.message;
  }
}

async function pathFrom(trackId, name) {
  if (!pathStart || pathStart.id === trackId) {
    pathStart = { id: trackId, name };
    $("#status").textContent = `Path from ${name}: now pick the track to end at (“Path to here”).`;
    for (const b of document.querySelectorAll(".hit button.path")) b.textContent = "Path to here";
    return;
  }
  const from = pathStart;
  pathStart = null;
  $("#status").textContent = `A path from ${from.name} to ${name}…`;
  try {
    const data = new FormData($("#search-form"));
    const n = Math.max(2, Number(data.get("k")) || 10);
    const params = new URLSearchParams({ start: from.id, end: trackId, n });
    if (data.get("max_per_artist")) params.set("max_per_artist", "1");
    if (data.get("dedupe")) params.set("dedupe", "true");
    const hits = await api(`/api/path?${params}`);
    renderHits(hits, "No path between these tracks.", null);
    $("#status").textContent = `From ${from.name} to ${name}: ${hits.length} tracks `;
    const link = el("a", { textContent: "Download playlist", download: "musicsearch-path.m3u8",
                           href: `/api/playlist.m3u8?ids=${hits.map((h) => h.track_id).join(",")}` });
    $("#status").append(link);
  } catch (err) {
    showError(err);
  }
}

// the library map ---------------------------------------------------------------
const mapState = { points: [], selected: new Set() };

function colourBy(vocab) {
  const labels = [...new Set(mapState.points.map((p) => p.tags[vocab]).filter(Boolean))].sort();
  const colourOf = (p) => {
    const i = labels.indexOf(p.tags[vocab]);
    return i < 0 ? "#9aa0ad" : PALETTE[i % PALETTE.length];
  };
  for (const c of document.querySelectorAll("#map circle")) c.setAttribute("fill", colourOf(mapState.points[Number(c.dataset.index)]));
  $("#map-legend").replaceChildren(...labels.map((label, i) => {
    const dot = el("span");
    dot.style.background = PALETTE[i % PALETTE.length];
    return el("li", {}, dot, label);
  }));
}

function updateSelection() {
  for (const c of document.querySelectorAll("#map circle")) {
    c.classList.toggle("selected", mapState.selected.has(Number(c.dataset.trackId)));
  }
  const link = $("#map-playlist");
  const ids = mapState.points.map((p) => p.track_id).filter((id) => mapState.selected.has(id));
  link.hidden = !ids.length;
  link.textContent = `Download playlist (${ids.length} track${ids.length === 1 ? "" : "s"})`;
  link.href = ids.length ? `/api/playlist.m3u8?ids=${ids.join(",")}` : "";
}

function svgPoint(svg, event) {
  const pt = svg.createSVGPoint();
  pt.x = event.clientX;
  pt.y = event.clientY;
  return pt.matrixTransform(svg.getScreenCTM().inverse());
}

function drawMap(points) {
  mapState.points = points;
  const svg = $("#map");
  svg.replaceChildren();
  points.forEach((p, i) => {
    const name = p.artist ? `${p.artist} – ${p.title}` : p.title;
    const dot = svgEl("circle", { cx: 40 + p.x * 920, cy: 40 + (1 - p.y) * 520, r: 7, fill: "#2b59c3" });
    dot.dataset.index = i;
    dot.dataset.trackId = p.track_id;
    dot.append(svgEl("title"));
    dot.firstChild.textContent = name;
    dot.addEventListener("click", () => {
      const audio = $("#map-audio");
      audio.src = `/api/tracks/${p.track_id}/audio`;
      audio.play().catch(() => {});
      $("#map-status").textContent = `Playing ${name}`;
    });
    svg.append(dot);
  });
  const scale = 1000 / Math.max(1, svg.clientWidth);  // dots of about 7 px however wide the map is drawn
  for (const c of svg.querySelectorAll("circle")) c.setAttribute("r", Math.min(24, 7 * Math.max(1, scale)));
  const vocabs = [...new Set(points.flatMap((p) => Object.keys(p.tags)))].sort();
  const select = $("#map-colour");
  select.replaceChildren(el("option", { value: "", textContent: "nothing" }),
                         ...vocabs.map((v) => el("option", { value: v, textContent: v })));
  if (vocabs.length) select.value = vocabs.includes("genre") ? "genre" : vocabs[0];
  colourBy(select.value);
  $("#map-status").textContent = `${points.length} tracks`;
}

function initMapSelection() {
  const svg = $("#map");
  let origin = null, box = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.tagName === "circle") return;
    origin = svgPoint(svg, event);
    box = svgEl("rect", { class: "lasso", x: origin.x, y: origin.y, width: 0, height: 0 });
    svg.append(box);
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!origin) return;
    const p = svgPoint(svg, event);
    box.setAttribute("x", Math.min(p.x, origin.x));
    box.setAttribute("y", Math.min(p.y, origin.y));
    box.setAttribute("width", Math.abs(p.x - origin.x));
    box.setAttribute("height", Math.abs(p.y - origin.y));
  });
  svg.addEventListener("pointerup", (event) => {
    if (!origin) return;
    const p = svgPoint(svg, event);
    const [x0, x1] = [Math.min(p.x, origin.x), Math.max(p.x, origin.x)];
    const [y0, y1] = [Math.min(p.y, origin.y), Math.max(p.y, origin.y)];
    mapState.selected = new Set();
    for (const c of svg.querySelectorAll("circle")) {
      const cx = Number(c.getAttribute("cx")), cy = Number(c.getAttribute("cy"));
      if (cx >= x0 && cx <= x1 && cy >= y0 && cy <= y1) mapState.selected.add(Number(c.dataset.trackId));
    }
    box.remove();
    origin = box = null;
    updateSelection();
    $("#map-status").textContent = `${mapState.selected.size} selected`;
  });
  $("#map-colour").addEventListener("change", (event) => colourBy(event.target.value));
}

async function loadMap() {
  try {
    const points = await api("/api/map");
    if (!points.length) { $("#map-panel").hidden = true; return; }
    drawMap(points);
  } catch (err) {
    $("#map-status").textContent = err.message;
  }
}

async function classify(event) {
  event.preventDefault();
  const status = $("#classify-status");
  status.textContent = "Listening…";
  $("#scores").replaceChildren();
  try {
    const result = await api("/api/classify", { method: "POST", body: new FormData($("#classify-form")) });
    status.textContent = `Top label: ${result.top_label} (${(result.confidence * 100).toFixed(1)} %)`;
    for (const { label, score } of result.labels) {
      const bar = el("div", { className: "bar" });
      bar.style.width = `${(score * 100).toFixed(1)}%`;
      $("#scores").append(el("li", {}, el("span", { textContent: label }), el("div", {}, bar),
                             el("span", { textContent: `${(score * 100).toFixed(1)} %` })));
    }
  } catch (err) {
    status.innerHTML = "";
    status.append(el("span", { className: "error", textContent: err.message }));
  }
}

async function init() {
  $("#search-form").addEventListener("submit", search);
  $("#classify-form").addEventListener("submit", classify);
  initMapSelection();
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => { $("#q").value = chip.textContent; search(); });
  }
  try {
    const info = await api("/api/info");
    $("#library").textContent = info.tracks
      ? `${info.tracks} tracks indexed`
      : "The index is empty: run “musicsearch index FOLDER” first, then reload this page.";
    if (info.tracks) loadMap(); else $("#map-panel").hidden = true;
  } catch (err) {
    $("#library").textContent = err.message;
  }
  $("#q").focus();
}

init();
