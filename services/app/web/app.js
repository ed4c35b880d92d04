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
  matches: 0,       // results at or above the server's relevance threshold (matchCount)
  weaker: 0,        // results shown below the "weaker results" divider
  divided: false,   // the divider is drawn
  facetKey: "",     // the query whose label counts the chips show
  facetCounts: [],  // [{value, count}] of that query's matches
  facetTotal: 0,    // how many matches they count
  done: false,
  busy: false,
  failed: false,    // the query's answer was an error
  generation: 0,    // bumps on each new query; late answers of an old one are dropped
};

// -- the API -----------------------------------------------------------------------------------

// The token lives in this tab only (memory and sessionStorage), never in a cookie: cookies are
// scoped to the host, not the port, so any other local web app would receive one.
let heldToken = sessionStorage.getItem("imgsearch_token") || "";
function token() { return heldToken; }
function keepToken(value) {
  heldToken = value;
  if (value) sessionStorage.setItem("imgsearch_token", value);
  else sessionStorage.removeItem("imgsearch_token");
}
// What earlier versions of the page kept: forgotten.
localStorage.removeItem("imgsearch_token");
document.cookie = "imgsearch_token=; path=/; max-age=0; SameSite=Strict";

const STARTING_RETRY_MS = 2000;  // while the server loads its models
const STARTING_RETRIES = 90;     // three minutes

class ApiError extends Error {
  constructor(status, body) {
    super(status === 401 ? "This server needs a token." : (body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

function authHeaders() { return token() ? { Authorization: `Bearer ${token()}` } : {}; }

async function api(path, body, form, attempt = 0) {
  const headers = authHeaders();
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method: payload === undefined ? "GET" : "POST", headers, body: payload,
                                       credentials: "omit" });
  const data = await response.json().catch(() => null);
  if (response.status === 401) askToken();
  if (response.status === 503 && attempt < STARTING_RETRIES) {
    // UNAVAILABLE: the server is still loading; say so and ask again (the same request)
    starting(true);
    await new Promise((resolve) => setTimeout(resolve, STARTING_RETRY_MS));
    return api(path, body, form, attempt + 1);
  }
  if (attempt) starting(false);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function starting(on) { $("starting").hidden = !on; }

function thumbnailUrl(id) { return `/v1/images/${encodeURIComponent(id)}/thumbnail`; }

// An image of the server's into an <img>: a plain URL without a token (the browser caches it); with
// one, fetched with the header and shown as a blob, as <img> loads send no header.
function showImage(img, id) {
  const url = thumbnailUrl(id);
  if (!token()) { img.src = url; return; }
  fetch(url, { headers: authHeaders(), credentials: "omit" })
    .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(`HTTP ${response.status}`))))
    .then((blob) => {
      const objectUrl = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(objectUrl), { once: true });
      img.src = objectUrl;
    })
    .catch(() => img.classList.add("broken"));
}

function askToken() {
  const dialog = $("token-dialog");
  if (!dialog.open) {
    $("token-error").hidden = true;
    dialog.showModal();
  }
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  const error = $("token-error");
  if (!value) { error.textContent = "Type the token first."; error.hidden = false; return; }
  // try it before closing: a wrong token keeps the dialog open and says so
  const answer = await fetch("/v1/indexer:getStats", { method: "POST", credentials: "omit",
    headers: { Authorization: `Bearer ${value}`, "Content-Type": "application/json" }, body: "{}" })
    .catch(() => null);
  if (answer && answer.status === 401) {
    error.textContent = "That token was not accepted. Check it with whoever runs this server.";
    error.hidden = false;
    $("token").select();
    return;
  }
  keepToken(value);
  error.hidden = true;
  $("token-dialog").close();
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
    thumb(hit.id, label),
    el("span", { class: "meta" },
      el("span", { class: label ? "label" : "label none" }, label || "no label"),
      el("span", { class: "score" }, score.toFixed(3))));
}

