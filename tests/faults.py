"""``make faults``: the operator's checks, end to end on the toy world: kill -9 mid-job, damaged stores and
tables, hostile benchmark inputs. Prints one row per case (case, expected, observed, ok) and exits non-zero if
any case is not ok. Documented in docs/faults.md.

    python tests/faults.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from mutants import BIN, baseline, job_paths, run  # tests/ is on the path: this script runs from it

from blindspot.config import load_config
from blindspot.fixtures import pixel_bomb_png
from blindspot.images import encode_png
from blindspot.stages.table import STAGES

MODEL = "qwen_base"


@dataclass
class Case:
    name: str
    expected: str
    check: Callable[[Path, Path], str]
    """(a copy of the baseline run, its config) -> what was observed; ok when it equals ``expected``."""


def stage_command(stage: str, config_path: Path, wildcards: dict[str, str], outputs: dict[str, str]) -> list[str]:
    """The CLI command of one job (what its rule runs), with its outputs redirected."""
    config = load_config(config_path)
    spec = STAGES[stage]
    paths = job_paths(stage, wildcards) | outputs
    command = [str(BIN / "blindspot"), stage, "--quiet"]
    command += [part for w in spec.wildcards for part in (f"--{w}", wildcards[w])]
    command += ["--slice", spec.slice_json(config, wildcards)]
    command += [part for item in spec.inputs for part in (f"--{item.name.replace('_', '-')}", paths[item.name])]
    command += [part for name in spec.output_names for part in (f"--{name.replace('_', '-')}", paths[name])]
    return command


def kill_midway(stage: str, output: str, marker: str) -> Callable[[Path, Path], str]:
    """kill -9 the job once ``marker`` (a glob beside the output) appears; rerun; compare with the baseline."""

    def check(work: Path, config: Path) -> str:
        wildcards = {"model": MODEL, "bench": "toy"}
        reference = job_paths(stage, wildcards)[output]
        fresh = str(Path(reference).with_name("killed-" + Path(reference).name))
        command = stage_command(stage, config, wildcards, {output: fresh})
        process = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 300
        while not list((work / fresh).parent.glob(marker)) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is not None:
            return "finished before the kill"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if (work / fresh).exists():
            return "a complete-looking output after the kill"
        if run(command, work) != 0:
            return "the rerun failed"
        if Path(reference).suffix == ".parquet":
            same = pl.read_parquet(work / fresh).equals(pl.read_parquet(work / reference))
        else:
            same = run([str(BIN / "blindspot"), "verify", fresh], work) == 0
        return "rerun completes, same output" if same else "rerun differs"

    return check


def damaged_chunk(store: str, chunk: str, stage: str, action: str) -> Callable[[Path, Path], str]:
    def check(work: Path, config: Path) -> str:
        path = work / store / chunk
        if action == "delete":
            path.unlink()
        else:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        verify = subprocess.run([str(BIN / "blindspot"), "verify", store], cwd=work, capture_output=True, text=True)
        named = verify.returncode == 2 and str(store) in verify.stdout and "delete" in verify.stdout
        wildcards = {"model": MODEL, "bench": "toy"}
        job = subprocess.run(stage_command(stage, config, wildcards, {}), cwd=work, capture_output=True, text=True)
        lines = job.stderr.strip().splitlines() or [""]
        error = lines[-1]  # libraries may warn on stderr first (model loading); the error is the last line
        one_line = (
            job.returncode == 2
            and error.startswith(f"blindspot {stage}: error: ")
            and store in error
            and "Traceback" not in job.stderr
        )
        return f"verify names it: {named}; {stage} fails in one line naming it: {one_line}"

    return check


def hostile_inputs(work: Path, config: Path) -> str:
    root = work / "hostile" / "images"
    root.mkdir(parents=True)
    (root / "ok.png").write_bytes(encode_png(np.zeros((8, 8, 3), np.uint8)))
    (root / "bomb.png").write_bytes(pixel_bomb_png(32000))
    (root / "empty.png").write_bytes(b"")
    (root / "dir.png").mkdir()
    (work / "hostile" / "secret.txt").write_text("TOPSECRET")
    rows = [("ok.png", "q?"), ("bomb.png", "q?"), ("empty.png", "q?"), ("dir.png", "q?"), ("../secret.txt", "q?")]
    lines = [json.dumps({"id": str(i), "question": q, "answer": "yes", "image": f}).encode() for i, (f, q) in
             enumerate(rows)] + [b'{"id": "7", "question": "caf\xe9"}']  # fmt: skip
    (work / "hostile" / "b.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    entry = {"adapter": "generic", "path": "hostile/b.jsonl", "image_root": "hostile/images", "answer_type": "yes_no",
             "columns": {"id": "id"}}  # fmt: skip
    out = work / "hostile" / "staged"

    def stage(benchmark: dict) -> subprocess.CompletedProcess[str]:
        slice_json = json.dumps(
            {"output_version": STAGES["stage"].version, "benchmark": benchmark, "image_folder": None}
        )
        command = [str(BIN / "blindspot"), "stage", "--bench", "h", "--slice", slice_json, "--item-table",
                   str(out / "items.parquet"), "--images", str(out / "images.parquet"), "--rejects",
                   str(out / "rejects.parquet")]  # fmt: skip
        return subprocess.run(command, cwd=work, capture_output=True, text=True)

    # Five of six rows are bad: by default that is too large a share to stage quietly. The job must refuse in one
    # line naming the key and leave no output behind; with the share allowed, every bad row is a reject.
    refused = stage(entry)
    error = (refused.stderr.strip().splitlines() or [""])[-1]
    one_line = refused.returncode == 2 and "Traceback" not in refused.stderr
    one_line = one_line and error.endswith("raise max_reject_share") and "benchmarks.h.max_reject_share" in error
    if not one_line or (out.exists() and any(out.iterdir())):
        return f"default share not refused in one line with nothing written ({refused.returncode}: {error})"
    done = stage({**entry, "max_reject_share": 1.0})
    if done.returncode != 0:
        return f"stage failed ({done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]})"
    reasons = sorted(pl.read_parquet(out / "rejects.parquet")["reason"])
    leaked = any(b"TOPSECRET" in p.read_bytes() for p in out.iterdir())
    return f"refused by default; 1 staged; rejects {reasons}; secret read: {leaked}"


def leftovers(work: Path, config: Path) -> str:
    stale = work / "results" / "render" / ".toy.zarr.tmp-99999-dead"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    wildcards = {"bench": "toy"}
    command = [str(BIN / "blindspot"), "render", "--quiet", "--bench", "toy", "--slice",
               STAGES["render"].slice_json(load_config(config), wildcards), "--images",
               "results/staged/toy/images.parquet", "--store", "results/render/toy.zarr"]  # fmt: skip
    code = run(command, work)
    return "removed by the next render" if code == 0 and not stale.exists() else f"left ({code})"


def one_line_error(done: subprocess.CompletedProcess[str], command: str, *needles: str) -> bool:
    """The job failed with exactly one error line (the last on stderr), naming every needle, and no traceback."""
    error = (done.stderr.strip().splitlines() or [""])[-1]
    return (
        done.returncode == 2
        and error.startswith(f"blindspot {command}: error: ")
        and all(n in error for n in needles)
        and "Traceback" not in done.stderr
    )


def store_metadata_gone(work: Path, config: Path) -> str:
    """The render store's root metadata deleted: predict names the store and the repair; the repair deletes it;
    Snakemake then plans the render job again (a folder alone would have stood for a finished output)."""
    store = "results/render/toy.zarr"
    (work / store / "zarr.json").unlink()
    wildcards = {"model": MODEL, "bench": "toy"}
    job = subprocess.run(stage_command("predict", config, wildcards, {}), cwd=work, capture_output=True, text=True)
    named = one_line_error(job, "predict", store, "blindspot verify --repair")
    repair = subprocess.run([str(BIN / "blindspot"), "verify", "--repair", store], cwd=work, capture_output=True,
                            text=True)  # fmt: skip
    deleted = repair.returncode == 0 and not (work / store).exists()
    plan = subprocess.run([str(BIN / "snakemake"), "-n", "-s", str(Path(__file__).parents[1] / "Snakefile"),
                           "--configfile", str(config)], cwd=work, capture_output=True, text=True)  # fmt: skip
    reruns = "rule render:" in plan.stdout or "localrule render:" in plan.stdout
    return f"predict names it and the repair: {named}; repair deletes it: {deleted}; render planned again: {reruns}"


def foreign_input(work: Path, config: Path) -> str:
    """A decay table where the predictions belong: the decay job names the file and the table it expected."""
    wildcards = {"model": MODEL, "bench": "toy"}
    paths = job_paths("decay", wildcards)
    shutil.copy(work / paths["metrics"], work / paths["predictions"])
    job = subprocess.run(stage_command("decay", config, wildcards, {}), cwd=work, capture_output=True, text=True)
    named = one_line_error(job, "decay", paths["predictions"], "not the predict step's predictions output")
    return f"decay fails in one line naming it: {named}"


def damage_a_page(path: Path) -> None:
    """Overwrite the header of the last data page of a Parquet file's first column: pyarrow fails reading that
    page, after the footer and the earlier pages read fine (as a torn download or a bad sector leaves a file)."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    offset = metadata.row_group(metadata.num_row_groups - 1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def damaged_source(work: Path, config: Path) -> str:
    """A damaged page in the benchmark's source file: the stage job names the file; nothing is left behind."""
    source = work / "data" / "toy" / "items.parquet"
    damage_a_page(source)
    out = {"item_table": "fresh/items.parquet", "images": "fresh/images.parquet", "rejects": "fresh/rejects.parquet"}
    job = subprocess.run(stage_command("stage", config, {"bench": "toy"}, out), cwd=work, capture_output=True,
                         text=True)  # fmt: skip
    named = one_line_error(job, "stage", "items.parquet", "cannot read parquet")
    left = (work / "fresh").exists() and any((work / "fresh").iterdir())
    return f"stage fails in one line naming it: {named}; output left: {left}"


