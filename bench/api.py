"""The Engine API service side by side with the CLI (and Docker's or Podman's daemon
where one runs here).

- `docker run --rm busybox true` through `shellctr system service` against
  `shellctr run --rm busybox true` directly: what the API adds to a run (target: 20 ms);
- `docker ps` with 100 containers through the service against `shellctr ps` and against
  `docker ps` of 100 containers on Docker's own daemon (target: at most 1.0x Docker's);
- where dockerd is installed, a daemon of the bench's own (common.PrivateDocker: no
  bridge, no iptables rules, its state in a temporary directory) runs beside, inside the
  bench's cgroup, so its CPU (dockerd, containerd, shims) counts as the service's does:
  `docker run --rm --network none busybox true` on it against the same through the
  service and `shellctr run --rm --network none` directly.

Each case shows the median wall time and the median CPU time (user + system) of
everything it made run: the bench moves itself into a cpuacct cgroup of its own
(`shellctr-bench-api-PID`), so the service's threads, the detached monitors and the
`_exited` hooks that carry out --rm count as well as the client's process tree (the
containers' own cgroups are apart: `true` costs the same for every case). After each
case the bench waits until only itself and the service are left in the group, so what a
case leaves running (a hook that ends after the client has returned) is counted in it.
Usage: bench/api.py [ROUNDS]
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import SHELLCTR, PrivateDocker, Sandbox, median_ms, run

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
PS_CONTAINERS = 100
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class Accounting:
    """A cpuacct cgroup holding this process and all it starts from now on."""

    def __init__(self) -> None:
        self.group = CPUACCT / f"shellctr-bench-api-{os.getpid()}"
        self.group.mkdir()
        (self.group / "cgroup.procs").write_text(str(os.getpid()))

    def procs(self) -> set[str]:
        return set((self.group / "cgroup.procs").read_text().split())

    def settle(self, lasting: set[str], timeout: float = 10.0) -> None:
        """Until only the `lasting` processes (this one, the service) are left: what a
        case left running (a monitor's _exited hook) is counted in it, not the next."""
        deadline = time.monotonic() + timeout
        while self.procs() - lasting and time.monotonic() < deadline:
            time.sleep(0.005)

    def usage(self) -> float:
        """CPU seconds spent in the group so far."""
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(100):  # a detached monitor may still be on its way out
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.05)


def interleave(cases: dict[str, Callable[[], object]], rounds: int, acct: Accounting,
               warmup: int = 2) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each case once per round, in turn: (wall seconds, CPU seconds) per case."""
    lasting = acct.procs()  # this process and the service
    for _ in range(warmup):
        for action in cases.values():
            action()
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, action in cases.items():
            acct.settle(lasting)
            used, start = acct.usage(), time.perf_counter()
            action()
            wall[name].append(time.perf_counter() - start)
            acct.settle(lasting)
            cpu[name].append(acct.usage() - used)
    return wall, cpu


def report(cases: dict[str, Callable[[], object]], rounds: int,
           acct: Accounting) -> tuple[dict[str, float], dict[str, float]]:
    wall, cpu = interleave(cases, rounds, acct)
    walls = {name: median_ms(times) for name, times in wall.items()}
    cpus = {name: median_ms(times) for name, times in cpu.items()}
    for name in cases:
        print(f"{name:34s} wall {walls[name]:8.1f} ms   CPU {cpus[name]:8.1f} ms")
    return walls, cpus


def start_service(box: Sandbox) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    sock = box.dir / "docker.sock"
    service = subprocess.Popen([SHELLCTR, "system", "service", "--time", "0",
                                f"unix://{sock}"], env=box.env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if time.monotonic() > deadline or service.poll() is not None:
            raise SystemExit("the API service did not start")
        time.sleep(0.01)
    env = {k: v for k, v in box.env.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(box.dir / "docker-config"))
    run([DOCKER, "version"], env=env)  # the service answers
    return service, env


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if not Path(DOCKER).exists():
        raise SystemExit(f"no docker CLI at {DOCKER}")
    acct = Accounting()
    box = Sandbox()
    service, api_env = start_service(box)
    docker: PrivateDocker | None = None
    try:
        cases: dict[str, Callable[[], object]] = {
            "shellctr run --rm": lambda: run([SHELLCTR, "run", "--rm", "busybox", "true"],
                                             env=box.env),
            "docker run --rm (shellctr API)": lambda: run(
                [DOCKER, "run", "--rm", "busybox", "true"], env=api_env),
            "docker version (shellctr API)": lambda: run([DOCKER, "version"], env=api_env),
        }
        docker = PrivateDocker.start(box)
        if docker is not None:  # Docker here has no bridge: all three with --network none
            for label, env in (("shellctr API", api_env), ("Docker", docker.env)):
                cases[f"docker run --rm --network none ({label})"] = functools.partial(
                    run, [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"],
                    env=env)
            cases["shellctr run --rm --network none"] = functools.partial(
                run, [SHELLCTR, "run", "--rm", "--network", "none", "busybox", "true"],
                env=box.env)
        print(f"medians of {rounds} rounds, cases interleaved")
        runs, cpus = report(cases, rounds, acct)
        for label, got in (("wall", runs), ("CPU", cpus)):
            api, cli = got["docker run --rm (shellctr API)"], got["shellctr run --rm"]
            # the docker CLI's own start (its version call) is the client's, not the API's
            print(f"the API adds to a run ({label}): {api - cli:6.1f} ms "
                  f"({api - cli - got['docker version (shellctr API)']:.1f} ms beyond the "
                  f"docker CLI's own start; API/CLI {api / cli:.2f}x)")
            if docker is not None:
                api = got["docker run --rm --network none (shellctr API)"]
                print(f"docker run --rm --network none, shellctr API / Docker ({label}): "
                      f"{api / got['docker run --rm --network none (Docker)']:.2f}x")

        for index in range(PS_CONTAINERS):
            run([SHELLCTR, "create", "--name", f"bench{index}", "busybox", "true"],
                env=box.env)
            if docker is not None:
                run([DOCKER, "create", "--network", "none", "--name", f"bench{index}",
                     "busybox", "true"], env=docker.env)
        ps_cases: dict[str, Callable[[], object]] = {
            "shellctr ps -a (100)": lambda: run([SHELLCTR, "ps", "-a"], env=box.env),
            "docker ps -a (shellctr API, 100)": lambda: run([DOCKER, "ps", "-a"], env=api_env),
        }
        if docker is not None:
            ps_cases["docker ps -a (Docker, 100)"] = functools.partial(
                run, [DOCKER, "ps", "-a"], env=docker.env)
        ps, ps_cpu = report(ps_cases, rounds, acct)
        ratio = ps["docker ps -a (shellctr API, 100)"] / ps["shellctr ps -a (100)"]
        cpu_ratio = ps_cpu["docker ps -a (shellctr API, 100)"] / ps_cpu["shellctr ps -a (100)"]
        print(f"{'docker ps via API / shellctr ps':34s} wall {ratio:5.2f}x  CPU {cpu_ratio:5.2f}x")
        if docker is not None:
            ours, theirs = "docker ps -a (shellctr API, 100)", "docker ps -a (Docker, 100)"
            print(f"{'docker ps via API / Docker':34s} wall {ps[ours] / ps[theirs]:5.2f}x  "
                  f"CPU {ps_cpu[ours] / ps_cpu[theirs]:5.2f}x (target <= 1.0x)")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        if docker is not None:
            docker.close()
        box.close()
        acct.close()


if __name__ == "__main__":
    main()
