"""Checksummed files and downloads, shared by the real-data tracks (DESIGN.md "Data sources").

Every source of a dataset is verified against the same published MD5s before anything is
parsed; a file's MD5 is torchvision's `calculate_md5`. The download is ours, not torchvision's
`download_url`: that one writes straight to the destination (a cut connection or a wrong file
stays there), has no timeout and answers a bad file with "File not found or corrupted.". Ours is
written atomically and only if its MD5 matched, so a dead network or a cut connection leaves
nothing behind; the timeout makes an offline machine fail fast; errors say where and what to do.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from torchvision.datasets.utils import calculate_md5

from partialkd.common.io import atomic_write

TIMEOUT_S = 30  # for the connection and for each read: a dead network fails fast
CHUNK = 1 << 20


def bytes_md5(data: bytes) -> str:
    """The MD5 of bytes already read (torchvision's `calculate_md5` reads a file)."""
    return hashlib.md5(data).hexdigest()


def mismatch(what: str, path: str | Path, actual: str, md5: str, remedy: str) -> ValueError:
    """The error for a file whose MD5 is not the published one: what, where, both MD5s, what to do."""
    return ValueError(f"{what} {path} has MD5 {actual}, expected {md5}: it is corrupt, truncated "
                      f"or another file. {remedy}")


def verify_md5(path: str | Path, md5: str, what: str, remedy: str) -> None:
    """Raise `mismatch(...)` unless the file at `path` has MD5 `md5`."""
    actual = calculate_md5(path)
    if actual != md5:
        raise mismatch(what, path, actual, md5, remedy)


def fetch(path: str | Path, url: str, md5: str, what: str, log: logging.Logger,
          download: bool = True) -> Path:
    """The verified file at `path`, downloaded from `url` first if it is missing.

    `what` names the file in messages ("CIFAR-100 archive"); `log` is the caller's logger.
    """
    path = Path(path)
    if path.exists():
        verify_md5(path, md5, what, "Delete it and re-run to download it again, or put the right "
                                    f"file there (from {url})")
        log.info("%s %s verified (MD5 %s)", what, path, md5)
        return path
    if not download:
        raise FileNotFoundError(f"{what} not found at {path} and downloading is off: put the file "
                                f"from {url} there (MD5 {md5}) and re-run")
    return download_file(path, url, md5, what, log)


def download_file(path: str | Path, url: str, md5: str, what: str, log: logging.Logger) -> Path:
    """Download `url` to `path` atomically, with progress in `log`; refuse it unless its MD5 is `md5`."""
    path = Path(path)
    log.info("downloading %s to %s", url, path)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise _download_failed(url, path, md5, what, error) from error
    with response:
        total = int(response.headers.get("Content-Length") or 0)
        atomic_write(path, lambda handle: _receive(response.read, handle, total, url, path, md5,
                                                   what, log))
    log.info("%s %s downloaded and verified (MD5 %s)", what, path, md5)
    return path


def _receive(read: Callable[[int], bytes], handle: IO[bytes], total: int, url: str, path: Path,
             md5: str, what: str, log: logging.Logger) -> None:
    """Copy the response into `handle`, logging every 10%; refuse it unless its MD5 is `md5`."""
    digest, done, logged_tenths = hashlib.md5(), 0, 0
    while True:
        try:
            chunk = read(CHUNK)
        except (OSError, http.client.HTTPException) as error:
            raise _download_failed(url, path, md5, what, error) from error
        if not chunk:
            break
        digest.update(chunk)
        handle.write(chunk)
        done += len(chunk)
        if total and done * 10 // total > logged_tenths:
            logged_tenths = done * 10 // total
            log.info("downloaded %d%% (%.1f of %.1f MB)", 100 * done // total, done / 1e6, total / 1e6)
    if total and done != total:
        raise _download_failed(url, path, md5, what,
                               f"the connection ended after {done} of {total} bytes")
    if digest.hexdigest() != md5:
        raise ValueError(f"the download of {url} has MD5 {digest.hexdigest()}, expected {md5} "
                         f"({done} bytes received); nothing was written to {path}. Re-run, or put "
                         f"the right {what} there by hand")


def _download_failed(url: str, path: Path, md5: str, what: str, error: object) -> OSError:
    reason = getattr(error, "reason", None) or error  # a URLError's reason, say "Connection refused"
    return OSError(f"download of {url} failed ({reason}); nothing was written. Download the {what} "
                   f"by other means and put it at {path} (its MD5 must be {md5}), then re-run")
