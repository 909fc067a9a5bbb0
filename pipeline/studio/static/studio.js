// The design studio page. Every image is fetched from the model's API; while any fetch is in flight
// the page is busy (body[data-busy="1"], window.studioBusy, the "drawing…" badge), which is also what
// tests wait on. An image asked for again while it loads is fetched once the current one arrives, so
// dragging the psi slider draws the latest value, not every step of the way.
"use strict";

const SEED_MAX = 4294967295;
const PAGE = 32;                       // candidates per "more"
const $ = (sel) => document.querySelector(sel);

const state = {
  model: null,
  start: 0,                            // first seed of the grid
  count: PAGE,                         // seeds shown
  seed: 0,                             // the chosen character (A)
  second: 1,                           // the second character (B)
  psi: 1,
  noise: "const",
  band: "",                            // "" = nothing taken from the second
};

let inflight = 0;
function busy(delta) {
  inflight += delta;
  const on = inflight > 0;
  window.studioBusy = on;
  document.body.dataset.busy = on ? "1" : "0";
  $("#busy").hidden = !on;
}
window.studioBusy = false;

function say(text, error) {
  const m = $("#message");
  m.textContent = text || "";
  m.className = error ? "error" : "";
}

async function api(url, options) {
  busy(+1);
  try {
    const r = await fetch(url, options);
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  } finally {
    busy(-1);
  }
}

// Show `url` in `img`; the latest asked-for url wins. img.dataset.shown is the url on screen.
async function show(img, url) {
  img._want = url;
  if (img._loading || img.dataset.shown === url) return;
  img._loading = true;
  busy(+1);
  try {
    while (img._want !== img.dataset.shown) {
      const want = img._want;
      try {
        const r = await fetch(want);
        if (!r.ok) {
          const body = await r.json().catch(() => ({ error: r.statusText }));
          throw new Error(body.error || r.statusText);
        }
        const src = URL.createObjectURL(await r.blob());
        await new Promise((done) => {
          img.onload = img.onerror = done;
          const old = img.src;
          img.src = src;
          if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        });
      } catch (e) {
        say(e.message, true);
      }
      img.dataset.shown = want;
    }
  } finally {
    img._loading = false;
    busy(-1);
  }
}

function query(params) {
  return new URLSearchParams(params).toString();
}

function imageUrl(seed, psi, noise) {
  return "/api/image?" + query({ seed, psi, noise });
}

function designUrl(s) {
  if (s.band) return "/api/mix?" + query({ a: s.seed, b: s.second, band: s.band, psi: s.psi, noise: s.noise });
  return imageUrl(s.seed, s.psi, s.noise);
}

// ---- the grid of candidates ------------------------------------------------------------------

function renderGrid() {
  const grid = $("#grid");
  const last = Math.min(SEED_MAX, state.start + state.count - 1);
  for (let s = state.start + grid.children.length; s <= last; s++) {
    const tile = document.createElement("div");
    tile.className = "cand";
    tile.dataset.seed = s;
    const img = document.createElement("img");
    img.alt = "seed " + s;
    const label = document.createElement("div");
    label.textContent = s;
    tile.append(img, label);
    tile.addEventListener("click", (e) => (e.shiftKey ? setSecond(s) : choose(s)));
    grid.append(tile);
    show(img, imageUrl(s, 1, "const"));
  }
  $("#range").textContent = `seeds ${state.start} – ${last} (psi 1)`;
  markGrid();
}

function markGrid() {
  for (const tile of $("#grid").children) {
    const s = Number(tile.dataset.seed);
    tile.classList.toggle("focus", s === state.seed);
    tile.classList.toggle("second", s === state.second);
  }
}

function jump(seed) {
  state.start = seed;
  state.count = PAGE;
  $("#grid").replaceChildren();
  renderGrid();
  choose(seed);
}

function more() {
  state.count += PAGE;
  renderGrid();
}

