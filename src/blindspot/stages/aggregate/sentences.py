"""The report's summary in sentences, computed from the aggregate tables (never typed in)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from blindspot.contracts.conditions import condition_label
from blindspot.stages.aggregate.tables import attention_note, level_order


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def interval(row: dict, name: str) -> str:
    value, low, high = row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if value is None:
        return "n/a"
    if low is None or high is None:
        return pct(value)
    return f"{pct(value)} [{100 * low:.1f}, {100 * high:.1f}]"


def _reading(row: dict) -> str:
    """How the answers were read: clean accuracy and the unparsed, abstained and hedged shares."""
    model, bench = row["model"], row["benchmark"]
    clean = interval(row, "accuracy_clean")
    if row.get("accuracy_clean") is None:
        clean += f" ({row.get('accuracy_clean_note') or 'not measured'})"
    return (
        f"On {bench}, {model} answers {row['n_items']} items with clean accuracy {clean}; over every condition "
        f"{pct(row.get('share_unparsed_answers'))} of its answers could not be read (unparsed), "
        f"{pct(row.get('share_abstain_answers'))} abstain and {pct(row.get('share_hedged_answers'))} hedge."
    )


def _survival(row: dict) -> str:
    """C, one definition per sentence: by identity against both chance levels, then by option margin."""
    model = row["model"]
    if row.get("c_rate") is None:
        text = f"Survival by identity (C) is unavailable: {row.get('c_rate_note') or 'not measured'}."
    else:
        text = (
            f"By identity, {interval(row, 'c_rate')} of {model}'s answers survive every blur level; "
            f"chance is {pct(row['c_chance'])} by the (1/K)^levels formula"
        )
        if row.get("c_chance") is None and row.get("c_chance_note"):
            text += f" ({row['c_chance_note']})"
        if row.get("c_chance_empirical") is not None:
            text += f" and {pct(row['c_chance_empirical'])} from the model's own answers without an informative image"
        text += "."
    if row.get("c_rate_margin") is None:
        text += f" Survival by margin is unavailable: {row.get('c_rate_margin_note') or 'not measured'}."
    else:
        text += (
            f" By margin, {interval(row, 'c_rate_margin')} of its confident clean answers keep the evidence for "
            "their option at every blur level."
        )
    return text


def summary_sentences(summary: pl.DataFrame) -> list[str]:
    """Per model x benchmark: any warning first, how the answers were read, the C rate by identity and by margin
    against both chance levels, MG and the item classes. A withheld value says why."""
    out = []
    for row in summary.sort("benchmark", "model").iter_rows(named=True):
        bench = row["benchmark"]
        text = f"{row['warning']} " if row.get("warning") else ""
        text += _reading(row) + " " + _survival(row)
        if row.get("mg") is not None:
            text += f" The image adds {interval(row, 'mg')} accuracy (MG)."
        else:
            text += f" MG is unavailable: {row.get('mg_note') or 'not measured'}."
        if row.get("share_fine_visual") is None and row.get("share_classes_note"):
            text += f" Item classes are withheld: {row['share_classes_note']}."
        else:
            text += (
                f" {row['n_vision_indispensable']} of {row['n_items']} items are vision-indispensable "
                f"(fine visual {pct(row['share_fine_visual'])}, coarse visual {pct(row['share_coarse_visual'])}); "
                f"{pct(row['share_language_prior'])} follow the language prior, {pct(row.get('share_uncertain'))} "
                "are uncertain (an unconfident clean answer)."
            )
        if row.get("n_rejected"):
            text += (
                f" Staging rejected {row['n_rejected']} source rows of {bench} ({row.get('rejected_reasons')}; see "
                "the rejects table)."
            )
        out.append(text)
    return out


@dataclass(frozen=True)
class Finding:
    """One computed sentence and how strong its effect is (for choosing the headline's)."""

    strength: float
    text: str
    spec: str | None = None
    """The swap spec the sentence names (swap findings only)."""


def _spec_size(row: dict) -> int:
    """How much a swap spec takes from the donor: its decoder layers and named units."""
    return len(row.get("layers") or []) + len(row.get("units") or [])


def _ties(best: dict, row: dict, column: str) -> bool:
    """``row``'s value lies within ``best``'s interval (the same value, where there is no interval)."""
    low, high = best.get(f"{column}_ci_low"), best.get(f"{column}_ci_high")
    if low is None or high is None:
        return bool(row[column] == best[column])
    return bool(low <= row[column] <= high)


def swap_findings(swaps: pl.DataFrame) -> list[Finding]:
    """Per pair and benchmark: the spec (other than the full donor) that moves follow-image (or accuracy) most. A
    narrower spec whose value lies within the strongest one's interval is named instead (one layer over a window
    that holds it), and the sentence says so."""
    out = []
    for (pair, bench), rows in swaps.group_by(["pair", "benchmark"], maintain_order=True):
        column = "follow_image" if rows["follow_image"].drop_nulls().len() else "accuracy"
        first = rows.select("family", "level").row(0)
        rows = rows.filter((pl.col("family") == first[0]) & (pl.col("level") == first[1]))
        base = rows.filter(pl.col("spec") == "base")[column]
        donor = rows.filter(pl.col("spec") == "donor")[column]
        specs = rows.filter(~pl.col("spec").is_in(["base", "donor"])).drop_nulls(column)
        if not base.len() or base[0] is None or not specs.height:
            continue
        ranked = specs.with_columns((pl.col(column) - base[0]).abs().alias("gain")).sort(
            "gain", "spec", descending=[True, False]
        )
        strongest = ranked.row(0, named=True)
        tied = [r for r in ranked.iter_rows(named=True) if _ties(strongest, r, column)]
        named = min(tied, key=lambda r: (_spec_size(r), -r["gain"]))
        text = (
            f"On {bench}, swapping {named['spec']} from {named['donor']} into {named['base']} ({pair}) moves "
            f"{column.replace('_', '-')} from {pct(base[0])} to {interval(named, column)}"
        )
        if named["spec"] != strongest["spec"]:
            text += f"; the wider {strongest['spec']} ({pct(strongest[column])}) does no better within the interval"
        if donor.len() and donor[0] is not None:
            text += f"; the whole donor reaches {pct(donor[0])}"
        where = condition_label(first[0], first[1], named.get("param"))
        shown = "on the clean image" if where == "clean" else where
        out.append(Finding(float(named["gain"]), text + f" ({shown}).", named["spec"]))
    return out


def swap_sentences(swaps: pl.DataFrame) -> list[str]:
    return [f.text for f in swap_findings(swaps)]


def patch_findings(patches: pl.DataFrame) -> list[Finding]:
    """Per model, benchmark, pair and position set: the deepest layer where patching still restores half (or, where
    nothing can be restored, still flips half of the answers to the source run's)."""
    out = []
    keys = ["model", "benchmark", "source", "target", "position"]
    for key, rows in patches.sort("layer").group_by(keys, maintain_order=True):
        model, bench, source, target, position = key
        restored = rows.drop_nulls("restored")
        if restored.height:
            column, verb, count = "restored", "restores at least half of the logit difference", "n_restorable"
        else:
            column, verb, count = "flip_rate", "flips at least half of the answers to the source run's", "n_flippable"
            restored = rows.drop_nulls("flip_rate")
            if not restored.height:
                continue
        half = restored.filter(pl.col(column) >= 0.5)
        where = f"{verb} at {half.height} of {restored.height} layers"
        if half.height:
            where += f", the deepest being layer {half['layer'].to_list()[-1]}"
        text = (
            f"On {bench}, patching {model}'s {position} positions from {source} into {target} {where} "
            f"({restored[count][0]} items where the two runs answer differently)."
        )
        out.append(Finding(half.height / restored.height, text))
    return out


def patch_sentences(patches: pl.DataFrame) -> list[str]:
    return [f.text for f in patch_findings(patches)]


def number(row: dict, name: str = "value", digits: int = 1) -> str:
    """A mean with its interval, as a plain number (a layer, a margin)."""
    value, low, high = row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _named(names: dict[tuple[str, str], str], bench: str, level: str) -> str:
    shown = names.get((bench, level), level)
    return "the clean view" if shown == "clean" else shown


def _measure(rows: pl.DataFrame, level: str, measure: str, lens: str | None = None) -> dict | None:
    hit = rows.filter((pl.col("level") == level) & (pl.col("measure") == measure))
    hit = hit.filter(pl.col("lens") == lens) if lens else hit
    return hit.row(0, named=True) if hit.height else None


def lens_findings(lens: pl.DataFrame, names: dict[tuple[str, str], str]) -> list[Finding]:
    """Per model and benchmark: where the answer emerges (clean and the most severe condition), where the prior
    overtakes a gold answer that led, and where the last prompt token looks at the image."""
    out = []
    for (model, bench), rows in lens.group_by(["model", "benchmark"], maintain_order=True):
        levels = sorted(rows["level"].unique().to_list(), key=level_order)
        lens_name = "tuned" if "tuned" in rows["lens"].drop_nulls().to_list() else "logit"
        clean, severe = levels[0], levels[-1]
        parts = []
        emerged = [(lv, _measure(rows, lv, "emergence", lens_name)) for lv in dict.fromkeys((clean, severe))]
        said = [f"from point {number(r)} on {_named(names, bench, lv)}" for lv, r in emerged if r and r["value"]]
        if said:
            parts.append(
                f"On {bench}, {model}'s answer stays on top through the {lens_name} lens " + " and ".join(said)
            )
        overtaken = _measure(rows, clean, "overtaken", lens_name)
        if overtaken and overtaken["value"] is not None:
            where = _measure(rows, clean, "overtake_layer", lens_name)
            text = (
                f"on {_named(names, bench, clean)}, the prior overtakes a gold answer that led in "
                f"{interval(overtaken, 'value')} of the {overtaken['n']} items whose prior differs from gold"
            )
            if where and where["value"] is not None:
                text += f", at point {number(where)} on average"
            parts.append(text)
        looks = rows.filter((pl.col("measure") == "attention_image") & (pl.col("level") == clean)).drop_nulls("value")
        if looks.height:
            peak = looks.sort("value", descending=True).row(0, named=True)
            text = (
                f"the last prompt token's attention on the image peaks in decoder layer {peak['layer']} at "
                f"{interval(peak, 'value')} on {_named(names, bench, clean)}"
            )
            blurred = _measure(rows.filter(pl.col("layer") == peak["layer"]), severe, "attention_image")
            if severe != clean and blurred and blurred["value"] is not None:
                text += f" and is {interval(blurred, 'value')} there on {_named(names, bench, severe)}"
            parts.append(text)
        else:
            parts.append(f"its attention was not read ({attention_note(rows)})")
        if parts:
            out.append(Finding(0.0, "; ".join(parts) + "."))
    return out


def knockout_findings(knockouts: pl.DataFrame, names: dict[tuple[str, str], str]) -> list[Finding]:
    """Per model, benchmark, condition and position set: the window whose blocking flips most answers (with the
    gold margin's change), the most any other window flips, and what blocking every layer does. A model left out
    (its one row has no window) has no finding."""
    out = []
    knockouts = knockouts.filter(pl.col("window_size") > 0)
    keys = ["model", "benchmark", "condition", "position"]
    for (model, bench, condition, position), rows in knockouts.group_by(keys, maintain_order=True):
        whole = rows["window_size"].max()
        windows = rows.filter(pl.col("window_size") < whole).drop_nulls("flip_rate")
        every = rows.filter(pl.col("window_size") == whole)
        who = "the answer position" if position == "last" else f"the {position} positions"
        where = _named(names, bench, condition)
        text = ""
        if windows.height:
            best = windows.sort("flip_rate", "window_start", descending=[True, False]).row(0, named=True)
            last = best["window_start"] + best["window_size"] - 1
            span = f"layer {last}" if best["window_size"] == 1 else f"layers {best['window_start']}-{last}"
            others = windows.filter(pl.col("window_start") != best["window_start"])["flip_rate"]
            text = (
                f"On {bench} ({where}), blocking {who} from the image in decoder {span} flips "
                f"{interval(best, 'flip_rate')} of {model}'s answers and moves the gold margin by "
                f"{number(best, 'delta_margin', 2)}"
            )
            if others.len():
                text += f"; no other window flips more than {pct(others.max())}"  # type: ignore[arg-type]
        if every.height and every["flip_rate"][0] is not None:
            row = every.row(0, named=True)
            text += "; blocking every layer" if text else f"On {bench} ({where}), blocking {who} in every layer"
            text += f" flips {interval(row, 'flip_rate')}"
            if row["agree_no_image"] is not None:
                text += f" and agrees with the no-image answer on {interval(row, 'agree_no_image')}"
        if text:
            strength = max(windows["flip_rate"].to_list(), default=0.0)
            out.append(Finding(float(strength), text + "."))
    return out


def comparison_findings(comparisons: pl.DataFrame, names: dict[tuple[str, str], str], alpha: float) -> list[Finding]:
    """Per pair: how many benchmark x condition cells differ after adjustment, the largest difference with its
    interval and adjusted p, and the median MDE of the cells that do not differ (what a null result rules out)."""
    out = []
    models = comparisons.filter(pl.col("kind") == "models")
    for (model_a, model_b), rows in models.group_by(["model_a", "model_b"], maintain_order=True):
        rows = rows.drop_nulls("difference")
        if not rows.height:
            continue
        method = "Holm" if rows["adjust"][0] == "holm" else "Benjamini-Hochberg"
        differs = rows.filter(pl.col("differs"))
        text = (
            f"{model_a} and {model_b} differ in {differs.height} of {rows.height} benchmark x condition cells "
            f"({method}-adjusted McNemar p < {alpha:g})"
        )
        if differs.height:
            top = differs.sort(pl.col("difference").abs(), descending=True).row(0, named=True)
            where = _named(names, top["benchmark"], f"{top['family']}/{top['level']}")
            text += (
                f"; the largest is {top['model_a']} minus {top['model_b']} = "
                f"{number(top, 'difference', 3)} on {top['benchmark']} at {where} (adjusted p {top['p_adjusted']:.2g})"
            )
        same = rows.filter(~pl.col("differs")).drop_nulls("mde")
        if same.height:
            mde = float(same["mde"].median())  # type: ignore[arg-type]
            text += f"; where they do not differ, differences above {mde:.3f} are ruled out (median MDE)"
        strength = max((abs(v) for v in differs["difference"].to_list()), default=0.0)
        out.append(Finding(strength, text + "."))
    return out


def hybrid_findings(comparisons: pl.DataFrame, alpha: float) -> list[Finding]:
    """Per swap pair: how many of its hybrids differ from the base after adjustment, and the largest difference."""
    out: list[Finding] = []
    swaps = comparisons.filter(pl.col("kind") == "swap").drop_nulls("difference")
    if swaps.is_empty():
        return out
    swaps = swaps.with_columns(
        pl.col("model_a").str.split(":").list.first().alias("pair"),
        pl.col("model_a").str.split(":").list.last().alias("spec"),
    )
    for (pair,), rows in swaps.group_by(["pair"], maintain_order=True):
        differing = rows.filter(pl.col("differs"))
        specs, found = rows["spec"].n_unique(), differing["spec"].n_unique()
        text = f"Of the {specs} weight-swap hybrids of {pair}, {found} differ from the unswapped base in accuracy"
        text += f" (adjusted McNemar p < {alpha:g})"
        if differing.height:
            top = differing.sort(pl.col("difference").abs(), descending=True).row(0, named=True)
            text += (
                f"; the largest is {top['spec']}, {number(top, 'difference', 3)} on {top['benchmark']} "
                f"(adjusted p {top['p_adjusted']:.2g})"
            )
        strength = max((abs(v) for v in differing["difference"].to_list()), default=0.0)
        out.append(Finding(strength, text + "."))
    return out
