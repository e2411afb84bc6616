"""The aggregate stage: every finished output into results/tables, results/plots and results/report.html.

Outputs that do not exist yet (a swap or patch stage not run, a job still pending) are not an error: their tables
are empty, their figures and report sections say what is missing, and the console says it too.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
from matplotlib.figure import Figure

from blindspot.contracts.answers import chance_options
from blindspot.contracts.tables import PROBE_SKIPPED
from blindspot.stages.aggregate import html, plots
from blindspot.stages.aggregate.browser import browser
from blindspot.stages.aggregate.browser import controls as browser_controls
from blindspot.stages.aggregate.compare import comparisons, hybrid_answers
from blindspot.stages.aggregate.exports import results_json, write_csv, write_json
from blindspot.stages.aggregate.headline import headline
from blindspot.stages.aggregate.layout import AggregateSlice, output_paths
from blindspot.stages.aggregate.needs_image import judge
from blindspot.stages.aggregate.sentences import (
    comparison_findings,
    hybrid_findings,
    knockout_findings,
    lens_findings,
    patch_sentences,
    summary_sentences,
    swap_sentences,
)
from blindspot.stages.aggregate.tables import (
    COMPARISONS_SCHEMA,
    DECAY_TABLE_SCHEMA,
    PROVENANCE_SCHEMA,
    STACKED_SCHEMAS,
    SUMMARY_SCHEMA,
    Collected,
    collect,
    condition_labels,
    decay_table,
    level_names,
    official_wide,
    provenance_table,
    stacked,
    summary_table,
    with_level_names,
)
from blindspot.store.atomic import atomic_outputs
from blindspot.store.provenance import provenance
from blindspot.store.tables import write_table

SUMMARY_COLUMNS = {
    "accuracy_clean": "clean acc",
    "share_unparsed_answers": "unparsed",
    "share_abstain_answers": "abstain",
    "share_hedged_answers": "hedged",
    "c_rate": "C [95% CI]",
    "c_chance": "chance",
    "c_chance_empirical": "chance (own answers)",
    "mg": "MG",
    "share_fine_visual": "fine",
    "share_coarse_visual": "coarse",
    "share_language_prior": "prior",
    "share_uncertain": "uncertain",
}
"""The summary table's columns printed on the console (with their headers)."""


def mean_chance(items: pl.DataFrame) -> float | None:
    """Mean 1/K over the items: the accuracy of a guess, where every item has a closed answer space."""
    sizes = [
        chance_options(t, len(o) if o is not None else None)
        for t, o in zip(items["answer_type"], items["options"], strict=True)
    ]
    if not sizes or any(not k for k in sizes):
        return None
    return sum(1 / k for k in sizes if k) / len(sizes)


def _missing_note(found: Collected, kinds: tuple[str, ...], what: str) -> str | None:
    paths = [p for kind in kinds for p in found.missing.get(kind, [])]
    if not paths:
        return None
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return f"{len(paths)} {what} output(s) not produced yet ({shown}); this section leaves them out."


class Report:
    """Collects the page's sections while the figures are written."""

    def __init__(self, config: AggregateSlice, outputs: dict[str, Path]) -> None:
        self.config = config
        self.outputs = outputs
        self.sections: list[tuple[str, str, str]] = []

    def figure(self, name: str, figure: Figure, caption: str) -> str:
        """Save plot ``name`` (PNG and SVG) and return it as an embedded figure."""
        png, svg = self.outputs[f"plot_{name}"], self.outputs[f"svg_{name}"]
        plots.save(figure, png, svg)
        return html.figure(png.read_bytes(), name, caption)

    def table(self, frame: pl.DataFrame, name: str) -> str:
        return html.table(frame, f"table-{name}", self.config.report.table_rows)

    def missing(self, found: Collected, kind: str, what: str) -> str:
        note = _missing_note(found, (kind,), what)
        return html.missing(note) if note else ""

    def per_model(
        self,
        kind: str,
        frame: pl.DataFrame,
        models: list[str],
        draw: Callable[[pl.DataFrame, str], Figure],
        what: str,
        absent: dict[str, str] | None = None,
    ) -> str:
        """One figure per model (``<kind>_<model>``); a model without rows gets a figure that says why (``absent``:
        model -> the reason, else "no output yet")."""
        inner = ""
        for model in models:
            if frame.filter(pl.col("model") == model).height:
                figure = draw(frame, model)
            else:
                reason = (absent or {}).get(model, f"no {kind} output yet for this model")
                figure = plots.empty_figure(f"{model}: {what}", reason)
            inner += self.figure(f"{kind}_{model}", figure, f"{model}: {what}.")
        return inner


