"""Corruption is detected and named: a deleted chunk or flipped bytes in a store, flipped bytes in a table."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import slice_json
from zarr.core.sync import sync

from blindspot.cli import main
from blindspot.contracts.hidden import FEATURES
from blindspot.contracts.tables import ITEMS_SCHEMA
from blindspot.store.arrays import StoreDamageError
from blindspot.store.hidden import HiddenStore, HiddenStoreWriter
from blindspot.store.render import RenderStore
from blindspot.store.tables import write_table
from blindspot.store.verify import verify


@pytest.fixture
def render_store(small_benchmark: dict[str, Path], tmp_path: Path) -> Path:
    store = tmp_path / "small.zarr"
    shutil.copytree(small_benchmark["render"], store)
    return store


def flip(path: Path, at: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 5)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_sound_store_and_table_verify(render_store: Path, tmp_path: Path) -> None:
    table = tmp_path / "t.parquet"
    write_table([{"x": i} for i in range(100)], pa.schema([("x", pa.int64())]), {"stage": "test"}, table)
    findings = verify([render_store, table])
    assert [(f.path, f.status) for f in findings] == [(render_store, "ok"), (table, "ok")]


def test_a_deleted_pixel_chunk_is_an_error_naming_the_store(render_store: Path, capsys: pytest.CaptureFixture) -> None:
    (render_store / "pixels" / "c" / "2" / "0" / "0" / "0" / "0").unlink()
    with pytest.raises(StoreDamageError, match=r"small\.zarr': array 'pixels' is missing 1 of 6 chunks"):
        RenderStore(render_store)
    assert main(["verify", str(render_store)]) == 2
    out = capsys.readouterr()
    assert f"damaged   {render_store}" in out.out and "delete" in out.out
    assert "1 damaged file(s)" in out.err


def test_flipped_pixel_bytes_fail_their_checksum(render_store: Path) -> None:
    flip(render_store / "pixels" / "c" / "1" / "0" / "0" / "0" / "0")
    store = RenderStore(render_store)
    store.levels(store.image_keys[0])  # other images still read
    with pytest.raises(
        StoreDamageError, match=r"a chunk cannot be read .*blindspot verify --repair .* reruns the render step"
    ):
        store.levels(store.image_keys[1])
    assert [f.status for f in verify([render_store])] == ["damaged"]


def test_hidden_states_damage_is_named(tmp_path: Path) -> None:
    partial, final = tmp_path / ".h.partial", tmp_path / "h.zarr"
    writer = HiddenStoreWriter.open(partial, ["a", "b"], ["g", "g"], ["blur/0"], 2, 4, 1, 0, 0, {"provenance": {}})
    for block in range(2):
        writer.write_block(block, slice(block, block + 1), {f: np.ones((1, 1, 2, 4)) for f in FEATURES})
    writer.commit(final)
    chunk = final / FEATURES[0] / "c" / "1" / "0" / "1" / "0"
    flip(chunk, at=3)
    store = HiddenStore(final)
    with pytest.raises(StoreDamageError, match="reruns the extract step"):
        store.read(FEATURES[0])
    chunk.unlink()
    with pytest.raises(StoreDamageError, match=f"array '{FEATURES[0]}' is missing 1 of 4 chunks"):
        HiddenStore(final)


def test_flipped_table_bytes_are_found(tmp_path: Path) -> None:
    table = tmp_path / "t.parquet"
    write_table([{"x": i, "y": f"row {i}"} for i in range(2000)], pa.schema([("x", pa.int64()), ("y", pa.string())]),
                {"stage": "test"}, table)  # fmt: skip
    flip(table, at=200)  # inside the first data page
    (finding,) = verify([table])
    assert finding.status == "damaged"


def test_flipped_table_bytes_fail_every_stage_that_reads_the_table(tmp_path: Path) -> None:
    """Not only `verify`: every reader (decay, probes, aggregate, ... through tables.read_table) checks the page
    checksums, so a flipped byte is one line naming the file, not a silently wrong value."""
    from blindspot.errors import InputError
    from blindspot.store.tables import read_frame

    table = tmp_path / "t.parquet"
    write_table([{"x": i, "y": f"row {i}"} for i in range(2000)], pa.schema([("x", pa.int64()), ("y", pa.string())]),
                {"stage": "test"}, table)  # fmt: skip
    sound = table.read_bytes()
    original = read_frame(table)
    # find a flipped byte that a reader without the checksum would take for data: a silently different table
    silent = None
    for at in range(100, len(sound) - 100, 7):
        data = bytearray(sound)
        data[at] ^= 0x01
        table.write_bytes(bytes(data))
        try:
            unchecked = pl.read_parquet(table)
        except Exception:  # this byte breaks the file visibly: look for one that does not
            continue
        if not unchecked.equals(original):
            silent = at
            break
    assert silent is not None, "every flip broke the file visibly: the test needs a byte only the checksum sees"
    with pytest.raises(InputError, match=r"t\.parquet' is damaged \(.*\); delete it and rerun") as caught:
        read_frame(table)
    assert "\n" not in str(caught.value)


def test_missing_store_metadata_is_damage(render_store: Path, tmp_path: Path) -> None:
    """An array's zarr.json deleted: Zarr lists the group without the array, so only the folder of chunks left
    behind tells; a store whose root zarr.json is gone is not skipped as 'not a store'."""
    (render_store / "pixels" / "zarr.json").unlink()
    (finding,) = verify([render_store])
    assert finding.status == "damaged" and "array 'pixels' has chunks but no zarr.json" in finding.detail
    root = tmp_path / "results"
    copy = root / "render" / "other.zarr"
    shutil.copytree(render_store, copy)
    (copy / "zarr.json").unlink()
    findings = {f.path.name: f for f in verify([root])}
    assert (
        findings["other.zarr"].status == "damaged"
        and "root metadata (zarr.json) is missing" in findings["other.zarr"].detail
    )


def many_chunk_store(tmp_path: Path, n: int = 512) -> Path:
    """A hidden store of ``n`` one-item chunks per feature, the first of which fails its checksum."""
    partial, final = tmp_path / ".h.partial", tmp_path / "h.zarr"
    writer = HiddenStoreWriter.open(partial, [f"i{k}" for k in range(n)], ["g"] * n, ["blur/0"], 2, 4, 1, 0, 0,
                                    {"provenance": {"stage": "extract"}})  # fmt: skip
    for block in range(n):
        writer.write_block(block, slice(block, block + 1), {f: np.ones((1, 1, 2, 4)) for f in FEATURES})
    writer.commit(final)
    flip(final / FEATURES[0] / "c" / "0" / "0" / "0" / "0", at=3)
    return final


@pytest.mark.slow
def test_a_failed_read_leaves_no_read_pending(tmp_path: Path) -> None:
    """Zarr raises on the first bad chunk with the reads of the other chunks still running (hundreds here);
    they are settled before the error is raised, so none is left for the interpreter to destroy at exit."""

    async def pending() -> int:
        return len(asyncio.all_tasks() - {asyncio.current_task()})

    with pytest.raises(StoreDamageError, match="a chunk cannot be read"):
        HiddenStore(many_chunk_store(tmp_path, n=128)).read(FEATURES[0])
    assert sync(pending()) == 0


@pytest.mark.slow
def test_a_damaged_store_fails_a_stage_in_exactly_one_line(tmp_path: Path) -> None:
    """A probe job on a hidden store with one flipped chunk prints one line, every time: the pending sibling reads
    left on Zarr's loop used to add up to hundreds of lines below it (about one run in two)."""
    final = many_chunk_store(tmp_path)
    write_table([], ITEMS_SCHEMA, {"stage": "stage"}, tmp_path / "items.parquet")  # the job fails on the store first
    command = [str(Path(sys.executable).parent / "blindspot"), "probe", "--model", "m", "--bench", "b",
               "--slice", slice_json("probe", probe={}, seed=0), "--hidden", str(final),
               "--item-table", str(tmp_path / "items.parquet"), "--probes", str(tmp_path / "p.parquet")]  # fmt: skip
    for _ in range(4):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "a chunk cannot be read" in done.stderr, done.stderr[-600:]


