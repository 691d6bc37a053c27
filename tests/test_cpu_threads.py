"""The OpenMP wait policy the package sets before torch loads (passive: see antispoof/__init__.py)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PROBE = "import antispoof, torch; torch.ones(64, 64) @ torch.ones(64, 64)"


def spin_count(extra_env: dict) -> str:
    """libgomp's spin count as it reports it at start-up (OMP_DISPLAY_ENV); skips where torch has no libgomp."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", PYTHONPATH=str(REPO_ROOT), **extra_env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("GOMP_SPINCOUNT")]
    if not lines:
        pytest.skip("torch does not use GNU OpenMP here (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV)")
    return lines[0]


def test_importing_the_package_makes_openmp_threads_wait_passively():
    assert spin_count({}) == "GOMP_SPINCOUNT = '0'"


def test_an_explicit_wait_policy_wins():
    assert spin_count({"OMP_WAIT_POLICY": "ACTIVE"}) != "GOMP_SPINCOUNT = '0'"