def past_the_file_size_limit(work: Path, config: Path) -> str:
    """Staging past ulimit -f: one line, the disk error first (not a closed-file error of the cleanup)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = {"item_table": "small/items.parquet", "images": "small/images.parquet", "rejects": "small/rejects.parquet"}
    job = subprocess.run(stage_command("stage", config, {"bench": "toy"}, out), cwd=work, capture_output=True,
                         text=True, preexec_fn=limit)  # fmt: skip
    named = one_line_error(job, "stage", "file-size limit", "nothing partial was kept")
    left = (work / "small").exists() and any((work / "small").iterdir())
    return f"one line, the disk error first: {named}; output left: {left}"


def config_outside_the_run(work: Path, config: Path) -> str:
    """A results folder that is the parent, and a model revision that is a path: each one line naming its key."""
    found = []
    for key in ("results", f"models.{MODEL}.revision"):
        data = yaml.safe_load(config.read_text())
        if key == "results":
            data["results"] = ".."
        else:
            data["models"][MODEL] |= {"path": "acme/tiny", "revision": "../../outside"}
        path = work / f"{key}.yaml"
        path.write_text(yaml.safe_dump(data))
        done = subprocess.run([str(BIN / "blindspot"), "check-config", "--no-paths", str(path)], cwd=work,
                              capture_output=True, text=True)  # fmt: skip
        found.append(one_line_error(done, "check-config", f"{key}: "))
    return f"results refused in one line: {found[0]}; revision refused in one line: {found[1]}"


CASES = [
    Case("kill -9 predict mid-job", "rerun completes, same output",
         kill_midway("predict", "predictions", ".killed-toy.parquet.resume-*/shard-00000.parquet")),
    Case("kill -9 extract mid-job", "rerun completes, same output",
         kill_midway("extract", "hidden", ".killed-toy.zarr.resume-*/layout_done")),
    Case("deleted render chunk", "verify names it: True; predict fails in one line naming it: True",
         damaged_chunk("results/render/toy.zarr", "pixels/c/3/0/0/0/0", "predict", "delete")),
    Case("flipped bytes in a render chunk", "verify names it: True; predict fails in one line naming it: True",
         damaged_chunk("results/render/toy.zarr", "pixels/c/5/0/0/0/0", "predict", "flip")),
    Case("flipped bytes in hidden states", "verify names it: True; probe fails in one line naming it: True",
         damaged_chunk("results/hidden/qwen_base/toy.zarr", "last_token/c/0/0/1/0", "probe", "flip")),
    Case("hostile benchmark rows", "refused by default; 1 staged; rejects ['bad_image', 'bad_image', "
         "'image_too_large', 'malformed_row', 'path_outside_root']; secret read: False", hostile_inputs),
    Case("leftover of a killed render", "removed by the next render", leftovers),
    Case("render store metadata gone", "predict names it and the repair: True; repair deletes it: True; render "
         "planned again: True", store_metadata_gone),
    Case("a decay table as predictions", "decay fails in one line naming it: True", foreign_input),
    Case("a damaged page in the source", "stage fails in one line naming it: True; output left: False",
         damaged_source),
    Case("staging past ulimit -f", "one line, the disk error first: True; output left: False",
         past_the_file_size_limit),
    Case("paths outside the run", "results refused in one line: True; revision refused in one line: True",
         config_outside_the_run),
]  # fmt: skip


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="blindspot-faults-"))
    print(f"baseline: the reduced toy world with {MODEL} ({root})", flush=True)
    config = baseline(root / "baseline", [MODEL])
    failures = 0
    print(f"{'case':36s} {'ok':3s} observed (expected where different)")
    for case in CASES:
        work = root / case.name.replace(" ", "-")
        shutil.copytree(root / "baseline", work, ignore=shutil.ignore_patterns(".snakemake"), symlinks=True)
        observed = case.check(work, config)
        ok = observed == case.expected
        failures += not ok
        note = "" if ok else f"  (expected: {case.expected})"
        print(f"{case.name:36s} {'ok' if ok else 'NO':3s} {observed}{note}", flush=True)
        shutil.rmtree(work)
    shutil.rmtree(root)
    print(f"\n{len(CASES) - failures} of {len(CASES)} cases as expected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
