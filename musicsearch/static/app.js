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

function heat(t) {  // 0 (worst window) .. 1 (best): grey-blue (visible on the white card) to deep orange
  const a = [190, 199, 222], b = [230, 90, 20];
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(", ")})`;
}

async function drawStrip(strip, audio, trackId, context) {
  const params = new URLSearchParams(context);
  try {
    const windows = await api(`/api/tracks/${trackId}/windows?${params}`);
    if (!windows.length) throw new Error("no windows stored for this track");
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

// what each hit's window strip compares with: a function of the hit's position, or one
// context for all (the query's text, or the track the hits are like)
function renderHits(hits, emptyMessage, context) {
  const list = $("#results");
  list.replaceChildren();
  list.removeAttribute("aria-busy");
  if (!hits.length) {
    $("#status").textContent = emptyMessage;
    return;
  }
  $("#status").textContent = `${hits.length} result${hits.length === 1 ? "" : "s"}`;
  for (const hit of hits) {
    const name = hitName(hit);
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
    const tempo = hit.bpm ? `${Math.round(hit.bpm)} BPM` : "";
    const key = hit.key ? `${hit.camelot} ${hit.key}` : "";
    const meta = [hit.album, hit.year, mmss(hit.duration), tempo, key].filter(Boolean).join(" · ");
    const title = el("h3", { textContent: `${hit.rank}. ${name}` });
    if (hit.matched) title.append(el("span", { className: "matched", textContent: `matched: ${hit.matched}` }));
    const strip = el("div", { className: "strip" });
    strip.setAttribute("aria-label", "How well each part of the track matches");
    list.append(el("li", { className: "hit" }, title,
      el("div", { className: "meta", textContent: `${meta} — best match ${mmss(hit.segment_start)}–${mmss(hit.segment_end)} · score ${hit.score.toFixed(3)}` }),
      strip,
      el("div", { className: "row" }, audio, more, path, tags)));
    drawStrip(strip, audio, hit.track_id, typeof context === "function" ? context(hits.indexOf(hit)) : context);
  }
}

function showError(err) {
  $("#results").replaceChildren();
  $("#results").removeAttribute("aria-busy");
  $("#status").innerHTML = "";
  $("#status").append(el("span", { className: "error", textContent: err.message }));
}

// the address bar ----------------------------------------------------------------
// Every search, "More like this" and path has its URL (/?q=…&artist=…, /?like=ID,
// /?from=ID&to=ID), which reloads, bookmarks and shares; back and forward move between them.
// The URL's keys are the form's field names, which are /api/search's parameters.
const DEFAULTS = { k: "10", by: "track", order: "score", variation: "0" };
const VARIETY = ["max_per_artist", "dedupe", "variation", "order", "exclude_artist", "exclude_genre",
                 "bpm", "strict_bpm", "key", "key_compatible", "sound_only"];
let generation = 0;  // the latest run: an answer to an earlier one that comes later is dropped

function hitName(track) {
  return track.artist ? `${track.artist} – ${track.title}` : track.title;
}

function formParams() {  // the form's fields that differ from their defaults
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("#search-form"))) {
    const text = String(value).trim();
    if (text && text !== DEFAULTS[key]) params.append(key, text);
  }
  return params;
}

function fillForm(params) {  // the form as a URL sets it; the query box keeps its text for a like or path URL
  const form = $("#search-form");
  const q = params.has("like") || params.has("from") ? form.elements.q.value : params.get("q") || "";
  form.reset();
  form.elements.q.value = q;
  let filtered = false;
  for (const field of form.elements) {
    if (!field.name || field.name === "q" || !params.has(field.name)) continue;
    const value = params.get(field.name);
    if (field.type === "checkbox") field.checked = value === field.value;
    else field.value = value;
    filtered = true;
  }
  if (filtered) form.querySelector("details").open = true;
}

function varietyOf(params) {
  const out = {};
  if (params.get("max_per_artist")) out.max_per_artist = Number(params.get("max_per_artist"));
  if (params.get("dedupe")) out.dedupe = true;
  const variation = Number(params.get("variation") || 0);
  if (variation > 0) out.variation = variation;
  if (params.get("order") === "smooth") out.order = "smooth";
  for (const key of ["bpm", "key", "key_compatible"]) if (params.get(key)) out[key] = params.get(key);
  for (const key of ["strict_bpm", "sound_only"]) if (params.get(key)) out[key] = true;
  for (const key of ["exclude_artist", "exclude_genre"]) {
    const values = params.getAll(key).filter(Boolean);
    if (values.length) out[key] = values;
  }
  return out;
}

function go(params, name) {  // a new history entry (the same URL again: none), then its run
  const url = `/?${params}`;
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
  run(params, name);
}

function runFromUrl() {  // on load and on back/forward
  const wanted = new URLSearchParams(location.search);
  fillForm(wanted);
  const params = formParams();
  for (const key of ["like", "from", "to"]) if (wanted.get(key)) params.set(key, wanted.get(key));
  run(params);
}

function run(params, name) {
  const gen = ++generation;
  const current = () => gen === generation;
  $("#results").setAttribute("aria-busy", "true");  // what is shown belongs to the search before
  if (params.get("like")) return showSimilar(params, current, name);
  if (params.get("from") && params.get("to")) return showPath(params, current);
  if (params.get("q")) return showSearch(params, current);
  $("#results").replaceChildren();
  $("#results").removeAttribute("aria-busy");
  $("#status").textContent = "";
  document.title = "musicsearch";
}

function search(event) {
  if (event) event.preventDefault();
  const params = formParams();
  if (params.get("q")) go(params);
}

function similar(trackId, name) {
  const params = new URLSearchParams({ like: trackId });
  for (const [key, value] of formParams()) if (key === "k" || VARIETY.includes(key)) params.append(key, value);
  go(params, name);
}

async function showSearch(params, current) {
  document.title = `${params.get("q")} – musicsearch`;
  $("#status").textContent = "Searching…";
  const context = [["q", params.get("q")], ...params.getAll("not").map((n) => ["not", n])];
  if (params.get("lexical") === "false") context.push(["lexical", "false"]);
  try {
    const hits = await api(`/api/search?${params}`);
    if (current()) renderHits(hits, "Nothing matches this search and these filters.", context);
  } catch (err) {
    if (current()) showError(err);
  }
}

async function showSimilar(params, current, name) {
  const trackId = Number(params.get("like"));
  $("#status").textContent = `Tracks like ${name || `track ${trackId}`}…`;
  try {
    name = name || hitName(await api(`/api/tracks/${trackId}`));
    const body = { track_id: trackId, k: Number(params.get("k")) || 10, ...varietyOf(params) };
    const hits = await api("/api/similar", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
    if (!current()) return;
    document.title = `Like ${name} – musicsearch`;
    renderHits(hits, "No other tracks to compare with.", { like: trackId });
    $("#status").textContent = `Tracks like ${name}: ${hits.length}`;
    $("#results").querySelector("button")?.focus();
  } catch (err) {
    if (current()) showError(err);
  }
}

function pathFrom(trackId, name) {
  if (!pathStart || pathStart.id === trackId) {
    pathStart = { id: trackId, name };
    $("#status").textContent = `Path from ${name}: now pick the track to end at (“Path to here”).`;
    for (const b of document.querySelectorAll(".hit button.path")) b.textContent = "Path to here";
    return;
  }
  const params = new URLSearchParams({ from: pathStart.id, to: trackId });
  pathStart = null;
  for (const [key, value] of formParams()) {
    if (["k", "max_per_artist", "dedupe", "sound_only"].includes(key)) params.append(key, value);
  }
  go(params);
}

async function showPath(params, current) {
  $("#status").textContent = "A path between two tracks…";
  const query = new URLSearchParams({ start: params.get("from"), end: params.get("to"),
                                      n: Math.max(2, Number(params.get("k")) || 10) });
  if (params.get("max_per_artist")) query.set("max_per_artist", "1");
  if (params.get("dedupe")) query.set("dedupe", "true");
  if (params.get("sound_only")) query.set("sound_only", "true");
  try {
    const hits = await api(`/api/path?${query}`);
    if (!current()) return;
    // each track's strip: how each part of it matches the track before it (the first: the one after)
    const neighbour = (i) => ({ like: hits[i > 0 ? i - 1 : Math.min(1, hits.length - 1)].track_id });
    renderHits(hits, "No path between these tracks.", neighbour);
    if (!hits.length) return;
    const [from, to] = [hitName(hits[0]), hitName(hits[hits.length - 1])];
    document.title = `${from} → ${to} – musicsearch`;
    $("#status").textContent = `From ${from} to ${to}: ${hits.length} tracks `;
    const link = el("a", { textContent: "Download playlist", download: "musicsearch-path.m3u8",
                           href: `/api/playlist.m3u8?ids=${hits.map((h) => h.track_id).join(",")}` });
    $("#status").append(link);
  } catch (err) {
    if (current()) showError(err);
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
  window.addEventListener("popstate", runFromUrl);
  if (location.search) runFromUrl();  // a bookmarked or shared search
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
