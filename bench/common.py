"""Shared helpers for the side-by-side benchmarks (not timed tests: they report ratios)."""

from __future__ import annotations

import os
import shutil
import signal
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


def exit_on_sigterm() -> None:
    """Make SIGTERM (kill's default, `timeout`'s) end the bench as Ctrl-C does, through
    its `finally` blocks: killed by the default action, a bench skipped Sandbox.close
    and left its containers' netns and cgroups on the host with no record naming them."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


class Sandbox:
    """A throwaway shellctr root with the busybox image in it, in a network namespace
    of its own (containers get the default bridge network)."""

    def __init__(self) -> None:
        exit_on_sigterm()
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
        ids = subprocess.run([SHELLCTR, "ps", "-aq"], env=self.env, check=True,
                             capture_output=True, text=True).stdout.split()
        if ids:
            # checked: removing the root after a failed rm would drop the only records
            # naming the containers' netns and cgroups, and leave those on the host
            run([SHELLCTR, "rm", "--force", *ids], env=self.env)
        run([SHELLCTR, "system", "prune", "--force"], env=self.env)
        shutil.rmtree(self.dir)


def engine_available(name: str) -> bool:
    """Docker or Podman, installed *and* able to run containers here."""
    if shutil.which(name) is None:
        return False
    probe = subprocess.run([name, "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


class PrivateDocker:
    """A Docker daemon of the bench's own (Debian's docker.io), for side-by-side figures
    where no daemon runs: its state, exec root and socket in a `shellctr-bench-dockerd-*`
    directory, started in the bench's network namespace with no bridge, no iptables rules,
    no forwarding (so it changes none of the host's), its containers' cgroups under
    `shellctr-bench-docker`; with the busybox image shellctr built (`shellctr save |
    docker load`: no registry is reachable). `close()` stops it and removes what it made,
    also the /etc/docker/key.json that dockerd 20.10 writes when there was none."""

    def __init__(self, box: Sandbox) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shellctr-bench-dockerd-"))
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.dir}/docker.sock"}
        self.key = Path("/etc/docker/key.json")
        self.had_key, self.had_etc = self.key.exists(), self.key.parent.exists()
        self.log = (self.dir / "dockerd.log").open("wb")
        self.process = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.dir / "data"), "--exec-root",
             str(self.dir / "exec"), "--pidfile", str(self.dir / "dockerd.pid"),
             "--host", self.env["DOCKER_HOST"], "--iptables=false", "--ip-forward=false",
             "--ip-masq=false", "--bridge=none",
             # absolute: beside the bench's own cgroup, not inside it (whose CPU is counted)
             "--cgroup-parent", "/shellctr-bench-docker"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.env,
                             capture_output=True).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"dockerd did not start (see {self.dir}/dockerd.log)")
            time.sleep(0.2)
        tar = box.dir / "busybox-for-docker.tar"
        run([SHELLCTR, "save", "--output", str(tar), "busybox:latest"], env=box.env)
        run(["docker", "load", "--input", str(tar)], env=self.env)

    @classmethod
    def start(cls, box: Sandbox) -> PrivateDocker | None:
        """One, if dockerd is installed and starts here; None (said why) otherwise."""
        if not Path(DOCKERD).exists():
            print("(no dockerd installed: no figures against Docker)")
            return None
        try:
            return cls(box)
        except RuntimeError as err:
            print(f"({err}: no figures against Docker)")
            return None

    def close(self) -> None:
        subprocess.run(["docker", "rm", "--force", *subprocess.run(
            ["docker", "ps", "-aq"], env=self.env, capture_output=True,
            text=True).stdout.split()], env=self.env, capture_output=True)
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        with open("/proc/self/mountinfo", encoding="utf-8") as table:
            points = [line.split()[4] for line in table
                      if line.split()[4].startswith(f"{self.dir}/")]
        for point in sorted(points, reverse=True):  # what a killed daemon left mounted
            run(["umount", point])
        shutil.rmtree(self.dir, ignore_errors=True)
        remove_named_cgroups(Path("/sys/fs/cgroup"), "shellctr-bench-docker")
        if not self.had_key:
            self.key.unlink(missing_ok=True)
        if not self.had_etc and self.key.parent.exists() and not any(self.key.parent.iterdir()):
            self.key.parent.rmdir()


def remove_named_cgroups(root: Path, name: str) -> list[Path]:
    """Remove every cgroup directory called `name` (children first) in every hierarchy
    under `root`, wherever dockerd put it: an absolute --cgroup-parent is at a
    hierarchy's top in most, but under this process's own cgroup in a hierarchy whose
    root we see nested (memory here: /process_api/ID/...). The ones removed."""
    removed = []
    for top, dirs, _ in os.walk(root):
        if os.path.basename(top) == name:
            for inner, _, _ in sorted(os.walk(top), key=lambda e: -e[0].count("/")):
                os.rmdir(inner)
                removed.append(Path(inner))
            dirs.clear()
    return removed
