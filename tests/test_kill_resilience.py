"""A kill never wedges a job: leftovers of killed writers are removed, a partial store killed while being created
or with a torn progress record is started again, and a full disk shows the real error with nothing left behind."""

from __future__ import annotations

import base64
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from blindspot.cli import main
from blindspot.contracts.hidden import FEATURES
from blindspot.images import encode_png
from blindspot.store.atomic import atomic_output
from blindspot.store.hidden import HiddenStore, HiddenStoreWriter
from blindspot.store.tables import write_table


def test_leftovers_of_killed_writers_are_removed(tmp_path: Path) -> None:
    final = tmp_path / "render" / "toy.zarr"
    final.parent.mkdir()
    (final.parent / ".toy.zarr.tmp-4242-deadbeef").mkdir()  # a kill -9 during render
    (final.parent / ".toy.zarr.tmp-4242-deadbeef" / "zarr.json").write_text("{}")
    (final.parent / ".toy.zarr.old-cafebabe").mkdir()  # a kill between the two renames of a replace
    (final.parent / ".other.zarr.tmp-1-x").mkdir()  # another output's: not ours to remove
    with atomic_output(final) as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in final.parent.iterdir()) == [".other.zarr.tmp-1-x", "toy.zarr"]


def open_writer(partial: Path) -> HiddenStoreWriter:
    return HiddenStoreWriter.open(
        partial, ["a", "b", "c"], ["g1", "g2", "g3"], ["blur/0"], n_layers=2, hidden=4, block=2, full=0,
        max_tokens=0, attrs={"provenance": {}},
    )  # fmt: skip


def fill(writer: HiddenStoreWriter, final: Path) -> HiddenStore:
    for block, rows in enumerate((slice(0, 2), slice(2, 3))):
        n = rows.stop - rows.start
        if block not in writer.done():
            writer.write_block(block, rows, {f: np.full((n, 1, 2, 4), block + 1.0) for f in FEATURES})
    writer.commit(final)
    return HiddenStore(final)


def test_a_partial_store_killed_while_being_created_is_started_again(tmp_path: Path) -> None:
    partial = tmp_path / ".hidden.zarr.partial"
    zarr.open_group(store=str(partial), mode="w", zarr_format=3)  # killed right after the group's zarr.json
    store = fill(open_writer(partial), tmp_path / "hidden.zarr")
    assert store.read(FEATURES[0]).shape == (3, 1, 2, 4)
    assert float(store.read(FEATURES[0])[2, 0, 0, 0]) == 2.0


