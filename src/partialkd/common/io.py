"""Atomic writes: nothing half-written survives a crash or a full disk. Torch-free, so that the
reporting steps start without loading torch (about 1.6 s a job); torch files: `torch_files`."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"  # of the file `atomic_write` writes before renaming it: `.<name>.<random>.tmp`


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through `write(file)` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from colleagues
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise OSError(error.errno, f"disk full while writing {path}; the previous version of "
                                       "the file (if any) is intact: free space and re-run") from error
        raise


def remove_interrupted_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes killed mid-way (SIGKILL, power loss) left in
    `folder`; call it where one job alone writes, before it starts. The files removed."""
    debris = sorted(Path(folder).glob(f".*{TEMPORARY_SUFFIX}"))
    for path in debris:
        path.unlink(missing_ok=True)
    return debris


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_json(obj: Any, path: str | Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))