function columns() {
  const tiles = $("#grid").children;
  if (tiles.length < 2) return 1;
  let n = 1;
  while (n < tiles.length && tiles[n].offsetTop === tiles[0].offsetTop) n++;
  return n;
}

function move(delta) {
  const next = state.seed + delta;
  if (next < 0 || next > SEED_MAX) return;
  // A seed off the grid (a swapped-in re-roll, an opened favourite) starts a new grid there: growing
  // this one a page at a time to reach a seed billions away would freeze the page.
  if (next < state.start || next >= state.start + state.count + PAGE) return jump(next);
  while (next >= state.start + state.count) more();
  choose(next);
  const tile = $(`#grid .cand[data-seed="${next}"]`);
  if (tile) tile.scrollIntoView({ block: "nearest" });
}

// ---- the chosen character ---------------------------------------------------------------------

function choose(seed) {
  state.seed = seed;
  redraw();
}

function setSecond(seed) {
  state.second = seed;
  $("#mixSeed").value = seed;
  redraw();
}

function redraw() {
  markGrid();
  $("#psiValue").textContent = state.psi.toFixed(2);
  show($("#big"), designUrl(state));
  show($("#second"), imageUrl(state.second, state.psi, state.noise));
  show($("#strip"), "/api/interpolate?" + query({ a: state.seed, b: state.second, steps: 8, psi: state.psi }));
  const what = state.band ? ` with the ${state.band} styles of ${state.second}` : "";
  $("#caption").textContent = `seed ${state.seed}${what} · psi ${state.psi.toFixed(2)} · ${state.noise} noise`;
}

function setPsi(value) {
  state.psi = Math.round(Math.min(1.5, Math.max(-1, value)) * 100) / 100;
  $("#psi").value = state.psi;
  redraw();
}

function setBand(band) {
  const input = document.querySelector(`input[name=band][value="${band}"]`);
  if (!input || input.disabled) return;
  input.checked = true;
  state.band = band;
  redraw();
}

function setNoise(noise) {
  document.querySelector(`input[name=noise][value="${noise}"]`).checked = true;
  state.noise = noise;
  redraw();
}

function reroll() {
  const r = new Uint32Array(1);
  crypto.getRandomValues(r);
  setSecond(r[0]);
}

// ---- favourites -------------------------------------------------------------------------------

async function loadFavourites() {
  const { favourites, file } = await api("/api/favourites");
  $("#favFile").textContent = "(kept in " + file + ")";
  const list = $("#favs");
  list.replaceChildren();
  for (const f of favourites) list.append(favouriteItem(f));
}

function favouriteItem(f) {
  const li = document.createElement("li");
  li.dataset.id = f.id;
  const mixed = f.band ? ` + ${f.band} of ${f.mix_seed}` : "";
  const text = document.createElement("div");
  text.textContent = `#${f.id}: seed ${f.seed}${mixed}, psi ${f.psi}, ${f.noise}` + (f.name ? ` “${f.name}”` : "");
  if (!f.this_model) {
    li.className = "other";
    const note = document.createElement("div");
    note.textContent = `another checkpoint (${f.checkpoint || "?"}, sha256 ${f.sha256.slice(0, 10)}…)`;
    li.append(text, note);
    return li;
  }
  const img = document.createElement("img");
  img.alt = "favourite " + f.id;
  img.title = "open it";
  img.addEventListener("click", () => openFavourite(f));
  show(img, designUrl({ seed: f.seed, second: f.mix_seed, band: f.band || "", psi: f.psi, noise: f.noise }));
  const links = document.createElement("div");
  for (const [scale, label] of [[1, "PNG"], [4, "PNG x4"]]) {
    const a = document.createElement("a");
    a.href = "/api/export?" + query({ id: f.id, scale });
    a.download = scale === 1 ? `favourite-${f.id}.png` : `favourite-${f.id}-x4.png`;
    a.textContent = label;
    links.append(a, " ");
  }
  const del = document.createElement("button");
  del.type = "button";
  del.textContent = "remove";
  del.addEventListener("click", async () => {
    try {
      await api("/api/favourites/delete", { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify({ id: f.id }) });
      await loadFavourites();
    } catch (e) { say(e.message, true); }
  });
  links.append(del);
  li.append(img, text, links);
  return li;
}

