"""The CLI's verbs against the interpreter floor, by CPU time, in a populated store.

The store: 100 containers (50 running, 50 exited), 10 images, 5 networks, 10 volumes,
under a temporary --root, in a network namespace of the benchmark's own (common.Sandbox).
Each case is one process tree; its CPU time is user + system of the process and every
descendant it waited for (os.wait4), so it holds on a loaded machine; wall time is shown
beside it. The floor is `python -S -c pass` of the same venv. Cases run interleaved, once
per round; the table shows medians and the ratio of medians to the floor's (to the raw
start floor of bench/start.py for `run --rm`), against the budgets of issue 17.
Docker and Podman are measured beside where `docker info` / `podman info` work.
`--against DIR` measures the read verbs of the checkout DIR too (its bin/shellctr, on
the same store, interleaved): a before/after of one run.

Usage: bench/cli.py [ROUNDS] [--markdown] [--against DIR]
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import TOP, Sandbox, engine_available, run

VENV_PYTHON = str(TOP / ".venv" / "bin" / "python")
CONTAINERS = 100  # half of them running
IMAGES = 10
NETWORKS = 5
VOLUMES = 10


class Sample:
    """One process tree's cost: CPU (user + system, waited-for descendants included)
    and wall time, in seconds."""

    def __init__(self, cpu: float, wall: float) -> None:
        self.cpu, self.wall = cpu, wall


def measure(argv: list[str], env: dict[str, str]) -> Sample:
    """Run `argv` to its end, its output discarded; what it and its children cost."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read()  # to its end: the process has closed it or exited
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {process.returncode}: "
                         f"{errors.decode(errors='replace').strip()}")
    return Sample(usage.ru_utime + usage.ru_stime, wall)


class Case:
    """A command measured once per round; `prepare` (not measured) runs before each,
    `budget` is the most it may cost, as a multiple of its floor."""

    def __init__(self, name: str, argv: Callable[[], list[str]], floor: str, budget: float,
                 prepare: Callable[[], object] | None = None) -> None:
        self.name, self.argv, self.floor, self.budget = name, argv, floor, budget
        self.prepare = prepare
        self.samples: list[Sample] = []

    def cpu_ms(self) -> float:
        return statistics.median(s.cpu for s in self.samples) * 1000

    def wall_ms(self) -> float:
        return statistics.median(s.wall for s in self.samples) * 1000


