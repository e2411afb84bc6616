"""models.<name>.gpu above 1 spreads a model over the visible GPUs (device_map="auto"); with fewer GPUs
visible than asked for it says so; on CPU, or with one GPU asked for, the model loads whole on its device."""

from __future__ import annotations

import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models.loading import spread_over_gpus


def test_spread_only_over_several_visible_gpus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    two = ModelConfig(adapter="qwen2_5_vl", path="m", gpu=2)
    one = ModelConfig(adapter="qwen2_5_vl", path="m")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert spread_over_gpus(two, cuda) and not spread_over_gpus(one, cuda) and not spread_over_gpus(two, cpu)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert not spread_over_gpus(ModelConfig(adapter="qwen2_5_vl", path="m", gpu=3), cuda)
    assert "gpu is 3 but 1 GPU(s) are visible: loading it on one" in capsys.readouterr().out
