"""What ``envs/blindspot.yaml`` needs from the workflow (``snakemake --software-deployment-method conda``).

Snakemake copies an env file into ``.snakemake/conda/`` before creating the environment, so the file cannot name
the repository by a path relative to itself. It installs the package from ``${BLINDSPOT_ROOT}``, which pip
expands from the environment, and the workflow sets that variable before any environment is created.
"""

from __future__ import annotations

import os

ROOT_VARIABLE = "BLINDSPOT_ROOT"


def set_repository_root(workflow_dir: str) -> None:
    """Point ``${BLINDSPOT_ROOT}`` at the repository (the Snakefile's folder), as an absolute path."""
    os.environ[ROOT_VARIABLE] = os.path.abspath(workflow_dir)
