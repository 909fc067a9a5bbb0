// The review page's detail panel: the picked image large (a face crop on the picture it was cut from),
// its facts, its note, and for a duplicate the copy it duplicates beside it. Uses review.js's helpers.
"use strict";

let detailTimer = 0;
let detailShown = null; // the id the panel shows, so that an answer for an earlier pick is dropped

function showDetailSoon(item) {
  // Load the full picture only once the arrow keys rest: each one can be megabytes, and a burst of them
  // would hold up the browser's few connections, so that a keep or reject would wait behind them.
  clearTimeout(detailTimer);
  detailTimer = setTimeout(() => showDetail(item), 150);
}

function figureOf(item, isFace) {
  const figure = el("div", "figure");
  const img = el("img");
  img.src = `/${isFace ? "source" : "image"}/${encodeURIComponent(item.id)}`;
  img.alt = isFace ? "the image this face was cut from" : item.id;
  figure.append(img);
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
  }
  return figure;
}

function showDetail(item) {
  clearTimeout(detailTimer);
  const detail = $("#detail");
  detail.replaceChildren();
  detailShown = item ? item.id : null;
  if (!item) return detail.append(el("p", "hint", "No image picked."));
  detail.append(el("h3", "", item.id));
  const isFace = item.kind === "face" && item.image && item.image !== item.path;
  if (item.duplicate_of) {
    const pair = el("div", "pair");
    pair.append(el("p", "hint", "Loading the copy it duplicates ..."));
    detail.append(pair);
    track(api(`/api/pair?id=${encodeURIComponent(item.id)}`).then((data) => {
      if (detailShown === item.id) showPair(pair, data);
    }).catch((e) => say(e.message, true)));
  } else {
    detail.append(figureOf(item, isFace));
  }
  if (isFace) {
    const crop = el("img", "crop-alone");
    crop.src = `/image/${encodeURIComponent(item.id)}`;
    crop.alt = "the crop";
    detail.append(el("p", "hint", "Red: the detected face. Dashed: the crop, also shown here:"), crop);
  }
  const facts = el("dl");
  const fact = (name, value) => { if (value) facts.append(el("dt", "", name), el("dd", "", value)); };
  fact("status", `${item.status} (${item.reason === "human" ? "decided by hand" : item.reason})`);
  fact("automatic", item.auto_reason);
  fact("kind", item.kind);
  if (item.confidence !== null) fact("confidence", `${item.confidence} (0 = only just accepted as a face)`);
  fact("source", item.source);
  fact("asset", item.asset);
  fact("file", item.path);
  if (isFace) fact("cut from", item.image);
  if (item.size) fact("size", `${item.size[0]} × ${item.size[1]}`);
  detail.append(facts, noteForm(item));
  const bundle = el("button", "", "show everything from this asset");
  bundle.type = "button";
  bundle.onclick = () => setFilters({ source: item.source });
  detail.append(bundle);
  if (item.duplicate_of) {
    const all = el("button", "", "show all duplicates of the kept copy");
    all.type = "button";
    all.onclick = () => setFilters({ duplicate_of: item.duplicate_of });
    detail.append(all);
  }
}

function showPair(pair, data) {
  const side = (item, label) => {
    const box = el("div", `copy ${item.status}`);
    box.dataset.id = item.id;
    const size = item.size ? `${item.size[0]} × ${item.size[1]}` : "size unknown";
    box.append(figureOf(item, false), el("p", "", `${label}: ${size}, ${item.status}` +
                                         (item.reason === "human" ? " by hand" : "")));
    return box;
  };
  pair.replaceChildren();
  const item = data.item, other = data.other;
  if (!other) {
    pair.append(figureOf(item, false), el("p", "hint", `It duplicates ${item.duplicate_of}, which is no longer listed.`));
    return;
  }
  const distance = item.distance === null ? "unknown (re-run the review stage)"
    : item.distance === 0 ? "0 bits (the same pixels)" : `${item.distance} bits of 64`;
  pair.append(el("div", "copies"), el("p", "distance", `hash distance ${distance}`));
  pair.firstChild.append(side(item, "this copy"), side(other, "the copy it duplicates"));
  const swapButton = el("button", "", "swap which copy is kept (s)");
  swapButton.type = "button";
  swapButton.onclick = swap;
  pair.append(swapButton);
}

function noteForm(item) {
  const form = el("form", "note");
  const box = el("textarea");
  box.id = "note";
  box.rows = 2;
  box.maxLength = 1000;
  box.placeholder = "a note on this image (c); Enter saves it, Escape leaves";
  box.value = item.note;
  const save = el("button", "", "save note");
  save.type = "submit";
  const label = el("label", "", "note ");
  label.append(box);
  form.append(label, save);
  form.onsubmit = (e) => {
    e.preventDefault();
    const note = box.value.replace(/\s+/g, " ").trim();
    box.blur();
    // A note goes with a decision (decisions.csv has no row without one): the status the image has now.
    send({ changes: [{ id: item.id, status: item.status, note }], what: `note on ${item.id}` },
         `note on ${item.id}`);
  };
  box.onkeydown = (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    if (e.key === "Escape") box.blur();
  };
  return form;
}

function editNote() {
  const item = state.items[state.focus];
  if (!item) return;
  if (detailShown !== item.id) showDetail(item);
  $("#note").focus();
}