def test_a_torn_progress_record_discards_the_partial(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    partial = tmp_path / ".hidden.zarr.partial"
    writer = open_writer(partial)
    writer.write_block(0, slice(0, 2), {f: np.full((2, 1, 2, 4), 1.0) for f in FEATURES})
    (partial / "blocks_done.json").write_text("[0, 1")  # torn mid-write
    store = fill(open_writer(partial), tmp_path / "hidden.zarr")
    assert "discarding the partial store" in capsys.readouterr().out
    assert not np.isnan(store.read(FEATURES[0])).any()


def test_a_sound_partial_is_resumed(tmp_path: Path) -> None:
    partial = tmp_path / ".hidden.zarr.partial"
    writer = open_writer(partial)
    writer.write_block(0, slice(0, 2), {f: np.full((2, 1, 2, 4), 7.0) for f in FEATURES})
    resumed = open_writer(partial)
    assert resumed.done() == {0}
    store = fill(resumed, tmp_path / "hidden.zarr")
    assert float(store.read(FEATURES[0])[0, 0, 0, 0]) == 7.0  # block 0 kept from the first run


def stage_command(tmp_path: Path, out: Path, image: np.ndarray | None = None) -> list[str]:
    """`blindspot stage` arguments for a one-row JSONL benchmark (an 8 x 8 black image unless given) into ``out``."""
    source = tmp_path / "b.jsonl"
    data = base64.b64encode(encode_png(np.zeros((8, 8, 3), np.uint8) if image is None else image)).decode()
    source.write_text(json.dumps({"question": "q?", "answer": "yes", "image": data}) + "\n")
    slice_json = json.dumps({"output_version": 2, "benchmark": {"adapter": "generic", "path": str(source),
                             "answer_type": "yes_no"}, "image_folder": None})  # fmt: skip
    return ["stage", "--bench", "b", "--slice", slice_json, f"--item-table={out / 'items.parquet'}",
            f"--images={out / 'images.parquet'}", f"--rejects={out / 'rejects.parquet'}"]  # fmt: skip


def test_a_full_disk_shows_the_real_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import pyarrow.parquet as pq

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "staged"
    code = main(stage_command(tmp_path, out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("blindspot stage: error: no space left on device")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("code", "line"),
    [(errno.EROFS, "the file system is read-only"), (errno.EACCES, "permission denied"),
     (errno.EFBIG, "a file grew past the file-size limit")],
)  # fmt: skip
def test_a_disk_that_refuses_writes_is_one_line_even_when_the_cleanup_fails_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, code: int, line: str
) -> None:
    """The write fails, and so does every cleanup (a read-only folder refuses the unlink too): the first error is
    what the user sees, in one line, not the cleanup's traceback."""
    import pyarrow.parquet as pq

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), "results/staged/b/items.parquet")

    def cleanup_fails(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EBUSY, "the cleanup failed too")

    monkeypatch.setattr(pq, "write_table", refused)
    monkeypatch.setattr(Path, "unlink", cleanup_fails)
    status = main(stage_command(tmp_path, tmp_path / "staged"))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"blindspot stage: error: {line} at 'results/staged/b/items.parquet'")


@pytest.mark.slow
def test_a_real_file_size_limit_is_one_line_not_a_kill(tmp_path: Path) -> None:
    """Past `ulimit -f` the kernel sends SIGXFSZ, which kills a process that does not ignore it (no message at
    all); the CLI ignores it, so the write fails with EFBIG and the job says so in one line."""
    import resource
    import subprocess
    import sys

    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # about 200 KB of PNG
    out = tmp_path / "staged"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    command = [sys.executable, "-m", "blindspot", *stage_command(tmp_path, out, noise)]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(err) == 1, result.stderr[-2000:]
    assert err[0].startswith("blindspot stage: error: a file grew past the file-size limit")
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


@pytest.mark.slow
def test_a_download_with_no_hub_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """local_files_only: false with a stalled proxy (a server that accepts and never answers) or nothing listening
    fails within the hub timeout with one line naming the key, instead of hanging the job."""
    import socket
    import threading
    import time

    from blindspot.config import ModelConfig
    from blindspot.models import loading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    monkeypatch.setattr(loading, "HUB_TIMEOUT_S", 2.0)
    config = ModelConfig.model_validate({"adapter": "auto", "path": "org/model", "local_files_only": False})
    for endpoint in (f"http://127.0.0.1:{server.getsockname()[1]}", "http://127.0.0.1:9"):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.delenv("http_proxy", raising=False)
        start = time.monotonic()
        with pytest.raises(loading.ModelLoadError) as caught:
            loading.load_model(config)
        assert time.monotonic() - start < 6
        assert str(caught.value).startswith("model.local_files_only: local_files_only is false but the hub at")
    server.close()