def aggregate(config: AggregateSlice, results: str | Path) -> list[str]:
    """Write every aggregate output, all of them or none (a failure leaves the previous outputs as they were);
    return the console lines (summary table, what is missing, the report)."""
    results = Path(results)
    finals = output_paths(config, results)
    found = collect(config, results)
    with atomic_outputs(finals) as outputs:
        console = _write_outputs(config, results, found, outputs)
    return [*console, f"report: {finals['report']}"]


def _write_outputs(config: AggregateSlice, results: Path, found: Collected, outputs: dict[str, Path]) -> list[str]:
    record = provenance("aggregate", config)
    report = Report(config, outputs)
    console: list[str] = []

    decay = pl.from_arrow(decay_table(found.frame("decay")))
    summary = pl.from_arrow(
        summary_table(found.frame("decay"), found.frame("classes"), found.frame("rejects"), config.mostly_unparsed)
    )
    assert isinstance(decay, pl.DataFrame) and isinstance(summary, pl.DataFrame)
    write_table(decay.to_arrow(), DECAY_TABLE_SCHEMA, record, outputs["table_decay"])
    write_table(summary.to_arrow(), SUMMARY_SCHEMA, record, outputs["table_summary"])
    stacks: dict[str, pl.DataFrame] = {}
    for kind, schema in STACKED_SCHEMAS.items():
        table: pa.Table = stacked(found.frame(kind), schema)
        write_table(table, schema, record, outputs[f"table_{kind}"])
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        stacks[kind] = frame
    hybrids, hybrid_pairs = hybrid_answers(found.frame("swap_answers")) if config.compare.hybrids else (None, [])
    compared = pl.DataFrame(
        comparisons(found.frame("predictions"), found.frame("staged_items"), config.compare_pairs, config.compare,
                    config.seed)
        + (comparisons(hybrids, found.frame("staged_items"), hybrid_pairs, config.compare, config.seed, "swap")
           if hybrids is not None else []),
        schema=pl.Schema(COMPARISONS_SCHEMA),
    )  # fmt: skip
    write_table(compared.to_arrow(), COMPARISONS_SCHEMA, record, outputs["table_comparisons"])
    stacks["comparisons"] = compared
    origins = provenance_table(found, results)
    write_table(origins, PROVENANCE_SCHEMA, record, outputs["table_provenance"])
    prov_frame = pl.from_arrow(origins)
    assert isinstance(prov_frame, pl.DataFrame)
    write_json(results_json(summary, prov_frame, record), outputs["results_json"])
    for name, frame in {"decay": decay, "summary": summary, **stacks, "provenance": prov_frame}.items():
        write_csv(frame, outputs[f"csv_{name}"])

    # -- summary
    notes = [
        n
        for kind, what in (
            ("decay", "decay"),
            ("probes", "probe"),
            ("swaps", "swap"),
            ("patches", "patch"),
            ("lens", "lens"),
            ("knockouts", "knockout"),
        )
        if (n := _missing_note(found, (kind,), what))
    ]
    warnings = summary["warning"].drop_nulls().to_list() if summary.height else []
    console += warnings + [f"aggregate: {n}" for n in notes]
    names = level_names(decay)
    patches = with_level_names(stacks["patches"], names, ("source", "target"))
    sentences = summary_sentences(summary) + swap_sentences(stacks["swaps"]) + patch_sentences(patches)
    findings = {  # the mechanism sections' sentences, computed once for the summary and the sections
        "lens": [f.text for f in lens_findings(stacks["lens"], names)],
        "knockout": [f.text for f in knockout_findings(stacks["knockouts"], names)],
        "compare": [
            f.text
            for f in comparison_findings(compared, names, config.compare.alpha)
            + hybrid_findings(compared, config.compare.alpha)
        ],
    }
    sentences += findings["lens"] + findings["knockout"] + findings["compare"]
    console += left_out(stacks["knockouts"])
    inner = headline(summary, stacks["swaps"], patches)
    inner += "".join(html.missing(n) for n in notes)
    details = "<ul class=summary>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"
    details += report.table(summary, "summary")
    inner += html.details("Every summary figure, in sentences and in full", details)
    report.sections.append(("summary", "Summary", inner))

    # -- decay
    inner = ""
    items = found.frame("staged_items")
    for bench in config.benchmarks:
        chance = mean_chance(items.filter(pl.col("benchmark") == bench)) if items.height else None
        if decay.filter(pl.col("benchmark") == bench).height:
            figure = plots.decay_curves(decay, bench, config.blur_family, chance)
        else:
            figure = plots.empty_figure(f"{bench}: decay", "no decay output yet for this benchmark")
        inner += report.figure(
            f"decay_{bench}", figure, f"{bench}: accuracy and E against the {config.blur_family} kernel per model."
        )
    keys = ("model", "benchmark", "condition")
    labelled = decay.drop("official").with_columns(condition_labels().alias("condition"))
    inner += report.table(labelled.select(*keys, pl.exclude(*keys)), "decay")
    official = official_wide(decay, config.blur_family)
    if official.height:
        inner += (
            "<h3>Official scores</h3><p>Each benchmark's own scores (POPE's F1, HallusionBench's question-pair "
            f"accuracy, ...) at every {html.escape(config.blur_family)} level, with cluster-bootstrap intervals.</p>"
        )
        inner += report.table(official, "official")
    report.sections.append(("decay", "Decay under obfuscation", inner))

    # -- classes and C
    if summary.height:
        c_figure, class_figure = plots.c_rates(summary), plots.class_shares(summary)
    else:
        c_figure = plots.empty_figure("C rate", "no decay output yet")
        class_figure = plots.empty_figure("Item classes", "no decay output yet")
    inner = report.figure("c_rate", c_figure, "Share of answers that survive every blur level, with chance levels.")
    inner += report.figure("classes", class_figure, "Item classes per model and benchmark.")
    report.sections.append(("classes", "Survival and item classes", inner))

    # -- probes
    inner = report.missing(found, "probes", "probe")
    probes = stacks["probes"]
    if probes.height:
        skipped = probes.filter(pl.col("probe") == PROBE_SKIPPED).unique(["model", "benchmark", "target"])
        for r in skipped.sort("model", "benchmark", "target").iter_rows(named=True):
            what = f"Target '{r['target']}' not probed for {r['model']} on {r['benchmark']}"
            inner += html.missing(f"{what}: {r['note']}.")

    def draw_probes(frame: pl.DataFrame, model: str) -> Figure:
        return plots.probe_curves(frame, model, names)

    inner += report.per_model("probes", probes, config.models, draw_probes, "layer-wise probes")
    inner += report.table(stacks["probes"], "probes")
    report.sections.append(("probes", "Probes", inner))

    # -- swaps
    swaps = stacks["swaps"]
    if not config.pairs:
        inner = html.missing("No swap pairs are configured (swap.pairs), so no weight swaps ran.")
    else:
        inner = report.missing(found, "swaps", "swap")
        figure = plots.swap_heatmap(swaps) if swaps.height else plots.empty_figure("Swaps", "no swap output yet")
        inner += report.figure("swaps", figure, "Change against the unswapped base, per spec and benchmark.")
        inner += report.table(swaps, "swaps")
    report.sections.append(("swaps", "Weight swaps", inner))

    # -- patches
    if not config.patch_models:
        inner = html.missing("No model is configured for activation patching (patch.models), so none ran.")
    else:
        inner = report.missing(found, "patches", "patch")
        inner += report.per_model("patches", patches, config.patch_models, plots.patch_curves, "activation patching")
        inner += report.table(stacks["patches"], "patches")
    report.sections.append(("patches", "Activation patching", inner))
    lens = lens_section(report, found, stacks["lens"], names, findings["lens"])
    report.sections.append(("lens", "The answer through depth", lens))
    knockout = knockout_section(report, found, stacks["knockouts"], names, findings["knockout"])
    report.sections.append(("knockout", "Attention knockout", knockout))
    compare = comparison_section(report, compared, names, findings["compare"])
    report.sections.append(("compare", "Paired comparisons", compare))
    needs = needs_image_section(report, found.frame("predictions"))
    report.sections.append(("needs-image", "Items that need the image", needs))

    # -- items
    inner = browser_controls(config.benchmarks, found.frame("classes"))
    stores = {p.name.removesuffix(".zarr"): p for p in found.paths.get("render", [])}
    for bench in config.benchmarks:
        inner += f"<h3>{html.escape(bench)}</h3>"
        inner += browser(
            bench,
            items.filter(pl.col("benchmark") == bench) if items.height else items,
            found.frame("predictions"),
            found.frame("classes"),
            stores.get(bench),
            config.blur_family,
            config.report.browser_items,
            config.report.thumbnail_side,
            config.margin_threshold,
        )
    report.sections.append(("items", "Items", inner))

    prov = pl.from_arrow(origins)
    assert isinstance(prov, pl.DataFrame)
    report.sections.append(("provenance", "Provenance", report.table(prov.drop("versions"), "provenance")))

    outputs["report"].write_text(html.page("blindspot report", report.sections, warnings), encoding="utf-8")
    console.append(format_summary(summary))
    return console


