"""What every model-running stage starts with: items, render store, model, prompts, a resume folder, provenance.

Predict and extract (and the swap and patch stages after them) open a :class:`ModelJob` and then do only their
own work. The resume folder beside the output is keyed by everything that determines the job's content (the
config slice, the items table, the render store's metadata and a fingerprint of the model's weight files), so a
restarted job reuses finished work only when nothing it depends on has changed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from blindspot.benchmarks import BenchmarkSpec, get_benchmark
from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import ModelConfig, PromptConfig
from blindspot.errors import InputError
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import PromptCache
from blindspot.progress import Bar
from blindspot.store.atomic import register_partial
from blindspot.store.provenance import inputs_key, provenance
from blindspot.store.render import RenderStore
from blindspot.store.tables import read_frame, read_provenance, read_table, write_table

T = TypeVar("T")


def weights_fingerprint(model: ModelConfig) -> str | None:
    """sha256 over the names and contents of a local model directory's files (None for a hub id)."""
    return files_fingerprint(model.weight_files())


def files_fingerprint(files: list[str]) -> str | None:
    """sha256 over the names and contents of ``files`` (None for none)."""
    if not files:
        return None
    digest = hashlib.sha256()
    for name in files:
        path = Path(name)
        digest.update(f"{path.name}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class ModelJob:
    stage: str
    model_name: str
    bench: str
    items: list[dict[str, Any]]
    store: RenderStore
    loaded: LoadedModel
    benchmark: BenchmarkSpec
    open_scorer: str
    """How the benchmark's open answers are scored (its config's ``open_scorer``, from the job's slice)."""
    prompts: PromptCache
    resume: Path
    """The job's resume folder (shards, a partial store): reused only by a job with identical inputs."""
    record: dict[str, Any]
    """Provenance of the job's outputs."""
    progress: bool = True

    @classmethod
    def open(
        cls,
        stage: str,
        model_name: str,
        bench: str,
        model: ModelConfig,
        prompt: PromptConfig,
        config_slice: Any,
        items_path: Path,
        render_path: Path,
        out: Path,
        *,
        scoring: BenchmarkScoring,
        loaded: LoadedModel | None = None,
        progress: bool = True,
        key_extra: str = "",
        **record: Any,
    ) -> ModelJob:
        """``scoring``: the benchmark's adapter and open scorer, from the job's config slice (never read back from
        the staged table). ``key_extra``: more that determines the job's content (a swap donor's weights), for the
        resume key."""
        items = read_frame(items_path).to_dicts()
        store = RenderStore(render_path)
        staged = read_provenance(items_path).get("adapter")
        if staged is not None and staged != scoring.adapter:
            raise InputError(
                f"'{items_path}' was staged with adapter '{staged}', but benchmarks.{bench}.adapter is "
                f"'{scoring.adapter}': restage the benchmark (rerun through snakemake)"
            )
        adapter, open_scorer = scoring.adapter, scoring.open_scorer
        benchmark = get_benchmark(adapter)
        weights = weights_fingerprint(model)
        key = inputs_key(config_slice, items_path, render_path / "zarr.json", extra=(weights or "") + key_extra)
        loaded = loaded or load_model(model)
        prompts = PromptCache(loaded.processor, items, lambda item: benchmark.prompt(item, prompt.version))
        full_record = provenance(
            stage,
            config_slice,
            model_name=model_name,
            benchmark=bench,
            adapter=adapter,
            model=loaded.provenance(),
            weights_sha256=weights,
            prompt_version=prompt.version,
            **record,
        )
        return cls(
            stage=stage,
            model_name=model_name,
            bench=bench,
            items=items,
            store=store,
            loaded=loaded,
            benchmark=benchmark,
            open_scorer=open_scorer,
            prompts=prompts,
            resume=out.with_name(f".{out.name}.resume-{key}"),
            record=full_record,
            progress=progress,
        )

    def levels(self, item: int) -> dict[str, np.ndarray]:
        """Every rendered condition of each of an item's images (one chunk read per image), keyed by image."""
        return {key: self.store.levels(key) for key in self.items[item]["image_keys"]}

    def images(self, item: int, condition: int, levels: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Every image of one item at one rendered condition, in prompt order (``(H, W, 3)`` uint8 each), from
        the item's :meth:`levels`."""
        return [levels[key][condition] for key in self.items[item]["image_keys"]]

    def bar(self, total: int, unit: str) -> Bar:
        return Bar(
            total=total, desc=f"{self.stage} {self.model_name}/{self.bench}", unit=unit, disable=not self.progress
        )

    def finished_shard(self, path: Path, rows: int | None) -> bool:
        """Whether a shard left by an earlier run can be trusted: it reads as Parquet (with ``rows`` rows, where
        given). A damaged or short one (a torn write, a damaged disk) is removed, said on the console, and redone."""
        if not path.exists():
            return False
        try:
            found = read_table(path).num_rows
            if rows is None or found == rows:
                return True
            problem = f"{found} rows where {rows} were expected"
        except Exception as error:  # pyarrow raises several types for a damaged file
            problem = f"unreadable: {(str(error).strip().splitlines() or [type(error).__name__])[0]}"
        print(f"discarding the shard '{path.name}' of an earlier run ({problem}); redoing it", flush=True)
        path.unlink()
        return False

    def run_shards(
        self,
        name: str,
        chunks: Sequence[T],
        compute: Callable[[int, T], list[dict[str, Any]] | pa.Table],
        schema: pa.Schema,
        *,
        rows: Callable[[T], int | None],
        done: Callable[[T], None] = lambda chunk: None,
    ) -> pa.Table:
        """The one resumable loop of the model-running stages: chunk ``i``'s rows are the shard ``{name}-{i:05d}``
        in the resume folder. A shard an earlier run finished (:meth:`finished_shard`, ``rows(chunk)`` rows where
        known) is kept and ``done(chunk)`` called (to advance a progress bar); the others are computed and written.
        Returns every shard's rows, in chunk order."""
        self.resume.mkdir(parents=True, exist_ok=True)
        register_partial(self.resume)
        paths = [self.shard_path(name, i) for i in range(len(chunks))]
        for i, (chunk, path) in enumerate(zip(chunks, paths, strict=True)):
            if self.finished_shard(path, rows(chunk)):
                done(chunk)
                continue
            write_table(compute(i, chunk), schema, self.record, path)
        tables = [read_table(path) for path in paths]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def shard_path(self, name: str, index: int) -> Path:
        """Where :meth:`run_shards` keeps chunk ``index`` of ``name`` (an earlier chunk is readable while a later
        one is computed)."""
        return self.resume / f"{name}-{index:05d}.parquet"

    def finish(self) -> None:
        """Remove the resume folder once the final output is in place, and any other resume folder of this output
        (left by a run with other inputs that never finished: its shards can never be reused)."""
        for stale in self.resume.parent.glob(f".{self.resume.name.split('.resume-')[0].lstrip('.')}.resume-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