def test_a_resumed_shard_with_the_wrong_row_count_is_redone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shard loop trusts a shard an earlier run left only if it reads and has the rows its chunk makes: a
    short one (a torn write under a full disk) is removed, said on the console, and computed again."""
    from types import SimpleNamespace

    import pyarrow as pa

    from blindspot.models.job import ModelJob

    schema = pa.schema([("chunk", pa.int64()), ("unit", pa.int64())])
    job = SimpleNamespace(resume=tmp_path / ".out.resume-k", record={"stage": "predict"})
    job.shard_path = lambda name, i: ModelJob.shard_path(job, name, i)  # type: ignore[arg-type]
    job.finished_shard = lambda path, rows: ModelJob.finished_shard(job, path, rows)  # type: ignore[arg-type]
    chunks = [3, 2, 4]  # units per chunk
    computed: list[int] = []

    def compute(i: int, n: int) -> list[dict[str, int]]:
        computed.append(i)
        return [{"chunk": i, "unit": u} for u in range(n)]

    def run() -> pa.Table:
        return ModelJob.run_shards(job, "shard", chunks, compute, schema, rows=lambda n: n)  # type: ignore[arg-type]

    first = run()
    assert computed == [0, 1, 2] and first.num_rows == 9
    short = ModelJob.shard_path(job, "shard", 1)  # type: ignore[arg-type]
    write_table([{"chunk": 1, "unit": 0}], schema, {"stage": "predict"}, short)  # one row where two belong
    computed.clear()
    again = run()
    assert computed == [1] and again.equals(first)
    assert "discarding the shard 'shard-00001.parquet' of an earlier run (1 rows where 2 were expected)" in (
        capsys.readouterr().out
    )


@pytest.mark.slow
def test_staging_many_images_past_the_file_size_limit_is_one_line_the_disk_error_first(tmp_path: Path) -> None:
    """The images table is written in row groups while rows are read: the limit strikes inside a flush, and the
    cleanup's flush of what is pending must not bury the disk error under a closed-file error (48 lines)."""
    import resource
    import subprocess
    import sys

    from blindspot.stages.staging import _IMAGE_ROW_GROUP

    rng = np.random.default_rng(1)
    source = tmp_path / "many.jsonl"
    rows = []
    for i in range(_IMAGE_ROW_GROUP * 3):
        png = encode_png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        rows.append(
            json.dumps({"id": str(i), "question": "q?", "answer": "yes", "image": base64.b64encode(png).decode()})
        )
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "staged"
    slice_json = json.dumps({"output_version": 2, "benchmark": {"adapter": "generic", "path": str(source),
                             "answer_type": "yes_no", "columns": {"id": "id"}}, "image_folder": None})  # fmt: skip
    command = [sys.executable, "-m", "blindspot", "stage", "--bench", "b", "--slice", slice_json,
               f"--item-table={out / 'items.parquet'}", f"--images={out / 'images.parquet'}",
               f"--rejects={out / 'rejects.parquet'}"]  # fmt: skip

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(err) == 1, result.stderr[-2000:]
    assert err[0].startswith("blindspot stage: error: a file grew past the file-size limit")
    assert err[0].endswith("nothing partial was kept")


def test_a_job_that_fails_on_the_disk_says_what_it_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A job with finished shards keeps them and says so (the rerun resumes); an empty resume folder is removed
    and the line says nothing partial was kept. Out of memory is one line too."""
    from blindspot.stages.table import Stage
    from blindspot.store import atomic

    monkeypatch.setattr(atomic, "_PARTIALS", {})
    kept, empty = tmp_path / ".p.parquet.resume-a", tmp_path / ".q.parquet.resume-b"
    kept.mkdir()
    empty.mkdir()
    (kept / "shard-00000.parquet").write_bytes(b"x")
    (kept / "shard-00001.parquet").write_bytes(b"x")

    def failing(error: BaseException) -> Callable[..., str]:
        def runner(config: object, inputs: object, outputs: object, job: object) -> str:
            atomic.register_partial(kept)
            atomic.register_partial(empty)
            raise error

        return runner

    for error, first in ((OSError(errno.ENOSPC, "No space left"), "no space left on device"),
                         (MemoryError(), "the machine ran out of memory")):  # fmt: skip
        (kept / "x").unlink(missing_ok=True)
        empty.mkdir(exist_ok=True)
        monkeypatch.setattr(Stage, "load_runner", lambda self, error=error: failing(error))
        assert main(stage_command(tmp_path, tmp_path / "staged")) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"blindspot stage: error: {first}")
        assert line.endswith(f"kept 2 finished piece(s) in '{kept}': the rerun resumes from there")
        assert kept.is_dir() and not empty.exists()
