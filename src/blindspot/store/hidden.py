"""The hidden-state store: ``results/hidden/{model}/{bench}.zarr`` (Zarr v3). This module owns its layout.

::

    last_token    float16 [item, level, layer, hidden]   state at the last prompt token (float32 where the
                                     activations are too large for float16: ``extract.dtype``, attrs ``dtype``)
    image_mean    float16 [item, level, layer, hidden]   mean over image-token positions (NaN: no image tokens)
    attention_image float32 [item, level, decoder_layer, head]  the last prompt token's attention mass on the
                                     image tokens other than sinks (``extract.attention``; attrs ``attention``
                                     says why it is missing where the model's attention cannot be read)
    attention_sink  float32 [item, level, decoder_layer, head]  the same on the attention-sink image tokens
    sink_token    int32   [item, level, slot]  the sinks' indices among the item's image tokens (-1: none)
    sink_ratio    float32 [item, level, slot]  their largest norm as a multiple of the median image-token norm
    item_id       string  [item]     (and ``item``, the same ids as the dimension's coordinate)
    image_group   string  [item]     the item's source image keys joined by '+': probe folds are grouped by it,
                                     so the blur copies of one image never straddle train and test
    level         string  [level]    condition keys, e.g. blur/0 (clean) and blur/7 (most severe)
    layer         int32   [layer]    0 = embeddings ... L = last layer after the final norm (see attrs)
    token_states  float16 [item, level, layer, token, hidden]  opt-in: every token (the last ``max_tokens``,
                                     right-aligned: the last prompt token is at -1) of the first ``full_items``
    token_role    int8    [item, level, token]  0 pad, 1 template, 2 image, 3 question

Chunks of the feature arrays are (block of items, 1 level, 1 layer, hidden), so reading one layer at one level
touches only its own chunks. Attrs: provenance, ``layer_convention``, ``features``. ``item``, ``level`` and
``layer`` are index coordinates: ``xarray.open_zarr(path).last_token.sel(level="blur/0", layer=12)`` works.

:class:`HiddenStoreWriter` fills a partial store block by block and records finished blocks, so a killed job
resumes; :meth:`HiddenStoreWriter.commit` puts it in place, never deleting an old store before the new one is
there. :class:`HiddenStore` reads a finished store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from jaxtyping import Float, Int8

from blindspot.contracts.hidden import ATTENTION, FEATURES, MAX_SINKS
from blindspot.errors import BlindspotError
from blindspot.progress import Bar
from blindspot.store.arrays import (
    consolidate,
    create_checked_array,
    damaged,
    open_finished,
    writable,
    write_array,
)
from blindspot.store.atomic import replace_path, write_text
from blindspot.store.parts import gathered_record

_DONE = "blocks_done.json"
_HEADER_DONE = "layout_done"
"""Written once a partial store's coordinates and attributes are complete; a partial without it was killed while
being created and is started again."""


def _partial_problem(partial: Path, item_ids: list[str], levels: list[str], n_layers: int) -> str | None:
    """Why a partial store left by an earlier (killed) job cannot be resumed, or None where it can."""
    if not (partial / _HEADER_DONE).is_file():
        return "its creation did not finish"
    try:
        group = zarr.open_group(store=str(partial), mode="r")
        if [str(i) for i in group["item_id"][:]] != list(item_ids) or [str(v) for v in group["level"][:]] != levels:
            return "its items or levels differ from this job's"
        if int(group["layer"].shape[0]) != n_layers or "block_items" not in group.attrs:
            return "its layers differ from this job's"
        done = json.loads((partial / _DONE).read_text()) if (partial / _DONE).exists() else []
        if not isinstance(done, list) or not all(isinstance(b, int) for b in done):
            return "its progress record is damaged"
        if done and not all(name in group for name in FEATURES):
            return "blocks are marked done but feature arrays are missing"
    except (KeyError, ValueError, OSError) as error:
        return f"it cannot be read: {type(error).__name__}: {error}"
    return None


FLOAT16_MAX = float(np.finfo(np.float16).max)
AUTO_HEADROOM = 4.0
"""dtype auto stores float16 only when the first block's largest value is below float16's range by this factor."""


class HiddenRangeError(BlindspotError):
    """Activations too large for the stored dtype."""


def _largest(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


REQUIRED = ("item_id", "image_group", "level", "layer")
"""The arrays every finished hidden-state store has (what its readers need)."""


class HiddenStore:
    """Read access to a finished hidden-state store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.group = open_finished(self.path, "extract", REQUIRED)
        self.item_ids: list[str] = [str(x) for x in self.group["item_id"][:]]
        self.groups: list[str] = [str(x) for x in self.group["image_group"][:]]
        self.levels: list[str] = [str(x) for x in self.group["level"][:]]
        self.layers: list[int] = [int(x) for x in self.group["layer"][:]]
        self.features: list[str] = [f for f in FEATURES if f in self.group]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.attrs.get("provenance", {}))

    def _array(self, feature: str) -> Any:
        if feature not in self.features:
            raise KeyError(f"feature '{feature}' is not in '{self.path}' (have: {', '.join(self.features)})")
        return self.group[feature]

    def level_index(self, level: str) -> int:
        try:
            return self.levels.index(level)
        except ValueError:
            raise KeyError(f"level '{level}' is not in '{self.path}' (have: {', '.join(self.levels)})") from None

    def read(self, feature: str) -> Float[np.ndarray, "item level layer hidden"]:
        """One feature, every item, level and layer, as float32."""
        try:
            return np.asarray(self._array(feature)[:], dtype=np.float32)
        except (ValueError, RuntimeError) as error:  # a checksum mismatch, an undecodable chunk
            raise damaged(self.path, "extract", error) from None

    def layer(self, feature: str, layer: int, level: str) -> Float[np.ndarray, "item hidden"]:
        """One layer at one level (reads only that layer's chunks), as float32."""
        try:
            return np.asarray(self._array(feature)[:, self.level_index(level), layer], dtype=np.float32)
        except (ValueError, RuntimeError) as error:
            raise damaged(self.path, "extract", error) from None

    @property
    def has_attention(self) -> bool:
        return all(name in self.group for name in (*ATTENTION, "sink_token", "sink_ratio"))

    def attention(self) -> dict[str, np.ndarray]:
        """``attention_image`` and ``attention_sink`` (item, level, decoder layer, head) and the named sinks
        (``sink_token``, ``sink_ratio``: item, level, slot); a KeyError saying why where the store has none."""
        if not self.has_attention:
            why = self.attrs.get("attention") or "extract.attention was off"
            raise KeyError(f"'{self.path}' has no attention: {why}")
        try:
            return {name: np.asarray(self.group[name][:]) for name in (*ATTENTION, "sink_token", "sink_ratio")}
        except (ValueError, RuntimeError) as error:
            raise damaged(self.path, "extract", error) from None

    def tokens(
        self, item: int, level: str
    ) -> tuple[Float[np.ndarray, "layer token hidden"], Int8[np.ndarray, " token"]]:
        """Opt-in full token states of one of the first ``full_items`` items, with their token roles."""
        if "token_states" not in self.group:
            raise KeyError(f"'{self.path}' has no token states (set extract.full_items)")
        li = self.level_index(level)
        states = np.asarray(self.group["token_states"][item, li], dtype=np.float32)
        return states, np.asarray(self.group["token_role"][item, li])


