"""Two GPU jobs never share a GPU by accident (tested on CPU, with a mocked set of visible GPUs): concurrent jobs
claim disjoint GPUs, a job killed with -9 frees its GPUs, a job that finds too few free GPUs waits and then fails
in one line, CUDA_VISIBLE_DEVICES is respected, and the job says (console, provenance) which GPUs it ran on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models import devices
from blindspot.models.devices import Gpu, GpuClaimError, claim_gpus
from blindspot.models.loading import claimed_gpus, resolve_device, spread_over_gpus

FOUR = [Gpu(i, str(i), f"GPU-uuid-{i}") for i in range(4)]

HOLDER = """
import sys, time
from pathlib import Path
from blindspot.models.devices import Gpu, claim_gpus
gpus = [Gpu(i, str(i), f"GPU-uuid-{i}") for i in range(4)]
claim = claim_gpus(int(sys.argv[1]), visible=lambda: gpus, locks=Path(sys.argv[2]), wait_s=float(sys.argv[3]),
                   poll_s=0.05)
print(",".join(claim.names), flush=True)
time.sleep(600)
"""


def holder(n: int, locks: Path, wait_s: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(n), str(locks), str(wait_s)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def claimed(process: subprocess.Popen[str]) -> set[str]:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, process.stderr.read() if process.stderr else ""
    return set(line.split(","))


@pytest.fixture(autouse=True)
def no_claim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(devices, "_CLAIM", None)
    monkeypatch.setattr(devices, "lock_dir", lambda: tmp_path / "locks")


@pytest.mark.slow
def test_concurrent_jobs_claim_disjoint_gpus_and_a_kill_frees_them(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    first, second = holder(2, locks), holder(2, locks)
    try:
        a, b = claimed(first), claimed(second)
        assert len(a) == len(b) == 2 and not a & b
        with pytest.raises(GpuClaimError) as caught:  # a third job finds none free: it waits, then fails
            claim_gpus(1, visible=lambda: FOUR, locks=locks, wait_s=0.3, poll_s=0.05, say=lambda line: None)
        (line,) = str(caught.value).splitlines()
        assert line.startswith("model.gpu: 1 GPU(s) wanted but only 0 of the 4 visible (0, 1, 2, 3) were free")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        third = holder(2, locks, wait_s=10)  # waits for the killed job's GPUs, and gets exactly those
        try:
            assert claimed(third) == a
        finally:
            third.kill()
    finally:
        for process in (first, second):
            process.kill()


def test_a_job_waits_for_a_gpu_to_be_freed(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    said: list[str] = []
    taken = claim_gpus(4, visible=lambda: FOUR, locks=locks, wait_s=0)
    start = time.monotonic()

    def release_soon(line: str) -> None:
        said.append(line)
        taken.release()

    late = claim_gpus(1, visible=lambda: FOUR, locks=locks, wait_s=5, poll_s=0.05, say=release_soon)
    assert late.names == ["0"] and said == ["waiting for 1 free GPU(s) of the 4 visible (other jobs hold them)"]
    assert time.monotonic() - start < 5


def test_a_job_never_holds_some_gpus_while_it_waits_for_the_rest(tmp_path: Path) -> None:
    """Two jobs of two GPUs each on three free GPUs: the loser takes none (else both could wait forever)."""
    locks = tmp_path / "locks"
    held = claim_gpus(2, visible=lambda: FOUR[:3], locks=locks, wait_s=0)
    with pytest.raises(GpuClaimError):
        claim_gpus(2, visible=lambda: FOUR[:3], locks=locks, wait_s=0.1, poll_s=0.05, say=lambda line: None)
    assert claim_gpus(1, visible=lambda: FOUR[:3], locks=locks, wait_s=0).names == ["2"]
    held.release()


def test_cuda_visible_devices_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the GPUs SLURM or the user made visible are candidates, named as they were given."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"uuid": f"u{i + 3}"})())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [(g.ordinal, g.name, g.key) for g in devices.visible_gpus()] == [(0, "3", "GPU-u3"), (1, "5", "GPU-u4")]


def test_the_model_loads_on_its_claimed_gpu_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    locks = tmp_path / "locks"
    other = claim_gpus(1, visible=lambda: FOUR, locks=locks, wait_s=0)  # another job holds GPU 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "visible_gpus", lambda: FOUR)
    assert resolve_device("auto", 1) == torch.device("cuda", 1)
    assert "running on GPU(s) 1 (claimed for this job)" in capsys.readouterr().out
    assert claimed_gpus() == ["1"]
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)  # the same claim for the job's second model
    assert spread_over_gpus(ModelConfig(adapter="qwen2_5_vl", path="m", gpu=2), torch.device("cuda", 1)) is False
    other.release()


def test_a_model_spread_over_gpus_claims_them_all(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "visible_gpus", lambda: FOUR)
    two = ModelConfig(adapter="qwen2_5_vl", path="m", gpu=2)
    assert resolve_device("auto", 2) == torch.device("cuda", 0)
    assert spread_over_gpus(two, torch.device("cuda", 0)) and claimed_gpus() == ["0", "1"]


def test_on_cpu_no_gpu_is_claimed() -> None:
    assert resolve_device("cpu", 1) == torch.device("cpu")
    assert claimed_gpus() is None
