"""Atomic outputs: nothing that looks complete is left at the final path unless the writer finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from blindspot.store.atomic import atomic_output


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


def test_a_failed_swap_puts_the_old_store_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a store never leaves nothing at the final path: if moving the new one in fails, the old one
    is moved back; the old one is deleted only after the new one is in place."""
    import os

    from blindspot.store import atomic

    final, new = tmp_path / "h.zarr", tmp_path / ".h.zarr.partial"
    final.mkdir()
    (final / "old").write_text("old")
    new.mkdir()
    (new / "new").write_text("new")
    real = os.replace

    def fails_for_the_new_store(src: object, dst: object) -> None:
        if Path(str(src)) == new:
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fails_for_the_new_store)
    with pytest.raises(OSError, match="disk full"):
        atomic.replace_path(new, final)
    assert (final / "old").read_text() == "old" and (new / "new").exists()
    monkeypatch.setattr(atomic.os, "replace", real)
    atomic.replace_path(new, final)
    assert (final / "new").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.zarr"]