def output(argv: list[str], env: dict[str, str]) -> str:
    return subprocess.run(argv, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def populate(box: Sandbox) -> dict[str, str]:
    """The store of the issue; returns the containers and images the cases name."""
    env, ctr = box.env, box.shellctr
    for n in range(NETWORKS):
        run(ctr("network", "create", f"bench{n}"), env=env)
    for n in range(VOLUMES):
        run(ctr("volume", "create", f"vol{n}"), env=env)
    exited = []
    for n in range(CONTAINERS // 2):  # exited; the first ones made the other images
        args = ["-v", f"vol{n % VOLUMES}:/data"] if n % 5 == 0 else []
        exited.append(output(ctr("run", "-d", "--network", "none", *args, "busybox", "sh",
                                 "-c", f"echo {n} > /f"), env))
    for cid in exited:
        run(ctr("wait", cid), env=env)
    for n in range(1, IMAGES):
        run(ctr("commit", exited[n], f"image{n}:v{n}"), env=env)
    running = []
    for n in range(CONTAINERS // 2):
        if n % 5 == 0:  # a tenth on each user network, some with a published port
            args = ["--network", f"bench{n // 5 % NETWORKS}", "-p", f"{8000 + n}:80"]
        elif n % 5 == 1:
            args = ["--network", f"bench{n // 5 % NETWORKS}"]
        else:
            args = ["--network", "none"]
        running.append(output(ctr("run", "-d", "--name", f"web{n}", *args, "busybox",
                                  "sleep", "100000"), env))
    return {"running": "web0", "exited": exited[-1], "image": "image1:v1"}


def cases(box: Sandbox, names: dict[str, str], layer: Path,
          against: str | None = None) -> list[Case]:
    ctr = box.shellctr
    running, exited, image = names["running"], names["exited"], names["image"]

    def fixed(*args: str) -> Callable[[], list[str]]:
        return lambda: ctr(*args)

    reads = [("ps -a",), ("ps -a --format json",), ("ps -q",), ("images",),
             ("inspect", running), ("image inspect", image), ("port", running),
             ("logs --tail 1", exited), ("network ls",), ("volume ls",), ("wait", exited)]
    found = [Case("python -S -c pass (floor)", lambda: [VENV_PYTHON, "-S", "-c", "pass"],
                  "", 1.0)]
    for words in reads:
        args = [arg for word in words for arg in word.split()]
        label = " ".join(words).replace(running, "CTR").replace(exited, "CTR")
        label = label.replace(image, "IMG")
        found.append(Case(label, fixed(*args), "python", 3.0))
        if against is not None:
            found.append(Case(f"{label} (against)", functools.partial(
                list, [str(Path(against) / "bin" / "shellctr"), *args]), "python", 0.0))
    found.append(Case("exec CTR true", fixed("exec", running, "true"), "python", 6.0))

    # one container's life, a step per case, in this order in each round
    found += [
        # a PID 1 that ends on SIGTERM: stop's cost, not its 10 s timeout
        Case("create", fixed("create", "--network", "none", "--name", "life", "busybox",
                             "sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"),
             "python", 8.0),
        Case("start", fixed("start", "life"), "python", 8.0),
        Case("stop", fixed("stop", "life"), "python", 8.0),
        Case("rm", fixed("rm", "life"), "python", 8.0),
        Case("floor: unshare + overlay + /proc + chroot true", lambda: floor_argv(layer),
             "", 1.0, prepare=lambda: fresh_scratch(layer)),
        Case("run --rm --network none busybox true",
             fixed("run", "--rm", "--network", "none", "busybox", "true"), "start", 6.0),
    ]
    for engine in ("docker", "podman"):
        if engine_available(engine) and engine_container(engine, box):
            found.append(Case(f"{engine} exec CTR true",
                              functools.partial(list, [engine, "exec", ENGINE_CTR, "true"]),
                              "python", 0.0))
        else:
            print(f"({engine}: not usable here, skipped)")
    return found


SCRATCH = Path(tempfile.gettempdir()) / f"shellctr-bench-floor-{os.getpid()}"


def fresh_scratch(layer: Path) -> None:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    for name in ("upper", "work", "merged"):
        (SCRATCH / name).mkdir(parents=True)


def floor_argv(layer: Path) -> list[str]:
    """What any container start does at least (bench/start.py's floor, with /proc)."""
    options = f"lowerdir={layer},upperdir={SCRATCH}/upper,workdir={SCRATCH}/work"
    return ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
            "--propagation", "private", "--", "sh", "-c",
            'mount -t overlay overlay -o "$1" "$2" && mount -t proc proc "$2/proc" && '
            'exec chroot "$2" /bin/true', "sh", options, str(SCRATCH / "merged")]


ENGINE_CTR = "shellctr-bench"  # the running busybox of Docker or Podman
LOADED: list[str] = []  # the engines the busybox image was loaded into (removed after)


def engine_container(engine: str, box: Sandbox) -> bool:
    """A running busybox in Docker or Podman, of the image shellctr built (no registry is
    reachable here: `shellctr save | ENGINE load`); False if it cannot run."""
    def quiet(*argv: str) -> int:
        return subprocess.run(argv, capture_output=True).returncode

    if quiet(engine, "image", "inspect", "busybox:latest"):
        tar = box.dir / "busybox.tar"
        run(box.shellctr("save", "--output", str(tar), "busybox:latest"), env=box.env)
        if quiet(engine, "load", "--input", str(tar)):
            return False
        LOADED.append(engine)
    quiet(engine, "rm", "--force", ENGINE_CTR)
    return quiet(engine, "run", "--detach", "--network", "none", "--name", ENGINE_CTR,
                 "busybox:latest", "sleep", "100000") == 0


def remove_engine_containers() -> None:
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            subprocess.run([engine, "rm", "--force", ENGINE_CTR], capture_output=True)
    for engine in LOADED:
        subprocess.run([engine, "rmi", "busybox:latest"], capture_output=True)


def report(found: list[Case], rounds: int, markdown: bool) -> None:
    python = found[0].cpu_ms()
    start = next(case for case in found if case.name.startswith("floor:")).cpu_ms()
    floors = {"python": python, "start": start}
    print(f"CPU time of the process tree (user + system), median of {rounds} rounds; "
          "wall beside")
    if markdown:
        print("| command | CPU | wall | vs floor | budget |")
        print("|---|---:|---:|---:|---:|")
    for case in found:
        cpu, wall = case.cpu_ms(), case.wall_ms()
        if not case.floor:
            ratio, verdict = "", "(floor)"
        else:
            times = cpu / floors[case.floor]
            ratio = f"{times:.1f}x"
            verdict = (f"<= {case.budget:g}x {'ok' if times <= case.budget else 'OVER'}"
                       if case.budget else "")
        if markdown:
            print(f"| `{case.name}` | {cpu:.0f} ms | {wall:.0f} ms | {ratio} | {verdict} |")
        else:
            print(f"  {case.name:46s} {cpu:7.1f} ms  wall {wall:7.1f} ms  {ratio:>6s}  "
                  f"{verdict}")
    ours = next(case for case in found if case.name == "exec CTR true")
    for case in found:
        if case.name.endswith(" exec CTR true") and case is not ours:
            times = ours.cpu_ms() / case.cpu_ms()
            print(f"exec CTR true vs {case.name}: {times:.2f}x (budget <= 0.5x: "
                  f"{'ok' if times <= 0.5 else 'OVER'})")


def main() -> None:
    argv = sys.argv[1:]
    against = None
    if "--against" in argv:
        at = argv.index("--against")
        against = argv[at + 1]
        del argv[at:at + 2]
    words = [arg for arg in argv if not arg.startswith("--")]
    rounds = int(words[0]) if words else 10
    box = Sandbox()
    try:
        names = populate(box)
        found = cases(box, names, box.layer_dir(), against)
        for round_number in range(rounds + 1):  # the first round warms the caches
            for case in found:
                if case.prepare is not None:
                    case.prepare()
                sample = measure(case.argv(), box.env)
                if round_number:
                    case.samples.append(sample)
        report(found, rounds, "--markdown" in sys.argv)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
        remove_engine_containers()
        box.close()


if __name__ == "__main__":
    main()
