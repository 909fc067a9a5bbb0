// The review page: a grid of thumbnails, one screenful a page. Every keep, reject and note is sent to the
// server at once, which saves it to review/decisions.csv and its undo history to review/history.jsonl;
// the browser keeps only the thumbnail size (localStorage). This file holds the state, the view and the
// grid; detail.js draws the panel on the right and actions.js what the keys and buttons do.
"use strict";

const FILTERS = ["status", "kind", "source", "auto", "decided", "id", "duplicate_of", "folder", "search",
                 "size_min", "size_max", "sort"];
// Picture side per thumbnail size (px). The smallest shows only the picture, its border the status:
// 88 of them fit a 1280 x 720 window beside the detail panel (15 at the medium size, the default).
const SIZES = [56, 88, 128, 200];
const state = { filters: {}, page: 0, items: [], focus: -1, total: 0, changes: 0, perPage: 100,
                size: sizeFromStorage() };
const $ = (selector) => document.querySelector(selector);
let queue = Promise.resolve(); // changes go to the server one after another, in the order they were made
let busy = 0;                  // loads and saves in flight; tests wait for body[data-busy="0"]

function sizeFromStorage() {
  const size = parseInt(localStorage.getItem("review.size"), 10);
  return size >= 0 && size < SIZES.length ? size : 2;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: names come from game files
  return node;
}

function track(promise) {
  busy++;
  document.body.dataset.busy = "1";
  return promise.finally(() => { if (--busy === 0) document.body.dataset.busy = "0"; });
}

