"""Torch files written atomically (`io.atomic_write`) and read back with errors that say what to do."""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from partialkd.common.io import atomic_write


def save_torch(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle))


def load_torch(path: str | Path, what: str) -> Any:
    """Load a file written by `save_torch`, with an error that says what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}: run the step that creates it "
                                "(or `snakemake` to build everything)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{what} at {path} is unreadable or corrupt ({_reason(error)}); delete it and "
                         "re-run the step that creates it") from error


def _reason(error: Exception) -> str:
    """What torch found wrong with a file, without its advice to load untrusted files unsafely."""
    if isinstance(error, pickle.UnpicklingError) and "weights_only" in str(error):
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        return ("it holds Python objects, not only tensors and plain values"
                + (f": {unsupported.group(1)}" if unsupported else ""))
    return str(error).strip().splitlines()[0]