function thumb(id, label) {
  const img = el("img", { class: "thumb", alt: label || "image", decoding: "async" });
  showImage(img, id);
  return img;
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
    const results = page.results || [];
    // matchCount: how many of this page's results are good matches (they come first); a server
    // that does not say treats them all as matches
    const good = Number.isInteger(page.matchCount) ? page.matchCount : results.length;
    const grid = $("results");
    let fresh = 0;
    results.forEach((hit, i) => {
      if (state.seen.has(hit.id)) return;
      fresh += 1;
      state.seen.add(hit.id);
      if (i >= good && !state.divided) {
        state.divided = true;
        grid.append(el("div", { class: "divider", id: "weaker", role: "separator" }, "weaker results"));
      }
      if (i < good) state.matches += 1;
      else state.weaker += 1;
      grid.append(card(hit, openDetail));
    });
    if (!state.count && !state.labels.length) countLabels(results.slice(0, good));
    state.count += results.length;
    state.done = fresh === 0 || results.length < Math.min(PAGE, MAX_RESULTS - (state.count - results.length))
      || state.count >= MAX_RESULTS;
    if (!state.seen.size) grid.append(el("div", { class: "empty" }, "No images match. Try other words or remove a filter."));
    else if (state.done) grid.append(el("div", { class: "end", id: "end" }, "End of results"));
    describe(page, performance.now() - started);
    if (!state.labels.length || state.facetKey === queryKey()) drawFacets();
  } catch (error) {
    if (generation !== state.generation) return;
    state.done = true;
    state.failed = true;
    setStatus(`<span class="warn">${escapeHtml(unreadablePhoto(error))}</span>`);
  } finally {
    if (generation === state.generation) {
      state.busy = false;
      $("more").hidden = state.done;
      // the observer reports changes it saw at a frame: a page that left the sentinel in reach
      // (few fresh results, a scroll while this one loaded) would otherwise never ask for the next
      setTimeout(loadIfInReach, 0);
    }
  }
}

const REACH_PX = 600;  // load the next page this far before the end comes into view
function loadIfInReach() {
  if (!state.count || state.busy || state.done || state.failed) return;
  if ($("sentinel").getBoundingClientRect().top < window.innerHeight + REACH_PX) loadMore();
}

function describe(page, ms) {
  const what = state.mode === "text" ? `for <strong>${escapeHtml(state.text)}</strong>`
    : state.mode === "similar" ? "like the chosen image" : "like your photo";
  const found = state.divided ? plural(state.matches, "match").replace("matchs", "matches")
    : plural(state.seen.size, "image");
  let text = `${found} ${what}` +
    (state.labels.length ? ` labelled ${state.labels.map((l) => `<strong>${escapeHtml(l)}</strong>`).join(" or ")}` : "") +
    (state.divided ? ` <span class="muted">· then ${plural(state.weaker, "weaker result")}</span>` : "") +
    ` <span class="muted">· ${Math.round(ms)} ms</span>`;
  if (page.unknownTerms && page.unknownTerms.length) {
    text += ` <span class="warn">· unknown: ${page.unknownTerms.map(escapeHtml).join(", ")}</span>`;
  }
  if (page.ignoredTerms && page.ignoredTerms.length) {
    text += ` <span class="muted">· ignored: ${page.ignoredTerms.map(escapeHtml).join(", ")}</span>`;
  }
  setStatus(text);
}

// -- label chips: the labels of the current query's matches, counted; active filters always shown --

function queryKey() { return `${state.mode}\n${state.mode === "text" ? state.text : state.id}`; }

function countLabels(hits) {
  const counts = new Map();
  for (const hit of hits) if (hit.label) counts.set(hit.label, (counts.get(hit.label) || 0) + 1);
  state.facetKey = queryKey();
  state.facetTotal = hits.length;
  state.facetCounts = [...counts].map(([value, count]) => ({ value, count }))
    .sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
}

async function showFacets() {
  $("facets").replaceChildren();
  // with a filter on, the chips still count the unfiltered query's matches (its first page)
  if (!state.labels.length || state.facetKey === queryKey() || state.mode === "upload") return;
  const generation = state.generation;
  try {
    const k = PAGE;
    const page = state.mode === "text"
      ? await api("/v1/query:searchText", { text: state.text, k })
      : await api("/v1/query:similarImages", { id: state.id, k });
    if (generation !== state.generation) return;
    const results = page.results || [];
    countLabels(results.slice(0, Number.isInteger(page.matchCount) ? page.matchCount : results.length));
  } catch (error) {
    state.facetCounts = [];
  }
  drawFacets();
}

function drawFacets() {
  const box = $("facets");
  box.replaceChildren();
  if (!state.mode) return;
  const shown = state.facetKey === queryKey() ? state.facetCounts.filter((c) => c.count >= 2).slice(0, 12) : [];
  for (const label of state.labels) if (!shown.some((c) => c.value === label)) shown.push({ value: label, count: null });
  // one label on every match filters nothing: no chip
  if (!state.labels.length && (!shown.length || (shown.length === 1 && shown[0].count === state.facetTotal))) return;
  for (const { value, count } of shown) {
    const on = state.labels.includes(value);
    box.append(chip(value, count, on, () => {
      state.labels = on ? state.labels.filter((l) => l !== value) : [...state.labels, value];
      navigate();
    }));
  }
}