async function api(url, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(url, options);
  let data;
  try { data = await res.json(); } catch { data = { error: `${res.status} ${res.statusText}` }; }
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function say(text, isError) {
  const message = $("#message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

function enqueue(job) {
  queue = queue.then(job).catch((e) => say(`not saved: ${e.message}`, true));
  return track(queue);
}

// --- the view lives in the address, so a reload shows the same filter and page -------------------

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.filters = {};
  for (const key of FILTERS) if (params.get(key)) state.filters[key] = params.get(key);
  state.page = Math.max(0, (parseInt(params.get("page"), 10) || 1) - 1);
}

function writeHash() {
  const params = new URLSearchParams(state.filters);
  if (state.page) params.set("page", state.page + 1);
  history.replaceState(null, "", "#" + params.toString());
}

function query(extra) {
  return new URLSearchParams({ ...state.filters, ...extra }).toString();
}

function setFilters(filters) {
  state.filters = filters;
  state.page = 0;
  load();
}

function syncForm() {
  for (const field of $("#filters").querySelectorAll("select, input")) field.value = state.filters[field.name] || "";
  const chips = $("#chips");
  chips.replaceChildren();
  for (const key of ["id", "duplicate_of", "source"]) {
    if (!state.filters[key]) continue;
    const label = { id: "image", duplicate_of: "duplicates of", source: "from" }[key];
    const chip = el("span", "chip", `${label} ${state.filters[key]}`);
    const clear = el("button", "", "×");
    clear.type = "button";
    clear.title = "clear this filter";
    clear.onclick = () => { const f = { ...state.filters }; delete f[key]; setFilters(f); };
    chips.append(chip);
    chip.append(clear);
  }
}

async function fillFolders() {
  const { folders } = await api("/api/folders");
  $("#folder-list").replaceChildren(...folders.map(([name, count]) => {
    const option = el("option", "", `${count} images`);
    option.value = name;
    return option;
  }));
}

// --- the thumbnail size, and how many thumbnails one screen holds --------------------------------

function tileSize() {
  const side = SIZES[state.size], gap = state.size === 0 ? 4 : 8;
  return { side, gap, w: side + 6, h: side + 6 + (state.size === 0 ? 0 : 42) }; // 3 px border; name and buttons
}

function applySize() {
  const grid = $("#grid"), t = tileSize();
  grid.className = `size-${state.size}`;
  grid.style.setProperty("--side", `${t.side}px`);
  grid.style.setProperty("--tile-w", `${t.w}px`);
  grid.style.setProperty("--tile-h", `${t.h}px`);
  grid.style.setProperty("--gap", `${t.gap}px`);
  $("#size").value = String(state.size);
  // A page is what fits the grid without scrolling: one look, then one key (K) for the whole screen.
  const pad = 16, cols = Math.floor((grid.clientWidth - pad + t.gap) / (t.w + t.gap));
  const rows = Math.floor((grid.clientHeight - pad + t.gap) / (t.h + t.gap));
  state.perPage = Math.min(Math.max(cols, 1) * Math.max(rows, 1), 1000);
}

function setSize(size) {
  size = Math.min(Math.max(size, 0), SIZES.length - 1);
  if (size === state.size) return;
  const first = state.page * state.perPage;
  state.size = size;
  localStorage.setItem("review.size", String(size));
  applySize();
  state.page = Math.floor(first / state.perPage); // stay near the same images
  load();
}

// --- loading and drawing ---------------------------------------------------------------------------

// An answer must never paint an older state over a newer one: the newest load wins, and a load that
// a saved decision overtook (its answer may predate that decision) asks again.
let loads = 0;

async function fresh(url) {
  for (;;) {
    const changes = state.changes;
    const data = await api(url);
    if (changes === state.changes) return data;
  }
}

function load(keepFocus) {
  return track(loadNow(keepFocus));
}

async function loadNow(keepFocus) {
  const mine = ++loads;
  writeHash();
  syncForm();
  try {
    const data = await fresh(`/api/items?${query({ offset: state.page * state.perPage, limit: state.perPage })}`);
    if (mine !== loads) return; // a newer load is on its way
    if (!data.items.length && state.page > 0) { // past the end (fewer images than before): last page
      state.page = Math.max(0, Math.ceil(data.counts.total / state.perPage) - 1);
      if (data.counts.total) return loadNow(keepFocus);
    }
    state.items = data.items;
    showCounts(data);
    renderGrid();
    const wanted = keepFocus ? Math.min(state.focus, state.items.length - 1) : 0;
    setFocus(state.items.length ? Math.max(wanted, 0) : -1);
    prefetchNext();
  } catch (e) {
    say(e.message, true);
  }
}

function showCounts(data) {
  const c = data.counts, all = data.all;
  state.total = c.total;
  $("#counts").textContent = `${c.total} shown: ${c.keep} keep, ${c.reject} reject, ${c.decided} decided by hand` +
    ` (all ${all.total} images: ${all.keep} keep, ${all.reject} reject, ${all.decided} decided)`;
  const pages = Math.max(1, Math.ceil(c.total / state.perPage));
  $("#pageinfo").textContent = `page ${state.page + 1} of ${pages}`;
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = state.page + 1 >= pages;
  $("#keep-all").textContent = `keep all ${c.total} shown`;
  $("#reject-all").textContent = `reject all ${c.total} shown`;
  $("#keep-all").disabled = $("#reject-all").disabled = c.total === 0;
}

async function refreshCounts() {
  showCounts(await fresh(`/api/items?${query({ limit: 0 })}`));
}

function renderGrid() {
  const grid = $("#grid");
  grid.replaceChildren(...state.items.map(makeTile));
  if (!state.items.length) grid.append(el("p", "hint", "No images match this filter."));
  grid.scrollTop = 0;
}

function thumbUrl(item) {
  return `/thumb/${encodeURIComponent(item.id)}?v=${item.v}`; // v: the file's time, so a cached one is never stale
}

// While you look at a page, the next page's thumbnails are made and cached, so that turning to it is
// quick. Only a head start: body[data-prefetched] names the page once done; nothing waits for it.
async function prefetchNext() {
  const mine = loads, next = state.page + 1;
  if (next * state.perPage >= state.total) return;
  try {
    const data = await api(`/api/items?${query({ offset: next * state.perPage, limit: state.perPage })}`);
    await Promise.all(data.items.map((item) => new Promise((done) => {
      const img = new Image();
      img.onload = img.onerror = done;
      img.src = thumbUrl(item);
    })));
    if (mine === loads) document.body.dataset.prefetched = String(next + 1);
  } catch { /* the page loads its thumbnails itself when turned to */ }
}

function makeTile(item, index) {
  const tile = el("div", "tile");
  tile.dataset.id = item.id;
  const pic = el("div", "pic");
  const img = el("img");
  img.alt = item.id;
  img.src = thumbUrl(item);
  pic.append(img);
  pic.onclick = () => setFocus(index);
  const row = el("div", "row");
  const keep = el("button", "", "✓");
  const reject = el("button", "", "✗");
  keep.type = reject.type = "button";
  keep.title = keep.ariaLabel = "keep (k)";
  reject.title = reject.ariaLabel = "reject (x)";
  keep.onclick = () => { setFocus(index); decide("keep"); };
  reject.onclick = () => { setFocus(index); decide("reject"); };
  row.append(el("span", "mark grow"), keep, reject);
  tile.append(pic, el("span", "badge"), el("div", "name"), row);
  paintTile(tile, item);
  return tile;
}

function paintTile(tile, item) {
  tile.classList.toggle("keep", item.status === "keep");
  tile.classList.toggle("reject", item.status === "reject");
  tile.classList.toggle("noted", Boolean(item.note));
  const badge = tile.querySelector(".badge");
  badge.textContent = item.reason === "human" ? "by hand" : item.reason.replace("_", " ");
  badge.className = `badge ${item.reason}`;
  badge.hidden = item.reason === "default";
  tile.querySelector(".mark").textContent = item.status;
  const confidence = item.confidence === null ? "" : ` · ${item.confidence.toFixed(2)}`;
  tile.querySelector(".name").textContent =
    `${item.note ? "✎ " : ""}${item.kind === "face" ? "face" : "body"}${confidence} · ${item.asset}`;
  tile.title = `${item.id} (${item.kind})\n${item.source}\n${item.path}` +
    (item.confidence === null ? "" : `\nface confidence ${item.confidence}`) + (item.note ? `\nnote: ${item.note}` : "");
}

function setFocus(index) {
  const tiles = $("#grid").querySelectorAll(".tile");
  if (state.focus >= 0 && tiles[state.focus]) tiles[state.focus].classList.remove("focus");
  state.focus = index;
  if (index < 0 || !tiles[index]) return showDetail(null);
  tiles[index].classList.add("focus");
  tiles[index].scrollIntoView({ block: "nearest" });
  showDetailSoon(state.items[index]);
}

function columns() {
  const tiles = $("#grid").querySelectorAll(".tile");
  let n = 0;
  while (n < tiles.length && tiles[n].offsetTop === tiles[0].offsetTop) n++;
  return Math.max(n, 1);
}
