// imgsearch web page: plain JavaScript over the HTTP/JSON API of the same server (no libraries).
"use strict";

const PAGE = 50;           // results per page
const MAX_RESULTS = 1000;  // the server's max_k (offset + k)
const $ = (id) => document.getElementById(id);

const state = {
  mode: null,       // "text" | "similar" | "upload"
  text: "",
  id: "",           // similar to a stored image
  upload: null,     // the uploaded photo (Blob)
  labels: [],       // label filters (any of)
  seen: new Set(),  // ids shown, so a page never repeats one
  count: 0,
  done: false,
  busy: false,
  generation: 0,    // bumps on each new query; late answers of an old one are dropped
};

// -- the API -----------------------------------------------------------------------------------

function token() { return localStorage.getItem("imgsearch_token") || ""; }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(path, body, form) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method: payload === undefined ? "GET" : "POST", headers, body: payload });
  const data = await response.json().catch(() => null);
  if (response.status === 401) askToken();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function thumbnailUrl(id) { return `/v1/images/${encodeURIComponent(id)}/thumbnail`; }

function askToken() {
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
}

$("token-form").addEventListener("submit", () => {
  const value = $("token").value.trim();
  localStorage.setItem("imgsearch_token", value);
  // Thumbnails are <img> loads, which send no header: a same-site cookie carries the token.
  document.cookie = `imgsearch_token=${encodeURIComponent(value)}; path=/; SameSite=Strict`;
  route();
});

// -- rendering ---------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function card(hit, onOpen) {
  const label = hit.label || "";
  const score = Number(hit.score || 0);
  return el("button", { class: "card", type: "button", "data-id": hit.id, title: hit.uri || hit.id,
                        onclick: () => onOpen(hit) },
    scoreBar(score),
    el("img", { class: "thumb", src: thumbnailUrl(hit.id), alt: label || "image", decoding: "async" }),
    el("span", { class: "meta" },
      el("span", { class: label ? "label" : "label none" }, label || "no label"),
      el("span", { class: "score" }, score.toFixed(3))));
}

function scoreBar(score) {
  const bar = el("span", { class: "bar-score" });
  bar.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;  // CSSOM: allowed by the page's CSP
  return bar;
}

function setStatus(html) { $("status").innerHTML = html; }
function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function chip(text, count, pressed, onClick) {
  return el("button", { class: "chip", type: "button", "aria-pressed": String(pressed), onclick: onClick },
    text, count == null ? null : el("span", { class: "n" }, String(count)));
}

// -- queries -----------------------------------------------------------------------------------

function filter() { return state.labels.length ? { labels: state.labels } : undefined; }

async function fetchPage() {
  const offset = state.count;
  const k = Math.min(PAGE, MAX_RESULTS - offset);
  if (k <= 0) return { results: [] };
  if (state.mode === "text") {
    return api("/v1/query:searchText", { text: state.text, k, offset, filter: filter() });
  }
  if (state.mode === "similar") {
    return api("/v1/query:similarImages", { id: state.id, k, offset, filter: filter() });
  }
  const form = new FormData();
  form.append("image", state.upload, "photo");
  form.append("k", String(k));
  form.append("offset", String(offset));
  for (const label of state.labels) form.append("filter.labels", label);
  return api("/v1/query:similarImages", undefined, form);
}

async function loadMore() {
  if (state.busy || state.done || !state.mode) return;
  state.busy = true;
  const generation = state.generation;
  const started = performance.now();
  $("more").hidden = true;
  if (!state.count) setStatus('<span class="spinner"></span>Searching…');
  try {
    const page = await fetchPage();
    if (generation !== state.generation) return;
    const fresh = (page.results || []).filter((hit) => !state.seen.has(hit.id));
    const grid = $("results");
    for (const hit of fresh) {
      state.seen.add(hit.id);
      grid.append(card(hit, openDetail));
    }
    state.count += (page.results || []).length;
    state.done = fresh.length === 0 || (page.results || []).length < PAGE || state.count >= MAX_RESULTS;
    if (!state.seen.size) grid.append(el("div", { class: "empty" }, "No images match. Try other words or remove a filter."));
    describe(page, performance.now() - started);
  } catch (error) {
    if (generation !== state.generation) return;
    state.done = true;
    setStatus(`<span class="warn">${escapeHtml(error.message)}</span>`);
  } finally {
    if (generation === state.generation) {
      state.busy = false;
      $("more").hidden = state.done;
    }
  }
}