function openFavourite(f) {
  state.seed = f.seed;
  if (f.mix_seed !== null) {
    state.second = f.mix_seed;
    $("#mixSeed").value = f.mix_seed;
  }
  state.band = f.band || "";
  document.querySelector(`input[name=band][value="${state.band}"]`).checked = true;
  state.noise = f.noise;
  document.querySelector(`input[name=noise][value="${f.noise}"]`).checked = true;
  setPsi(f.psi);
}

async function keep() {
  const body = { seed: state.seed, psi: state.psi, noise: state.noise,
                 mix_seed: state.band ? state.second : null, band: state.band || null };
  try {
    const f = await api("/api/favourites", { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(body) });
    say(`kept favourite #${f.id}`);
    await loadFavourites();
  } catch (e) { say(e.message, true); }
}

// ---- wiring -----------------------------------------------------------------------------------

function readSeed(input) {
  const v = Number(input.value);
  if (!Number.isInteger(v) || v < 0 || v > SEED_MAX) {
    say(`a seed is a whole number from 0 to ${SEED_MAX}`, true);
    return null;
  }
  return v;
}

function wire() {
  $("#psi").addEventListener("input", (e) => setPsi(Number(e.target.value)));
  for (const r of document.querySelectorAll("input[name=noise]")) r.addEventListener("change", () => setNoise(r.value));
  for (const r of document.querySelectorAll("input[name=band]")) r.addEventListener("change", () => setBand(r.value));
  $("#mixSeed").addEventListener("change", (e) => { const s = readSeed(e.target); if (s !== null) setSecond(s); });
  $("#reroll").addEventListener("click", reroll);
  $("#swap").addEventListener("click", swap);
  $("#keep").addEventListener("click", keep);
  $("#more").addEventListener("click", more);
  $("#jump").addEventListener("submit", (e) => {
    e.preventDefault();
    const s = readSeed($("#jumpSeed"));
    if (s !== null) jump(s);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" && e.target.type !== "range" && e.target.type !== "radio") {
      // A typed seed is taken on Enter; leaving the box gives the keys back to the page.
      if (e.key === "Escape" || (e.key === "Enter" && e.target.id === "mixSeed")) e.target.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      ArrowRight: () => move(1), ArrowLeft: () => move(-1),
      ArrowDown: () => move(columns()), ArrowUp: () => move(-columns()),
      "[": () => setPsi(state.psi - 0.05), "]": () => setPsi(state.psi + 0.05),
      0: () => setBand(""), 1: () => setBand("coarse"), 2: () => setBand("middle"), 3: () => setBand("fine"),
      n: () => setNoise(state.noise === "const" ? "random" : "const"),
      r: reroll, x: swap, f: keep, m: more, g: () => $("#jumpSeed").focus(),
    };
    if (e.target.type === "range" && e.key.startsWith("Arrow")) return;   // the slider's own keys
    const action = keys[e.key];
    if (action) {
      e.preventDefault();
      action();
    }
  });
}

function swap() {
  const a = state.seed;
  state.seed = state.second;
  setSecond(a);
}

async function start() {
  wire();
  try {
    const m = await api("/api/model");
    state.model = m;
    $("#model").textContent = `${m.checkpoint}: ${m.width}x${m.height} px ${m.arch} on ${m.device}`;
    for (const [band, present] of Object.entries(m.bands)) {
      const input = document.querySelector(`input[name=band][value="${band}"]`);
      input.disabled = !present;
      input.parentElement.classList.toggle("disabled", !present);
      if (!present) input.parentElement.title = `this ${m.res} px model has no ${band} styles`;
    }
    renderGrid();
    redraw();
    await loadFavourites();
  } catch (e) {
    say(e.message, true);
  }
}

start();