def _sentences(findings: list[str]) -> str:
    return "<ul class=findings>" + "".join(f"<li>{html.escape(s)}</li>" for s in findings) + "</ul>" if findings else ""


def lens_section(
    report: Report, found: Collected, lens: pl.DataFrame, names: dict[tuple[str, str], str], findings: list[str]
) -> str:
    """Where the answer emerges and is overtaken (logit and tuned lens), and where the last prompt token looks at
    the image: the sentences, one figure per model, the per-condition rows (the full table is in tables/)."""
    config = report.config
    if not config.lens_models:
        return html.missing("The lens stage is off (lens.enabled: false), so no model was read through depth.")
    inner = report.missing(found, "lens", "lens")
    inner += _sentences(findings)

    def draw(frame: pl.DataFrame, model: str) -> Figure:
        return plots.lens_figure(frame, model, names)

    what = "the gold margin through depth, and the attention on the image"
    inner += report.per_model("lens", lens, config.lens_models, draw, what)
    if lens.height:
        per_condition = lens.filter(pl.col("layer") == -1).drop("layer")
        inner += "<h3>Per condition</h3>" + report.table(with_level_names(per_condition, names, ("level",)), "lens")
    return inner


def left_out(knockouts: pl.DataFrame) -> list[str]:
    """The knockout stage's one-line reasons for models whose attention could not be masked."""
    if knockouts.is_empty():
        return []
    rows = knockouts.filter(pl.col("window_size") == 0).unique(["model", "benchmark"]).sort("model", "benchmark")
    return [f"knockout on {r['benchmark']}: {r['note']}" for r in rows.iter_rows(named=True)]