class HiddenStoreWriter:
    """A partial store, created or resumed, filled block by block, then committed into place."""

    @classmethod
    def open(
        cls,
        partial: Path,
        item_ids: list[str],
        groups: list[str],
        levels: list[str],
        n_layers: int,
        hidden: int,
        block: int,
        full: int,
        max_tokens: int,
        attrs: dict[str, Any],
        dtype: str = "auto",
        heads: int = 0,
    ) -> HiddenStoreWriter:
        """Resume the partial store at ``partial`` if it exists, else create it. The feature arrays are created
        with the first block (``dtype`` auto: float16 unless that block's values approach its range)."""
        if (partial / "zarr.json").exists():
            problem = _partial_problem(partial, item_ids, levels, n_layers)
            if problem is None:
                return cls(partial, zarr.open_group(store=str(partial), mode="r+"), dtype)
            print(f"discarding the partial store '{partial}' ({problem}); starting it again", flush=True)
            shutil.rmtree(partial)
        group = zarr.open_group(store=str(partial), mode="w", zarr_format=3)
        write_array(group, "item_id", np.array(item_ids, dtype=str), ("item",))
        write_array(group, "item", np.array(item_ids, dtype=str), ("item",))  # the index coordinate, for xarray
        write_array(group, "image_group", np.array(groups, dtype=str), ("item",))
        write_array(group, "level", np.array(levels, dtype=str), ("level",))
        write_array(group, "layer", np.arange(n_layers, dtype=np.int32), ("layer",))
        if full:
            create_checked_array(
                group,
                "token_states",
                shape=(full, len(levels), n_layers, max_tokens, hidden),
                dtype="float32" if dtype == "float32" else "float16",
                chunks=(1, 1, n_layers, max_tokens, hidden),
                fill_value=0.0,
                dimension_names=("item", "level", "layer", "token", "hidden"),
            )
            create_checked_array(
                group,
                "token_role",
                shape=(full, len(levels), max_tokens),
                dtype="int8",
                fill_value=0,
                dimension_names=("item", "level", "token"),
            )
        if heads:  # the attention arrays: (item, level, decoder layer, head); NaN until a block is written
            for name in ATTENTION:
                create_checked_array(
                    group,
                    name,
                    shape=(len(item_ids), len(levels), n_layers - 1, heads),
                    chunks=(block, len(levels), n_layers - 1, heads),
                    dtype="float32",
                    fill_value=np.nan,
                    dimension_names=("item", "level", "decoder_layer", "head"),
                )
            for name, kind, fill in (("sink_token", "int32", -1), ("sink_ratio", "float32", np.nan)):
                create_checked_array(
                    group,
                    name,
                    shape=(len(item_ids), len(levels), MAX_SINKS),
                    chunks=(block, len(levels), MAX_SINKS),
                    dtype=kind,
                    fill_value=fill,
                    dimension_names=("item", "level", "sink"),
                )
        group.attrs.update({**attrs, "features": list(FEATURES), "block_items": block})
        write_text(partial / _HEADER_DONE, "complete\n")  # the store's layout is written: a resume may trust it
        return cls(partial, group, dtype)

    def __init__(self, partial: Path, group: Any, dtype: str = "auto") -> None:
        self.partial = partial
        self.group = group
        self.dtype = dtype

    def _feature_arrays(self, first_block: dict[str, np.ndarray]) -> str:
        """Create the feature arrays on the first block (or find them); returns their dtype."""
        if all(name in self.group for name in FEATURES):
            return str(self.group[FEATURES[0]].dtype)
        dtype = self.dtype
        if dtype == "auto":
            largest = max(_largest(values) for values in first_block.values())
            dtype = "float16" if largest <= FLOAT16_MAX / AUTO_HEADROOM else "float32"
        n_items = int(self.group["item_id"].shape[0])
        n_levels, n_layers, hidden = first_block[FEATURES[0]].shape[1:]
        block = int(self.group.attrs["block_items"])
        for name in FEATURES:
            create_checked_array(
                self.group,
                name,
                shape=(n_items, n_levels, n_layers, hidden),
                chunks=(block, 1, 1, hidden),
                dtype=dtype,
                fill_value=np.nan,
                dimension_names=("item", "level", "layer", "hidden"),
            )
        self.group.attrs["dtype"] = dtype
        return dtype

    def done(self) -> set[int]:
        path = self.partial / _DONE
        return set(json.loads(path.read_text())) if path.exists() else set()

    def write_block(
        self,
        block: int,
        rows: slice,
        features: dict[str, Float[np.ndarray, "item level layer hidden"]],
        attention: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write one block of items (every feature, level and layer, and the attention arrays where the store has
        them) and mark it finished. Values beyond the stored dtype's range are a one-line error naming the feature
        and layer, never infinities."""
        dtype = self._feature_arrays(features)
        for name, values in (attention or {}).items():
            if name in self.group:
                writable(self.group, name)[rows] = values
        for name in FEATURES:
            values = features[name]
            if dtype == "float16" and _largest(values) > FLOAT16_MAX:
                layer = int(np.argmax([_largest(values[:, :, i]) for i in range(values.shape[2])]))
                raise HiddenRangeError(
                    f"{name} at layer {layer} reaches {_largest(values):.4g}, beyond float16's range "
                    f"({FLOAT16_MAX:.0f}); set extract.dtype: float32",
                    key="extract.dtype",
                )
            writable(self.group, name)[rows] = values.astype(dtype)
        write_text(self.partial / _DONE, json.dumps(sorted(self.done() | {block})))

    def write_tokens(
        self,
        item: int,
        level: int,
        states: Float[np.ndarray, "layer token hidden"],
        roles: Int8[np.ndarray, " token"],
        max_tokens: int,
    ) -> None:
        """Every token's state of one item at one level, right-aligned in ``max_tokens`` positions."""
        take = min(states.shape[1], max_tokens)
        dtype = self.group["token_states"].dtype
        if dtype == np.float16 and _largest(states) > FLOAT16_MAX:
            raise HiddenRangeError(
                f"token states of item {item} reach {_largest(states):.4g}, beyond float16's range; set "
                "extract.dtype: float32",
                key="extract.dtype",
            )
        writable(self.group, "token_states")[item, level, :, max_tokens - take :] = states[:, -take:].astype(dtype)
        writable(self.group, "token_role")[item, level, max_tokens - take :] = roles[-take:].astype(np.int8)

    def commit(self, final: Path) -> None:
        """Put the finished store at ``final`` (an old store there is replaced only once the new one is in place)."""
        (self.partial / _DONE).unlink(missing_ok=True)
        (self.partial / _HEADER_DONE).unlink(missing_ok=True)
        consolidate(self.partial)
        replace_path(self.partial, final)


def gather_stores(parts: list[Path], out: Path) -> int:
    """Write the parts of a split extract job (stores of contiguous runs of items, in order) into one store at
    ``out``, as the unsplit job writes it: the same items, chunks, dtype and attributes, provenance gathered
    (:func:`blindspot.store.parts.gathered_record`). Resumable: each copied block is recorded as the extract job
    records its own. Returns the number of items."""
    stores = [HiddenStore(path) for path in parts]
    first = stores[0]
    record = gathered_record([store.provenance for store in stores], parts)
    filled = [store for store in stores if all(name in store.group for name in FEATURES)]
    dtype = str(filled[0].group[FEATURES[0]].dtype) if filled else "auto"
    heads = int(first.group[ATTENTION[0]].shape[-1]) if first.has_attention else 0
    tokens = [int(store.group["token_states"].shape[0]) if "token_states" in store.group else 0 for store in stores]
    max_tokens = int(first.group["token_states"].shape[3]) if "token_states" in first.group else 1
    block = int(first.attrs["block_items"])
    hidden = int(filled[0].group[FEATURES[0]].shape[-1]) if filled else 1
    writer = HiddenStoreWriter.open(
        out.with_name(f".{out.name}.gather"),
        [i for store in stores for i in store.item_ids],
        [g for store in stores for g in store.groups],
        first.levels,
        len(first.layers),
        hidden,
        block,
        sum(tokens),
        max_tokens,
        {key: value for key, value in first.attrs.items() if key not in ("features", "block_items", "dtype")}
        | {"provenance": record},
        dtype=dtype,
        heads=heads,
    )
    done = writer.done()
    offset, token_offset, copied = 0, 0, 0
    bar = Bar(total=sum(len(store.item_ids) for store in stores), desc=f"gather {out.name}", unit="item")
    for store, n_tokens in zip(stores, tokens, strict=True):
        n = len(store.item_ids)
        for start in range(0, n if store in filled else 0, block):
            rows = slice(start, min(start + block, n))
            bar.update(rows.stop - rows.start)
            if copied not in done:
                features = {name: np.asarray(store.group[name][rows], dtype=np.float32) for name in FEATURES}
                attention = (
                    {name: np.asarray(store.group[name][rows]) for name in (*ATTENTION, "sink_token", "sink_ratio")}
                    if heads
                    else None
                )
                writer.write_block(copied, slice(offset + rows.start, offset + rows.stop), features, attention)
            copied += 1
        for name in ("token_states", "token_role"):
            if n_tokens:
                writable(writer.group, name)[token_offset : token_offset + n_tokens] = store.group[name][:]
        offset += n
        token_offset += n_tokens
    bar.close()
    writer.commit(out)
    return offset
