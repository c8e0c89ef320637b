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

function renderHits(hits, emptyMessage) {
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
    const tags = el("span");
    for (const t of hit.tags || []) tags.append(el("span", { className: "tag", textContent: t.label }), " ");
    const meta = [hit.album, hit.year, mmss(hit.duration)].filter(Boolean).join(" · ");
    list.append(el("li", { className: "hit" },
      el("h3", { textContent: `${hit.rank}. ${name}` }),
      el("div", { className: "meta", textContent: `${meta} — best match ${mmss(hit.segment_start)}–${mmss(hit.segment_end)} · score ${hit.score.toFixed(3)}` }),
      el("div", { className: "row" }, audio, more, tags)));
  }
}

async function search(event) {
  if (event) event.preventDefault();
  const form = $("#search-form");
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (String(value).trim()) params.append(key, String(value).trim());
  if (!params.get("q")) return;
  $("#status").textContent = "Searching…";
  try {
    renderHits(await api(`/api/search?${params}`), "Nothing matches this search and these filters.");
  } catch (err) {
    $("#results").replaceChildren();
    $("#status").innerHTML = "";
    $("#status").append(el("span", { className: "error", textContent: err.message }));
  }
}

async function similar(trackId, name) {
  $("#status").textContent = `Tracks like ${name}…`;
  try {
    const k = Number(new FormData($("#search-form")).get("k")) || 10;
    const hits = await api("/api/similar", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify({ track_id: trackId, k }) });
    renderHits(hits, "No other tracks to compare with.");
    $("#status").textContent = `Tracks like ${name}: ${hits.length}`;
    $("#results").querySelector("button")?.focus();
  } catch (err) {
    $("#status").textContent = err.message;
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
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => { $("#q").value = chip.textContent; search(); });
  }
  try {
    const info = await api("/api/info");
    $("#library").textContent = info.tracks
      ? `${info.tracks} tracks indexed`
      : "The index is empty: run “musicsearch index FOLDER” first, then reload this page.";
  } catch (err) {
    $("#library").textContent = err.message;
  }
  $("#q").focus();
}

init();
