"""`build` against `podman build`, side by side: a 10-step Dockerfile (3 RUN, 4 COPY, 3
metadata steps) on busybox, built cold (`--no-cache`: every step runs) and fully cached
(every step from the cache), each engine with its own root in a temporary directory and
the same busybox image (`shellctr save` -> `podman load`). Reports medians and the ratios
shellctr/podman. Targets (issue 14): cold <= 1.0x Podman, cached <= 0.5x Podman's.

Usage: bench/build.py [ROUNDS]   (as root; Debian's podman and runc)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from common import SHELLCTR, Sandbox, interleave, median_ms, run

DOCKERFILE = """\
FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY config.txt /app/config/
RUN mkdir -p /app/data && echo "$MODE" > /app/data/mode
COPY src /app/src
RUN cat /app/src/*.txt > /app/data/all && wc -c /app/data/all
COPY big.bin /app/big.bin
COPY scripts/ /app/scripts/
RUN sh /app/scripts/check.sh
CMD ["cat", "/app/data/mode"]
"""


def make_context(directory: Path) -> None:
    """The context: a config file, 50 small sources, a 4 MB file, a script."""
    directory.mkdir()
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "config.txt").write_text("key=value\n")
    (directory / "src").mkdir()
    for i in range(50):
        (directory / "src" / f"f{i:02}.txt").write_text(f"source file {i}\n" * 20)
    (directory / "big.bin").write_bytes(os.urandom(4 << 20))
    (directory / "scripts").mkdir()
    (directory / "scripts" / "check.sh").write_text("test -s /app/data/all && echo ok\n")


def podman_argv(base: Path, driver: str) -> list[str]:
    # runc: crun refuses this hybrid cgroup layout; its own root, runroot and tmpdir
    return ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--tmpdir", str(base / "tmp"), "--storage-driver", driver, "--runtime", "runc",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sandbox = Sandbox()
    env = sandbox.env
    try:
        context = sandbox.dir / "ctx"
        make_context(context)
        shellctr = [SHELLCTR, "build", "-q"]
        cases: dict[str, Callable[[], object]] = {
            "shellctr build (cold, --no-cache)": lambda: run(
                [*shellctr, "--no-cache", str(context)], env=env),
            "shellctr build (fully cached)": lambda: run([*shellctr, str(context)], env=env),
        }
        run([*shellctr, str(context)], env=env)  # fills the cache
        podman_base = sandbox.dir / "podman"
        driver, penv = "overlay", dict(os.environ)
        if shutil.which("podman") and shutil.which("runc"):
            conf = sandbox.dir / "containers.conf"
            conf.write_text('[engine]\nlock_type = "file"\n')
            penv = {**os.environ, "CONTAINERS_CONF": str(conf)}
            archive = sandbox.dir / "busybox.tar"
            run([SHELLCTR, "save", "-o", str(archive), "busybox"], env=env)
            probe = subprocess.run([*podman_argv(podman_base, driver), "load", "-q", "-i",
                                    str(archive)], capture_output=True, env=penv, check=False)
            if probe.returncode != 0:  # overlay on this host's filesystem: vfs then
                driver = "vfs"
                shutil.rmtree(podman_base, ignore_errors=True)
                run([*podman_argv(podman_base, driver), "load", "-q", "-i", str(archive)],
                    env=penv)
            podman = [*podman_argv(podman_base, driver), "build", "-q"]
            run([*podman, str(context)], env=penv)
            cases[f"podman build (cold, --no-cache; {driver})"] = lambda: run(
                [*podman, "--no-cache", str(context)], env=penv)
            cases[f"podman build (fully cached; {driver})"] = lambda: run(
                [*podman, str(context)], env=penv)
        else:
            print("(podman or runc not installed: shellctr alone)")
        samples = interleave(cases, rounds, warmup=1)
        print(f"build of a 10-step Dockerfile (3 RUN, 4 COPY), median of {rounds} rounds")
        medians = {name: median_ms(values) for name, values in samples.items()}
        for name, ms in medians.items():
            print(f"  {name:45s} {ms:8.1f} ms")
        names = list(medians)
        if len(names) == 4:
            cold = medians[names[0]] / medians[names[2]]
            cached = medians[names[1]] / medians[names[3]]
            print(f"  cold:   shellctr/podman = {cold:4.2f}x (target <= 1.0x)")
            print(f"  cached: shellctr/podman = {cached:4.2f}x (target <= 0.5x)")
        if podman_base.exists():  # its storage unmounted and gone, before the rmtree
            subprocess.run([*podman_argv(podman_base, driver), "system", "reset", "--force"],
                           capture_output=True, check=False, env=penv)
    finally:
        sandbox.close()


if __name__ == "__main__":
    main()
