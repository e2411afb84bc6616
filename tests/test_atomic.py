"""Atomic outputs: nothing that looks complete is left at the final path unless the writer finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from blindspot.atomic import atomic_output


def test_file_appears_only_on_success(tmp_path: Path) -> None:
    final = tmp_path / "out" / "table.parquet"
    with atomic_output(final) as tmp:
        tmp.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done"
    assert [p.name for p in final.parent.iterdir()] == ["table.parquet"]


def test_failure_keeps_the_old_output_and_removes_the_temporary(tmp_path: Path) -> None:
    final = tmp_path / "store.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("partial")
        raise KeyboardInterrupt  # a kill
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]
    assert (final / "old").read_text() == "old"


def test_directory_replaces_directory(tmp_path: Path) -> None:
    final = tmp_path / "store.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="produced nothing"), atomic_output(tmp_path / "x"):
        pass
