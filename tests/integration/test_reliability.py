"""One bad file, one killed command or one lost race must never cost a user their
containers (issue 15): corrupt records are their object's problem only, removals are
safe at every point, parallel removals have exactly one winner."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    Ctr,
    Result,
    Worker,
    inspect,
    links,
    pids_naming,
    run_detached,
    shellctr_rules,
    tar_member,
    wait_for,
    write_tar,
)
from .test_concurrency import all_at_once

# what a record may be turned into: each must be read as corrupt, never crash a verb
CORRUPTIONS = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\xffnot json at all\n",
    "empty": lambda text: "",
    "wrong-type": lambda text: json.dumps([json.loads(text)]),
}


def corrupt(path: Path, how: str) -> None:
    path.write_text(CORRUPTIONS[how](path.read_text()), errors="surrogateescape")


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err and "unexpected error" not in result.err, str(result)


# -- 1. corrupt records ----------------------------------------------------------------
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
@pytest.mark.parametrize("record", ["config.json", "state.json"])
def test_a_corrupt_container_record_is_that_containers_problem_only(
        ctr: Ctr, worker: Worker, record: str, how: str) -> None:
    broken = run_detached(ctr, "--name", "broken", "busybox", "sleep", "1000")
    fine = run_detached(ctr, "--name", "fine", "busybox", "sleep", "1000")
    path = worker.root / "containers" / broken / record
    corrupt(path, how)
    listed = ctr("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}").ok()
    assert f"{broken} Error: corrupt state ({path})" in listed.out.splitlines(), str(listed)
    assert f"{fine} Up" in listed.out, str(listed)
    # the other container, and new ones, work as before
    assert ctr("exec", "fine", "echo", "hi").ok().out == "hi\n"
    assert ctr("inspect", "--format", "{{.Name}}", "fine").ok().out == "/fine\n"
    assert ctr("run", "--rm", "busybox", "true").code == 0
    # the broken one says what is wrong with it, in one line naming the file
    inspected = ctr("inspect", broken, trace=False)
    assert (inspected.code, inspected.out) == (1, "[]\n"), str(inspected)  # as Docker's
    assert len(inspected.err_lines) == 1 and str(path) in inspected.err, str(inspected)
    assert "rm -f" in inspected.err, str(inspected)
    # and rm -f removes it, with its processes and host objects (the leak check)
    ctr("rm", "-f", broken).ok()
    assert ctr.container_ids(full=True) == [fine]
    ctr("rm", "-f", "fine").ok()


def test_a_container_without_its_state_is_listed_and_removable(ctr: Ctr,
                                                               worker: Worker) -> None:
    cid = ctr("create", "busybox", "true").ok().out.strip()
    (worker.root / "containers" / cid / "state.json").unlink()  # as a crash left it
    listed = ctr("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}").ok()
    assert listed.out.startswith(f"{cid} Error: corrupt state"), str(listed)
    ctr("rm", "-f", cid).ok()
    assert ctr.container_ids() == []


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_image_record_is_that_images_problem_only(
        ctr: Ctr, worker: Worker, rootfs_tar: object, how: str) -> None:
    tar = rootfs_tar()  # type: ignore[operator]
    ctr("import", str(tar), "other:1").ok()
    other = ctr("images", "-q", "--no-trunc", "other:1").ok().out.strip().removeprefix(
        "sha256:")
    path = worker.root / "images" / f"{other}.json"
    corrupt(path, how)
    listed = ctr("images").ok()
    assert "busybox" in listed.out and "<corrupt>" in listed.out, str(listed)
    assert f"corrupt record {path}" in listed.err, str(listed)
    assert ctr("run", "--rm", "busybox", "true").code == 0
    assert ctr("image", "inspect", "--format", "{{.Id}}", "busybox").code == 0
    no_traceback(ctr("rmi", "other:1"))
    removed = ctr("rmi", "-f", other).ok()
    assert other in removed.out, str(removed)
    assert not path.exists()
    assert "corrupt" not in ctr("images").ok().out
    no_traceback(ctr("system", "prune", "-f").ok())


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_network_record_is_that_networks_problem_only(
        ctr: Ctr, worker: Worker, how: str) -> None:
    ctr("network", "create", "--subnet", "10.251.7.0/24", "brokennet").ok()
    nid = ctr("network", "inspect", "--format", "{{.Id}}", "brokennet").ok().out.strip()
    path = worker.root / "networks" / f"{nid}.json"
    corrupt(path, how)
    listed = ctr("network", "ls").ok()
    assert f"corrupt record {path}" in listed.err and nid[:12] in listed.out, str(listed)
    assert ctr("run", "--rm", "busybox", "true").code == 0
    ctr("network", "create", "--subnet", "10.251.8.0/24", "goodnet").ok()
    ctr("network", "rm", "goodnet").ok()
    # its bridge and rules go with it, found by its id (the leak check)
    ctr("network", "rm", nid).ok()
    assert not path.exists()


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_volume_record_is_that_volumes_problem_only(
        ctr: Ctr, worker: Worker, how: str) -> None:
    ctr("volume", "create", "bad").ok()
    ctr("volume", "create", "good").ok()
    path = worker.root / "volumes" / "bad" / "volume.json"
    corrupt(path, how)
    listed = ctr("volume", "ls").ok()
    assert "good" in listed.out and "<corrupt>" in listed.out, str(listed)
    assert f"corrupt record {path}" in listed.err, str(listed)
    assert ctr("run", "--rm", "-v", "good:/g", "busybox", "true").code == 0
    ctr("volume", "rm", "bad").ok()
    ctr("volume", "rm", "good").ok()


# -- 2. removals ---------------------------------------------------------------------------
def test_parallel_rm_force_has_one_winner_and_clear_losers(ctr: Ctr) -> None:
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    results = all_at_once(ctr, [("rm", "-f", cid)] * 10)
    winners = [r for r in results if r.code == 0]
    assert len(winners) == 1, "\n".join(map(str, results))
    for result in results:
        if result.code != 0:
            assert result.code == 1, str(result)
            assert result.err == f"shellctr: no such container: {cid}\n", str(result)
    assert ctr.container_ids() == []


def test_rm_force_finishes_a_removal_a_kill_interrupted(ctr: Ctr, worker: Worker) -> None:
    cid = ctr("create", "--name", "half", "busybox", "true").ok().out.strip()
    containers = worker.root / "containers"
    (containers / cid).rename(containers / f".{cid}.removing")  # killed after the rename
    assert ctr.container_ids() == []
    assert ctr("create", "--name", "half", "busybox", "true").code == 0  # its name is free
    ctr("rm", "-f", "half").ok()
    ctr("rm", "-f", cid).ok()
    assert sorted(p.name for p in containers.iterdir()) == []


# -- 3. what crashes leave, collected -----------------------------------------------------
def test_system_prune_collects_what_killed_commands_left(ctr: Ctr, worker: Worker) -> None:
    root = worker.root
    cid = ctr("create", "busybox", "true").ok().out.strip()
    dead = 2 ** 22 + 1  # above pid_max's default: no process has it
    leftovers = [
        root / "containers" / f".{'1' * 64}.creating",  # a create killed half-way
        root / "containers" / f".{'2' * 64}.removing",  # an rm killed after its rename
        root / "containers" / ("3" * 64),  # an older shellctr's half-made container
        root / "containers" / cid / f".state.json.{dead}.tmp",
        root / "images" / f".{'4' * 64}.json.{dead}.tmp",
        root / "blobs" / "sha256" / f".{'5' * 64}.{dead}.partial",
        root / "layers" / f".{'6' * 64}.{dead}.partial",
        root / "tmp" / f"save-{dead}",
    ]
    for path in leftovers:
        if path.name.endswith(".tmp") or path.parent.name == "sha256":
            path.write_text("{")
        else:
            path.mkdir()
            (path / "hostname").write_text("x\n")
    assert ctr.container_ids(full=True) == [cid]
    pruned = ctr("system", "prune", "-f").ok()
    for path in leftovers:
        assert not path.exists(), f"{path} left\n{pruned}"
    assert ctr.container_ids() == []


def test_system_prune_removes_corrupt_containers_and_networks(ctr: Ctr,
                                                              worker: Worker) -> None:
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    corrupt(worker.root / "containers" / cid / "state.json", "garbage")
    ctr("network", "create", "--subnet", "10.251.9.0/24", "lost").ok()
    nid = ctr("network", "inspect", "--format", "{{.Id}}", "lost").ok().out.strip()
    corrupt(worker.root / "networks" / f"{nid}.json", "truncated")
    pruned = ctr("system", "prune", "-f").ok()
    no_traceback(pruned)
    assert ctr.container_ids() == [], str(pruned)
    assert not (worker.root / "networks" / f"{nid}.json").exists(), str(pruned)


# -- 4. failures after create ---------------------------------------------------------------
@pytest.mark.parametrize("rm", [[], ["--rm"]])
def test_run_refuses_what_start_would_refuse_before_creating_anything(
        ctr: Ctr, worker: Worker, rm: list[str]) -> None:
    ctr("network", "create", "--subnet", "10.251.10.0/30", "tiny").ok()  # one address
    holder = run_detached(ctr, "--network", "tiny", "busybox", "sleep", "1000")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args in (["--network", "tiny"],  # its subnet is full
                     ["--network", "tiny", "--ip", "10.251.11.5"],  # outside it
                     ["-p", f"{port}:80"]):  # a port another program holds
            result = ctr("run", *rm, *args, "busybox", "true")
            assert result.code == 125 and len(result.err_lines) == 1, str(result)
            assert ctr.container_ids(full=True) == [holder], str(result)
    ctr("rm", "-f", holder).ok()
    ctr("network", "rm", "tiny").ok()


def test_a_failed_start_of_run_rm_leaves_nothing(ctr: Ctr, worker: Worker) -> None:
    # the 12th host command of this run (in its start) fails, as a lost race would
    result = ctr("run", "--rm", "busybox", "true", env={"SHELLCTR_TEST_FAIL_AT": "12"})
    assert result.code == 125 and "injected failure" in result.err, str(result)
    assert ctr.container_ids() == []
    assert not any((worker.runroot / "containers").iterdir())


# -- 8. bad input -------------------------------------------------------------------------
@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "127.0.0.0/24", "224.1.0.0/16"])
def test_network_create_refuses_a_reserved_subnet(ctr: Ctr, subnet: str) -> None:
    result = ctr("network", "create", "--subnet", subnet, "wide")
    assert result.code == 1 and len(result.err_lines) == 1, str(result)  # Docker's code
    assert "wide" not in ctr("network", "ls").ok().out


def test_network_create_refuses_a_subnet_routed_on_the_host(ctr: Ctr) -> None:
    subprocess.run(["ip", "link", "add", "name", "shtest0", "type", "veth", "peer", "name",
                    "shtest1"], check=True)  # an interface of the host, with its subnet
    try:
        subprocess.run(["ip", "address", "add", "10.251.12.1/24", "dev", "shtest0"],
                       check=True)
        subprocess.run(["ip", "link", "set", "shtest0", "up"], check=True)
        result = ctr("network", "create", "--subnet", "10.251.12.0/24", "shadow")
        assert result.code == 1 and "routed on this host" in result.err, str(result)
    finally:
        subprocess.run(["ip", "link", "delete", "shtest0"], check=True)


def test_a_symlinked_or_world_writable_root_is_refused(ctr: Ctr, worker: Worker,
                                                       tmp_path: Path) -> None:
    link = tmp_path / "root-link"
    link.symlink_to(worker.root)
    other = Ctr(link, worker.runroot, worker.scratch)
    result = other("create", "busybox", "true")
    assert result.code == 125 and "is a symlink" in result.err, str(result)
    open_root = tmp_path / "open-root"
    open_root.mkdir()
    open_root.chmod(0o777)
    result = Ctr(open_root, worker.runroot, worker.scratch)("create", "busybox", "true")
    assert result.code == 125 and "writable by every user" in result.err, str(result)
    assert ctr.container_ids() == [] and list(open_root.iterdir()) == []
    assert (worker.root / "blobs").stat().st_mode & 0o777 == 0o700


# -- 9. liveness ----------------------------------------------------------------------------
def test_ps_never_shows_an_ended_container_up(ctr: Ctr) -> None:
    cid = run_detached(ctr, "busybox", "sh", "-c", "exit 3")
    # as soon as PID 1 is a zombie (before the monitor reaped it) it has ended
    wait_for(lambda: "Exited (3)" in ctr("ps", "-a", "--format", "{{.Status}}").out,
             "the container's end to be seen")
    ctr("rm", "-f", cid).ok()


# -- 11. cp from stdin ------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"not a tar at all\n" * 100, b"\x1f\x8b\x08garbage"])
def test_cp_from_stdin_refuses_what_is_not_a_tar(ctr: Ctr, data: bytes) -> None:
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    result = ctr("cp", "-", f"{cid}:/tmp", input=data)
    assert result.code == 1 and len(result.err_lines) == 1, str(result)
    assert "not a tar archive" in result.err and "unexpected" not in result.err, str(result)
    ctr("rm", "-f", cid).ok()


# -- system check, system reset --------------------------------------------------------------
def test_system_check_reports_inconsistencies_and_repairs_what_is_safe(
        ctr: Ctr, worker: Worker) -> None:
    assert ctr("system", "check").code == 0
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    state = json.loads((worker.root / "containers" / cid / "state.json").read_text())
    for pid in (state["monitor_pid"], state["pid"]):  # as an OOM killer or a reboot would
        os.kill(pid, signal.SIGKILL)
    half = worker.root / "containers" / f".{'7' * 64}.creating"
    half.mkdir()
    volume = worker.root / "volumes" / "broken"
    ctr("volume", "create", "broken").ok()
    corrupt(volume / "volume.json", "garbage")
    checked = ctr("system", "check", trace=False)
    assert checked.code == 1, str(checked)
    assert f"half-made container: {half}" in checked.out, str(checked)
    assert f"container {cid[:12]}: recorded running, its PID 1 is gone" in checked.out
    assert "volume broken: corrupt record" in checked.out, str(checked)
    repaired = ctr("system", "check", "--repair", trace=False)
    assert repaired.code == 1 and "repaired 2 of 3; 1 left" in repaired.out, str(repaired)
    assert not half.exists()
    assert "Exited (255)" in ctr("ps", "-a", "--format", "{{.Status}}").ok().out
    ctr("volume", "rm", "broken").ok()
    ctr("rm", "-f", cid).ok()
    assert ctr("system", "check").code == 0


def test_system_reset_removes_everything_of_its_root(ctr: Ctr, worker: Worker,
                                                     tmp_path: Path) -> None:
    base = tmp_path / "other"
    other = Ctr(base / "root", base / "run", worker.scratch)
    # the worker's default network goes first: iptables' chains are shared by every root
    # of a network namespace, and the other root's last network takes them along
    ctr("system", "prune", "-f").ok()
    before_links, before_rules = links(), shellctr_rules()
    other("image", "build-busybox").ok()
    other("network", "create", "--subnet", "10.251.13.0/24", "resetnet").ok()
    other("run", "-d", "--network", "resetnet", "-p", "18181:80", "-v", "vol:/v",
          "busybox", "sleep", "1000").ok()
    other("run", "-d", "--network", "none", "busybox", "sleep", "1000").ok()
    assert other("system", "reset", "--force").code == 0
    assert not (base / "root").exists() and not (base / "run").exists()
    assert links() == before_links and shellctr_rules() == before_rules
    assert not pids_naming(str(base))


# -- 6. races on the default network ----------------------------------------------------------
def test_parallel_first_runs_make_the_default_network_once(ctr: Ctr) -> None:
    ctr("system", "prune", "-f").ok()  # no default network, no base chains
    results = all_at_once(ctr, [("run", "--rm", "busybox", "true")] * 6)
    assert all(result.code == 0 for result in results), "\n".join(map(str, results))
    listed = ctr("network", "ls").ok().out.split()
    assert listed.count("shellctr0") == 1, listed


def test_network_rm_racing_run_leaves_no_orphan_bridge(ctr: Ctr) -> None:
    for _ in range(3):  # a race: a few tries
        ctr("network", "create", "--subnet", "10.251.14.0/24", "racy").ok()
        results = all_at_once(ctr, [("run", "--rm", "--network", "racy", "busybox", "true"),
                                    ("network", "rm", "racy")])
        for result in results:
            assert "unexpected" not in result.err and "Traceback" not in result.err, \
                str(result)
        if "racy" in ctr("network", "ls").ok().out:
            ctr("network", "rm", "racy").ok()
        # the leak check (at the end) finds an orphan bridge


# -- 7. a full disk, another filesystem ------------------------------------------------------
@pytest.fixture
def small_root(worker: Worker, tmp_path: Path) -> Iterator[Ctr]:
    """A store on an 8 MiB tmpfs (its own filesystem: not the one of the archives)."""
    base = tmp_path / "small"
    base.mkdir()
    subprocess.run(["mount", "--types", "tmpfs", "--options", "size=8m,mode=700", "tmpfs",
                    str(base)], check=True)
    try:
        yield Ctr(base / "root", base / "run", worker.scratch)
    finally:
        subprocess.run(["umount", "--lazy", str(base)], check=True)


def test_load_across_filesystems_and_on_a_full_disk(ctr: Ctr, worker: Worker,
                                                    small_root: Ctr) -> None:
    small = worker.scratch / "small-image.tar"
    ctr("save", "--output", str(small), "busybox").ok()
    # the archive is on another filesystem than the root: copy_file_range may say EXDEV
    small_root("load", "--input", str(small)).ok()
    assert small_root("images", "-q").ok().out.strip()
    big = worker.scratch / "big-rootfs.tar"
    write_tar(big, [tar_member("big", data=os.urandom(6 << 20))])
    result = small_root("import", str(big), "big:1")
    assert result.code == 1 and len(result.err_lines) == 1, str(result)
    assert "no space left on device" in result.err.lower(), str(result)
    assert "unexpected" not in result.err, str(result)
    assert "big" not in small_root("images").ok().out
    small_root("system", "reset", "--force").ok()


# -- 5. network rm, killed half-way --------------------------------------------------------
def test_a_network_whose_removal_was_killed_is_gone_from_listings_and_collected(
        ctr: Ctr, worker: Worker) -> None:
    ctr("network", "create", "--subnet", "10.251.15.0/24", "halfgone").ok()
    nid = ctr("network", "inspect", "--format", "{{.Id}}", "halfgone").ok().out.strip()
    # killed right after its first step, the rename to its tombstone
    result = ctr("network", "rm", "halfgone", env={"SHELLCTR_TEST_KILL_AFTER": "1"})
    assert result.code == -signal.SIGKILL, str(result)
    assert "halfgone" not in ctr("network", "ls").ok().out  # its record matches: gone
    assert (worker.root / "networks" / f".{nid}.removing").exists()
    ctr("network", "create", "--subnet", "10.251.16.0/24", "halfgone").ok()  # name free
    ctr("network", "rm", "halfgone").ok()
    ctr("system", "prune", "-f").ok()  # its bridge and rules go (the leak check)
    assert not (worker.root / "networks" / f".{nid}.removing").exists()


# -- 13. restart policies with nobody left to apply them --------------------------------------
def test_restart_always_is_applied_by_the_next_command_after_its_monitor_was_killed(
        ctr: Ctr, worker: Worker) -> None:
    cid = run_detached(ctr, "--restart", "always", "busybox", "sleep", "1000")
    state = json.loads((worker.root / "containers" / cid / "state.json").read_text())
    os.kill(state["monitor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: not pids_naming(str(worker.root / "containers" / cid / "exit.json")),
             "the monitor to be gone")
    ctr("system", "reconcile").ok()
    restarted = inspect(ctr, cid)["State"]
    assert restarted["Status"] == "running" and restarted["Pid"] != state["pid"], restarted
    assert inspect(ctr, cid)["RestartCount"] == 1
    ctr("rm", "-f", cid).ok()