def knockout_section(
    report: Report, found: Collected, knockouts: pl.DataFrame, names: dict[tuple[str, str], str], findings: list[str]
) -> str:
    """Which decoder layers carry the image into the answer: the sentences, one figure per model (models whose
    attention could not be masked are named and left out), the table."""
    config = report.config
    if not config.knockout_models:
        return html.missing("No model is configured for attention knockout (knockout.models), so none ran.")
    inner = report.missing(found, "knockouts", "knockout")
    inner += "".join(html.missing(line) for line in left_out(knockouts))
    measured = knockouts.filter(pl.col("window_size") > 0) if knockouts.height else knockouts
    excluded = knockouts.filter(pl.col("window_size") == 0) if knockouts.height else knockouts
    absent = {r["model"]: "left out: attention cannot be masked" for r in excluded.iter_rows(named=True)}
    inner += _sentences(findings)

    def draw(frame: pl.DataFrame, model: str) -> Figure:
        return plots.knockout_curves(frame, model, names)

    inner += report.per_model("knockout", measured, config.knockout_models, draw, "attention knockout", absent)
    return inner + report.table(with_level_names(knockouts, names, ("condition",)), "knockouts")


def comparison_section(
    report: Report, compared: pl.DataFrame, names: dict[tuple[str, str], str], findings: list[str]
) -> str:
    """Each configured pair's differences per benchmark and condition: the sentences, the forest plot, the table."""
    config = report.config
    if not config.compare_pairs:
        return html.missing("Fewer than two models are configured, so no pair was compared (compare.pairs).")
    models = compared.filter(pl.col("kind") == "models")
    inner = _sentences(findings)
    inner += (
        "<p>McNemar's exact test takes items as independent; where items share a source image, the paired "
        "cluster-bootstrap interval is the one that accounts for it.</p>"
    )
    figure = (
        plots.comparison_forest(models, names)
        if models.height
        else plots.empty_figure("Paired comparisons", "no predictions of a compared pair yet")
    )
    inner += report.figure("comparisons", figure, "Accuracy differences per pair, condition and benchmark.")
    return inner + report.table(compared, "comparisons")


