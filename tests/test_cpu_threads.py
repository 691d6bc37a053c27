"""Process-wide CPU settings: the OpenMP wait policy the package sets before torch loads (passive: see
antispoof/__init__.py), and the heap setting the scripts apply (antispoof.runtime.keep_freed_memory)."""

import os
import platform
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PROBE = "import antispoof, torch; torch.ones(64, 64) @ torch.ones(64, 64)"


def run_probe(code: str, env: dict) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python (process-wide settings take effect at start-up) with ``env`` and the repo."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def spin_count(extra_env: dict) -> str:
    """libgomp's spin count as it reports it at start-up (OMP_DISPLAY_ENV); skips where torch has no libgomp."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = run_probe(PROBE, {**env, "OMP_DISPLAY_ENV": "VERBOSE", **extra_env})
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("GOMP_SPINCOUNT")]
    if not lines:
        pytest.skip("torch does not use GNU OpenMP here (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV)")
    return lines[0]


def test_importing_the_package_makes_openmp_threads_wait_passively():
    assert spin_count({}) == "GOMP_SPINCOUNT = '0'"


def test_an_explicit_wait_policy_wins():
    assert spin_count({"OMP_WAIT_POLICY": "ACTIVE"}) != "GOMP_SPINCOUNT = '0'"


# antispoof.runtime.keep_freed_memory: what the scripts set so that large activations reuse the heap

HEAP_PROBE = """
import os, resource, sys, threading
import torch
from antispoof.runtime import keep_freed_memory

def fill():  # a 128 MB tensor filled, read and freed, as a batch's activations are
    float(torch.ones(32 << 20).sum())

def cycle():  # on a fresh thread when asked, as the scoring loop's worker threads run batches
    if os.environ.get("PROBE_ON_THREADS") != "1":
        return fill()
    worker = threading.Thread(target=fill)
    worker.start()
    worker.join()


kept = keep_freed_memory()
for _ in range(20):  # glibc's heap settles within a few cycles (up to ~15 measured, with worker threads)
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):  # fresh pages (page faults) every time, unless the freed ones are kept
    cycle()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def heap_probe(extra_env: dict) -> tuple[str, int]:
    kept, faults = run_probe(HEAP_PROBE, {**os.environ, **extra_env}).stdout.split()
    return kept, int(faults)


def test_the_scripts_heap_setting_reuses_freed_memory_instead_of_faulting_in_new_pages():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("keep_freed_memory tunes glibc's malloc; this C library is not glibc")
    kept, kept_faults = heap_probe({})
    assert kept == "True"
    assert kept_faults < 1000  # 4 x 128 MB refilled from kept memory: (almost) no page faults
    kept, default_faults = heap_probe({"AASIST_SER_KEEP_HEAP": "0"})
    assert kept == "False"
    # glibc's default: each freed 128 MB goes back to the kernel and returns as new pages (32,768 of 4 KiB, or 64
    # huge pages where transparent huge pages are always on)
    assert default_faults > 100 * kept_faults + 200


def test_the_heap_setting_also_keeps_memory_freed_on_worker_threads():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("keep_freed_memory tunes glibc's malloc; this C library is not glibc")
    # glibc gives each thread an arena of its own whose large blocks are mapped and unmapped: one arena keeps them
    kept, kept_faults = heap_probe({"PROBE_ON_THREADS": "1"})
    assert kept == "True"
    assert kept_faults < 1000
    kept, default_faults = heap_probe({"PROBE_ON_THREADS": "1", "AASIST_SER_KEEP_HEAP": "0"})
    assert default_faults > 100 * kept_faults + 200


def test_main_and_inference_keep_the_heap():
    for script in ("main.py", "inference.py"):
        source = (REPO_ROOT / script).read_text()
        assert "keep_freed_memory()" in source, script