function describe(page, ms) {
  const what = state.mode === "text" ? `for <strong>${escapeHtml(state.text)}</strong>`
    : state.mode === "similar" ? "like the chosen image" : "like your photo";
  let text = `${plural(state.seen.size, "image")} ${what}` +
    (state.labels.length ? ` labelled ${state.labels.map((l) => `<strong>${escapeHtml(l)}</strong>`).join(" or ")}` : "") +
    ` <span class="muted">· ${Math.round(ms)} ms</span>`;
  if (page.unknownTerms && page.unknownTerms.length) {
    text += ` <span class="warn">· unknown: ${page.unknownTerms.map(escapeHtml).join(", ")}</span>`;
  }
  if (page.ignoredTerms && page.ignoredTerms.length) {
    text += ` <span class="muted">· ignored: ${page.ignoredTerms.map(escapeHtml).join(", ")}</span>`;
  }
  setStatus(text);
}

async function showFacets() {
  const box = $("facets");
  box.replaceChildren();
  if (!state.mode) return;
  let counts = [];
  try {
    counts = (await api("/v1/query:facet", { limit: 12 })).counts || [];
  } catch (error) {
    return; // a server without facets: no label filters
  }
  counts = counts.filter((c) => c.value);
  if (counts.length < 2 && !state.labels.length) return;
  for (const { value, count } of counts) {
    const on = state.labels.includes(value);
    box.append(chip(value, count, on, () => {
      state.labels = on ? state.labels.filter((l) => l !== value) : [...state.labels, value];
      navigate(false);
    }));
  }
}

function reset(mode) {
  state.generation += 1;
  state.mode = mode;
  state.seen = new Set();
  state.count = 0;
  state.done = false;
  state.busy = false;
  $("results").replaceChildren();
  $("intro").hidden = Boolean(mode);
  $("query-image").hidden = mode !== "upload";
  $("more").hidden = true;
  setStatus("");
}

// -- the URL is the state: ?q=words, ?similar=ID, &label=L (repeatable) ----------------------

function navigate(push = true) {
  const params = new URLSearchParams();
  if (state.mode === "text") params.set("q", state.text);
  if (state.mode === "similar") params.set("similar", state.id);
  for (const label of state.labels) params.append("label", label);
  const url = params.toString() ? `/?${params}` : "/";
  if (state.mode !== "upload") history[push ? "pushState" : "replaceState"](null, "", url);
  run();
}

function route() {
  const params = new URLSearchParams(location.search);
  state.labels = params.getAll("label");
  if (params.get("q")) {
    state.text = params.get("q");
    state.mode = "text";
  } else if (params.get("similar")) {
    state.id = params.get("similar");
    state.mode = "similar";
  } else if (state.mode !== "upload") {
    state.mode = null;
  }
  $("q").value = state.mode === "text" ? state.text : "";
  run();
}

function run() {
  reset(state.mode);
  if (!state.mode) { showIntro(); return; }
  document.title = state.mode === "text" ? `${state.text} · imgsearch` : "Similar images · imgsearch";
  showFacets();
  loadMore();
}

async function showIntro() {
  document.title = "imgsearch";
  $("facets").replaceChildren();
  const box = $("suggestions");
  box.replaceChildren();
  try {
    const stats = await api("/v1/indexer:getStats");
    const model = stats.model || {};
    $("stats").textContent = `${Number(stats.images).toLocaleString()} images · ${model.cnn || ""} · ${model.head || ""} head · ${Number(stats.words).toLocaleString()} words`;
  } catch (error) {
    $("stats").textContent = error.message;
  }
  let words = [];
  try {
    words = ((await api("/v1/query:facet", { limit: 8 })).counts || []).map((c) => c.value).filter(Boolean);
  } catch (error) { /* no facets on this server */ }
  if (!words.length) words = ["dog", "cat", "beach", "coffee", "mountain", "guitar"];
  for (const word of words) box.append(chip(word, null, false, () => { state.text = word; state.mode = "text"; state.labels = []; $("q").value = word; navigate(); }));
}

// -- detail view -------------------------------------------------------------------------------