function reset(mode) {
  state.generation += 1;
  state.mode = mode;
  state.seen = new Set();
  state.count = 0;
  state.matches = 0;
  state.weaker = 0;
  state.divided = false;
  state.failed = false;
  state.done = false;
  state.busy = false;
  $("results").replaceChildren();
  $("intro").hidden = Boolean(mode);
  $("query-image").hidden = mode !== "upload" && mode !== "similar";
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
  $("q").value = state.mode === "text" ? state.text : "";
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
  if (state.mode === "similar") showChosen(state.id);
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

// -- "more like this": the chosen image above its neighbours ----------------------------------

function showChosen(id) {
  $("query-title").textContent = "Images like this one";
  $("add-upload").hidden = true;
  $("add-status").textContent = "";
  const preview = $("query-preview");
  preview.alt = "The chosen image";
  showImage(preview, id);
  const tags = $("query-tags");
  tags.replaceChildren();
  const generation = state.generation;
  api("/v1/query:tagImage", { id, k: 6 }).then((answer) => {
    if (generation !== state.generation) return;
    for (const { word } of answer.results || []) tags.append(chip(word, null, false, () => searchWord(word)));
  }).catch(() => {});
}

function searchWord(word) {
  state.text = word;
  state.mode = "text";
  state.labels = [];
  navigate();
}

// -- detail view -------------------------------------------------------------------------------

async function openDetail(hit) {
  const dialog = $("detail");
  $("detail-img").removeAttribute("src");
  showImage($("detail-img"), hit.id);
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
  $("query-title").textContent = "Images like your photo";
  const preview = $("query-preview");
  preview.alt = "Your photo";
  if (preview.dataset.url) URL.revokeObjectURL(preview.dataset.url);
  preview.dataset.url = URL.createObjectURL(file);
  preview.src = preview.dataset.url;
  $("add-status").textContent = "";
  $("add-upload").hidden = true;  // offered once the photo is known to be readable and not stored
  run();
  const generation = state.generation;
  offerToAdd(file, generation);
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  form.append("k", "6");
  const tags = $("query-tags");
  tags.replaceChildren();
  api("/v1/query:tagImage", undefined, form).then((answer) => {
    for (const { word } of answer.results || []) tags.append(chip(word, null, false, () => searchWord(word)));
  }).catch(() => {});
}

// A photo the server could not decode: said in words, without the decoder's own message.
function unreadablePhoto(error) {
  return error && error.status === 400 && state.mode === "upload"
    ? "The server could not read this photo: the file may be damaged or cut short, or a kind of image it cannot decode. JPEG, PNG, WebP, GIF and BMP work."
    : error.message;
}

// The id the server gives these bytes (UUIDv5 of their SHA-256, the indexer's content id), so
// the page does not offer to add a photo the library already holds.
const ID_NAMESPACE = "6f1c1f2e-8d5a-5b7e-9a43-2c0d6e1b7a90";

async function contentId(file) {
  if (!(window.crypto && crypto.subtle)) return null;  // only in secure contexts (https, localhost)
  const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const digest = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  const namespace = ID_NAMESPACE.replace(/-/g, "").match(/../g).map((h) => parseInt(h, 16));
  const name = new TextEncoder().encode(digest);
  const sha1 = new Uint8Array(await crypto.subtle.digest("SHA-1", new Uint8Array([...namespace, ...name])));
  const bytes = sha1.slice(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x50;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function offerToAdd(file, generation) {
  let stored = false;
  try {
    const id = await contentId(file);
    if (id) stored = ((await api("/v1/query:getImages", { ids: [id] })).images || []).length > 0;
  } catch (error) { /* cannot tell: offer it */ }
  // wait for the search: a photo the server cannot read is not offered
  while (state.busy && generation === state.generation) await new Promise((r) => setTimeout(r, 100));
  if (generation !== state.generation || state.failed) return;
  $("add-upload").hidden = stored;
  $("add-status").textContent = stored ? "Already in the library." : "";
}

$("file").addEventListener("change", (event) => { searchWithPhoto(event.target.files[0]); event.target.value = ""; });

$("add-upload").addEventListener("click", async () => {
  if (!state.upload) return;
  const form = new FormData();
  form.append("image", state.upload, state.upload.name || "upload");
  $("add-status").textContent = "Adding…";
  $("add-upload").hidden = true;
  try {
    const answer = await api("/v1/indexer:ingest", undefined, form);
    const result = (answer.results || [])[0] || {};
    $("add-status").textContent = result.status === "DUPLICATE" ? "Already in the library."
      : result.status === "NEW" ? "Added to the library."
      : "Not added: the server could not read this photo.";
  } catch (error) {
    $("add-status").textContent = `Not added: ${error.message}`;
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
// Scrolling asks too: an observer computes intersections only at rendering frames, so a page
// appended and scrolled past between two frames (a busy machine) left it "intersecting" with no
// change to report and the next page was never asked for.
window.addEventListener("scroll", loadIfInReach, { passive: true });
if ("IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.count) loadMore();
  }, { rootMargin: `${REACH_PX}px` }).observe($("sentinel"));
}
route();
