"""models.<name>.gpu above 1 spreads a model over its claimed GPUs (device_map="auto"); with fewer GPUs visible
than asked for it says so; on CPU, or with one GPU asked for, the model loads whole on its device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models import devices
from blindspot.models.devices import Gpu
from blindspot.models.loading import spread_over_gpus


def visible(n: int) -> list[Gpu]:
    return [Gpu(i, str(i), f"GPU-{i}") for i in range(n)]


def test_spread_only_over_several_visible_gpus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    two = ModelConfig(adapter="qwen2_5_vl", path="m", gpu=2)
    one = ModelConfig(adapter="qwen2_5_vl", path="m")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(devices, "lock_dir", lambda: tmp_path / "locks")
    monkeypatch.setattr(devices, "visible_gpus", lambda: visible(4))
    monkeypatch.setattr(devices, "_CLAIM", None)
    assert spread_over_gpus(two, cuda) and not spread_over_gpus(one, cuda) and not spread_over_gpus(two, cpu)
    assert "gpu is" not in capsys.readouterr().out
    devices._CLAIM.release()  # type: ignore[union-attr]
    monkeypatch.setattr(devices, "visible_gpus", lambda: visible(1))
    monkeypatch.setattr(devices, "_CLAIM", None)
    assert not spread_over_gpus(ModelConfig(adapter="qwen2_5_vl", path="m", gpu=3), cuda)
    assert "gpu is 3 but 1 GPU(s) are visible: loading it on one" in capsys.readouterr().out
