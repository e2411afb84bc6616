"""The report's figures, one function each: tables in, a matplotlib ``Figure`` out.

Every figure stands on its own: a title, axis labels with units, a legend, interval bands or bars, and the chance
level drawn where one exists. :func:`save` writes a PNG and an SVG with no timestamps, so reruns are byte-stable.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from blindspot.contracts.conditions import condition_label
from blindspot.stages.aggregate.tables import attention_note, level_order
from blindspot.store.atomic import atomic_output

plt.rcParams["svg.hashsalt"] = "blindspot"  # stable element ids in the SVGs
CLASS_COLOURS = {
    "fine_visual": "#1b9e77",
    "coarse_visual": "#66a61e",
    "language_prior": "#d95f02",
    "uncertain": "#999999",
    "unparsed": "#555555",
}


def _colours(names: list[str]) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(sorted(names))}


def save(figure: Figure, png: Path, svg: Path) -> None:
    """Write both formats atomically, without the date and software stamps."""
    for path, fmt, metadata in ((png, "png", {"Software": None}), (svg, "svg", {"Date": None, "Creator": None})):
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format=fmt, metadata=metadata, dpi=110, bbox_inches="tight")
    plt.close(figure)


def empty_figure(title: str, message: str) -> Figure:
    """A figure that says why it has nothing to show (an output not yet produced, nothing configured)."""
    figure, ax = plt.subplots(figsize=(6, 2))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return figure


def _band(ax, x, rows: pl.DataFrame, column: str, colour: str, label: str) -> None:  # type: ignore[no-untyped-def]
    ax.plot(x, rows[column].to_numpy(), marker="o", color=colour, label=label)
    low, high = rows[f"{column}_ci_low"].to_numpy(), rows[f"{column}_ci_high"].to_numpy()
    if np.isfinite(low.astype(float)).any():
        ax.fill_between(x, low.astype(float), high.astype(float), color=colour, alpha=0.2, linewidth=0)


def decay_curves(decay: pl.DataFrame, bench: str, blur_family: str, chance: float | None) -> Figure:
    """Accuracy and E against the blur kernel, one line per model with its interval band (and, dashed, the accuracy
    corrected for the model's content-free prior); the other families (pixelate, blank, noise, no image) as marked
    points in a panel of their own, on the same y axis."""
    rows = decay.filter(pl.col("benchmark") == bench)
    models = sorted(rows["model"].unique().to_list())
    colours = _colours(models)
    others = (
        rows.filter(pl.col("family") != blur_family).select("family", "level", "param").unique().sort("family", "level")
    )
    figure, axes = plt.subplots(
        2, 2, figsize=(10, 7), sharey="row", gridspec_kw={"width_ratios": [3, max(1, others.height) * 0.35 + 0.6]}
    )
    for row_index, (column, label) in enumerate((("accuracy", "accuracy"), ("e", "E: same answer as clean"))):
        ladder_ax, other_ax = axes[row_index]
        for model in models:
            ladder = rows.filter((pl.col("model") == model) & (pl.col("family") == blur_family)).sort("level")
            if ladder.height:
                _band(ladder_ax, ladder["param"].to_numpy(), ladder, column, colours[model], model)
                corrected = ladder["accuracy_prior_corrected"].to_numpy().astype(float)
                if column == "accuracy" and np.isfinite(corrected).any():  # beside the raw accuracy, dashed
                    ladder_ax.plot(ladder["param"].to_numpy(), corrected, "--", color=colours[model], alpha=0.8,
                                   label=f"{model}, prior-corrected")  # fmt: skip
            other = rows.filter((pl.col("model") == model) & (pl.col("family") != blur_family))
            for i, r in enumerate(others.iter_rows(named=True)):
                hit = other.filter((pl.col("family") == r["family"]) & (pl.col("level") == r["level"]))
                if hit.height and hit[column][0] is not None:
                    value, low, high = hit[column][0], hit[f"{column}_ci_low"][0], hit[f"{column}_ci_high"][0]
                    error = None if low is None else [[value - low], [high - value]]
                    offset = (models.index(model) - (len(models) - 1) / 2) * 0.12
                    other_ax.errorbar(i + offset, value, yerr=error, fmt="s", color=colours[model], capsize=3)
        if chance is not None:
            for ax in (ladder_ax, other_ax):
                ax.axhline(chance, color="black", linestyle="--", linewidth=1, label="chance (1/K)")
        ladder_ax.set_ylabel(f"{label} (share of items)")
        ladder_ax.set_ylim(-0.02, 1.02)
        ladder_ax.grid(alpha=0.3)
        other_ax.set_xticks(range(others.height))
        other_ax.set_xticklabels(
            [condition_label(r["family"], r["level"], r["param"]) for r in others.iter_rows(named=True)],
            rotation=45,
            ha="right",
        )
        other_ax.set_xlim(-0.6, max(others.height, 1) - 0.4)
        other_ax.grid(alpha=0.3, axis="y")
    axes[1][0].set_xlabel(f"{blur_family} kernel size (pixels)")
    axes[1][1].set_xlabel("other conditions")
    axes[0][1].set_title("other families", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()  # below the panels: it never covers a curve
    figure.legend(handles, labels, loc="lower center", ncol=min(4, max(len(labels), 1)), fontsize=8)
    figure.suptitle(f"{bench}: accuracy and answer identity (E) under obfuscation, 95% intervals")
    legend_rows = -(-len(labels) // 4)
    figure.tight_layout(rect=(0.0, min(0.3, 0.035 * legend_rows + 0.01), 1.0, 1.0))
    return figure


CHANCE_STYLES = {
    "c_chance_empirical": ("-", "chance (model's own answers)"),
    "c_chance": (":", "chance ((1/K)^levels)"),
}
"""How each chance level of C is drawn: a line across its bar (solid, dotted), black with a white edge so it shows
on any bar colour and at zero."""
CHANCE_OUTLINE = [patheffects.withStroke(linewidth=4.5, foreground="white")]


def c_rates(summary: pl.DataFrame) -> Figure:
    """The C rate (answers that survive every blur level) per benchmark and model, with both chance levels drawn
    across each bar, above it."""
    benches = sorted(summary["benchmark"].unique().to_list())
    models = sorted(summary["model"].unique().to_list())
    colours = _colours(models)
    width = 0.8 / max(len(models), 1)
    figure, ax = plt.subplots(figsize=(max(6, 1.6 * len(benches) * max(1, len(models) / 2)) + 2.5, 4.5))
    for m, model in enumerate(models):
        for b, bench in enumerate(benches):
            hit = summary.filter((pl.col("model") == model) & (pl.col("benchmark") == bench))
            if not hit.height or hit["c_rate"][0] is None:
                continue
            x = b - 0.4 + width * (m + 0.5)
            value = hit["c_rate"][0]
            error = [[value - hit["c_rate_ci_low"][0]], [hit["c_rate_ci_high"][0] - value]]
            ax.bar(x, value, width * 0.9, color=colours[model], label=model if b == 0 else None, zorder=2)
            ax.errorbar(x, value, yerr=error, color="black", capsize=3, linewidth=1, zorder=3)
            for column, (style, _) in CHANCE_STYLES.items():
                chance = hit[column][0]
                if chance is not None:
                    half = width * 0.4
                    ax.plot(
                        [x - half, x + half], [chance, chance], linestyle=style, color="black", linewidth=2,
                        path_effects=CHANCE_OUTLINE, zorder=4, solid_capstyle="butt",
                    )  # fmt: skip
    for style, label in CHANCE_STYLES.values():
        ax.plot([], [], linestyle=style, color="black", linewidth=2, path_effects=CHANCE_OUTLINE, label=label)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels(benches)
    ax.set_xlabel("benchmark")
    ax.set_ylabel("C rate (share of items)")
    ax.set_ylim(-0.04, 1.02)  # below zero, so a chance level near 0 shows above the axis line
    ax.axhline(0, color="#888888", linewidth=0.8, zorder=1)
    ax.set_title("Answers that survive every blur level (C, by identity), 95% intervals")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # outside: never on a bar
    ax.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def class_shares(summary: pl.DataFrame) -> Figure:
    """Item-class shares, one stacked bar per model x benchmark."""
    rows = summary.sort("benchmark", "model")
    labels = [f"{r['model']}\n{r['benchmark']}" for r in rows.iter_rows(named=True)]
    figure, ax = plt.subplots(figsize=(9.5, 1.6 + 0.5 * max(len(labels), 1)))
    left = np.zeros(len(labels))
    for name, colour in CLASS_COLOURS.items():
        values = np.nan_to_num(rows[f"share_{name}"].to_numpy().astype(float))
        ax.barh(range(len(labels)), values, left=left, color=colour, label=name.replace("_", " "))
        left += values
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of items")
    ax.set_ylabel("model / benchmark")
    ax.set_title("Item classes per model and benchmark")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside, not on the axis
    figure.tight_layout()
    return figure


PROBE_MEASURES = (
    ("accuracy", "probe accuracy"),
    ("selectivity", "selectivity (accuracy - control)"),
    ("p_gold", "P(gold answer)"),
    ("p_prior", "P(prior answer)"),
)


def probe_curves(probes: pl.DataFrame, model: str, level_names: dict[tuple[str, str], str] | None = None) -> Figure:
    """Probe accuracy, selectivity, P(gold) and P(prior) against layer depth: the MLP probe on every item, one line
    per target and condition (solid: clean, dashed: obfuscated), one row of panels per benchmark and feature.
    ``level_names``: (benchmark, condition key) -> the condition as a reader knows it ("blur k=61")."""
    names = level_names or {}
    rows = probes.filter((pl.col("model") == model) & (pl.col("probe") == "mlp") & (pl.col("subset") == "all"))
    panels = sorted(rows.select("benchmark", "feature").unique().rows())
    targets = sorted(rows["target"].unique().to_list())
    colours = _colours(targets)
    figure, axes = plt.subplots(
        max(len(panels), 1), len(PROBE_MEASURES), figsize=(16, 3.4 * max(len(panels), 1)), squeeze=False
    )
    for f, (bench, feature) in enumerate(panels):
        panel = rows.filter((pl.col("benchmark") == bench) & (pl.col("feature") == feature))
        levels = sorted(panel["level"].unique().to_list(), key=level_order)
        for m, (measure, label) in enumerate(PROBE_MEASURES):
            ax = axes[f][m]
            for target in targets:
                for li, level in enumerate(levels):
                    line = panel.filter((pl.col("target") == target) & (pl.col("level") == level)).sort("layer")
                    values = line[measure].to_numpy().astype(float)
                    if not line.height or not np.isfinite(values).any():
                        continue
                    layers = line["layer"].to_numpy()
                    style = "-" if li == 0 else "--"
                    shown = names.get((bench, level), level)
                    ax.plot(layers, values, style, marker=".", color=colours[target], label=f"{target} ({shown})")
                    if measure in ("accuracy", "selectivity"):
                        low = line[f"{measure}_ci_low"].to_numpy().astype(float)
                        high = line[f"{measure}_ci_high"].to_numpy().astype(float)
                        ax.fill_between(layers, low, high, color=colours[target], alpha=0.12, linewidth=0)
            prefix = f"{bench} \u00b7 " if len({b for b, _ in panels}) > 1 else ""
            ax.set_title(f"{prefix}{feature}: {label}", fontsize=9)
            ax.set_xlabel("layer (0 = embeddings)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if measure == "selectivity":
                ax.axhline(0, color="black", linewidth=0.8)
                ax.set_ylim(-1.02, 1.02)
            else:  # accuracy and probabilities: the whole 0-1 range, so panels and models compare at a glance
                ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    figure.suptitle(f"{model}: layer-wise MLP probes (every item; 95% intervals across folds)")
    figure.tight_layout(rect=(0, 0.08 / max(1, len(panels) / 2), 1, 0.97))
    return figure


def swap_heatmap(swaps: pl.DataFrame) -> Figure:
    """Per pair, the change each spec makes against the unswapped base, spec x benchmark: follow-image where items
    with a prior that differs from gold exist, accuracy elsewhere (the cell says which). Constrained layout keeps
    each panel's spec names clear of the panel beside it; a cell's value is white on a dark cell."""
    pairs = sorted(swaps["pair"].unique().to_list())
    figure, axes = plt.subplots(
        1, len(pairs), figsize=(5.2 * len(pairs) + 1.5, 5.5), squeeze=False, layout="constrained"
    )
    colours = plt.get_cmap("RdBu")
    image = None
    for p, pair in enumerate(pairs):
        ax = axes[0][p]
        rows = swaps.filter(pl.col("pair") == pair)
        condition = sorted(rows.select("family", "level", "param").unique().rows())[0]
        rows = rows.filter((pl.col("family") == condition[0]) & (pl.col("level") == condition[1]))
        specs = rows["spec"].unique(maintain_order=True).to_list()
        benches = sorted(rows["benchmark"].unique().to_list())
        grid = np.full((len(specs), len(benches)), np.nan)
        for b, bench in enumerate(benches):
            per = rows.filter(pl.col("benchmark") == bench)
            column = "follow_image" if per["follow_image"].drop_nulls().len() else "accuracy"
            base = per.filter(pl.col("spec") == "base")[column]
            for s, spec in enumerate(specs):
                hit = per.filter(pl.col("spec") == spec)[column]
                if hit.len() and base.len() and hit[0] is not None and base[0] is not None:
                    grid[s, b] = hit[0] - base[0]
        image = ax.imshow(grid, cmap=colours, vmin=-1, vmax=1, aspect="auto")
        for s, b in zip(*np.nonzero(np.isfinite(grid)), strict=True):
            value = grid[s, b]
            ax.text(b, s, f"{value:+.2f}", ha="center", va="center", fontsize=8, color=text_colour(colours, value))
        ax.set_xticks(range(len(benches)))
        ax.set_xticklabels(benches, rotation=30, ha="right")
        ax.set_yticks(range(len(specs)))
        ax.set_yticklabels(specs, fontsize=8)
        ax.set_xlabel("benchmark")
        ax.set_ylabel("spec (what the donor gives)")
        ax.set_title(f"{pair} ({condition_label(*condition)})", fontsize=10)
    if image is not None:
        figure.colorbar(image, ax=axes[0].tolist(), label="change against the base (follow-image, or accuracy)")
    figure.suptitle("Weight swaps: change against the unswapped base")
    return figure


def text_colour(colours: matplotlib.colors.Colormap, value: float) -> str:
    """White on a dark cell, black on a light one (by the cell colour's relative luminance)."""
    red, green, blue, _ = colours((value + 1) / 2)
    return "white" if 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45 else "black"


def patch_curves(patches: pl.DataFrame, model: str) -> Figure:
    """The restored fraction against layer, one line per position set, one panel per benchmark and pair. Where no
    item can be restored (the target run already answers gold: patching blurred states into the clean run), the
    panel shows the flip rate to the source run's answer instead, and its axis says so."""
    rows = patches.filter(pl.col("model") == model)
    panels = sorted(rows.select("benchmark", "source", "target").unique().rows())
    positions = sorted(rows["position"].unique().to_list())
    colours = _colours(positions)
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4), squeeze=False)
    for p, (bench, source, target) in enumerate(panels):
        ax = axes[0][p]
        panel = rows.filter(
            (pl.col("benchmark") == bench) & (pl.col("source") == source) & (pl.col("target") == target)
        )
        measure = "restored" if panel["restored"].drop_nulls().len() else "flip_rate"
        for position in positions:
            line = panel.filter(pl.col("position") == position).sort("layer")
            if line.height and line[measure].drop_nulls().len():
                _band(ax, line["layer"].to_numpy(), line, measure, colours[position], position)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(1, color="black", linewidth=0.8, linestyle=":")
        ax.set_title(f"{bench}: {source} into {target}", fontsize=10)
        ax.set_xlabel("layer patched (0 = embeddings)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(
            "restored fraction of the logit difference"
            if measure == "restored"
            else "flip rate to the source run's answer"
        )
        ax.grid(alpha=0.3)
        ax.legend(title="positions", fontsize=8)
    figure.suptitle(f"{model}: activation patching, 95% intervals")
    figure.tight_layout()
    return figure


