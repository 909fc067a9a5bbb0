"""models/res<R>/curves.png: the training curves of one stage as a plain chart, drawn with PIL.

`dvc plots show` draws the same curves (dvc.yaml's top-level `plots:`), but its page loads its
renderer from the internet; this picture needs nothing but an image viewer. It is drawn from the
dvclive files in logs/res<R>/plots/metrics/ (one `<name>.tsv` per series, columns step and <name>),
against thousands of images seen in the stage (the kimg series) where that was logged.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipeline.core.files import save_image

# (panel title, y-axis label, series drawn in it); a series that was never logged is left out.
PANELS = (
    ("losses", "loss", ("loss_G", "loss_D", "r1", "pl")),
    ("D's scores on reals and fakes", "mean D output", ("real_score", "fake_score")),
    ("augmentation p and fade-in alpha", "probability / weight", ("augment_p", "alpha")),
    ("training speed", "images / s", ("img_per_s",)),
)
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))
PANEL_W, PANEL_H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 50, 52        # margins of a panel's plot area (px)
GREY, LIGHT, TEXT = (120, 120, 120), (228, 228, 228), (30, 30, 30)


def read_series(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{name: [(step, value), ...]} of every dvclive .tsv under folder/plots/metrics (finite values only)."""
    found = {}
    for path in sorted((Path(folder) / "plots" / "metrics").glob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        points = []
        for row in rows:
            try:
                step, value = int(float(row["step"])), float(row[path.stem])
            except (KeyError, TypeError, ValueError):
                continue                          # a row a kill cut short
            if math.isfinite(value):
                points.append((step, value))
        found[path.stem] = points
    return found


def nice_ticks(lo: float, hi: float, want: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) spanning [lo, hi]; the first and last enclose both."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:                           # a flat series: a small window around its value
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / want
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                             # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _panel(title: str, y_label: str, x_label: str, series: dict[str, list[tuple[float, float]]]) -> Image.Image:
    img = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(15), _font(12)
    x0, y0, x1, y1 = LEFT, TOP, PANEL_W - RIGHT, PANEL_H - BOTTOM
    d.text(((x0 + x1) / 2, 8), title, fill=TEXT, font=font, anchor="mt")
    d.text(((x0 + x1) / 2, PANEL_H - 6), x_label, fill=TEXT, font=small, anchor="mb")
    label = Image.new("RGB", (y1 - y0, 18), "white")
    ImageDraw.Draw(label).text(((y1 - y0) / 2, 9), y_label, fill=TEXT, font=small, anchor="mm")
    img.paste(label.rotate(90, expand=True), (2, y0))
    points = [p for pts in series.values() for p in pts]
    if not points:
        d.rectangle((x0, y0, x1, y1), outline=GREY)
        d.text(((x0 + x1) / 2, (y0 + y1) / 2), "nothing logged", fill=GREY, font=font, anchor="mm")
        return img
    xt = nice_ticks(min(p[0] for p in points), max(p[0] for p in points))
    yt = nice_ticks(min(p[1] for p in points), max(p[1] for p in points))

    def px(x, y):
        return (x0 + (x - xt[0]) / (xt[-1] - xt[0]) * (x1 - x0), y1 - (y - yt[0]) / (yt[-1] - yt[0]) * (y1 - y0))

    for x in xt:
        sx = px(x, yt[0])[0]
        d.line((sx, y0, sx, y1), fill=LIGHT)
        d.line((sx, y1, sx, y1 + 5), fill=GREY)
        d.text((sx, y1 + 7), tick_label(x, xt), fill=TEXT, font=small, anchor="mt")
    for y in yt:
        sy = px(xt[0], y)[1]
        d.line((x0, sy, x1, sy), fill=LIGHT)
        d.line((x0 - 5, sy, x0, sy), fill=GREY)
        d.text((x0 - 8, sy), tick_label(y, yt), fill=TEXT, font=small, anchor="rm")
    d.rectangle((x0, y0, x1, y1), outline=GREY)
    for (name, pts), colour in zip(series.items(), COLOURS):
        line = [px(x, y) for x, y in pts]
        if len(line) == 1:
            d.ellipse((line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2), fill=colour)
        else:
            d.line(line, fill=colour, width=2, joint="curve")
    # The legend is one row between the title and the plot, so it never hides a line.
    names = list(series)
    widths = [d.textlength(n, font=small) + 34 for n in names]
    lx = (x0 + x1 - sum(widths) - 16 * (len(names) - 1)) / 2
    for name, colour, w in zip(names, COLOURS, widths):
        d.line((lx, 34, lx + 24, 34), fill=colour, width=3)
        d.text((lx + 30, 34), name, fill=TEXT, font=small, anchor="lm")
        lx += w + 16
    return img


def render(folder: Path, title: str) -> Image.Image:
    """The four panels of PANELS in a 2 x 2 chart, with `title` above them."""
    data = read_series(folder)
    kimg = dict(data.get("kimg", []))
    # x is the images seen where every step of a series has its kimg, else the step itself
    by_kimg = all(s in kimg for pts in data.values() for s, _ in pts) and bool(kimg)
    x_label = "thousands of images seen in this stage (kimg)" if by_kimg else "training step"
    head = 36
    chart = Image.new("RGB", (2 * PANEL_W, 2 * PANEL_H + head), "white")
    ImageDraw.Draw(chart).text((PANEL_W, head / 2), title, fill=TEXT, font=_font(20), anchor="mm")
    for i, (name, y_label, names) in enumerate(PANELS):
        series = {n: [(kimg[s] if by_kimg else s, v) for s, v in data[n]] for n in names if data.get(n)}
        chart.paste(_panel(name, y_label, x_label, series), ((i % 2) * PANEL_W, head + (i // 2) * PANEL_H))
    return chart


def write(folder: Path, out: Path, title: str) -> None:
    save_image(out, render(folder, title))