def test_a_damaged_page_in_a_benchmark_source_is_one_line_naming_it(tmp_path: Path) -> None:
    """The footer reads fine; the last row group's page is damaged: the error, raised while a batch is read
    (outside the row guard, as a traceback, before), names the file in one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from blindspot.benchmarks.sources import SourceError, iter_rows

    source = tmp_path / "source.parquet"
    table = pa.table({"question": [f"q{i}?" for i in range(40)], "answer": ["yes"] * 40})
    pq.write_table(table, source, row_group_size=10)
    metadata = pq.ParquetFile(source).metadata
    offset = metadata.row_group(3).column(0).data_page_offset
    data = bytearray(source.read_bytes())
    data[offset : offset + 16] = b"\xff" * 16
    source.write_bytes(bytes(data))
    with pytest.raises(SourceError) as caught:
        list(iter_rows(source))
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"benchmark.path: cannot read parquet '{source}'") and "re-download" in line


def test_an_input_of_another_kind_is_one_line_naming_it_and_the_output_expected(tmp_path: Path) -> None:
    """Before a stage reads an input, the stage table checks it is the output it expects: a decay table where
    the predictions belong, a Parquet file blindspot did not write, or a table of another schema."""
    import pyarrow as pa

    from blindspot.contracts.tables import DECAY_METRICS_SCHEMA, ITEMS_SCHEMA, PREDICTIONS_SCHEMA
    from blindspot.errors import InputError
    from blindspot.stages.table import STAGES

    items = tmp_path / "items.parquet"
    write_table([], ITEMS_SCHEMA, {"stage": "stage"}, items)
    predictions = tmp_path / "predictions.parquet"
    decay = STAGES["decay"]
    cases = {
        "is the decay step's output, not the predict step's predictions output": (DECAY_METRICS_SCHEMA, "decay"),
        "was not written by blindspot (no provenance)": (PREDICTIONS_SCHEMA, None),
        "lacks the columns": (pa.schema([("item_id", pa.string())]), "predict"),
    }
    for expected, (schema, stage) in cases.items():
        if stage is None:
            import pyarrow.parquet as pq

            pq.write_table(schema.empty_table(), predictions)
        else:
            write_table([], schema, {"stage": stage}, predictions)
        with pytest.raises(InputError) as caught:
            decay.check_inputs({"predictions": predictions, "item_table": items})
        (line,) = str(caught.value).splitlines()
        assert line.startswith(f"'{predictions}' ") and expected in line, line
    write_table([], PREDICTIONS_SCHEMA, {"stage": "predict"}, predictions)
    decay.check_inputs({"predictions": predictions, "item_table": items})  # the right table passes
