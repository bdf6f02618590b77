"""Give a job GPUs of its own: `python -m partialkd.gpu_slots --gpus N [--timeout S] -- COMMAND ...`.

Snakemake counts GPUs (`--resources gpu=N`) but does not say which device a job gets. This wrapper
takes N free devices from the pool, each guarded by an flock'ed file in a lock directory that every
workflow of the user on this machine shares, sets CUDA_VISIBLE_DEVICES and runs COMMAND as its child,
holding the locks itself until COMMAND ends (its exit status is the wrapper's). The child inherits
no lock, nor do its own children (e.g. data-loading workers): the kernel frees the locks the moment
the wrapper or COMMAND exits or is killed, and COMMAND is killed if the wrapper is; SIGTERM, SIGINT
and SIGHUP to the wrapper are passed on to COMMAND.

  SLURM_JOB_ID set          pass through unchanged: SLURM has set CUDA_VISIBLE_DEVICES itself
  N = 0, or an empty pool   run on CPU (CUDA_VISIBLE_DEVICES="")
  PARTIALKD_GPU_IDS         the device pool, comma-separated (default: nvidia-smi's GPU indices)
  PARTIALKD_GPU_LOCK_DIR    the lock directory (default: <temp dir>/partialkd-gpu-slots-<uid>)
  PARTIALKD_JOBS_PER_GPU    jobs that may share one device (default 1); small networks leave a
                            GPU mostly idle, so e.g. 3 with `--resources gpu=12` on 4 GPUs
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

POLL_SECONDS = 0.5
DEVICE_ID = re.compile(r"[A-Za-z0-9._-]+")


def log(message: str) -> None:
    print(f"gpu_slots[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options before `--`, and the command after it."""
    parser = argparse.ArgumentParser(prog="python -m partialkd.gpu_slots",
                                     usage="%(prog)s --gpus N [--timeout SECONDS] -- COMMAND [ARGS...]",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=_count, required=True, metavar="N",
                        help="devices the command needs; 0 runs it on CPU")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help="give up after this many seconds without free devices (default: wait forever)")
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    options, command = parser.parse_args(argv[:split]), argv[split + 1:]
    if not command:
        parser.error("no command given: put it after `--`")
    return options, command


def device_pool() -> list[str]:
    """PARTIALKD_GPU_IDS, or else the indices nvidia-smi lists; [] without GPUs or nvidia-smi."""
    listed = os.environ.get("PARTIALKD_GPU_IDS")
    if listed is None:
        try:
            listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=60, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return []
    pool = [device.strip() for device in listed.replace("\n", ",").split(",") if device.strip()]
    bad = [device for device in pool if not DEVICE_ID.fullmatch(device)]
    if bad:
        sys.exit(f"gpu_slots: bad device ids {bad} (expected letters, digits, '.', '_' or '-')")
    return pool


def lock_dir() -> Path:
    """PARTIALKD_GPU_LOCK_DIR, or else a per-user folder in the system temp dir."""
    default = Path(tempfile.gettempdir()) / f"partialkd-gpu-slots-{os.getuid()}"
    directory = Path(os.environ.get("PARTIALKD_GPU_LOCK_DIR") or default)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def jobs_per_gpu() -> int:
    text = os.environ.get("PARTIALKD_JOBS_PER_GPU", "1")
    if not text.isdigit() or int(text) < 1:
        sys.exit(f"gpu_slots: PARTIALKD_JOBS_PER_GPU must be a whole number >= 1, got {text!r}")
    return int(text)


def try_acquire(pool: Sequence[str], count: int, directory: Path) -> dict[str, int] | None:
    """`count` free slots on distinct devices (id -> locked fd), filling every device's first slot
    before any second one; None, holding nothing, if fewer are free."""
    held: dict[str, int] = {}
    slots = [(device, slot) for slot in range(jobs_per_gpu()) for device in pool]
    for device, slot in slots:
        if device in held:
            continue
        fd = try_lock(directory / f"gpu-{device}.lock" if slot == 0 else
                      directory / f"gpu-{device}.slot{slot}.lock")
        if fd is not None:
            held[device] = fd
            if len(held) == count:
                return held
    for fd in held.values():
        os.close(fd)
    return None


def acquire(pool: Sequence[str], count: int, directory: Path, timeout: float | None) -> dict[str, int]:
    """Wait for `count` free devices; exit with an error after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    held = try_acquire(pool, count, directory)
    if held is None:
        log(f"waiting for {count} free device(s) of {','.join(pool)} (locks in {directory})")
    while held is None:
        if deadline is not None and time.monotonic() >= deadline:
            sys.exit(f"gpu_slots: gave up after {timeout:g} s waiting for {count} free device(s) of "
                     f"{','.join(pool)}")
        time.sleep(POLL_SECONDS)
        held = try_acquire(pool, count, directory)
    return held


def mark_held(fds: Sequence[int]) -> None:
    """Write this pid into the lock files (for humans)."""
    for fd in fds:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def exec_command(command: Sequence[str], env: dict[str, str]) -> NoReturn:
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as error:
        sys.exit(f"gpu_slots: cannot run {command[0]!r}: {error}")


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervise(command: Sequence[str], env: dict[str, str]) -> NoReturn:
    """Run COMMAND as a child that dies with this process (the lock holder), pass the usual stop
    signals on to it, and end as it ended."""
    parent = os.getpid()
    try:  # the lock fds are not inheritable: the child gets none
        child = subprocess.Popen(list(command), env=env, preexec_fn=lambda: _die_with_parent(parent))
    except OSError as error:
        sys.exit(f"gpu_slots: cannot run {command[0]!r}: {error}")
    for number in FORWARDED:
        signal.signal(number, lambda received, _frame: child.send_signal(received))
    status = child.wait()
    if status < 0:  # killed by a signal: die of it too, as a shell would report
        if -status in FORWARDED:
            signal.signal(-status, signal.SIG_DFL)  # not ours to handle any more
        os.kill(os.getpid(), -status)
    sys.exit(status)


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGKILL it when the wrapper dies (Linux prctl PR_SET_PDEATHSIG;
    elsewhere nothing), and exit at once if the wrapper already died."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main(argv: Sequence[str] | None = None) -> NoReturn:
    options, command = parse(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    if "SLURM_JOB_ID" in env:
        log(f"SLURM job {env['SLURM_JOB_ID']}: keeping CUDA_VISIBLE_DEVICES="
            f"{env.get('CUDA_VISIBLE_DEVICES', '<unset>')}")
        exec_command(command, env)
    pool = device_pool() if options.gpus else []
    if not pool:
        log("no GPU requested: running on CPU" if not options.gpus else "no GPUs found: running on CPU")
        exec_command(command, {**env, "CUDA_VISIBLE_DEVICES": ""})
    if options.gpus > len(pool):
        sys.exit(f"gpu_slots: {options.gpus} devices requested, the pool has {len(pool)}: {','.join(pool)}")
    held = acquire(pool, options.gpus, lock_dir(), options.timeout)
    mark_held(list(held.values()))
    devices = ",".join(held)
    log(f"CUDA_VISIBLE_DEVICES={devices}")
    # nvidia-smi numbers devices in PCI bus order; CUDA's default order may differ
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    supervise(command, {**env, "CUDA_VISIBLE_DEVICES": devices})


if __name__ == "__main__":
    main()
