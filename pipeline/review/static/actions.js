// The review page's actions: what each key and button does to the decisions (keep, reject, undo, redo,
// swap, keep the rest of the page, keep or reject all shown), the pages, and the start. Loaded last, after
// review.js (state, loading, drawing) and detail.js (the panel); every change goes through enqueue.
"use strict";

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

function showUndo(history) {
  const last = history && history.last[0], next = history && history.next_redo && history.next_redo[0];
  $("#undo").disabled = !last;
  $("#undo").title = last ? `undo: ${last.what} (u)` : "nothing to undo";
  $("#redo").disabled = !next;
  $("#redo").title = next ? `redo: ${next.what} (U)` : "nothing to redo";
}

async function post(url, body, what) {
  const data = await api(url, body);
  applyItems(data.items);
  showUndo(data.history);
  say(what(data));
  await refreshCounts();
  return data;
}

function send(body, what) {
  return enqueue(() => post("/api/decisions", body, () => `saved: ${what}`));
}

function decide(status) {
  const index = state.focus, item = state.items[index];
  if (!item) return;
  // Show the change at once; the server's answer confirms it, or the old state comes back.
  paintTile($("#grid").querySelectorAll(".tile")[index], { ...item, status, reason: "human" });
  send({ ids: [item.id], status, what: `${status} ${item.id}` }, `${item.id} ${status}`).then(() => {
    if (state.items[index] === item) paintTile($("#grid").querySelectorAll(".tile")[index], item);
  });
  if (state.focus + 1 < state.items.length) setFocus(state.focus + 1); // on to the next picture
}

// Undo and redo move the focus to the first image they changed, if this page shows it.
function revert(kind) {
  enqueue(async () => {
    const data = await post(`/api/${kind}`, {}, (d) => kind === "undo" ? `undid: ${d.undone} (U redoes)`
                                                                        : `redid: ${d.redone}`);
    const index = state.items.findIndex((item) => data.ids.includes(item.id));
    if (index >= 0) setFocus(index);
  });
}

const undo = () => revert("undo");
const redo = () => revert("redo");

function swap() {
  const item = state.items[state.focus];
  if (!item) return;
  if (!item.duplicate_of) return say("s swaps a duplicate with the copy it duplicates: pick a duplicate", true);
  enqueue(() => post("/api/swap", { id: item.id }, (d) => `kept ${d.kept}, rejected ${d.rejected} (u undoes)`));
}

function allShown(status) {
  return track(allShownNow(status));
}

async function allShownNow(status) {
  if (!state.total || !confirm(`${status === "keep" ? "Keep" : "Reject"} all ${state.total} images this filter ` +
                               `shows (on every page)?`)) return;
  try {
    const { ids } = await api(`/api/ids?${query({})}`);
    const what = `${status} all ${ids.length} shown`;
    await send({ ids, status, what }, `${ids.length} images ${status === "keep" ? "kept" : "rejected"} (u undoes)`);
    await load(true);
  } catch (e) {
    say(e.message, true);
  }
}

function keepRestOfPage() {
  return track(keepRestOfPageNow());
}

async function keepRestOfPageNow() {
  const first = state.items.length ? state.items[0].id : null;
  // Chosen in the queue, after the keys pressed before it have been saved and shown.
  await enqueue(async () => {
    // Automatic rejections (duplicates, blanks) stay as they are: K confirms what the page shows as kept.
    const ids = state.items.filter((item) => !item.decided && !item.auto_reason).map((item) => item.id);
    if (ids.length) await post("/api/decisions", { ids, status: "keep", what: `keep ${ids.length} on page ${state.page + 1}` },
                               () => `${ids.length} kept (u undoes)`);
  });
  await load();
  // The same images still shown (no filter on decisions): go on to the next page. Under a filter such
  // as "decided by hand: no" the kept ones drop out, and this page already holds the next ones.
  if (state.items.length && state.items[0].id === first) turnPage(1);
}

function turnPage(step) {
  const pages = Math.max(1, Math.ceil(state.total / state.perPage));
  const page = Math.min(Math.max(state.page + step, 0), pages - 1);
  if (page !== state.page) { state.page = page; load(); }
}

document.addEventListener("keydown", (e) => {
  if (e.target.closest("select, input, textarea")) return; // typing a note or a filter: the field's keys
  if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key.toLowerCase() === "z" || e.key === "y")) {
    (e.key === "y" || e.shiftKey ? redo : undo)(); // as in an editor: Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y
    return e.preventDefault();
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const last = state.items.length - 1;
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
  const keys = { k: () => decide("keep"), x: () => decide("reject"), u: undo, U: redo, s: swap,
                 K: keepRestOfPage, n: () => turnPage(1), p: () => turnPage(-1), c: editNote,
                 "-": () => setSize(state.size - 1), "+": () => setSize(state.size + 1),
                 "=": () => setSize(state.size + 1) };
  if (e.key in moves) {
    if (last >= 0) setFocus(Math.min(Math.max(state.focus + moves[e.key], 0), last));
  } else if (e.key === "Home" || e.key === "End") {
    if (last >= 0) setFocus(e.key === "Home" ? 0 : last);
  } else if (e.key in keys) {
    keys[e.key]();
  } else {
    return;
  }
  e.preventDefault();
});

$("#filters").addEventListener("change", (e) => {
  const f = { ...state.filters };
  if (e.target.value) f[e.target.name] = e.target.value; else delete f[e.target.name];
  e.target.blur(); // so that the arrow keys move through the pictures again, not through this field
  setFilters(f);
});
$("#filters").addEventListener("submit", (e) => e.preventDefault());
$("#size").addEventListener("change", (e) => { e.target.blur(); setSize(parseInt(e.target.value, 10)); });
$("#prev").onclick = () => turnPage(-1);
$("#next").onclick = () => turnPage(1);
$("#undo").onclick = undo;
$("#redo").onclick = redo;
$("#keep-page").onclick = keepRestOfPage;
$("#keep-all").onclick = () => allShown("keep");
$("#reject-all").onclick = () => allShown("reject");
window.addEventListener("hashchange", () => { readHash(); load(); });
window.addEventListener("resize", () => { const before = state.perPage; applySize(); if (state.perPage !== before) load(true); });

readHash();
applySize();
track(Promise.all([load(), fillFolders().catch((e) => say(e.message, true)),
                   api("/api/history?limit=1").then(showUndo).catch(() => {})]));
