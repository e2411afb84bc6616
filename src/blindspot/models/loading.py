"""Loading a model and its processor from a local directory (or a hub id where allowed), with one-line errors."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel

from blindspot.config import ModelConfig
from blindspot.config_base import path_problem
from blindspot.errors import BlindspotError
from blindspot.models import devices
from blindspot.models.devices import job_claim
from blindspot.models.families import LANGUAGE_MODEL, ModelFamily, get_family


class ModelLoadError(BlindspotError):
    """A model that cannot be loaded: one line naming the path and what to do, keyed ``model.<field>``."""

    def __init__(self, message: str, key: str = "model.path") -> None:
        super().__init__(message, key)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    """A transformers image-text-to-text model (its family's class), in eval mode."""
    processor: Any
    family: ModelFamily
    config: ModelConfig
    device: torch.device
    dtype: torch.dtype

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)  # a language model's processor is its tokenizer

    @property
    def layers(self) -> nn.ModuleList:
        return self.family.decoder_layers(self.model)

    @property
    def final_norm(self) -> nn.Module:
        return self.family.final_norm(self.model)

    def provenance(self) -> dict[str, Any]:
        return {
            "model_path": self.config.path,
            "hub_id": self.config.hub_id,
            "revision": self.config.revision,
            "model_class": type(self.model).__name__,
            "model_type": self.model.config.model_type,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "gpus": claimed_gpus(),
            "n_layers": len(self.layers),
        }


def resolve_device(device: str, gpus: int = 1) -> torch.device:
    """The device a model loads on. On CUDA (``auto`` where it is available, ``cuda``), the job's claimed GPUs
    (:mod:`blindspot.models.devices`): the first of them; an explicit ``cuda:N`` is taken as written."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device '{device}' requested but CUDA is not available; set device: cpu or auto", key="model.device"
        )
    if device == "cuda" and gpus >= 1:
        claim = job_claim(gpus)
        return torch.device("cuda", claim.ordinals[0]) if claim.gpus else torch.device("cuda")
    return torch.device(device)


def claimed_gpus() -> list[str] | None:
    """The GPUs this job claimed (their names), for provenance; None where it runs on none."""
    claim = devices._CLAIM
    return claim.names if claim is not None and claim.gpus else None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def read_model_config(folder: str | Path, key: str = "model.path") -> dict[str, Any]:
    """A model directory's config.json, or one line naming the file and what is wrong with it."""
    file = Path(folder) / "config.json"
    if not file.is_file():
        raise ModelLoadError(f"'{folder}' has no config.json; is it a downloaded model directory?", key=key)
    try:
        data = json.loads(file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise ModelLoadError(f"'{file}' is not valid JSON{where}; download the model again", key=key) from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"'{file}' is not a JSON object; download the model again", key=key)
    return data