def _lens_heatmap(ax, panel: pl.DataFrame, levels: list[str], shown: list[str], lens: str):  # type: ignore[no-untyped-def]
    """Residual point x condition: the mean gold margin read through ``lens`` (red: gold leads, blue: it trails)."""
    rows = panel.filter((pl.col("lens") == lens) & (pl.col("measure") == "margin_gold") & (pl.col("layer") >= 0))
    points = sorted(rows["layer"].unique().to_list())
    grid = np.full((len(points), len(levels)), np.nan)
    for r in rows.iter_rows(named=True):
        if r["value"] is not None:
            grid[points.index(r["layer"]), levels.index(r["level"])] = r["value"]
    bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    colours = plt.get_cmap("RdBu_r")
    image = ax.imshow(grid, cmap=colours, vmin=-bound, vmax=bound, aspect="auto", origin="lower")
    for p, c in zip(*np.nonzero(np.isfinite(grid)), strict=True):
        value = grid[p, c]
        colour = text_colour(colours, value / bound if bound else 0.0)
        ax.text(c, p, f"{value:+.1f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels(shown, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(points)))
    ax.set_yticklabels([str(p) for p in points], fontsize=7)
    ax.set_ylabel("residual point (0 = embeddings)")
    return image


def lens_figure(lens: pl.DataFrame, model: str, level_names: dict[tuple[str, str], str] | None = None) -> Figure:
    """Per benchmark, two panels: the gold option's margin through depth at every condition (the tuned lens where
    it was fitted, else the logit lens; the panel says which) and the last prompt token's attention mass on the image
    per decoder layer, one line per condition with its interval (sinks excluded). A model whose attention was not
    read gets a panel that says so."""
    names = level_names or {}
    rows = lens.filter(pl.col("model") == model)
    benches = sorted(rows["benchmark"].unique().to_list())
    figure, axes = plt.subplots(
        max(len(benches), 1), 2, figsize=(13, 4.2 * max(len(benches), 1)), squeeze=False, layout="constrained"
    )
    for b, bench in enumerate(benches):
        panel = rows.filter(pl.col("benchmark") == bench)
        levels = sorted(panel["level"].unique().to_list(), key=level_order)
        shown = [names.get((bench, level), level) for level in levels]
        lenses = panel["lens"].drop_nulls().unique().to_list()
        chosen = "tuned" if "tuned" in lenses else "logit"
        image = _lens_heatmap(axes[b][0], panel, levels, shown, chosen)
        figure.colorbar(image, ax=axes[b][0], label="log P(gold) - best other option")
        axes[b][0].set_title(f"{bench}: gold margin through depth ({chosen} lens)", fontsize=10)
        ax = axes[b][1]
        attention = panel.filter(pl.col("measure") == "attention_image").drop_nulls("value")
        if not attention.height:
            ax.text(0.5, 0.5, attention_note(panel), ha="center", va="center", wrap=True, fontsize=9)
            ax.set_axis_off()
            continue
        colours = plt.get_cmap("viridis")
        for li, level in enumerate(levels):
            line = attention.filter(pl.col("level") == level).sort("layer")
            if line.height:
                colour = matplotlib.colors.to_hex(colours(0.8 * li / max(len(levels) - 1, 1)))  # no pale yellow
                _band(ax, line["layer"].to_numpy(), line, "value", colour, shown[li])
        ax.set_title(f"{bench}: last prompt token's attention on the image (sinks excluded)", fontsize=10)
        ax.set_xlabel("decoder layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("attention mass on image tokens (mean over heads)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(title="condition", fontsize=8)
    figure.suptitle(f"{model}: the answer through depth, and where it looks (95% intervals)")
    return figure


def knockout_curves(
    knockouts: pl.DataFrame, model: str, level_names: dict[tuple[str, str], str] | None = None
) -> Figure:
    """Per benchmark, the flip rate against the first layer of the blocked window, one line per position set and
    condition (the window of every layer is left out: the report's sentence gives it)."""
    names = level_names or {}
    rows = knockouts.filter(pl.col("model") == model)
    benches = sorted(rows["benchmark"].unique().to_list())
    figure, axes = plt.subplots(
        1, max(len(benches), 1), figsize=(5.5 * max(len(benches), 1), 4), squeeze=False, layout="constrained"
    )
    for b, bench in enumerate(benches):
        ax = axes[0][b]
        panel = rows.filter(pl.col("benchmark") == bench)
        whole = panel["window_size"].max()
        panel = panel.filter(pl.col("window_size") < whole) if panel["window_size"].n_unique() > 1 else panel
        keys = sorted(panel.select("position", "condition", "window_size").unique().rows())
        colours = _colours([f"{p}/{w}" for p, _, w in keys])
        for position, condition, size in keys:
            line = panel.filter(
                (pl.col("position") == position) & (pl.col("condition") == condition) & (pl.col("window_size") == size)
            ).sort("window_start")
            if not line["flip_rate"].drop_nulls().len():
                continue
            label = f"{position}, {size}-layer windows, {names.get((bench, condition), condition)}"
            _band(ax, line["window_start"].to_numpy(), line, "flip_rate", colours[f"{position}/{size}"], label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{bench}: attention to the image blocked", fontsize=10)
        ax.set_xlabel("first decoder layer of the blocked window")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("flip rate (answer changed)")
        ax.grid(alpha=0.3)
        ax.legend(title="blocked from", fontsize=8)
    figure.suptitle(f"{model}: attention knockout (95% intervals)")
    return figure


def comparison_forest(comparisons: pl.DataFrame, level_names: dict[tuple[str, str], str] | None = None) -> Figure:
    """Per pair, the accuracy difference (a - b) at every condition with its paired interval, one marker series per
    benchmark: filled where the adjusted p is below alpha, hollow where not; the MDE band shaded around zero."""
    names = level_names or {}
    pairs = sorted(comparisons.select("model_a", "model_b").unique().rows())
    columns = min(3, max(len(pairs), 1))
    rows_n = max(1, -(-len(pairs) // columns))
    figure, axes = plt.subplots(rows_n, columns, figsize=(5.5 * columns, 3.8 * rows_n), squeeze=False,
                                layout="constrained")  # fmt: skip
    benches = sorted(comparisons["benchmark"].unique().to_list())
    colours = _colours(benches)
    for p, (model_a, model_b) in enumerate(pairs):
        ax = axes[p // columns][p % columns]
        panel = comparisons.filter((pl.col("model_a") == model_a) & (pl.col("model_b") == model_b))
        for b, bench in enumerate(benches):
            part = panel.filter(pl.col("benchmark") == bench).with_columns(
                (pl.col("family") + "/" + pl.col("level").cast(pl.String)).alias("key")
            )
            keys = part["key"].to_list()
            part = part[sorted(range(part.height), key=lambda i: level_order(keys[i]))]
            if not part.height:
                continue
            x = np.arange(part.height) + 0.12 * b
            value = part["difference"].to_numpy().astype(float)
            low = value - part["difference_ci_low"].to_numpy().astype(float)
            high = part["difference_ci_high"].to_numpy().astype(float) - value
            ax.errorbar(x, value, yerr=[low, high], fmt="none", ecolor=colours[bench], alpha=0.6)
            differs = part["differs"].fill_null(False).to_numpy()
            ax.scatter(x[differs], value[differs], color=colours[bench], label=f"{bench} (differs)", zorder=3)
            ax.scatter(x[~differs], value[~differs], facecolors="white", edgecolors=colours[bench],
                       label=f"{bench} (no difference)", zorder=3)  # fmt: skip
            mde = float(np.nanmedian(part["mde"].to_numpy().astype(float))) if part["mde"].drop_nulls().len() else 0
            ax.axhspan(-mde, mde, color=colours[bench], alpha=0.08, linewidth=0)
            if b == 0:
                ax.set_xticks(np.arange(part.height))
                ax.set_xticklabels([names.get((bench, k), k) for k in part["key"]], rotation=40, ha="right",
                                   fontsize=7)  # fmt: skip
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{model_a} minus {model_b}", fontsize=10)
        ax.set_xlabel("condition")
        ax.set_ylabel("accuracy difference (paired 95% interval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for p in range(len(pairs), rows_n * columns):
        axes[p // columns][p % columns].set_axis_off()
    figure.suptitle("Paired comparisons: filled where the adjusted p is below alpha; band: the median MDE")
    return figure
