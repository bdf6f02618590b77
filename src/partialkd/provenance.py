"""Where a result came from: code version, library versions, device, time."""
from __future__ import annotations

import datetime
import platform
import subprocess
from importlib import metadata
from typing import Any

import torch

PACKAGES = ("partialkd", "torch", "numpy", "pandas", "snakemake")


def provenance() -> dict[str, Any]:
    return {"git_commit": _git_commit(), "python": platform.python_version(),
            "versions": {name: _version(name) for name in PACKAGES},
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.machine()})",
            "torch_threads": torch.get_num_threads(),
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
