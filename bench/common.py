"""Shared helpers for the side-by-side benchmarks (not timed tests: they report ratios)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
SHELLCTR = str(TOP / "bin" / "shellctr")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleave(cases: dict[str, Callable[[], object]], rounds: int,
               warmup: int = 2) -> dict[str, list[float]]:
    """Run each case once per round, in turn, so drift hits all of them alike."""
    for _ in range(warmup):
        for action in cases.values():
            action()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, action in cases.items():
            samples[name].append(timed(action))
    return samples


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


CLONE_NEWNET = 0x40000000


def own_network_namespace() -> None:
    """Move this process into a new network namespace with loopback up: the bridges,
    iptables rules and published ports of bench containers never touch the host's."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    run(["ip", "link", "set", "dev", "lo", "up"])
    if os.environ.get("BENCH_BRIDGE_NF") == "0":  # to see what br_netfilter costs bridges
        run(["sysctl", "--quiet", "--write", "net.bridge.bridge-nf-call-iptables=0"])


class Sandbox:
    """A throwaway shellctr root with the busybox image in it, in a network namespace
    of its own (containers get the default bridge network)."""

    def __init__(self) -> None:
        own_network_namespace()
        self.dir = Path(tempfile.mkdtemp(prefix="shellctr-bench-"))
        self.env = {**os.environ, "SHELLCTR_ROOT": str(self.dir / "root"),
                    "SHELLCTR_RUNROOT": str(self.dir / "run")}
        run([SHELLCTR, "image", "build-busybox"], env=self.env)

    def shellctr(self, *args: str) -> list[str]:
        return [SHELLCTR, *args]

    def layer_dir(self) -> Path:
        layers = self.dir / "root" / "layers"
        return layers / next(p for p in os.listdir(layers) if not p.startswith("."))

    def close(self) -> None:
        # every container, network, rule and resolver goes, not only the files
        subprocess.run([SHELLCTR, "rm", "--force",
                        *subprocess.run([SHELLCTR, "ps", "-aq"], env=self.env, check=True,
                                        capture_output=True, text=True).stdout.split()],
                       env=self.env, capture_output=True, check=False)
        run([SHELLCTR, "system", "prune", "--force"], env=self.env)
        shutil.rmtree(self.dir)


def engine_available(name: str) -> bool:
    """Docker or Podman, installed *and* able to run containers here."""
    if shutil.which(name) is None:
        return False
    probe = subprocess.run([name, "info"], capture_output=True, timeout=30)
    return probe.returncode == 0