def needs_image_section(report: Report, predictions: pl.DataFrame) -> str:
    """Per benchmark: how many items no model of the run answers right without an informative image (what
    ``blindspot export`` writes as a benchmark), and how many each model solves blind."""
    config = report.config
    if predictions.is_empty():
        return html.missing("No predictions yet, so no item has been judged.")
    rows = []
    for bench in config.benchmarks:
        part = predictions.filter(pl.col("benchmark") == bench)
        if part.is_empty():
            continue
        judged = judge(part, config.blind_families, config.margin_threshold)
        row = {"benchmark": bench, "items": judged.items.height,
               "need the image": int((~judged.items["solved_blind"]).sum())}  # fmt: skip
        row |= {f"solved blind by {m}": int(judged.items["blind_models"].list.contains(m).sum()) for m in judged.models}
        rows.append(row)
    text = (
        "<p>An item is solved blind by a model that answers it right, with the gold option leading by at least "
        f"{config.margin_threshold} nats, at a condition that shows nothing of the image "
        f"({html.escape(', '.join(config.blind_families))}). The items no model solves blind are a benchmark that "
        "needs the image: <code>blindspot export</code> writes them (Parquet in a Hugging Face dataset's layout, an "
        "lmms-eval task and a datasheet).</p>"
    )
    return text + report.table(pl.DataFrame(rows), "needs-image")


def format_summary(summary: pl.DataFrame) -> str:
    """The summary table for the terminal: one line per model x benchmark, the C rate with its interval, and how
    the answers were read (unparsed, abstained, hedged). A withheld value shows as n/a; its reason is in the
    table's ``<metric>_note`` column."""
    if summary.is_empty():
        return "(no decay output yet: the summary table is empty)"

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    rows = []
    for r in summary.sort("benchmark", "model").iter_rows(named=True):
        row = {"benchmark": r["benchmark"], "model": r["model"], "items": str(r["n_items"])}
        for column, header in SUMMARY_COLUMNS.items():
            row[header] = shown(r[column])
        if r["c_rate"] is not None and r["c_rate_ci_low"] is not None:
            row["C [95% CI]"] += f" [{r['c_rate_ci_low']:.3f}, {r['c_rate_ci_high']:.3f}]"
        row["vision-indispensable"] = str(r["n_vision_indispensable"])
        rows.append(row)
    frame = pl.DataFrame(rows)
    with pl.Config(
        tbl_rows=500,
        tbl_cols=frame.width,
        tbl_width_chars=250,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
    ):
        buffer = io.StringIO()
        buffer.write(str(frame))
    return buffer.getvalue()
