"""The Engine API service side by side with the CLI (and Docker's or Podman's daemon
where one runs here).

- `docker run --rm busybox true` through `shellctr system service` against
  `shellctr run --rm busybox true` directly: what the API adds to a run (target: 20 ms);
- `docker ps` with 100 containers through the service against `shellctr ps` and, where
  a Docker daemon answers, against `docker ps` on it (target: at most 1.0x Docker's).
Usage: bench/api.py [ROUNDS]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import SHELLCTR, Sandbox, interleave, median_ms, run

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
PS_CONTAINERS = 100


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


def daemon_env() -> dict[str, str] | None:
    """The environment of a docker CLI talking to a real Docker daemon, if one answers."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    if not Path("/var/run/docker.sock").exists():
        return None
    probe = subprocess.run([DOCKER, "info"], env=env, capture_output=True, timeout=30)
    return env if probe.returncode == 0 else None


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if not Path(DOCKER).exists():
        raise SystemExit(f"no docker CLI at {DOCKER}")
    box = Sandbox()
    service, api_env = start_service(box)
    try:
        cases = {
            "shellctr run --rm": lambda: run([SHELLCTR, "run", "--rm", "busybox", "true"],
                                             env=box.env),
            "docker run --rm (shellctr API)": lambda: run(
                [DOCKER, "run", "--rm", "busybox", "true"], env=api_env),
            "docker version (shellctr API)": lambda: run([DOCKER, "version"], env=api_env),
        }
        docker = daemon_env()
        if docker is not None:
            cases["docker run --rm (Docker)"] = lambda: run(
                [DOCKER, "run", "--rm", "busybox", "true"], env=docker)
        samples = interleave(cases, rounds)
        runs = {name: median_ms(times) for name, times in samples.items()}
        for name, ms in runs.items():
            print(f"{name:34s} median {ms:8.1f} ms")
        added = runs["docker run --rm (shellctr API)"] - runs["shellctr run --rm"]
        # the docker CLI's own start (its version call) is the client's, not the API's
        print(f"{'the API adds to a run':34s} {added:8.1f} ms "
              f"({added - runs['docker version (shellctr API)']:.1f} ms beyond the docker "
              "CLI's own start)")

        for index in range(PS_CONTAINERS):
            run([SHELLCTR, "create", "--name", f"bench{index}", "busybox", "true"],
                env=box.env)
        ps_cases = {
            "shellctr ps -a (100)": lambda: run([SHELLCTR, "ps", "-a"], env=box.env),
            "docker ps -a (shellctr API, 100)": lambda: run([DOCKER, "ps", "-a"], env=api_env),
        }
        if docker is not None:
            ps_cases["docker ps -a (Docker)"] = lambda: run([DOCKER, "ps", "-a"], env=docker)
        ps = {name: median_ms(times) for name, times in interleave(ps_cases, rounds).items()}
        for name, ms in ps.items():
            print(f"{name:34s} median {ms:8.1f} ms")
        ratio = ps["docker ps -a (shellctr API, 100)"] / ps["shellctr ps -a (100)"]
        print(f"{'docker ps via API / shellctr ps':34s} {ratio:8.2f}x")
        if docker is not None:
            print(f"{'docker ps via API / Docker':34s} "
                  f"{ps['docker ps -a (shellctr API, 100)'] / ps['docker ps -a (Docker)']:8.2f}x")
        else:
            print("(no Docker daemon answers here: no ratio against Docker's)")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        box.close()


if __name__ == "__main__":
    main()
