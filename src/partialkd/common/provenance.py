"""Where a result came from: code version, library versions, time (torch-free: the reporting steps
start without loading torch; a training run adds its device, `run_directory.run_provenance`)."""
from __future__ import annotations

import datetime
import platform
import subprocess
from importlib import metadata
from typing import Any


PACKAGES = ("partialkd", "torch", "numpy", "pandas", "snakemake")


def provenance() -> dict[str, Any]:
    return {"git_commit": _git_commit(), "python": platform.python_version(),
            "versions": {name: _version(name) for name in PACKAGES},
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """HEAD of the working directory's repository, '+dirty' when it has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")