def check_safetensors(folder: str | Path, key: str = "model.path") -> None:
    """Every .safetensors file of a model directory is whole: its header parses and its last tensor ends within
    the file (a download cut short fails here, in one line naming the file, not in a traceback mid-load); a
    sharded checkpoint's index names only shards that are there. Reads the headers only."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelLoadError(
            f"'{folder}' has no .safetensors weights; blindspot never loads pickled (.bin) weights", key=key
        )
    for file in files:
        problem = _safetensors_problem(file)
        if problem:
            raise ModelLoadError(f"'{file}' is damaged: {problem}; download it again", key=key)
    index = Path(folder) / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise ModelLoadError(f"'{index}' is not a valid shard index; download the model again", key=key) from None
        missing = sorted(shard for shard in shards if not (Path(folder) / shard).is_file())
        if missing:
            raise ModelLoadError(f"'{index}' names shards that are missing: {', '.join(missing[:3])}", key=key)


def _safetensors_problem(file: Path) -> str | None:
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        length = int.from_bytes(head, "little")
        if length > min(size - 8, 100_000_000):
            return f"its header claims {length} bytes but the file has {size}"
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    ends = [t["data_offsets"][1] for name, t in header.items() if name != "__metadata__" and isinstance(t, dict)
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2]  # fmt: skip
    if ends and 8 + length + max(ends) > size:
        return f"truncated: its tensors need {8 + length + max(ends)} bytes, the file has {size}"
    return None


def _checked_folder(config: ModelConfig) -> str:
    """The model's folder (its ``path``, or the local cache's snapshot of a hub id), resolved once, with its
    ``config.json`` and safetensors checked; a hub id as is where downloads are allowed."""
    folder = config.local_dir()
    if not config.local_files_only:
        return folder
    if not Path(folder).is_dir():  # path_problem says why (for a hub id: where the cache is)
        raise ModelLoadError(str(path_problem(config.path, "model", config.hub_id, config.revision)))
    read_model_config(folder)
    check_safetensors(folder)
    return folder


def _check_family(config: ModelConfig, family: ModelFamily, folder: str) -> None:
    if not family.model_types or not config.local_files_only:
        return
    model_type = read_model_config(folder).get("model_type")
    if model_type not in family.model_types:
        raise ModelLoadError(
            f"'{config.adapter}' expects model_type {' or '.join(family.model_types)}, but "
            f"'{config.path}' is '{model_type}'; use adapter: auto or the matching adapter",
            key="model.adapter",
        )


def check_model_directory(config: ModelConfig) -> None:
    """The checks the predict job runs before loading (directory, config.json, safetensors only, the adapter
    matching the directory's model_type), without loading: ``blindspot check-config`` runs them before any job."""
    _check_family(config, get_family(config.adapter), _checked_folder(config))


def load_model(config: ModelConfig) -> LoadedModel:
    """Load model + processor for inference: eval mode, left padding, safetensors only, no remote code by default."""
    family = get_family(config.adapter)
    folder = _checked_folder(config)
    _check_family(config, family, folder)
    return _load(config, folder, family, transformers.AutoProcessor, "model.path")


def load_language_model(config: ModelConfig) -> LoadedModel:
    """The model's base language model (``llm``), with its tokenizer as the processor."""
    if config.llm is None:
        raise ModelLoadError("no base language model configured", key="model.llm")
    problem = path_problem(config.llm, "model")
    if problem:
        raise ModelLoadError(problem, key="model.llm")
    read_model_config(config.llm, key="model.llm")
    check_safetensors(config.llm, key="model.llm")
    loaded = _load(config, config.llm, LANGUAGE_MODEL, transformers.AutoTokenizer, "model.llm")
    return loaded


HUB_TIMEOUT_S = 10.0
"""How long a load that may download (``local_files_only: false``) waits for the hub to answer at all."""


def check_hub(path: str) -> None:
    """Where a model may be downloaded, fail within :data:`HUB_TIMEOUT_S` when the hub (``HF_ENDPOINT``, through
    the environment's proxy) does not answer: without this, an offline machine waits minutes and a stalled proxy
    hangs the job with an empty log."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models/{path}", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=HUB_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # the hub answered (401, 404, ...): reachable; from_pretrained reports what is wrong
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ModelLoadError(
            f"local_files_only is false but the hub at {endpoint} did not answer within {HUB_TIMEOUT_S:.0f} s "
            f"({reason}); download the model (hf download) and set local_files_only: true",
            key="model.local_files_only",
        ) from None


def spread_over_gpus(config: ModelConfig, device: torch.device) -> bool:
    """Whether to spread the model over the visible GPUs (``gpu`` above 1, on CUDA): transformers'
    ``device_map="auto"`` places whole decoder layers on each GPU in turn. Fewer visible GPUs than ``gpu`` is said
    on the console; the model then spreads over those there are."""
    if config.gpu <= 1 or device.type != "cuda":
        return False
    claimed = len(job_claim(config.gpu).gpus)
    if claimed < config.gpu:
        where = f"spreading it over {claimed}" if claimed > 1 else "loading it on one"
        print(f"models.<name>.gpu is {config.gpu} but {claimed} GPU(s) are visible: {where}", flush=True)
    return claimed > 1


def gpu_memory_map() -> dict[int | str, int]:
    """``max_memory`` for transformers' ``device_map="auto"``: the job's claimed GPUs only, each with what it has
    free (accelerate places layers only on the devices named)."""
    return {ordinal: int(torch.cuda.mem_get_info(ordinal)[0]) for ordinal in job_claim(1).ordinals}


def _load(config: ModelConfig, path: str, family: ModelFamily, processor_class: Any, key: str) -> LoadedModel:
    if not config.local_files_only and not Path(path).is_dir():
        check_hub(path)
    device = resolve_device(config.device, config.gpu)
    dtype = resolve_dtype(config.dtype, device)
    common = {
        "revision": config.revision,
        "local_files_only": config.local_files_only,
        "trust_remote_code": config.trust_remote_code,
    }
    try:
        processor = processor_class.from_pretrained(path, **common)
        model_class = getattr(transformers, family.model_class)
        spread = spread_over_gpus(config, device)
        model = model_class.from_pretrained(
            path,
            dtype=dtype,
            use_safetensors=True,
            attn_implementation=config.attn_implementation,
            **({"device_map": "auto", "max_memory": gpu_memory_map()} if spread else {}),
            **common,
        )
    except Exception as error:  # transformers and safetensors raise many types: one line for all
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"cannot load '{path}': {first[:300]}", key=key) from None
    if spread:  # accelerate placed the layers; inputs go where the embeddings are
        device = model.get_input_embeddings().weight.device
    else:
        model.to(device)
    model.eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"  # generation appends on the right: pad on the left
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, processor=processor, family=family, config=config, device=device, dtype=dtype)
