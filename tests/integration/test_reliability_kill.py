"""Kill a verb after each of its host commands in turn (the door's test hook,
SHELLCTR_TEST_KILL_AFTER=k: the process SIGKILLs itself after its k-th command), and
at delays swept across its run: after every kill `ps -a` tells the truth, and
`rm -f` / `network rm` / `volume rm` / `system prune -f` leave nothing behind.

Each test prints its tally (kills tried, leaks found) with `-s`."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .support import (
    DEFAULT_TIMEOUT,
    Ctr,
    Worker,
    leaks,
    run_detached,
    tar_member,
    write_tar,
)

MAX_KILLS = 60  # per verb: its first steps one by one, then a sample of the rest


@dataclass
class Verb:
    argv: list[str]
    setup: Callable[[Ctr, Path], None] = lambda ctr, scratch: None
    cleanup: list[list[str]] = field(default_factory=list)  # besides rm -f and prune


def victim(ctr: Ctr, scratch: Path) -> None:
    run_detached(ctr, "--name", "victim", "busybox", "sleep", "1000")


def saved_image(ctr: Ctr, scratch: Path) -> None:
    """An image of its own layer, saved, then removed (layer and all): `load` brings it in."""
    tar = scratch / "killed-load.tar"
    if not tar.exists():
        rootfs = write_tar(scratch / "killed-load-rootfs.tar", [
            tar_member("bin", tarfile.DIRTYPE, mode=0o755),
            tar_member("bin/marker", data=b"killed load\n" * 1000)])
        ctr("import", str(rootfs), "killload:1").ok()
        ctr("save", "--output", str(tar), "killload:1").ok()
    ctr("rmi", "-f", "killload:1")


VERBS = {
    "run -d": Verb(["run", "-d", "--name", "killed", "-v", "/anon", "busybox", "sleep", "1000"]),
    "run -d tmpfs volume": Verb(
        ["run", "-d", "--name", "killed", "-v", "kram:/ram", "busybox", "sleep", "1000"],
        lambda ctr, scratch: ctr("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs",
                                 "-o", "o=size=1m", "kram").ok(), [["volume", "rm", "kram"]]),
    "run --rm": Verb(["run", "--rm", "-v", "/anon", "busybox", "true"]),
    "run -p": Verb(["run", "-d", "-p", "18080:80", "busybox", "sleep", "1000"]),
    "rm -f": Verb(["rm", "-f", "victim"], victim),
    "commit": Verb(["commit", "victim", "killcommit:1"], victim, [["rmi", "-f",
                                                                    "killcommit:1"]]),
    "load": Verb(["load", "--input", "SCRATCH/killed-load.tar"], saved_image,
                 [["rmi", "-f", "killload:1"]]),
    "network create": Verb(["network", "create", "--subnet", "10.252.1.0/24", "kn"],
                           cleanup=[["network", "rm", "kn"]]),
    "network rm": Verb(["network", "rm", "kn"], lambda ctr, scratch: ctr(
        "network", "create", "--subnet", "10.252.2.0/24", "kn").ok(),
        [["network", "rm", "kn"]]),
    "volume rm": Verb(["volume", "rm", "kv"], lambda ctr, scratch: ctr(
        "volume", "create", "kv").ok(), [["volume", "rm", "kv"]]),
}


def steps_of(ctr: Ctr, verb: Verb, scratch: Path) -> int:
    """How many host commands the verb runs when nothing kills it."""
    verb.setup(ctr, scratch)
    result = ctr(*argv_of(verb, scratch))
    assert result.code == 0, str(result)
    clean(ctr, verb)
    return sum(line.startswith("+ ") for line in result.err.splitlines())


def argv_of(verb: Verb, scratch: Path) -> list[str]:
    return [arg.replace("SCRATCH", str(scratch)) for arg in verb.argv]


def clean(ctr: Ctr, verb: Verb) -> list[str]:
    """What a user does after a crash; the problems it met (one line each)."""
    problems = []
    listed = ctr("ps", "-aq", "--no-trunc")
    if listed.code != 0 or "Traceback" in listed.err or "unexpected" in listed.err:
        problems.append(f"ps -a failed: {listed.err.strip()}")
    ids = listed.out.split()
    calls = ([["rm", "-f", "-v", *ids]] if ids else []) + verb.cleanup + [
        ["system", "prune", "-f", "--volumes"]]
    for argv in calls:
        result = ctr(*argv)
        if "Traceback" in result.err or "unexpected error" in result.err:
            problems.append(f"{' '.join(argv)}: {result.err_lines[-1:]}")
    return problems


def check(ctr: Ctr, worker: Worker, verb: Verb, what: str) -> list[str]:
    problems = clean(ctr, verb)
    created = [name.strip(".").split(".")[0] for name in
               os.listdir(worker.root / "containers")]
    found = problems + leaks(worker, created)
    return [f"{what}: {line}" for line in found]


@pytest.mark.parametrize("name", sorted(VERBS))
def test_a_verb_killed_after_any_host_command_leaves_nothing_after_cleanup(
        ctr: Ctr, worker: Worker, name: str) -> None:
    verb = VERBS[name]
    total = steps_of(ctr, verb, worker.scratch)
    ks = list(range(1, total + 1))
    if len(ks) > MAX_KILLS:
        ks = ks[:MAX_KILLS // 2] + ks[MAX_KILLS // 2::len(ks) // (MAX_KILLS // 2)]
    found: list[str] = []
    killed = 0
    for k in ks:
        verb.setup(ctr, worker.scratch)
        result = ctr(*argv_of(verb, worker.scratch),
                     env={"SHELLCTR_TEST_KILL_AFTER": str(k)})
        killed += result.code == -signal.SIGKILL
        found += check(ctr, worker, verb, f"killed after step {k}/{total}")
    print(f"\n{name}: {total} host commands, {len(ks)} kills ({killed} landed), "
          f"{len(found)} leaks")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(VERBS))
def test_a_verb_killed_at_any_moment_leaves_nothing_after_cleanup(
        ctr: Ctr, worker: Worker, name: str) -> None:
    verb = VERBS[name]
    verb.setup(ctr, worker.scratch)
    started = time.monotonic()
    ctr(*argv_of(verb, worker.scratch)).ok()
    duration = time.monotonic() - started
    clean(ctr, verb)
    found: list[str] = []
    for step in range(1, 11):  # delays swept across the verb's run
        delay = duration * step / 10
        verb.setup(ctr, worker.scratch)
        process = subprocess.Popen(ctr.argv(argv_of(verb, worker.scratch), trace=False),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ctr.env())
        time.sleep(delay)  # the point of the test: a kill at this moment of its run
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=DEFAULT_TIMEOUT)
        found += check(ctr, worker, verb, f"killed after {delay * 1000:.0f} ms")
    print(f"\n{name}: 10 kills across {duration * 1000:.0f} ms, {len(found)} leaks")
    assert not found, "\n".join(found)
