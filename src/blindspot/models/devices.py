"""GPUs claimed by one job, exclusively, for its lifetime: two jobs never share a GPU by accident.

``snakemake --cores 8 --resources gpu=2`` on a two-GPU workstation runs two model jobs at once; nothing in CUDA
keeps them apart (each would load on the first GPU). Before a job loads a model on CUDA it claims as many GPUs as
its ``gpu`` resource (``models.<name>.gpu``) among the ones visible to it (``CUDA_VISIBLE_DEVICES``, as SLURM or
the user set it, is respected: only those are candidates), by taking an exclusive ``flock`` on one lock file per
GPU. The operating system drops a lock with the process that holds it, so a job that ends, fails or is killed
(``kill -9``) frees its GPUs. A GPU is named by its UUID where CUDA gives one (two jobs that each see a different
"GPU 0" never block each other), else by its visible name. Where too few GPUs are free, the job waits for them
(saying so), then fails in one line naming ``models.<name>.gpu``; it never shares.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from blindspot.errors import BlindspotError

WAIT_S = 600.0
"""How long a job waits for enough free GPUs before it fails (another run on the same machine holds them)."""


class GpuClaimError(BlindspotError):
    """Too few free GPUs for a job (one line)."""


@dataclass(frozen=True)
class Gpu:
    ordinal: int
    """The device's index among the visible ones (``cuda:<ordinal>`` in this process)."""
    name: str
    """What the user knows it by: its ``CUDA_VISIBLE_DEVICES`` entry, else its index."""
    key: str
    """What its lock is named by: its UUID where CUDA gives one, else :attr:`name`."""


@dataclass
class Claim:
    gpus: list[Gpu]
    handles: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def ordinals(self) -> list[int]:
        return [gpu.ordinal for gpu in self.gpus]

    @property
    def names(self) -> list[str]:
        return [gpu.name for gpu in self.gpus]

    def release(self) -> None:
        for handle in self.handles:
            handle.close()  # closing the file drops its lock
        self.handles.clear()


def visible_gpus() -> list[Gpu]:
    """The GPUs this process may use, in CUDA's order."""
    import torch

    if not torch.cuda.is_available():
        return []
    tokens = [t.strip() for t in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if t.strip()]
    out = []
    for ordinal in range(torch.cuda.device_count()):
        name = tokens[ordinal] if ordinal < len(tokens) else str(ordinal)
        uuid = getattr(torch.cuda.get_device_properties(ordinal), "uuid", None)
        out.append(Gpu(ordinal, name, f"GPU-{uuid}" if uuid else name))
    return out


def lock_dir() -> Path:
    """Where the GPU locks live: one folder per user on this machine (its temporary folder)."""
    return Path(tempfile.gettempdir()) / f"blindspot-gpu-locks-{getpass.getuser()}"


def _try_lock(path: Path) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "ab")  # noqa: SIM115 (held open for the job's lifetime: the lock lives with it)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def claim_gpus(
    n: int,
    *,
    visible: Callable[[], list[Gpu]] | None = None,
    locks: Path | None = None,
    wait_s: float = WAIT_S,
    poll_s: float = 1.0,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> Claim:
    """Claim ``n`` free GPUs among the visible ones, exclusively, waiting up to ``wait_s`` for them. Fewer visible
    than ``n``: all of them (the model then spreads over those, as the console says)."""
    gpus = (visible or visible_gpus)()
    wanted = min(n, len(gpus))
    folder = locks or lock_dir()
    deadline = time.monotonic() + wait_s
    waiting_said = False
    while True:
        claim = Claim([])
        for gpu in gpus:
            if len(claim.gpus) == wanted:
                break
            handle = _try_lock(folder / f"{gpu.key}.lock")
            if handle is not None:
                claim.gpus.append(gpu)
                claim.handles.append(handle)
        if len(claim.gpus) == wanted:
            return claim
        claim.release()  # never hold some while waiting for the rest: two waiting jobs could block each other
        if time.monotonic() >= deadline:
            raise GpuClaimError(
                f"{wanted} GPU(s) wanted but only {len(claim.gpus)} of the {len(gpus)} visible "
                f"({', '.join(g.name for g in gpus)}) were free after {wait_s:.0f} s (other blindspot jobs hold the "
                "rest): run fewer jobs at once (snakemake --resources gpu=<the GPUs you have>)",
                key="model.gpu",
            )
        if not waiting_said:
            say(f"waiting for {wanted} free GPU(s) of the {len(gpus)} visible (other jobs hold them)")
            waiting_said = True
        time.sleep(poll_s)


_CLAIM: Claim | None = None


def job_claim(n: int) -> Claim:
    """The GPUs of the job running in this process: claimed once, at its first model load on CUDA, and held until
    the process ends (a swap job's donor and base share them)."""
    global _CLAIM
    if _CLAIM is None:
        _CLAIM = claim_gpus(n)
        if _CLAIM.gpus:
            print(f"running on GPU(s) {', '.join(_CLAIM.names)} (claimed for this job)", flush=True)
    return _CLAIM
