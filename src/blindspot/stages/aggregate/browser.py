"""The report's per-item browser: for a capped, class-balanced choice of items, thumbnails of the clean and the
most-blurred image (read from the render store), the question, gold, every model's answer under every condition
(each blur level, blank, noise, no image, pixelate) with the right-but-unconfident ones marked, and its item class."""

from __future__ import annotations

from html import escape
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from blindspot.contracts.answers import option_margin
from blindspot.contracts.conditions import condition_label
from blindspot.stages.aggregate.html import png_data_uri
from blindspot.store.render import RenderStore


def choose_items(classes: pl.DataFrame, limit: int) -> list[str]:
    """Up to ``limit`` item ids, taking the classes (of the first model, by name) in turn so every class shows."""
    if classes.is_empty() or limit == 0:
        return []
    first = sorted(classes["model"].unique().to_list())[0]
    rows = classes.filter(pl.col("model") == first).sort("item_id")
    queues = {name: rows.filter(pl.col("class") == name)["item_id"].to_list() for name in sorted(set(rows["class"]))}
    chosen: list[str] = []
    while len(chosen) < limit and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def thumbnail(pixels: np.ndarray, side: int) -> bytes:
    """A PNG of an RGB image scaled so its longest side is ``side`` pixels."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(resized, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return encoded.tobytes()


def _column_name(family: str, level: int, param: float, blur_family: str) -> str:
    """A short column header: ``clean``, ``k=25`` along the blur ladder, ``px 8`` for pixelate, else the family."""
    if family == blur_family:
        return "clean" if level == 0 else f"k={int(param)}"
    if family == "pixelate":
        return f"px {int(param)}"
    return condition_label(family, level, param)


def _answer_cell(r: dict, threshold: float) -> str:
    """One answer: green if correct (italic and underlined dashes where its option leads by less than the margin
    threshold: right, but not confidently), red if wrong, grey where none was read; the raw text on hover."""
    css = {"correct": "ok", "wrong": "bad"}.get(r["outcome"], "na")
    shown = r["parsed"] if r["parsed"] is not None else r["outcome"]
    hover = r["raw_text"][:200]
    if r.get("option_labels") and r.get("first_token_is_label") is not False:
        lead = option_margin(dict(zip(r["option_labels"], r["option_logprobs"], strict=True)), r["parsed"])
        if lead is not None:
            hover += f" (leads the next option by {lead:.2f} nats)"
            if css == "ok" and lead < threshold:
                css, shown = "unsure", f"{shown}?"
    return f'<td class="{css}" title="{escape(hover)}">{escape(str(shown))}</td>'


def _answers_table(
    predictions: pl.DataFrame, classes: pl.DataFrame, item_id: str, blur_family: str, threshold: float
) -> str:
    """Every model's answer under every condition: the blur ladder in order, then the other families (blank,
    noise, no image, pixelate ...), so an item's class can be read off its answers."""
    rows = predictions.filter(pl.col("item_id") == item_id)
    conditions = sorted(
        rows.select("family", "level", "param").unique().rows(), key=lambda c: (c[0] != blur_family, c[0], c[1])
    )
    head = "<th class=text>model</th>" + "".join(
        f'<th title="{escape(condition_label(f, lv, p))}">{escape(_column_name(f, lv, p, blur_family))}</th>'
        for f, lv, p in conditions
    )
    head += "<th class=text>class</th>"
    body = []
    for model in sorted(rows["model"].unique().to_list()):
        answers = {(r["family"], r["level"]): r for r in rows.filter(pl.col("model") == model).iter_rows(named=True)}
        cells = []
        for family, level, _ in conditions:
            r = answers.get((family, level))
            cells.append('<td class="na">-</td>' if r is None else _answer_cell(r, threshold))
        label = classes.filter((pl.col("model") == model) & (pl.col("item_id") == item_id))
        klass = class_text(label.row(0, named=True)) if label.height else "-"
        body.append(f"<tr><td class=text>{escape(model)}</td>{''.join(cells)}<td class=text>{escape(klass)}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def class_text(row: dict) -> str:
    """An item's class as the browser shows it, with what it was judged by, so it agrees with the answers beside
    it: answers identical at every level can still be fine-visual by margin (the evidence for them faded), and
    then the identity class is shown too."""
    klass, basis = row["class"], row.get("judged_by") or "identity"
    if basis == "margin" and row.get("class_identity") not in (None, klass):
        return f"{klass} (by margin; by identity: {row['class_identity']})"
    return f"{klass} (by {basis})"


def controls(benchmarks: list[str], classes: pl.DataFrame) -> str:
    """The search box and the filters above every benchmark's items."""

    def select(name: str, label: str, values: list[str]) -> str:
        options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
        return (
            f'<label>{label} <select id="item-{name}" class="item-filter"><option value="">any</option>{options}'
            "</select></label> "
        )

    names = sorted(classes["class"].unique().to_list()) if classes.height else []
    return (
        '<div class="filters"><label>search <input id="item-search" class="item-filter" type="search" '
        'placeholder="id, question or gold"></label> '
        + select("bench", "benchmark", benchmarks)
        + select("class", "class (any model)", names)
        + select("outcome", "an answer that is", ["correct", "wrong", "unparsed", "abstain"])
        + '<span id="item-count" class="note"></span></div>'
    )


def browser(
    bench: str,
    items: pl.DataFrame,
    predictions: pl.DataFrame,
    classes: pl.DataFrame,
    store_path: Path | None,
    blur_family: str,
    limit: int,
    side: int,
    threshold: float,
) -> str:
    """The browser's HTML for one benchmark. ``threshold``: the margin (nats) below which a right answer is marked
    as not confident."""
    chosen = choose_items(classes.filter(pl.col("benchmark") == bench), limit)
    if not chosen:
        return "<p class=note>No classified items yet for this benchmark.</p>"
    store = RenderStore(store_path) if store_path is not None and store_path.exists() else None
    by_id = {r["item_id"]: r for r in items.filter(pl.col("item_id").is_in(chosen)).iter_rows(named=True)}
    bench_predictions = predictions.filter(pl.col("benchmark") == bench)
    blocks = []
    for item_id in chosen:
        item = by_id.get(item_id)
        if item is None:
            continue
        images = ""
        if store is not None and item["image_keys"]:
            key = item["image_keys"][0]
            last = max(c.level for c in store.conditions if c.family == blur_family)
            for level, label in ((0, "clean"), (last, "most blurred")):
                png = thumbnail(store.image(key, blur_family, level), side)
                images += f'<img src="{png_data_uri(png)}" alt="{escape(item_id)} {label}" title="{label}">'
        options = ""
        if item["options"]:
            options = "<br>".join(f"{chr(65 + i)}. {escape(o)}" for i, o in enumerate(item["options"]))
            options = f"<div class=note>{options}</div>"
        mine = classes.filter((pl.col("benchmark") == bench) & (pl.col("item_id") == item_id))
        shown = bench_predictions.filter(pl.col("item_id") == item_id)
        searchable = f"{item_id} {item['question']} {item['answer']}".lower()
        data = (
            f'data-bench="{escape(bench)}" data-classes="{escape(" ".join(sorted(set(mine["class"].to_list()))))}" '
            f'data-outcomes="{escape(" ".join(sorted(set(shown["outcome"].to_list()))))}" '
            f'data-text="{escape(searchable)}"'
        )
        blocks.append(
            f'<div class="item" {data}><div>{images}</div>'
            f"<div><b>{escape(item_id)}</b>: {escape(item['question'][:400])}"
            f"{options}<div>gold: <b>{escape(item['answer'])}</b></div>"
            f"{_answers_table(bench_predictions, classes, item_id, blur_family, threshold)}</div></div>"
        )
    total = classes.filter(pl.col("benchmark") == bench)["item_id"].n_unique()
    note = (
        f"<p class=note>{len(blocks)} of {total} items, taken from each item class in turn (report.browser_items). "
        "Answers are the parsed answer under every condition: clean, each blur kernel k, then the other families "
        "(blank, noise, no image, pixelate blocks of px pixels). Green: correct; green, italic with a question mark: "
        f"correct but not confident (its option leads by less than {threshold:g} nats, decay.margin_threshold); "
        "red: wrong; grey: none read. Hover an answer for the model's raw text and its margin.</p>"
    )
    return note + "".join(blocks)
