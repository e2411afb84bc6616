"""The report's headline: one compact table (per model and benchmark) and at most three sentences on what stands
out, all computed from the summary, swap and patch tables. The long per-row sentences sit below it, folded."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import polars as pl

from blindspot.stages.aggregate.sentences import Finding, interval, patch_findings, swap_findings


@dataclass(frozen=True)
class Column:
    """One headline column: its header, the summary metric it shows and what the header's tooltip says."""

    header: str
    metric: str
    means: str


HEADLINE_COLUMNS = (
    Column("clean accuracy", "accuracy_clean", "accuracy on the unobfuscated image"),
    Column(
        "C by margin",
        "c_rate_margin",
        "confident clean answers whose option stays on top by the margin threshold at every blur level",
    ),
    Column(
        "C by identity \u2020",
        "c_rate",
        "the paper's rate: answers identical at every blur level (counts coarse-visual answers too, see the note)",
    ),
    Column("chance (1/K)^L", "c_chance", "C of a model that guesses uniformly at every level"),
    Column("chance (own answers)", "c_chance_empirical", "C expected from the model's own answers without an image"),
    Column("MG", "mg", "multimodal gain: accuracy with the image minus without"),
    Column(
        "language prior",
        "share_language_prior",
        "items whose answer survives blur, blank, noise and no image alike: reliance on the prior",
    ),
    Column(
        "vision-indispensable",
        "share_vision_indispensable",
        "items whose answer needs the image (fine or coarse visual)",
    ),
)

IDENTITY_NOTE = (
    "\u2020 C by identity is the paper's rate: the share of answers that stay identical at every blur level. It also "
    "counts coarse-visual answers, which survive blur because the blurred image still shows enough (a colour, a "
    "layout), so a model that reads the image can score a higher C than one that follows the prior. The figure for "
    "reliance on the prior is the language-prior share: answers that survive blur, blank, noise and no image alike. "
    "C by margin counts only confident answers whose evidence holds, where the first generated token is an option "
    "label. Every interval is a 95% cluster-bootstrap interval over source images."
)


def _cell(row: dict, metric: str) -> str:
    value = row.get(metric)
    if value is None:
        reason = row.get(f"{metric}_note") or row.get("share_classes_note") or "not measured"
        return f'<td class="na" title="{escape(reason)}" data-v="">n/a</td>'
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    shown = f"{100 * value:.1f}%"
    if low is not None and high is not None:
        shown += f'<span class="ci">{100 * low:.1f}\u2013{100 * high:.1f}</span>'
    return f'<td data-v="{value!r}">{shown}</td>'


def headline_table(summary: pl.DataFrame) -> str:
    """The compact table: per model and benchmark, each headline metric with its interval beneath it."""
    head = '<th class="text">model</th><th class="text">benchmark</th><th>items</th>' + "".join(
        f'<th title="{escape(c.means)}">{escape(c.header)}</th>' for c in HEADLINE_COLUMNS
    )
    body = []
    for row in summary.sort("benchmark", "model").iter_rows(named=True):
        flagged = ' class="flagged"' if row.get("warning") else ""
        cells = (
            f'<td class="text" data-v="{escape(row["model"])}">{escape(row["model"])}</td>'
            f'<td class="text" data-v="{escape(row["benchmark"])}">{escape(row["benchmark"])}</td>'
            f'<td data-v="{row["n_items"]}">{row["n_items"]}</td>'
        )
        cells += "".join(_cell(row, c.metric) for c in HEADLINE_COLUMNS)
        body.append(f"<tr{flagged}>{cells}</tr>")
    return (
        f'<div class="scroll"><table class="sortable headline" id="table-headline"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div><p class=note>{escape(IDENTITY_NOTE)}</p>"
    )


