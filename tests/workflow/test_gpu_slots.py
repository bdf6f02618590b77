"""`python -m partialkd.gpu_slots`: concurrent jobs get distinct devices, killed jobs free theirs,
the CPU and SLURM cases, and the SLURM profile; with a fake device pool, no GPU needed."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.workflow_copy import copy_workflow, tool_env

WRAPPER = [sys.executable, "-m", "partialkd.gpu_slots"]
JOBS = 6
JOB_SECONDS = 1.5

# Each job records its device and its start and end times, inside the wrapper.
SNAKEFILE = f"""
rule all:
    input: expand("jobs/{{i}}.txt", i=range({JOBS}))

rule job:
    output: "jobs/{{i}}.txt"
    resources: gpu=1
    shell:
        "python -m partialkd.gpu_slots --gpus {{resources.gpu}} -- sh -c "
        "'echo $CUDA_VISIBLE_DEVICES $(date +%s.%N) > {{output}}.tmp; sleep {JOB_SECONDS}; "
        "date +%s.%N >> {{output}}.tmp' && mv {{output}}.tmp {{output}}"
"""


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """tool_env() outside SLURM, with a private lock directory and `extra` set."""
    base = {key: value for key, value in tool_env().items()
            if key not in ("SLURM_JOB_ID", "PARTIALKD_GPU_IDS", "CUDA_VISIBLE_DEVICES")}
    return {**base, "PARTIALKD_GPU_LOCK_DIR": str(tmp_path / "locks"), **extra}


def wrapped(tmp_path: Path, gpus: int, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WRAPPER, "--gpus", str(gpus), "--", *command], env=env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=30, check=False)


def visible_devices(tmp_path: Path, gpus: int, **extra: str) -> str | None:
    """The CUDA_VISIBLE_DEVICES the command sees (None: unset)."""
    result = wrapped(tmp_path, gpus, sys.executable, "-c",
                     "import os; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')))", **extra)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip())


def most_at_once(jobs: list[tuple[str, float, float]], device: str) -> int:
    """The most jobs on `device` running at one instant (the count peaks at some job's start)."""
    on_device = [(start, end) for name, start, end in jobs if name == device]
    return max((sum(start <= moment < end for start, end in on_device) for moment, _ in on_device),
               default=0)


def run_jobs(tmp_path: Path, limits: list[str], **extra: str
             ) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, float, float]]]:
    """Run SNAKEFILE's jobs under `limits`; each job's (device, start, end)."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    result = subprocess.run([sys.executable, "-m", "snakemake", *limits], cwd=tmp_path,
                            env=env(tmp_path, **extra), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for path in sorted((tmp_path / "jobs").glob("*.txt")):
        (device, start), (end,) = (line.split() for line in path.read_text().splitlines())
        jobs.append((device, float(start), float(end)))
    return result, jobs


def devices_when_the_fourth_started(jobs: list[tuple[str, float, float]]) -> list[str]:
    """The devices of the jobs running at the moment the fourth job started."""
    fourth = sorted(start for _, start, _ in jobs)[3]
    return sorted(device for device, start, end in jobs if start <= fourth < end)


@pytest.mark.parametrize("limits", [["--cores", "4", "--resources", "gpu=4"], ["--cores", str(JOBS)]],
                         ids=["gpu=4", "more-jobs-than-devices"])
def test_concurrent_jobs_get_distinct_devices(tmp_path: Path, limits: list[str]) -> None:
    result, jobs = run_jobs(tmp_path, limits, PARTIALKD_GPU_IDS="0,1,2,3")
    assert len(jobs) == JOBS
    assert {device for device, _, _ in jobs} <= {"0", "1", "2", "3"}
    for device in {device for device, _, _ in jobs}:
        assert most_at_once(jobs, device) == 1, f"two jobs on device {device} at once: {jobs}"
    # the moment the last job of the first wave started, four jobs ran, on all four devices
    assert devices_when_the_fourth_started(jobs) == ["0", "1", "2", "3"]
    if "--resources" not in limits:
        assert "waiting" in result.stderr, "two jobs should have waited for a device"


def test_jobs_per_gpu_share_devices_evenly(tmp_path: Path) -> None:
    """PARTIALKD_JOBS_PER_GPU=2 on two devices: four jobs at once, two per device, first slots first."""
    _, jobs = run_jobs(tmp_path, ["--cores", "4", "--resources", "gpu=4"],
                       PARTIALKD_GPU_IDS="0,1", PARTIALKD_JOBS_PER_GPU="2")
    for device in ("0", "1"):
        assert most_at_once(jobs, device) <= 2, f"more than two jobs on device {device} at once: {jobs}"
    assert devices_when_the_fourth_started(jobs) == ["0", "0", "1", "1"]
    bad = wrapped(tmp_path, 1, "true", PARTIALKD_GPU_IDS="0", PARTIALKD_JOBS_PER_GPU="0")
    assert bad.returncode != 0 and "PARTIALKD_JOBS_PER_GPU" in bad.stderr


def test_killed_job_frees_its_device(tmp_path: Path) -> None:
    first = subprocess.Popen([*WRAPPER, "--gpus", "1", "--", "sleep", "60"],
                             env=env(tmp_path, PARTIALKD_GPU_IDS="7"), stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "locks/gpu-7.lock"
    try:
        deadline = time.monotonic() + 10
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline and first.poll() is None, "the first job never got the lock"
            time.sleep(0.05)
        # the wrapper holds the lock while its command runs
        second = subprocess.Popen([*WRAPPER, "--gpus", "1", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                                  env=env(tmp_path, PARTIALKD_GPU_IDS="7"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert second.poll() is None, "the second job took a device that was in use"
        killed = time.monotonic()
        first.send_signal(signal.SIGKILL)
        stdout, stderr = second.communicate(timeout=5)
        assert time.monotonic() - killed < 3
        assert second.returncode == 0, stderr
        assert stdout.strip() == "7"
        assert "waiting" in stderr
    finally:
        first.kill()
        first.wait()


# The command writes its pid, forks a child (as a DataLoader forks its workers) and sleeps.
FORKING = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); os.fork(); time.sleep(60)"


def _start_forking_job(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A wrapped FORKING command holding device 7, and the command's pid."""
    job = subprocess.Popen([*WRAPPER, "--gpus", "1", "--", sys.executable, "-c", FORKING, str(tmp_path / "pid")],
                           env=env(tmp_path, PARTIALKD_GPU_IDS="7"), stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    lock, pid = tmp_path / "locks/gpu-7.lock", tmp_path / "pid"
    deadline = time.monotonic() + 10
    while not (lock.exists() and lock.read_text().strip() == str(job.pid) and pid.exists() and pid.read_text()):
        assert time.monotonic() < deadline and job.poll() is None, "the job never started"
        time.sleep(0.05)
    time.sleep(0.2)  # the fork
    return job, int(pid.read_text())


def _device_is_free(tmp_path: Path) -> bool:
    result = subprocess.run([*WRAPPER, "--gpus", "1", "--timeout", "1", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                            env=env(tmp_path, PARTIALKD_GPU_IDS="7"), capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and result.stdout.strip() == "7"


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.parametrize("killed", ["command", "wrapper"])
def test_a_killed_job_frees_its_device_though_its_forked_children_live_on(tmp_path: Path, killed: str) -> None:
    """Issue 16: the lock is held by the wrapper alone, never by the command's children: SIGKILL of
    the command or of the wrapper frees the device at once; a killed wrapper takes the command along."""
    job, command = _start_forking_job(tmp_path)
    try:
        os.kill(command if killed == "command" else job.pid, signal.SIGKILL)
        job.wait(timeout=5)
        assert job.returncode == -signal.SIGKILL  # the wrapper ends as its command did, or was killed
        deadline = time.monotonic() + 3
        while not _gone(command):
            assert time.monotonic() < deadline, "the command outlived its wrapper"
            time.sleep(0.05)
        assert _device_is_free(tmp_path)  # while the command's forked child still sleeps
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def test_stop_signals_reach_the_command(tmp_path: Path) -> None:
    job = subprocess.Popen([*WRAPPER, "--gpus", "1", "--", sys.executable, "-c",
                            "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(3)); "
                            "open(sys.argv[1], 'w').write('ready'); time.sleep(60)", str(tmp_path / "ready")],
                           env=env(tmp_path, PARTIALKD_GPU_IDS="7"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=5) == 3  # the command's own exit status


def test_timeout_while_devices_are_busy(tmp_path: Path) -> None:
    holder = subprocess.Popen([*WRAPPER, "--gpus", "1", "--", "sleep", "60"],
                              env=env(tmp_path, PARTIALKD_GPU_IDS="0"), stderr=subprocess.PIPE)
    try:
        lock = tmp_path / "locks/gpu-0.lock"
        deadline = time.monotonic() + 10
        while not (lock.exists() and lock.read_text().strip() == str(holder.pid)):
            assert time.monotonic() < deadline, "the first job never got the lock"
            time.sleep(0.05)
        result = subprocess.run([*WRAPPER, "--gpus", "1", "--timeout", "0.6", "--", "true"],
                                env=env(tmp_path, PARTIALKD_GPU_IDS="0"), capture_output=True, text=True,
                                timeout=10, check=False)
        assert result.returncode != 0
        assert "gave up after 0.6 s" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_two_devices_for_one_job(tmp_path: Path) -> None:
    assert visible_devices(tmp_path, 2, PARTIALKD_GPU_IDS="4,5,6") == "4,5"


def test_cpu_cases(tmp_path: Path) -> None:
    assert visible_devices(tmp_path, 0, PARTIALKD_GPU_IDS="0,1") == ""
    assert visible_devices(tmp_path, 1, PARTIALKD_GPU_IDS="") == ""
    assert visible_devices(tmp_path, 1, PARTIALKD_GPU_IDS="", CUDA_VISIBLE_DEVICES="3") == ""


def test_slurm_passes_through(tmp_path: Path) -> None:
    slurm = {"SLURM_JOB_ID": "12345", "PARTIALKD_GPU_IDS": "0,1"}
    assert visible_devices(tmp_path, 1, CUDA_VISIBLE_DEVICES="3", **slurm) == "3"
    assert visible_devices(tmp_path, 0, **slurm) is None
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize("args, message", [
    (["--gpus", "1"], "no command given"),
    (["--gpus", "1", "--"], "no command given"),
    (["--gpus", "-1", "--", "true"], "whole number"),
    (["--gpus", "one", "--", "true"], "whole number"),
    (["--", "true"], "--gpus"),
    (["--gpus", "1", "--timeout", "0", "--", "true"], "positive number"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([*WRAPPER, *args], env=env(tmp_path), capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_more_devices_than_the_pool(tmp_path: Path) -> None:
    result = wrapped(tmp_path, 3, "true", PARTIALKD_GPU_IDS="0,1")
    assert result.returncode == 1
    assert "3 devices requested, the pool has 2" in result.stderr


def test_slurm_profile_dry_run(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "-n"],
                            cwd=workdir, env=env(tmp_path), capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    total = [line.split() for line in result.stdout.splitlines() if line.startswith("total")]
    assert total and int(total[-1][-1]) > 0, result.stdout[-3000:]
    assert "This was a dry-run" in result.stdout
