"""bench/common.py's cleanup of what a bench's own Docker daemon leaves on the host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from common import remove_named_cgroups


def test_docker_cgroups_are_removed_wherever_the_hierarchy_put_them(tmp_path: Path) -> None:
    """An absolute --cgroup-parent is at the top of most hierarchies, but under the bench's
    own cgroup in one whose root is nested (memory: /process_api/ID/shellctr-bench-docker):
    both go, children first; the other cgroups stay."""
    name = "shellctr-bench-docker"
    top = tmp_path / "cpu" / name / "0123abcd"
    nested = tmp_path / "memory" / "process_api" / "1ac3" / name
    for path in (top, nested, tmp_path / "memory" / "process_api" / "1ac3" / "other"):
        path.mkdir(parents=True)
    removed = remove_named_cgroups(tmp_path, name)
    assert sorted(removed) == sorted([top, top.parent, nested])
    assert not (tmp_path / "cpu" / name).exists() and not nested.exists()
    assert (tmp_path / "memory" / "process_api" / "1ac3" / "other").is_dir()


def test_a_bench_killed_with_sigterm_runs_its_cleanup() -> None:
    """SIGTERM ends a bench through its finally blocks (Sandbox.close), not mid-air."""
    bench = Path(__file__).resolve().parents[2] / "bench"
    script = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(bench)!r})\n"
        "from common import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n"
        "finally:\n"
        "    print('cleaned up', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout == "cleaned up\n"
    assert done.returncode == 128 + 15
