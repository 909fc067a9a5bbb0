// The review page: a grid of thumbnails, one page at a time. Every keep or reject is sent to the
// server at once, which saves it to review/decisions.csv; nothing is kept only in the browser except
// the undo history of this tab.
"use strict";

const PAGE = 200;
const FILTERS = ["status", "kind", "source", "auto", "decided", "id", "duplicate_of"];
const state = { filters: {}, page: 0, items: [], focus: -1, total: 0, undo: [], changes: 0 };
const $ = (selector) => document.querySelector(selector);
let queue = Promise.resolve(); // changes go to the server one after another, in the order they were made
let detailTimer = 0;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: names come from game files
  return node;
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
  return queue;
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
  for (const select of $("#filters").querySelectorAll("select")) select.value = state.filters[select.name] || "";
  const chips = $("#chips");
  chips.replaceChildren();
  const games = [...$("#filters select[name=source]").options].map((option) => option.value);
  for (const key of ["id", "duplicate_of", "source"]) {
    // The source list names whole games; one asset bundle in a game is shown as a chip instead.
    if (!state.filters[key] || (key === "source" && games.includes(state.filters[key]))) continue;
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

function fillSources(sources) {
  const select = $("#filters select[name=source]");
  if (select.options.length === sources.length + 1) return;
  select.replaceChildren(el("option", "", "any"));
  select.options[0].value = "";
  for (const source of sources) {
    const option = el("option", "", source);
    option.value = source;
    select.append(option);
  }
  select.value = state.filters.source || "";
  syncForm();
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

async function load(keepFocus) {
  const mine = ++loads;
  writeHash();
  syncForm();
  try {
    const data = await fresh(`/api/items?${query({ offset: state.page * PAGE, limit: PAGE })}`);
    if (mine !== loads) return; // a newer load is on its way
    if (!data.items.length && state.page > 0) { // past the end (fewer images than before): last page
      state.page = Math.max(0, Math.ceil(data.counts.total / PAGE) - 1);
      if (data.counts.total) return load(keepFocus);
    }
    state.items = data.items;
    fillSources(data.sources);
    showCounts(data);
    renderGrid();
    const wanted = keepFocus ? Math.min(state.focus, state.items.length - 1) : 0;
    setFocus(state.items.length ? Math.max(wanted, 0) : -1);
  } catch (e) {
    say(e.message, true);
  }
}

function showCounts(data) {
  const c = data.counts, all = data.all;
  state.total = c.total;
  $("#counts").textContent = `${c.total} shown: ${c.keep} keep, ${c.reject} reject, ${c.decided} decided by hand` +
    ` (all ${all.total} images: ${all.keep} keep, ${all.reject} reject, ${all.decided} decided)`;
  const pages = Math.max(1, Math.ceil(c.total / PAGE));
  $("#pageinfo").textContent = `page ${state.page + 1} of ${pages}`;
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = state.page + 1 >= pages;
  $("#reject-all").textContent = `reject all ${c.total} shown`;
  $("#reject-all").disabled = c.total === 0;
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

function makeTile(item, index) {
  const tile = el("div", "tile");
  tile.dataset.id = item.id;
  const pic = el("div", "pic");
  const img = el("img");
  img.loading = "lazy"; // the browser fetches only the thumbnails that scroll into view
  img.alt = item.id;
  img.src = `/thumb/${encodeURIComponent(item.id)}?v=${item.v}`;
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
  const name = el("div", "name", `${item.kind === "face" ? "face" : "body"} · ${item.asset}`);
  tile.append(pic, el("span", "badge"), name, row);
  paintTile(tile, item);
  return tile;
}

function paintTile(tile, item) {
  tile.classList.toggle("keep", item.status === "keep");
  tile.classList.toggle("reject", item.status === "reject");
  const badge = tile.querySelector(".badge");
  badge.textContent = item.reason === "human" ? "by hand" : item.reason.replace("_", " ");
  badge.className = `badge ${item.reason}`;
  badge.hidden = item.reason === "default";
  tile.querySelector(".mark").textContent = item.status;
  tile.title = `${item.id} (${item.kind})\n${item.source}\n${item.path}`;
}

function setFocus(index) {
  const tiles = $("#grid").querySelectorAll(".tile");
  if (state.focus >= 0 && tiles[state.focus]) tiles[state.focus].classList.remove("focus");
  state.focus = index;
  if (index < 0 || !tiles[index]) return showDetail(null);
  tiles[index].classList.add("focus");
  tiles[index].scrollIntoView({ block: "nearest" });
  // Load the full picture only once the arrow keys rest: each one can be megabytes, and a burst of them
  // would hold up the browser's few connections, so that a keep or reject would wait behind them.
  clearTimeout(detailTimer);
  detailTimer = setTimeout(() => showDetail(state.items[index]), 150);
}

function columns() {
  const tiles = $("#grid").querySelectorAll(".tile");
  let n = 0;
  while (n < tiles.length && tiles[n].offsetTop === tiles[0].offsetTop) n++;
  return Math.max(n, 1);
}

// --- the detail panel: a face crop is drawn on the picture it was cut from -----------------------

function showDetail(item) {
  const detail = $("#detail");
  detail.replaceChildren();
  if (!item) return detail.append(el("p", "hint", "No image picked."));
  detail.append(el("h3", "", item.id));
  const figure = el("div", "figure");
  const img = el("img");
  const isFace = item.kind === "face" && item.image && item.image !== item.path;
  img.src = `/${isFace ? "source" : "image"}/${encodeURIComponent(item.id)}`;
  img.alt = isFace ? "the image this face was cut from" : item.id;
  figure.append(img);
  detail.append(figure);
  if (isFace) {
    img.onload = () => {
      for (const [rect, className] of [[item.crop, "crop"], [item.box, "box"]]) {
        if (!rect) continue;
        const mark = el("div", className);
        const [x, y, w, h] = rect, W = img.naturalWidth, H = img.naturalHeight;
        Object.assign(mark.style, { left: `${100 * x / W}%`, top: `${100 * y / H}%`,
                                    width: `${100 * w / W}%`, height: `${100 * h / H}%` });
        mark.title = className === "box" ? "detected face" : "the crop";
        figure.append(mark);
      }
    };
    const crop = el("img", "crop-alone");
    crop.src = `/image/${encodeURIComponent(item.id)}`;
    crop.alt = "the crop";
    detail.append(el("p", "hint", "Red: the detected face. Dashed: the crop, also shown here:"), crop);
  }
  const facts = el("dl");
  const fact = (name, value) => { if (value) facts.append(el("dt", "", name), el("dd", "", value)); };
  fact("status", `${item.status} (${item.reason === "human" ? "decided by hand" : item.reason})`);
  fact("automatic", item.auto_reason);
  fact("note", item.note);
  fact("kind", item.kind);
  fact("source", item.source);
  fact("asset", item.asset);
  fact("file", item.path);
  if (isFace) fact("cut from", item.image);
  if (item.size) fact("size", `${item.size[0]} × ${item.size[1]}`);
  detail.append(facts);
  const bundle = el("button", "", "show everything from this asset");
  bundle.type = "button";
  bundle.onclick = () => setFilters({ source: item.source });
  detail.append(bundle);
  if (item.duplicate_of) {
    const original = el("button", "", "show the image it duplicates");
    const all = el("button", "", "show all its duplicates");
    original.type = all.type = "button";
    original.onclick = () => setFilters({ id: item.duplicate_of });
    all.onclick = () => setFilters({ duplicate_of: item.duplicate_of });
    detail.append(el("p", "", `duplicate of ${item.duplicate_of} `), original, all);
  }
}

// --- changing decisions ------------------------------------------------------------------------------

function applyItems(items) {
  state.changes++;
  const tiles = $("#grid").querySelectorAll(".tile");
  state.items.forEach((item, i) => {
    if (!items[item.id]) return;
    state.items[i] = items[item.id];
    paintTile(tiles[i], items[item.id]);
    if (i === state.focus) showDetail(items[item.id]);
  });
}

async function post(body, what, isUndo) {
  const data = await api("/api/decisions", body);
  if (!isUndo) state.undo.push(data.previous);
  applyItems(data.items);
  say(`saved: ${what}`);
  await refreshCounts();
}

function send(body, what) {
  return enqueue(() => post(body, what, false));
}

function decide(status) {
  const index = state.focus, item = state.items[index];
  if (!item) return;
  // Show the change at once; the server's answer confirms it, or the old state comes back.
  paintTile($("#grid").querySelectorAll(".tile")[index], { ...item, status, reason: "human" });
  send({ ids: [item.id], status }, `${item.id} ${status}`).then(() => {
    if (state.items[index] === item) paintTile($("#grid").querySelectorAll(".tile")[index], item);
  });
  if (state.focus + 1 < state.items.length) setFocus(state.focus + 1); // on to the next picture
}

function undo() {
  enqueue(async () => {
    const previous = state.undo.pop(); // taken inside the queue: the change to undo may still be on its way
    if (!previous) return say("nothing to undo");
    try {
      await post({ changes: previous }, `undid ${previous.length} change(s)`, true);
    } catch (e) {
      state.undo.push(previous); // not undone: keep it for another try
      throw e;
    }
    const index = state.items.findIndex((item) => item.id === previous[0].id);
    if (index >= 0) setFocus(index);
  });
}

async function rejectAllShown() {
  if (!state.total || !confirm(`Reject all ${state.total} images this filter shows (on every page)?`)) return;
  try {
    const { ids } = await api(`/api/ids?${query({})}`);
    await send({ ids, status: "reject" }, `${ids.length} images rejected (u undoes)`);
    await load(true);
  } catch (e) {
    say(e.message, true);
  }
}

function turnPage(step) {
  const pages = Math.max(1, Math.ceil(state.total / PAGE));
  const page = Math.min(Math.max(state.page + step, 0), pages - 1);
  if (page !== state.page) { state.page = page; load(); }
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("select, input, textarea")) return;
  const last = state.items.length - 1;
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
  if (e.key in moves) {
    if (last >= 0) setFocus(Math.min(Math.max(state.focus + moves[e.key], 0), last));
  } else if (e.key === "Home" || e.key === "End") {
    if (last >= 0) setFocus(e.key === "Home" ? 0 : last);
  } else if (e.key === "k" || e.key === "x") {
    decide(e.key === "k" ? "keep" : "reject");
  } else if (e.key === "u") {
    undo();
  } else if (e.key === "n" || e.key === "p") {
    turnPage(e.key === "n" ? 1 : -1);
  } else {
    return;
  }
  e.preventDefault();
});

$("#filters").addEventListener("change", (e) => {
  const f = { ...state.filters };
  if (e.target.value) f[e.target.name] = e.target.value; else delete f[e.target.name];
  e.target.blur(); // so that the arrow keys move through the pictures again, not through this list
  setFilters(f);
});
$("#prev").onclick = () => turnPage(-1);
$("#next").onclick = () => turnPage(1);
$("#undo").onclick = undo;
$("#reject-all").onclick = rejectAllShown;
window.addEventListener("hashchange", () => { readHash(); load(); });

readHash();
load();
