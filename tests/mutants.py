"""``make mutants``: plant plausible single-point bugs in the measurement code and check that the safety net
catches each one.

For every mutant: copy the package, apply one edit (the original text must occur exactly once), then

1. run the unit tests of the mutated module against the copy;
2. rerun the mutated stage (decay, probe, swap or patch) on the outputs of one clean toy-world run, and
   ``blindspot calibrate`` on the result.

A mutant is *caught* when either fails. The script prints a table and exits non-zero if any mutant survives.
The list lives in ``MUTANTS`` below; extend it whenever a measuring stage is added (docs/mutants.md).

    python tests/mutants.py                # every mutant (about 15-25 minutes on 2 cores)
    python tests/mutants.py --only decay   # the mutants whose id starts with 'decay' (several prefixes allowed)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from conftest import reduced_toy_config  # tests/ is on the path: this script runs from it

from blindspot.config import BlindspotConfig, load_config
from blindspot.stages.table import STAGES, RunNames

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Mutant:
    id: str
    category: str
    file: str
    """Relative to src/blindspot."""
    original: str
    replacement: str
    stage: str
    """The stage to rerun: decay, probe, swap, patch or aggregate."""
    tests: str
    """The unit tests of the mutated module."""


DECAY, PROBE = "tests/test_decay.py", "tests/test_probes.py"
SWAP, PATCH = "tests/test_swap.py", "tests/test_patch.py"
AGGREGATE = "tests/test_aggregate.py"
LENS, ATTENTION = "tests/test_lens.py", "tests/test_attention.py"
COMPARE = "tests/test_compare.py"
CORPUS = "tests/test_answer_corpus.py"
OFFICIAL = "tests/test_official_scores.py"
HOSTILE, FAILURES = "tests/test_hostile_inputs.py", "tests/test_kill_resilience.py"
SPLIT = "tests/test_split.py"
"""The reliability mutants change no measurement: calibrate cannot see them (their stage to rerun is the cheap
decay), so their unit tests must catch each."""
MUTANTS = [
    Mutant(
        "stage-row-error-stops",
        "a bad row stops the benchmark",
        "benchmarks/sources.py",
        "    except (BlindspotError, OSError, MemoryError):\n        raise\n    except Exception as error:\n",
        "    except (BlindspotError, OSError, MemoryError):\n        raise\n    except ArithmeticError as error:\n",
        "decay",
        HOSTILE,
    ),
    Mutant(
        "stage-lone-surrogate",
        "a bad row stops the benchmark",
        "stages/staging.py",
        '                text.encode("utf-8")\n',
        '                text.encode("utf-8", "surrogatepass")\n',
        "decay",
        HOSTILE,
    ),
    Mutant(
        "images-no-byte-cap",
        "an unbounded size",
        "images.py",
        "    if max_bytes is not None and size > max_bytes:\n",
        "    if max_bytes is not None and size > 2**62:\n",
        "decay",
        HOSTILE,
    ),
    Mutant(
        "images-unknown-header-decoded",
        "an unbounded size",
        "images.py",
        "    if declared is None:\n        raise ImageError(\n",
        "    if declared is None:\n        return\n        raise ImageError(\n",
        "decay",
        HOSTILE,
    ),
    Mutant(
        "tables-no-checksum",
        "damage read silently",
        "store/tables.py",
        "        return pq.read_table(path, columns=columns, page_checksum_verification=True)\n",
        "        return pq.read_table(path, columns=columns)\n",
        "decay",
        "tests/test_corruption.py",
    ),
    Mutant(
        "verify-missing-array-metadata",
        "damage read silently",
        "store/verify.py",
        "    problem = missing_metadata(path)\n",
        "    problem = None\n",
        "decay",
        "tests/test_corruption.py",
    ),
    Mutant(
        "model-truncation-unchecked",
        "a damaged model directory",
        "models/loading.py",
        "    if ends and 8 + length + max(ends) > size:\n",
        "    if ends and 8 + length + max(ends) > 2**62:\n",
        "decay",
        HOSTILE,
    ),
    Mutant(
        "cli-file-size-traceback",
        "an error that is not one line",
        "cli.py",
        '    errno.EFBIG: ("a file grew past the file-size limit", "raise the limit (ulimit -f)"),\n',
        "",
        "decay",
        FAILURES,
    ),
    Mutant(
        "atomic-cleanup-hides-error",
        "an error that is not one line",
        "stages/staging.py",
        "            with contextlib.suppress(OSError):  # a read-only folder: report the first error, not the "
        "cleanup's\n"
        "                outputs[output].unlink(missing_ok=True)\n",
        "            outputs[output].unlink(missing_ok=True)\n",
        "decay",
        FAILURES,
    ),
    Mutant(
        "config-lax-integers",
        "config strictness",
        "config_base.py",
        '    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)\n',
        '    model_config = ConfigDict(extra="forbid", frozen=True)\n',
        "decay",
        "tests/test_config.py",
    ),
    Mutant(
        "decay-reference-level",
        "wrong reference level",
        "stages/decay.py",
        "    clean_col = grid.column(blur, 0)\n",
        "    clean_col = grid.column(blur, 1)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-drop-last-level",
        "a dropped level",
        "stages/decay.py",
        "    ladder_cols = grid.columns(blur, exclude=clean_col)\n",
        "    ladder_cols = grid.columns(blur, exclude=clean_col)[:-1]\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-shift-levels",
        "a shifted level",
        "stages/decay.py",
        "    ladder_cols = grid.columns(blur, exclude=clean_col)\n",
        "    ladder_cols = grid.columns(blur)[:-1]\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-drop-middle-level",
        "a dropped level",
        "stages/decay.py",
        "    ladder_cols = grid.columns(blur, exclude=clean_col)\n",
        "    ladder_cols = [c for i, c in enumerate(grid.columns(blur, exclude=clean_col)) if i != 3]\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-next-level-rates",
        "a shifted level",
        "stages/decay.py",
        "        identical = _identical(grid, j, clean_col).astype(float)\n",
        "        identical = _identical(grid, min(j + 1, len(grid.conditions) - 1), clean_col).astype(float)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-lost-level-by-identity",
        "chance agreement counted as survival",
        "stages/decay.py",
        "    lost = np.where(by_margin, lost_margin, lost_identity)\n",
        "    lost = lost_identity\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-previous-level",
        "comparison with the previous level",
        "stages/decay.py",
        "        identical &= _identical(grid, j, clean_col)\n",
        "        identical &= _identical(grid, j, j - 1)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-c-rate-subset",
        "a wrong subset",
        "stages/decay.py",
        '    add(*EVERY, "c_rate", boot.mean(s.c_identity.astype(float), clean_ok), unreported=b.no_clean)\n',
        '    add(*EVERY, "c_rate", boot.mean(s.c_identity.astype(float), b.everyone), unreported=b.no_clean)\n',
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-mg-sign",
        "a sign flip",
        "stages/decay.py",
        "        mg = boot.difference(grid.score[:, clean_col], grid.score[:, none_col], everyone)\n",
        "        mg = boot.difference(grid.score[:, none_col], grid.score[:, clean_col], everyone)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-margin-sign",
        "a sign flip",
        "contracts/answers.py",
        "    return logprobs[answer] - max(v for k, v in logprobs.items() if k != answer)\n",
        "    return max(v for k, v in logprobs.items() if k != answer) - logprobs[answer]\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-chance-formula",
        "a wrong chance formula",
        "stages/decay.py",
        "    chance = (1.0 / grid.n_options) ** ladder\n",
        "    chance = (1.0 / grid.n_options) ** (ladder + 1)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-coarse-inverted",
        "a wrong class rule",
        "stages/decay.py",
        '        out[blur & ~survived] = "coarse_visual"\n',
        '        out[blur & survived] = "coarse_visual"\n',
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-no-uncertain",
        "a wrong class rule",
        "stages/decay.py",
        '    class_margin[s.clean_ok & ~s.confident] = "uncertain"\n',
        "",
        "decay",
        DECAY,
    ),
    Mutant(
        "stats-zero-width",
        "zero-width intervals",
        "statistics.py",
        "            low, high = min(low, w_low), max(high, w_high)\n",
        "            low, high = value, value\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "stats-ignore-clusters",
        "intervals ignore clustering",
        "statistics.py",
        "            self.weights = counts[:, self.clusters].astype(float)"
        "  # (resamples, items): how often each item is drawn\n",
        "            n = len(self.clusters)\n"
        "            self.weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(float)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "probe-in-sample",
        "in-sample probe evaluation",
        "stages/probe.py",
        "            own = folds[start : start + config.batch_size]\n",
        "            own = (folds[start : start + config.batch_size] + 1) % n_folds\n",
        "probe",
        PROBE,
    ),
    Mutant(
        "probe-ungrouped-folds",
        "ungrouped folds",
        "statistics.py",
        "    return np.array([fold_of[g] for g in groups])\n",
        "    return np.random.default_rng(seed).integers(0, k, len(groups))\n",
        "probe",
        PROBE,
    ),
    Mutant(
        "probe-standardise-on-test",
        "standardisation fitted on test data",
        "stages/probe.py",
        "    mean, std = fold_standardisation(x, train)\n",
        "    mean, std = fold_standardisation(x, ~train)\n",
        "probe",
        PROBE,
    ),
    Mutant(
        "probe-control-is-task",
        "a degenerate control task",
        "stages/probe.py",
        "        out[members] = labels[rng.permutation(members)]\n",
        "        out[members] = labels[members]\n",
        "probe",
        PROBE,
    ),
    Mutant(
        "probe-p-prior-is-gold",
        "a wrong subset",
        "stages/probe.py",
        "                    p_prior = float(p[np.nonzero(valid)[0], pr[valid]].mean()) if valid.any() else None\n",
        "                    p_prior = float(p[np.arange(len(g)), g].mean())\n",
        "probe",
        PROBE,
    ),
    Mutant(
        "probe-layer-off-by-one",
        "an off-by-one layer",
        "stages/probe.py",
        '                        "layer": layer,\n',
        '                        "layer": layer + 1,\n',
        "probe",
        PROBE,
    ),
    Mutant(
        "swap-layer-off-by-one",
        "an off-by-one layer",
        "stages/swap.py",
        "    prefixes = [family.layer_prefix(i) for i in spec.layers]\n",
        "    prefixes = [family.layer_prefix(i + 1) for i in spec.layers]\n",
        "swap",
        SWAP,
    ),
    Mutant(
        "swap-window-name-shift",
        "a shifted level",
        "stages/swap.py",
        '            name = f"layer_{start}" if w == 1 else f"layers_{start}-{start + w - 1}"\n',
        '            name = f"layer_{start + 1}" if w == 1 else f"layers_{start + 1}-{start + w}"\n',
        "swap",
        SWAP,
    ),
    Mutant(
        "swap-no-restore",
        "state leaking between hybrids",
        "stages/swap.py",
        "                    param.copy_(original)\n",
        "                    pass\n",
        "swap",
        SWAP,
    ),
    Mutant(
        "swap-flip-against-donor",
        "a wrong reference",
        "stages/swap.py",
        '                "flip_vs_base": boot.mean((key != base_key).astype(float), everyone),\n',
        '                "flip_vs_base": boot.mean((key != donor_key).astype(float), everyone),\n',
        "swap",
        SWAP,
    ),
    Mutant(
        "swap-follow-image-all-items",
        "a wrong subset",
        "stages/swap.py",
        '                "follow_image": boot.mean((key == gold_key).astype(float), differs),\n',
        '                "follow_image": boot.mean((key == gold_key).astype(float), everyone),\n',
        "swap",
        SWAP,
    ),
    Mutant(
        "patch-replay-skips-layer",
        "an off-by-one layer",
        "models/replay.py",
        "        for j in range(index, len(layers)):\n",
        "        for j in range(index + 1, len(layers)):\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "lens-point-off-by-one",
        "an off-by-one layer",
        "stages/lens.py",
        '                    "layer": point,\n',
        '                    "layer": point + 1,\n',
        "lens",
        LENS,
    ),
    Mutant(
        "lens-norm-skipped",
        "a step skipped",
        "stages/lens.py",
        "        return self.norm(x.to(next(self.norm.parameters()).dtype)).float()\n",
        "        return x.float()\n",
        "lens",
        LENS,
    ),
    Mutant(
        "attention-sink-not-excluded",
        "a step skipped",
        "stages/extract.py",
        "        plain = (image & ~sink).float()\n",
        "        plain = image.float()\n",
        "extract",
        ATTENTION,
    ),
    Mutant(
        "attention-wrong-layer",
        "an off-by-one layer",
        "stages/extract.py",
        "            self.image[rows, level, layer] = (attention * plain[:, None]).sum(-1).cpu().numpy()\n",
        "            self.image[rows, level, (layer + 1) % self.image.shape[2]] = (attention * plain[:, None])"
        ".sum(-1).cpu().numpy()\n",
        "extract",
        "tests/test_extract.py",
    ),
    Mutant(
        "knockout-window-off-by-one",
        "an off-by-one layer",
        "stages/knockout.py",
        "        return frozenset(range(self.start, self.start + self.size))\n",
        "        return frozenset(range(self.start + 1, self.start + self.size + 1))\n",
        "knockout",
        "tests/test_knockout.py",
    ),
    Mutant(
        "knockout-mask-shifted",
        "a wrong position",
        "models/attention.py",
        "            blocked = knock.queries[:, -query.shape[-2] :, None] & knock.keys[:, None, -key.shape[-2] :]\n",
        "            blocked = knock.queries[:, -query.shape[-2] :, None] & knock.keys.roll(1, -1)[:, None, "
        "-key.shape[-2] :]\n",
        "knockout",
        ATTENTION,
    ),
    Mutant(
        "compare-holm-unadjusted",
        "p-values not adjusted",
        "statistics.py",
        "    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])\n",
        "    stepped = np.maximum.accumulate(p[order])\n",
        "aggregate",
        COMPARE,
    ),
    Mutant(
        "compare-mcnemar-one-sided",
        "how p-values are built",
        "statistics.py",
        "    return 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)\n",
        '    return 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5, alternative="less").pvalue)\n',
        "aggregate",
        COMPARE,
    ),
    Mutant(
        "compare-sign-flip",
        "a sign flip",
        "stages/aggregate/compare.py",
        "        diff[at] = score_a - score_b\n",
        "        diff[at] = score_b - score_a\n",
        "aggregate",
        COMPARE,
    ),
    Mutant(
        "compare-hybrid-against-donor",
        "a wrong reference",
        "stages/aggregate/compare.py",
        '        (f"{pair}:{spec}", f"{pair}:base")\n',
        '        (f"{pair}:{spec}", f"{pair}:donor")\n',
        "aggregate",
        COMPARE,
    ),
    Mutant(
        "decay-prior-not-divided",
        "a step skipped",
        "stages/decay.py",
        "            corrected = {k: v - prior[i][k] for k, v in lp.items()}\n",
        "            corrected = dict(lp)\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "export-coin-flips-count",
        "a wrong subset",
        "stages/aggregate/needs_image.py",
        '            & (pl.col("margin").is_null() | (pl.col("margin") >= threshold))\n',
        '            & (pl.col("margin").is_null() | (pl.col("margin") >= -threshold))\n',
        "aggregate",
        "tests/test_export.py",
    ),
    Mutant(
        "patch-last-is-first",
        "a wrong position",
        "stages/patch.py",
        "        mask[:, -1] = True  # left padding: the last prompt token is at -1\n",
        "        mask[:, 0] = True\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "patch-image-mask-inverted",
        "a wrong position",
        "stages/patch.py",
        "        return loaded.family.image_positions(loaded.model, input_ids)\n",
        "        return ~loaded.family.image_positions(loaded.model, input_ids)\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "patch-restored-sign",
        "a sign flip",
        "stages/patch.py",
        "        restored = (toward_source(patched) - toward_source(target)) / spread",
        "        restored = (toward_source(target) - toward_source(patched)) / spread",
        "patch",
        PATCH,
    ),
    Mutant(
        "patch-source-target-swapped",
        "a wrong reference",
        "stages/patch.py",
        "                hidden = patch_state(t.states[layer], s.states[layer], mask)\n",
        "                hidden = patch_state(s.states[layer], t.states[layer], mask)\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "swap-layer-prefix-match",
        "a wrong position",
        "stages/swap.py",
        '    return any(name == p or name.startswith(p + ".") for p in prefixes)\n',
        "    return any(name.startswith(p) for p in prefixes)\n",
        "swap",
        SWAP,
    ),
    Mutant(
        "patch-rival-is-target-always",
        "a wrong reference",
        "stages/patch.py",
        "    rival = target_top if target_top != gold else source_top\n",
        "    rival = target_top\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "patch-restored-on-gold",
        "a wrong reference",
        "stages/patch.py",
        "        return lp[source_top] - lp[target_top]\n",
        "        return lp[gold] - lp[target_top] if gold in lp else 0.0\n",
        "patch",
        PATCH,
    ),
    Mutant(
        "official-precision-is-recall",
        "a wrong formula",
        "benchmarks/official.py",
        "        precision = tp / (tp + fp)\n",
        "        precision = tp / (tp + fn)\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-yes-ratio-of-answered",
        "a wrong subset",
        "benchmarks/official.py",
        '        "yes_ratio": weighted_mean(weights, p),\n',
        '        "yes_ratio": weighted_mean(weights, p, (p + n) > 0),\n',
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-unparsed-as-no",
        "a wrong class rule",
        "benchmarks/official.py",
        '        "accuracy": weighted_mean(weights, p * g + n * (1 - g)),\n',
        '        "accuracy": weighted_mean(weights, p * g + (1 - p) * (1 - g)),\n',
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-group-any-correct",
        "a wrong class rule",
        "benchmarks/official.py",
        "    np.logical_and.at(group_ok, ids, correct.astype(bool))\n",
        "    np.logical_or.at(group_ok, ids, correct.astype(bool))\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-cycles-as-items",
        "a wrong subset",
        "benchmarks/official.py",
        "        return np.nanmean(means, axis=1)\n",
        "        return weighted_mean(weights, values)\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-qacc-by-figure",
        "a wrong reference",
        "benchmarks/hallusionbench.py",
        '"qAcc": all_correct_rate(data.weights, [_key(m, "question_id")',
        '"qAcc": all_correct_rate(data.weights, [_key(m, "figure_id")',
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-circular-singletons",
        "a wrong subset",
        "benchmarks/mmbench.py",
        "    circular = np.array([counts[g] > 1 for g in groups])\n",
        "    circular = np.array([counts[g] > 0 for g in groups])\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-vlmbias-first-braces",
        "a wrong reference",
        "benchmarks/vlmbias.py",
        "    said = braced[-1] if braced else response\n",
        "    said = braced[0] if braced else response\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-cvbench-item-mean",
        "a wrong formula",
        "benchmarks/cvbench.py",
        '        scores["accuracy"] = (scores["accuracy_2d"] + scores["accuracy_3d"]) / 2\n',
        '        scores["accuracy"] = weighted_mean(data.weights, correct)\n',
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "official-zero-width",
        "zero-width intervals",
        "benchmarks/official.py",
        "        weights = np.vstack([np.ones(len(index)), boot.weights[:, index]])\n",
        "        weights = np.ones((boot.weights.shape[0] + 1, len(index)))\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "adapter-repope-pope-labels",
        "a wrong reference",
        "benchmarks/pope.py",
        "        return _pope_item(index, category, row, label, pope_answer=pope_answer, relabelled=relabelled)\n",
        '        return _pope_item(index, category, row, row.get("answer"), pope_answer=pope_answer, '
        "relabelled=relabelled)\n",
        "decay",
        "tests/test_benchmarks.py",
    ),
    Mutant(
        "adapter-mmmu-column-order",
        "a wrong position",
        "benchmarks/mmmu.py",
        '        images=[row[f"image_{n}"] for n in order],\n',
        '        images=[row[f"image_{n}"] for n in sorted(order)],\n',
        "decay",
        "tests/test_benchmarks.py",
    ),
    Mutant(
        "aggregate-e-is-accuracy",
        "a wrong column",
        "stages/aggregate/tables.py",
        '    "e": "identical_rate",\n',
        '    "e": "accuracy",\n',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-n-from-c-subset",
        "a wrong subset",
        "stages/aggregate/tables.py",
        '            if column == "accuracy":\n                row["n"] = r["n"]\n',
        '            if column == "accuracy_c":\n                row["n"] = r["n"]\n',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-rejects-every-bench",
        "a wrong subset",
        "stages/aggregate/tables.py",
        '"n_rejected": rejected.get(bench, 0),',
        '"n_rejected": sum(rejected.values()),',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-chance-off-by-one",
        "a wrong chance formula",
        "stages/aggregate/run.py",
        "    return sum(1 / k for k in sizes if k) / len(sizes)\n",
        "    return sum(1 / (k + 1) for k in sizes if k) / len(sizes)\n",
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-swap-move-one-direction",
        "a sign flip",
        "stages/aggregate/sentences.py",
        '        ranked = specs.with_columns((pl.col(column) - base[0]).abs().alias("gain")).sort(\n',
        '        ranked = specs.with_columns((pl.col(column) - base[0]).alias("gain")).sort(\n',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "stats-difference-unclustered",
        "intervals ignore clustering",
        "statistics.py",
        "            stats = (self.weights @ (np.where(mask, a - b, 0.0))) / (self.weights @ m)\n",
        "            flat = np.random.default_rng(0).multinomial(n, np.full(n, 1 / n), size=len(self.weights))\n"
        "            full = np.zeros((len(self.weights), mask.size))\n"
        "            full[:, np.flatnonzero(mask)] = flat\n"
        "            stats = (full @ (np.where(mask, a - b, 0.0))) / (full @ m)\n",
        "decay",
        "tests/test_statistics.py",
    ),
    Mutant(
        "aggregate-sentence-chance-swapped",
        "a wrong reference",
        "stages/aggregate/sentences.py",
        "f\"chance is {pct(row['c_chance'])} by the (1/K)^levels formula\"",
        "f\"chance is {pct(row['c_chance_empirical'])} by the (1/K)^levels formula\"",
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-thumbnail-level",
        "a shifted level",
        "stages/aggregate/browser.py",
        '            for level, label in ((0, "clean"), (last, "most blurred")):\n',
        '            for level, label in ((0, "clean"), (last - 1, "most blurred")):\n',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "aggregate-sort-never-reverses",
        "a sign flip",
        "stages/aggregate/html.py",
        "    return ascending ? c : -c;\n",
        "    return c;\n",
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "vqav2-prediction-processed-twice",
        "an official scorer's rule",
        "answers/vqa.py",
        "    answer = process_digit_article(process_punctuation(_fold_whitespace(prediction)))\n",
        "    answer = process_digit_article(process_punctuation(evalai_process(prediction)))\n",
        "decay",
        "tests/test_vqa_scoring.py",
    ),
    Mutant(
        "reading-first-correction",
        "the wrong self-correction",
        "answers/reading.py",
        "        if m.start() > 0 and _CLAUSE_OPENING.search(text[: m.start()]) and rest:\n            tail = rest\n",
        "        if m.start() > 0 and _CLAUSE_OPENING.search(text[: m.start()]) and rest and tail is None:\n"
        "            tail = rest\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "choice-ruled-out-ignored",
        "a ruled-out option read as named",
        "answers/choice.py",
        "        ruled_out = self.letters(OUT) - committed\n",
        "        ruled_out: set[str] = set()\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "choice-possible-not-hedged",
        "a hedge lost",
        "answers/choice.py",
        "        return bool(self.letters(POSSIBLE) - {answer} - (self.letters(OUT) - self.letters(POSSIBLE)))\n",
        "        return False\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "comparison-direction-ignored",
        "a sign flip",
        "answers/comparison.py",
        "            subject, same = subjects[-1], direction == sign\n",
        "            subject, same = subjects[-1], True\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "yes-no-count-comparator",
        "an off-by-one comparison",
        "answers/yes_no.py",
        '    holds = {">": value > wanted,',
        '    holds = {">": value >= wanted,',
        "decay",
        CORPUS,
    ),
    Mutant(
        "yes-no-alternatives-read-as-yes",
        "an undecided answer read",
        "answers/yes_no.py",
        "        lambda: AMBIGUOUS if _alternatives(stripped, target) else None,\n",
        "        lambda: None,\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "decay-unparsed-by-type-ignored",
        "a warning that stays silent",
        "contracts/answers.py",
        "    mostly = {kind: share for kind, share in (by_type or {}).items() if share is not None and share > "
        "threshold}\n",
        "    mostly: dict[str, float] = {}\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "decay-class-shares-from-unread",
        "a 0.0 computed from nothing",
        "stages/decay.py",
        '        withheld = None if name == "unparsed" else b.no_clean\n',
        "        withheld = None\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "official-acc-plus-any-right",
        "a wrong official aggregate",
        "benchmarks/generic.py",
        '        out = {"accuracy": weighted_mean(weights, correct), "accuracy_plus": '
        "all_correct_rate(weights, keys, correct)}\n",
        '        out = {"accuracy": weighted_mean(weights, correct), "accuracy_plus": '
        "weighted_mean(weights, correct)}\n",
        "decay",
        OFFICIAL,
    ),
    Mutant(
        "staging-repeated-ids-keep-one",
        "a bad row stops the benchmark",
        "stages/staging.py",
        '    repeated = _rekey(mapped, lambda item: item["question"])\n',
        "    repeated = 0\n",
        "decay",
        "tests/test_benchmark_config.py",
    ),
    Mutant(
        "batching-no-length-buckets",
        "a measure of the last round undone",
        "models/batching.py",
        "    return sorted(range(len(lengths)), key=lambda i: (lengths[i], i))\n",
        "    return list(range(len(lengths)))\n",
        "decay",
        "tests/test_batching.py",
    ),
    Mutant(
        "batching-auto-never-halves",
        "a measure of the last round undone",
        "models/batching.py",
        "        self.size = failed // 2\n",
        "        self.size = max(1, failed - 1)\n",
        "decay",
        "tests/test_batching.py",
    ),
    Mutant(
        "hook-points-keyword-not-replaced",
        "a residual replacement passed by keyword",
        "models/hook_points.py",
        '            return args, {**kwargs, "hidden_states": hidden}\n',
        "            return args, kwargs\n",
        "decay",
        "tests/test_hook_points.py",
    ),
    Mutant(
        "shard-loop-trusts-a-short-shard",
        "a resumed shard whose row count is wrong",
        "models/job.py",
        "            if rows is None or found == rows:\n",
        "            if rows is None or found <= rows:\n",
        "decay",
        FAILURES,
    ),
    Mutant(
        "decay-withheld-never",
        "a 0.0 computed from nothing",
        "stages/decay.py",
        '        return f"only {count} {what} (decay.min_parsed is {self.least})" if count < self.least else None\n',
        '        return f"only {count} {what} (decay.min_parsed is {self.least})" if count < 0 else None\n',
        "decay",
        DECAY,
    ),
    Mutant(
        "hub-revision-not-passed",
        "a hub id's revision not reaching the snapshot lookup",
        "config.py",
        "        return resolve_model_dir(self.path, self.revision) if self.local_files_only else self.path\n",
        "        return resolve_model_dir(self.path) if self.local_files_only else self.path\n",
        "decay",
        "tests/test_hub_cache.py",
    ),
    Mutant(
        "hub-snapshot-outside-the-cache",
        "a lookup that leaves the cache",
        "hub_cache.py",
        "    if not _inside(snapshot, cache):\n",
        "    if False:\n",
        "decay",
        "tests/test_hub_cache.py",
    ),
    Mutant(
        "staging-free-form-rejected",
        "a measure of the last round undone",
        "benchmarks/generic.py",
        "        if free_form_ok:\n            return question, None\n",
        "        if False:\n            return question, None\n",
        "decay",
        "tests/test_staging.py",
    ),
    Mutant(
        "gold-boolean-as-count",
        "a boolean gold typed as a count",
        "benchmarks/gold.py",
        "    if isinstance(answer, bool) or (isinstance(answer, str) and "
        'answer.strip().casefold().rstrip(".") in polar):\n',
        '    if isinstance(answer, str) and answer.strip().casefold().rstrip(".") in polar:\n',
        "decay",
        "tests/test_staging.py",
    ),
    Mutant(
        "counts-first-braced-number",
        "which braced number an answer commits to",
        "answers/counts.py",
        "    for inner in reversed(_BRACES.findall(text)):\n",
        "    for inner in _BRACES.findall(text):\n",
        "decay",
        CORPUS,
    ),
    Mutant(
        "stats-percentile-level",
        "how intervals are built",
        "statistics.py",
        "        self.alpha = (1 - confidence) / 2\n",
        "        self.alpha = 1 - confidence\n",
        "decay",
        "tests/test_statistics.py",
    ),
    Mutant(
        "stats-floor-over-items",
        "how intervals are built",
        "statistics.py",
        "            clusters = len(np.unique(self.clusters[mask]))\n",
        "            clusters = int(mask.sum())\n",
        "decay",
        "tests/test_statistics.py",
    ),
    Mutant(
        "decay-cluster-key-items",
        "how intervals are built",
        "stages/decay.py",
        "    grid = build_grid(predictions, (config.blur_family, 0), groups)\n",
        "    grid = build_grid(predictions, (config.blur_family, 0))\n",
        "decay",
        DECAY,
    ),
    Mutant(
        "swap-cluster-key-items",
        "how intervals are built",
        "stages/swap.py",
        '        cluster_ids([image_group(r["image_keys"]) for r in items]), config.bootstrap, config.confidence, '
        "seed\n",
        '        cluster_ids([r["item_id"] for r in items]), config.bootstrap, config.confidence, seed\n',
        "swap",
        SWAP,
    ),
    Mutant(
        "patch-cluster-key-items",
        "how intervals are built",
        "stages/patch.py",
        '    groups = [image_group(r["image_keys"]) for r in items]\n',
        '    groups = [r["item_id"] for r in items]\n',
        "patch",
        PATCH,
    ),
    Mutant(
        "patch-summary-restored-sign",
        "the sign of patch's restored fraction",
        "stages/patch.py",
        '                "restored": e_restored.value,\n',
        '                "restored": None if e_restored.value is None else abs(e_restored.value),\n',
        "patch",
        PATCH,
    ),
    Mutant(
        "inputs-foreign-stage-accepted",
        "a foreign input read",
        "store/inputs.py",
        '    if record.get("stage") != stage:\n',
        "    if False:\n",
        "decay",
        "tests/test_corruption.py",
    ),
    Mutant(
        "gpu-claims-shared",
        "two jobs on one GPU",
        "models/devices.py",
        "        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
        "        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)\n",
        "decay",
        "tests/test_gpu_claims.py",
    ),
    Mutant(
        "decay-vision-fine-only",
        "a wrong subset",
        "stages/decay.py",
        'VISION_CLASSES = ("fine_visual", "coarse_visual")\n',
        'VISION_CLASSES = ("fine_visual",)\n',
        "decay",
        DECAY,
    ),
    Mutant(
        "report-swap-names-widest",
        "a wrong reference",
        "stages/aggregate/sentences.py",
        '        named = min(tied, key=lambda r: (_spec_size(r), -r["gain"]))\n',
        "        named = strongest\n",
        "decay",
        AGGREGATE,
    ),
    Mutant(
        "report-unsure-inverted",
        "an inverted comparison",
        "stages/aggregate/browser.py",
        '            if css == "ok" and lead < threshold:\n',
        '            if css == "ok" and lead > threshold:\n',
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "report-headline-most-is-least",
        "a wrong reference",
        "stages/aggregate/headline.py",
        "            high = group.filter(pl.col(metric) == top).to_dicts()\n",
        "            high = group.filter(pl.col(metric) == bottom).to_dicts()\n",
        "aggregate",
        AGGREGATE,
    ),
    Mutant(
        "results-parent-accepted",
        "a results folder outside the run",
        "config.py",
        "    if resolved == here or resolved in here.parents:\n",
        "    if resolved == here:\n",
        "decay",
        "tests/test_config.py",
    ),
    Mutant(
        "split-block-splits-image",
        "a split image",
        "contracts/parts.py",
        "        if len(current) >= target and reach == position:\n",
        "        if len(current) >= target:\n",
        "decay",
        SPLIT,
    ),
    Mutant(
        "split-parts-overlap",
        "a wrong item range",
        "contracts/parts.py",
        "            if total and start * self.count // total + 1 == self.index:\n",
        "            if total and start * self.count // total + 1 <= self.index:\n",
        "decay",
        SPLIT,
    ),
    Mutant(
        "split-gather-reversed",
        "a wrong order",
        "store/parts.py",
        "    tables = [read_table(path).select(schema.names).cast(schema) for path in paths]\n",
        "    tables = [read_table(path).select(schema.names).cast(schema) for path in reversed(paths)]\n",
        "decay",
        SPLIT,
    ),
    Mutant(
        "margin-only-least-likely",
        "an inverted comparison",
        "models/inference.py",
        "        responses.append(Response(text=max(logprobs, key=logprobs.__getitem__), option_logprobs=logprobs,\n",
        "        responses.append(Response(text=min(logprobs, key=logprobs.__getitem__), option_logprobs=logprobs,\n",
        "decay",
        "tests/test_predict.py",
    ),
]

TOY_MODELS = ["qwen_base", "qwen_donor_layer2", "qwen_reader", "qwen_overruled"]


def toy_config(workdir: Path, models: list[str]) -> Path:
    """The reduced toy world of `make test`: 240 items, the toy base and its layer donor (or ``models``)."""
    config = reduced_toy_config(models)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(command: list[str], cwd: Path, package: Path | None = None, log: Path | None = None) -> int:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if package is not None:
        env["PYTHONPATH"] = str(package)
    with open(log or os.devnull, "a") as out:
        return subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def baseline(workdir: Path, models: list[str]) -> Path:
    """One clean run of the reduced toy world; returns its config path."""
    workdir.mkdir(parents=True)
    config = toy_config(workdir, models)
    run([str(BIN / "blindspot"), "toy-data", "--config", str(config), "--out", "data/toy"], workdir)
    code = run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "--cores", "2"],
        workdir,
        log=workdir / "baseline.log",
    )
    if code != 0 or run([str(BIN / "blindspot"), "calibrate", "--config", str(config)], workdir) != 0:
        raise SystemExit(f"the clean baseline does not calibrate; see {workdir / 'baseline.log'}")
    return config


def stage_jobs(stage: str, config: BlindspotConfig) -> list[dict[str, str]]:
    """The wildcards of every job of ``stage`` in the reduced toy world (the stage table's jobs of its config)."""
    return STAGES[stage].jobs(RunNames.of(config))


def job_paths(stage: str, w: dict[str, str]) -> dict[str, str]:
    """Every named input and output of one job, under ``results/`` (the stage table's path templates)."""
    return {name: str(path) for name, path in STAGES[stage].paths("results", w).items()}


def rerun_stage(stage: str, config_path: Path, workdir: Path, package: Path, log: Path) -> int:
    """Rerun one stage's every toy-world job with the mutated package, in place of the clean outputs."""
    if stage == "aggregate":  # the paired comparisons are calibrated; the rest of the aggregate: the unit tests
        if run([str(BIN / "blindspot"), "aggregate", "--config", str(config_path)], workdir, package, log) != 0:
            return 1
        return run([str(BIN / "blindspot"), "calibrate", "--config", str(config_path)], workdir, package, log)
    config = load_config(config_path)
    spec = STAGES[stage]
    for wildcards in stage_jobs(stage, config):
        paths = job_paths(stage, wildcards)
        command = [str(BIN / "blindspot"), stage, "--quiet"]
        for name in spec.wildcards:
            command += [f"--{name}", wildcards[name]]
        command += ["--slice", spec.slice_json(config, wildcards)]
        for item in spec.inputs:
            command += [f"--{item.name.replace('_', '-')}", paths[item.name]]
        for name in spec.output_names:
            command += [f"--{name.replace('_', '-')}", paths[name]]
        if run(command, workdir, package, log) != 0:
            return 1
    return run([str(BIN / "blindspot"), "calibrate", "--config", str(config_path)], workdir, package, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[""], help="mutant id prefixes to run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--models", nargs="+", default=TOY_MODELS, help="the toy models to run (default: %(default)s)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if m.id.startswith(tuple(args.only))]
    root = Path(tempfile.mkdtemp(prefix="blindspot-mutants-"))
    print(f"baseline: the reduced toy world, clean code ({root})", flush=True)
    config = baseline(root / "baseline", args.models)
    rows = []
    for mutant in chosen:
        start = time.perf_counter()
        work = root / mutant.id
        package = work / "package"
        shutil.copytree(REPO / "src" / "blindspot", package / "blindspot")
        target = package / "blindspot" / mutant.file
        text = target.read_text()
        if text.count(mutant.original) != 1:
            raise SystemExit(
                f"{mutant.id}: the original text occurs {text.count(mutant.original)} times in {mutant.file}"
            )
        target.write_text(text.replace(mutant.original, mutant.replacement))
        log = work / "log.txt"
        tests = run([str(BIN / "pytest"), "-q", "-x", "-p", "no:cacheprovider", mutant.tests], REPO, package, log)
        results = work / "run"
        shutil.copytree(root / "baseline", results, ignore=shutil.ignore_patterns(".snakemake"))
        calibrated = rerun_stage(mutant.stage, config, results, package, log)
        caught = tests != 0 or calibrated != 0
        rows.append((mutant, tests != 0, calibrated != 0, caught))
        print(
            f"{mutant.id:28s} {mutant.category:38s} tests {'FAIL' if tests else 'pass'}  "
            f"calibrate {'FAIL' if calibrated else 'pass'}  {'caught' if caught else 'SURVIVED'}  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        shutil.rmtree(results)
    caught = sum(r[3] for r in rows)
    print(
        f"\n{caught} of {len(rows)} mutants caught ({sum(r[1] for r in rows)} by the unit tests, "
        f"{sum(r[2] for r in rows)} by calibrate)"
    )
    if not args.keep:
        shutil.rmtree(root)
    if caught < len(rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
