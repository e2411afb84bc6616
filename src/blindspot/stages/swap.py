"""The swap stage: counterfactual weight swaps between two checkpoints of one architecture (docs/method.md §3).

For every spec (the first n decoder layers, the last n, sliding windows of w layers, the named non-decoder units of
the family's record) the donor's parameters are copied into the base's modules *in place*, the hybrid answers the
benchmark through the predict path (same prompts, batching, parsing and option log-probs, so its answers compare
row for row with ``results/predictions/``), and the base's own tensors are copied back. Peak memory is the base,
the donor's parameters and one spec's saved tensors: never a model copy per hybrid.

Two reference specs frame the sweep: ``base`` (nothing swapped) and ``donor`` (every parameter swapped: the donor
itself). Flip rates are measured against both, in the same run.

A donor is another configured model of the same architecture, or a PEFT LoRA adapter directory on top of the base,
merged into a second copy of the base on load (``pip install peft``).

Outputs: ``answers`` (one row per spec, item and condition, the predictions schema with ``pair`` and ``spec``) and
``swaps`` (one row per spec and condition: accuracy, flip rates against the base and the donor, and on items whose
prior answer differs from gold, the follow-prior and follow-image rates; each with a cluster-bootstrap interval).
Resumable by spec: each finished spec's answers are a shard in the job's resume folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from blindspot.answers import identity_key
from blindspot.config import SWAP_UNITS, ModelConfig, SwapConfig, SwapPair, SwapSpecs
from blindspot.contracts.conditions import NONE_CONDITION, Condition, resolve_condition_key
from blindspot.contracts.items import image_group
from blindspot.contracts.tables import SWAP_ANSWERS_SCHEMA, SWAP_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.answering import predict_units, work_units
from blindspot.models.batching import BatchSizer
from blindspot.models.families import ModelFamily
from blindspot.models.job import ModelJob, files_fingerprint, weights_fingerprint
from blindspot.models.loading import LoadedModel, load_model
from blindspot.stages.slices import SwapSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import ClusterBootstrap, Estimate, cluster_ids
from blindspot.store.render import RenderStore
from blindspot.store.tables import read_frame, write_table


class SwapError(BlindspotError):
    """The swap job cannot run as configured (one line)."""


SpecKind = Literal["reference", "first_n", "last_n", "window", "unit"]


@dataclass(frozen=True)
class SwapSpec:
    """One hybrid: the decoder layers and the named units whose parameters come from the donor."""

    name: str
    kind: SpecKind
    layers: tuple[int, ...] = ()
    units: tuple[str, ...] = ()
    everything: bool = False
    """The ``donor`` reference: every parameter (whether or not a unit covers it)."""


def build_specs(specs: SwapSpecs, n_layers: int, family: ModelFamily) -> list[SwapSpec]:
    """``base``, then first_n, last_n, every window, every unit, then ``donor``. A count beyond the model's
    decoder layers, or a unit the family does not place, is a one-line error."""
    for key, counts in (("first_n", specs.first_n), ("last_n", specs.last_n), ("windows", specs.windows)):
        too_big = [n for n in counts if n > n_layers]
        if too_big:
            raise SwapError(f"{too_big[0]} exceeds the model's {n_layers} decoder layers", key=f"swap.specs.{key}")
    for unit in specs.units:
        try:
            family.unit_prefixes(unit)
        except KeyError as error:
            raise SwapError(f"{error.args[0]}; remove it from swap.specs.units", key="swap.specs.units") from None
    out = [SwapSpec("base", "reference")]
    out += [SwapSpec(f"first_{n}", "first_n", tuple(range(n))) for n in specs.first_n]
    out += [SwapSpec(f"last_{n}", "last_n", tuple(range(n_layers - n, n_layers))) for n in specs.last_n]
    for w in specs.windows:
        for start in range(n_layers - w + 1):
            name = f"layer_{start}" if w == 1 else f"layers_{start}-{start + w - 1}"
            out.append(SwapSpec(name, "window", tuple(range(start, start + w))))
    out += [SwapSpec(unit, "unit", units=(unit,)) for unit in specs.units]
    out.append(SwapSpec("donor", "reference", tuple(range(n_layers)), tuple(u for u, _ in family.units), True))
    return out


def _covered(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def spec_parameters(spec: SwapSpec, family: ModelFamily, names: list[str]) -> list[str]:
    """The parameter names (of ``names``, in order) a spec takes from the donor."""
    if spec.everything:
        return list(names)
    prefixes = [family.layer_prefix(i) for i in spec.layers]
    prefixes += [p for unit in spec.units for p in family.unit_prefixes(unit)]
    return [n for n in names if _covered(n, prefixes)]


class WeightSwap:
    """Copies donor tensors into the base model's parameters in place, and the base's back afterwards.

    ``donor`` maps parameter names (as the loaded model names them) to tensors of the same shapes. Tied parameters
    (one tensor under two names, e.g. tied input and output embeddings) are one storage: swapping either name swaps
    both, and :meth:`tied_note` says so."""

    def __init__(self, model: torch.nn.Module, donor: dict[str, torch.Tensor], names: tuple[str, str]) -> None:
        self.params = dict(model.named_parameters(remove_duplicate=False))
        base_name, donor_name = names
        for name, param in self.params.items():
            if name not in donor:
                raise SwapError(f"base '{base_name}' and donor '{donor_name}' differ: the donor has no '{name}'")
            if tuple(donor[name].shape) != tuple(param.shape):
                raise SwapError(
                    f"base '{base_name}' and donor '{donor_name}' differ: '{name}' is {tuple(param.shape)} in the "
                    f"base and {tuple(donor[name].shape)} in the donor"
                )
        extra = sorted(set(donor) - set(self.params))
        if extra:
            raise SwapError(f"base '{base_name}' and donor '{donor_name}' differ: the base has no '{extra[0]}'")
        self.donor = {n: t.to(self.params[n].device, self.params[n].dtype) for n, t in donor.items()}
        storage: dict[int, list[str]] = {}
        for name, param in self.params.items():
            storage.setdefault(param.data_ptr(), []).append(name)
        self.tied = {name: group for group in storage.values() if len(group) > 1 for name in group}

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def tied_note(self, names: list[str]) -> str | None:
        """Which tied partners a swap of ``names`` also swaps (None if none)."""
        chosen = set(names)
        extra = sorted({p for n in names for p in self.tied.get(n, []) if p not in chosen})
        return f"tied parameters swapped too: {', '.join(extra)}" if extra else None

    @contextmanager
    def swapped(self, names: list[str]) -> Iterator[None]:
        saved: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}
        with torch.no_grad():
            for name in names:
                param = self.params[name]
                if param.data_ptr() not in saved:  # a tied tensor is saved once
                    saved[param.data_ptr()] = (param, param.detach().clone())
                param.copy_(self.donor[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for param, original in saved.values():
                    param.copy_(original)


def _parameters(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in loaded.model.named_parameters(remove_duplicate=False)}


def load_donor(pair: SwapPair, base: ModelConfig, donor: ModelConfig | None) -> dict[str, torch.Tensor]:
    """The donor's parameters, by the loaded model's names: a configured model, or the base with a LoRA adapter
    merged (PEFT's own merge, so the hybrid is what PEFT would run)."""
    if donor is not None:
        return _parameters(load_model(donor))
    assert pair.adapter is not None
    try:
        from peft import PeftModel
    except ImportError:
        raise SwapError(
            "a LoRA adapter donor needs peft: pip install peft (or pip install -e '.[lora]' in the blindspot "
            "repository)",
            key="pair.adapter",
        ) from None
    if not (Path(pair.adapter) / "adapter_config.json").is_file():
        raise SwapError(f"'{pair.adapter}' has no adapter_config.json; is it a PEFT adapter?", key="pair.adapter")
    copy = load_model(base)
    merged = PeftModel.from_pretrained(copy.model, pair.adapter).merge_and_unload()
    return {n: p.detach() for n, p in merged.named_parameters(remove_duplicate=False)}


def resolve_conditions(store: RenderStore, keys: list[str]) -> list[Condition]:
    """Config condition keys to stored conditions (``none``: no image), in the order given."""
    out = []
    for key in keys:
        if key == NONE_CONDITION.family:
            out.append(NONE_CONDITION)
            continue
        try:
            out.append(resolve_condition_key(key, store.conditions))
        except KeyError as error:
            raise SwapError(f"{error.args[0]} (not rendered)", key="swap.conditions") from None
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------------ metrics

METRICS = ("accuracy", "flip_vs_base", "flip_vs_donor", "follow_prior", "follow_image")


def swap_metrics(
    answers: pl.DataFrame,
    items: list[dict[str, Any]],
    specs: list[SwapSpec],
    prior_field: str | None,
    config: SwapConfig,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per (spec, condition) with every metric and its cluster-bootstrap interval."""
    item_ids = [r["item_id"] for r in items]
    row_of = {item: i for i, item in enumerate(item_ids)}
    types = [r["answer_type"] for r in items]
    gold_key = np.array([identity_key(r["answer"], r["answer_type"]) for r in items], dtype=object)
    prior = [json.loads(r["metadata"]).get(prior_field) if prior_field else None for r in items]
    prior_key = np.array(
        [identity_key(str(p), t) if p is not None else None for p, t in zip(prior, types, strict=True)], dtype=object
    )
    differs = np.array([p is not None and p != g for p, g in zip(prior_key, gold_key, strict=True)])
    boot = ClusterBootstrap(
        cluster_ids([image_group(r["image_keys"]) for r in items]), config.bootstrap, config.confidence, seed
    )
    everyone = np.ones(len(items), dtype=bool)

    def grid(spec: str, condition: tuple[str, int]) -> tuple[np.ndarray, np.ndarray]:
        rows = answers.filter((pl.col("spec") == spec) & (pl.col("family") == condition[0]))
        rows = rows.filter(pl.col("level") == condition[1])
        key = np.full(len(items), None, dtype=object)
        score = np.full(len(items), np.nan)
        for r in rows.iter_rows(named=True):
            i = row_of[r["item_id"]]
            key[i], score[i] = identity_key(r["parsed"], types[i]), r["score"]
        return key, score

    conditions = answers.select("family", "level", "param").unique(maintain_order=True).rows()
    out = []
    for family, level, param in conditions:
        base_key, _ = grid("base", (family, level))
        donor_key, _ = grid("donor", (family, level))
        for spec in specs:
            key, score = grid(spec.name, (family, level))
            binary = bool(np.isin(score[np.isfinite(score)], (0.0, 1.0)).all())
            estimates: dict[str, Estimate] = {
                "accuracy": boot.mean(np.nan_to_num(score), everyone, proportion=binary),
                "flip_vs_base": boot.mean((key != base_key).astype(float), everyone),
                "flip_vs_donor": boot.mean((key != donor_key).astype(float), everyone),
                "follow_prior": boot.mean((key == prior_key).astype(float), differs),
                "follow_image": boot.mean((key == gold_key).astype(float), differs),
            }
            row: dict[str, Any] = {
                "spec": spec.name,
                "kind": spec.kind,
                "layers": list(spec.layers),
                "units": list(spec.units) if not spec.everything else ["all"],
                "family": family,
                "level": level,
                "param": param,
                "n": len(items),
                "n_prior_differs": int(differs.sum()),
            }
            for metric in METRICS:
                e = estimates[metric]
                row |= {metric: e.value, f"{metric}_ci_low": e.low, f"{metric}_ci_high": e.high}
            row["note"] = None if prior_field and differs.any() else "no item has a prior answer that differs from gold"
            out.append(row)
    return out


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """A compact console table: one line per spec and condition."""
    lines = [f"{'spec':<16} {'condition':<10} {'acc':>6} {'flip/base':>9} {'flip/donor':>10} {'prior':>6} {'image':>6}"]
    for r in rows:

        def cell(v: float | None, width: int) -> str:
            return f"{v:>{width}.3f}" if v is not None else f"{'-':>{width}}"

        condition = f"{r['family']}/{r['level']}" if r["family"] != "none" else "none"
        lines.append(
            f"{r['spec']:<16} {condition:<10} {cell(r['accuracy'], 6)} {cell(r['flip_vs_base'], 9)} "
            f"{cell(r['flip_vs_donor'], 10)} {cell(r['follow_prior'], 6)} {cell(r['follow_image'], 6)}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the stage


def swap_benchmark(
    pair_name: str,
    bench: str,
    config: SwapSlice,
    items_path: Path,
    render_path: Path,
    outputs: Paths,
    *,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every spec of one pair on one benchmark; write the answers and the per-spec table; return its rows."""
    if config.donor is not None:
        donor_weights = weights_fingerprint(config.donor)
    else:
        adapter = Path(str(config.pair.adapter))
        files = sorted(str(f) for f in adapter.iterdir() if f.is_file() and not f.name.startswith("."))
        donor_weights = files_fingerprint(files)
    job = ModelJob.open(
        "swap",
        pair_name,
        bench,
        config.base,
        config.prompt,
        config,
        items_path,
        render_path,
        outputs["swaps"],
        scoring=config.scoring,
        progress=progress,
        key_extra=donor_weights or "",
        base=config.pair.base,
        donor=config.pair.donor,
        lora_adapter=config.pair.adapter,
        donor_weights_sha256=donor_weights,
    )
    names = (config.pair.base, config.pair.donor or str(config.pair.adapter))
    swap = WeightSwap(job.loaded.model, load_donor(config.pair, config.base, config.donor), names)
    specs = build_specs(config.swap.specs, len(job.loaded.layers), job.loaded.family)
    conditions = resolve_conditions(job.store, config.swap.conditions)
    units = work_units(len(job.items), conditions)
    swapped = {spec.name: spec_parameters(spec, job.loaded.family, swap.names) for spec in specs}
    # Each parameter set's first spec: a later spec that swaps the same parameters copies its answers.
    first: dict[frozenset[str], int] = {}
    for index, spec in enumerate(specs):
        first.setdefault(frozenset(swapped[spec.name]), index)
    sizer = BatchSizer(  # auto settles once, for every spec; an error names the base model's key
        config.base.batch_size, job.loaded.device.type, key=f"models.{config.pair.base}.batch_size"
    )
    bar = job.bar(len(specs) * len(units), "answer")

    def answers_of(index: int, spec: SwapSpec) -> pa.Table | list[dict[str, Any]]:
        earlier = first[frozenset(swapped[spec.name])]
        if earlier < index:  # the same parameters as an earlier spec (first_n = last_n = every layer ...)
            bar.update(len(units))
            table = read_frame(job.shard_path("spec", earlier))
            return table.with_columns(pl.lit(spec.name).alias("spec")).to_arrow()
        with swap.swapped(swapped[spec.name]):
            rows = predict_units(job, units, sizer, config.base.max_new_tokens, bar)
        return [{"pair": r.pop("model"), "spec": spec.name, **r} for r in rows]

    answers_table = job.run_shards(
        "spec", specs, answers_of, SWAP_ANSWERS_SCHEMA, rows=lambda _: len(units), done=lambda _: bar.update(len(units))
    )
    bar.close()
    sizer.report(f"swap {pair_name}/{bench}")
    metrics = swap_metrics(pl.from_arrow(answers_table), job.items, specs, config.prior_field, config.swap, config.seed)  # type: ignore[arg-type]
    notes = {name: swap.tied_note(names) for name, names in swapped.items()}
    for row in metrics:
        row["note"] = "; ".join(n for n in (row["note"], notes[row["spec"]]) if n) or None
    identity = {"pair": pair_name, "benchmark": bench, "base": config.pair.base, "donor": names[1]}
    write_table(answers_table, SWAP_ANSWERS_SCHEMA, job.record, outputs["answers"])
    write_table([identity | r for r in metrics], SWAP_SCHEMA, job.record, outputs["swaps"])
    job.finish()
    return metrics


def run(config: SwapSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    rows = swap_benchmark(
        job.wildcards["pair"],
        job.bench,
        config,
        inputs["item_table"],
        inputs["render"],
        outputs,
        progress=job.progress,
    )
    print(format_sweep(rows))
    n_specs = len({r["spec"] for r in rows})
    return f"swapped {n_specs} specs of {job.wildcards['pair']} on {job.bench}"


__all__ = ["SWAP_UNITS", "SwapSpec", "WeightSwap", "build_specs", "run", "spec_parameters", "swap_benchmark"]
