"""envs/blindspot.yaml works where Snakemake puts it: Snakemake copies env files into .snakemake/conda/ before
creating them, so the package is named by ${BLINDSPOT_ROOT} (set by the workflow, expanded by pip), never by a
path relative to the file. Checked with pip itself on the env's pip section, from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from blindspot.conda_env import ROOT_VARIABLE, set_repository_root


def pip_section() -> list[str]:
    env = yaml.safe_load((REPO / "envs" / "blindspot.yaml").read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    return pip


def test_the_env_names_the_repository_by_the_variable_the_workflow_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pip_section() == ["-e ${BLINDSPOT_ROOT}"]
    assert "set_repository_root(workflow.basedir)" in (REPO / "rules" / "common.smk").read_text()
    monkeypatch.setenv(ROOT_VARIABLE, "before")  # restored after the test
    set_repository_root(str(REPO / "."))
    assert os.environ[ROOT_VARIABLE] == str(REPO) and "${" + ROOT_VARIABLE + "}" in pip_section()[0]
    assert not any(".." in line for line in pip_section())  # a relative path would resolve from the copy


@pytest.mark.slow
def test_pip_installs_the_package_from_a_copy_of_the_env_file(tmp_path: Path) -> None:
    copy = tmp_path / ".snakemake" / "conda"  # where Snakemake writes the env file's copy
    copy.mkdir(parents=True)
    requirements = copy / "requirements.txt"  # conda hands pip the pip section as a requirements file
    requirements.write_text("\n".join(pip_section()) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--no-build-isolation",
         "-r", str(requirements)],
        capture_output=True, text=True, cwd=copy, env={**os.environ, "BLINDSPOT_ROOT": str(REPO)}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Would install blindspot" in result.stdout