def _overlap(a: dict, b: dict, metric: str) -> bool:
    found = [r.get(f"{metric}_ci_{side}") for r in (a, b) for side in ("low", "high")]
    bounds = [float(v) for v in found if v is not None]
    if len(bounds) < 4:
        return True
    low_a, high_a, low_b, high_b = bounds
    return low_a <= high_b and low_b <= high_a


def _extremes(summary: pl.DataFrame, metric: str) -> tuple[str, list[dict], list[dict]] | None:
    """The group with the widest spread of ``metric`` (the models on one benchmark, or where every benchmark has a
    single model, one model's benchmarks) and its highest and lowest rows (several where they tie); None where
    fewer than two rows compare or all of them tie. Rows with a warning (mostly unread answers) are left out."""
    rows = summary.filter(pl.col(metric).is_not_null() & pl.col("warning").is_null())
    best: tuple[float, str, pl.DataFrame] | None = None
    for within, other in (("benchmark", "model"), ("model", "benchmark")):
        for _, group in rows.sort(within, other).group_by(within, maintain_order=True):
            spread = float(group[metric].max()) - float(group[metric].min())  # type: ignore[arg-type]
            if group.height >= 2 and spread > 0 and (best is None or spread > best[0]):
                best = (spread, within, group)
        if best is not None:
            _, within, group = best
            top, bottom = group[metric].max(), group[metric].min()
            high = group.filter(pl.col(metric) == top).to_dicts()
            low = group.filter(pl.col(metric) == bottom).to_dicts()
            return within, high, low
    return None


def _compare(summary: pl.DataFrame, metric: str, most: str, least: str, what: str) -> str | None:
    found = _extremes(summary, metric)
    if found is None:
        return None
    within, high, low = found
    where = f"On {high[0]['benchmark']}, " if within == "benchmark" else ""

    def who(rows: list[dict]) -> str:
        names = [r["model"] if within == "benchmark" else f"{r['model']} on {r['benchmark']}" for r in rows]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"

    text = (
        f"{where}{who(high)} {most} ({what} {interval(high[0], metric)}) and {who(low)} {least} "
        f"({interval(low[0], metric)})"
    )
    if _overlap(high[0], low[0], metric):
        text += "; their intervals overlap, so the difference is not clear at this sample size"
    return text + "."


def _single(summary: pl.DataFrame) -> str | None:
    """Where nothing compares (one model on one benchmark): what that row says about the prior."""
    rows = summary.filter(pl.col("share_language_prior").is_not_null() & pl.col("warning").is_null())
    if rows.height != 1:
        return None
    row = rows.row(0, named=True)
    return (
        f"On {row['benchmark']}, {interval(row, 'share_language_prior')} of {row['model']}'s items keep their answer "
        "under blur, blank, noise and no image alike (the language-prior class); "
        f"{interval(row, 'share_vision_indispensable')} need the image."
    )


def _strongest(findings: list[Finding]) -> Finding | None:
    return max(findings, key=lambda f: f.strength) if findings else None


def headline_sentences(summary: pl.DataFrame, swaps: pl.DataFrame, patches: pl.DataFrame) -> list[str]:
    """At most three sentences on what stands out: who leans most on the language prior, where the image adds most
    (MG), and the strongest swap (else patching) finding."""
    out = []
    prior = _compare(
        summary, "share_language_prior", "leans most on the language prior", "least", "language-prior share"
    )
    mg = _compare(summary, "mg", "gains most from the image", "least", "MG")
    out += [s for s in (prior or _single(summary), mg) if s]
    mechanism = _strongest(swap_findings(swaps)) or _strongest(patch_findings(patches))
    if mechanism is not None:
        out.append(mechanism.text)
    return out[:3]


def headline(summary: pl.DataFrame, swaps: pl.DataFrame, patches: pl.DataFrame) -> str:
    """The headline's HTML: the sentences, then the table."""
    sentences = headline_sentences(summary, swaps, patches)
    lead = " ".join(escape(s) for s in sentences)
    return (f'<p class="lead">{lead}</p>' if lead else "") + headline_table(summary)