async function openDetail(hit) {
  const dialog = $("detail");
  $("detail-img").src = thumbnailUrl(hit.id);
  $("detail-img").alt = hit.label || "image";
  $("detail-title").textContent = hit.label || "Unlabelled image";
  const meta = $("detail-meta");
  meta.replaceChildren();
  const rows = [["score", Number(hit.score || 0).toFixed(4)], ["source", hit.uri || "—"], ["id", hit.id]];
  for (const [key, value] of Object.entries(hit.metadata || {})) rows.push([key, value]);
  for (const [key, value] of rows) meta.append(el("dt", {}, key), el("dd", {}, value));
  $("detail-tags").replaceChildren(el("span", { class: "muted" }, "…"));
  $("similar").replaceChildren();
  $("detail-more").onclick = () => { dialog.close(); state.id = hit.id; state.mode = "similar"; state.labels = []; navigate(); };
  if (!dialog.open) dialog.showModal();
  dialog.scrollTop = 0;

  api("/v1/query:tagImage", { id: hit.id, k: 8 }).then((answer) => {
    const box = $("detail-tags");
    box.replaceChildren();
    for (const { word } of answer.results || []) {
      box.append(chip(word, null, false, () => { dialog.close(); state.text = word; state.mode = "text"; state.labels = []; $("q").value = word; navigate(); }));
    }
  }).catch((error) => $("detail-tags").replaceChildren(el("span", { class: "muted" }, error.message)));

  api("/v1/query:similarImages", { id: hit.id, k: 12 }).then((answer) => {
    const grid = $("similar");
    grid.replaceChildren();
    for (const other of (answer.results || []).filter((h) => h.id !== hit.id)) grid.append(card(other, openDetail));
    if (!grid.children.length) grid.append(el("div", { class: "empty" }, "No other images yet."));
  }).catch((error) => $("similar").replaceChildren(el("div", { class: "empty" }, error.message)));
}

// -- a photo: picked, dropped or pasted --------------------------------------------------------

function searchWithPhoto(file) {
  if (!file || !file.type.startsWith("image/")) {
    setStatus('<span class="warn">That is not an image file.</span>');
    return;
  }
  state.upload = file;
  state.mode = "upload";
  state.labels = [];
  $("q").value = "";
  history.pushState(null, "", "/");
  const preview = $("query-preview");
  if (preview.dataset.url) URL.revokeObjectURL(preview.dataset.url);
  preview.dataset.url = URL.createObjectURL(file);
  preview.src = preview.dataset.url;
  $("add-status").textContent = "";
  $("add-upload").hidden = false;
  run();
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  form.append("k", "6");
  const tags = $("query-tags");
  tags.replaceChildren();
  api("/v1/query:tagImage", undefined, form).then((answer) => {
    for (const { word } of answer.results || []) {
      tags.append(chip(word, null, false, () => { state.text = word; state.mode = "text"; $("q").value = word; navigate(); }));
    }
  }).catch(() => {});
}

$("file").addEventListener("change", (event) => { searchWithPhoto(event.target.files[0]); event.target.value = ""; });

$("add-upload").addEventListener("click", async () => {
  if (!state.upload) return;
  const form = new FormData();
  form.append("image", state.upload, state.upload.name || "upload");
  $("add-status").textContent = "Adding…";
  try {
    const answer = await api("/v1/indexer:ingest", undefined, form);
    const result = (answer.results || [])[0] || {};
    $("add-status").textContent = result.status === "DUPLICATE" ? "Already in the library."
      : result.status === "NEW" ? "Added to the library." : (result.error && result.error.message) || "Not added.";
    $("add-upload").hidden = result.status === "NEW" || result.status === "DUPLICATE";
  } catch (error) {
    $("add-status").textContent = error.message;
  }
});

let dragDepth = 0;
window.addEventListener("dragenter", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  dragDepth += 1;
  $("drop").hidden = false;
});
window.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) $("drop").hidden = true; });
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  const file = [...(event.dataTransfer.files || [])].find((f) => f.type.startsWith("image/"));
  if (file) searchWithPhoto(file);
});
window.addEventListener("paste", (event) => {
  const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((i) => i.type.startsWith("image/"));
  if (item) { event.preventDefault(); searchWithPhoto(item.getAsFile()); }
});

// -- wiring ------------------------------------------------------------------------------------

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("q").value.trim();
  if (!text) return;
  state.text = text;
  state.mode = "text";
  state.labels = [];
  navigate();
});
$("home").addEventListener("click", (event) => { event.preventDefault(); state.mode = null; state.labels = []; history.pushState(null, "", "/"); route(); });
$("more").addEventListener("click", loadMore);
window.addEventListener("popstate", route);
if ("IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.count) loadMore();
  }, { rootMargin: "600px" }).observe($("sentinel"));
}
route();
