"""A --dry-run script changes nothing when printed, and replayed with bash it does what the
verb would have done: for each verb that changes the host (run and rm are in
test_trace_and_dry_run.py)."""

from __future__ import annotations

import gzip
import json
import subprocess
import tempfile
import time
from pathlib import Path

from .support import (
    DEFAULT_TIMEOUT,
    Ctr,
    Worker,
    assert_script,
    host_mounts_under,
    inspect,
    links,
    replay,
    run_detached,
    shellctr_rules,
    tree_listing,
    wait_for,
)


def host_view(ctr: Ctr, tmp: Path) -> tuple[object, ...]:
    """What a dry run must not change: the store's files and mounts, this worker's links
    and tagged rules, and the dry run's TMPDIR (its scratch files live in memory)."""
    return (tree_listing(ctr.root, ctr.runroot), sorted(links()), sorted(shellctr_rules()),
            host_mounts_under(ctr.root), host_mounts_under(ctr.runroot), sorted(tmp.iterdir()))


def dry(ctr: Ctr, *args: str, stdin: bytes | None = None) -> str:
    """The --dry-run script of `args`, checked to have changed nothing."""
    # (kept: the script's scratch files go there when it is replayed)
    tmp = Path(tempfile.mkdtemp(prefix="dry-run-tmp-", dir=ctr.scratch))
    before = host_view(ctr, tmp)
    script = assert_script(ctr("--dry-run", *args, input=stdin, env={"TMPDIR": str(tmp)}))
    assert host_view(ctr, tmp) == before, f"the dry run changed the host:\n{script}"
    return script


def layers_of(ctr: Ctr, ref: str) -> list[str]:
    return list(json.loads(ctr("image", "inspect", ref).ok().out)[0]["RootFS"]["Layers"])


def test_build_busybox_script_replayed_builds_the_same_layer(ctr: Ctr, other_root: Ctr) -> None:
    script = dry(other_root, "image", "build-busybox")
    assert not other_root.root.exists(), "the dry run created the root"
    replay(script)
    assert layers_of(other_root, "busybox") == layers_of(ctr, "busybox")
    assert list((other_root.root / "tmp").iterdir()) == []  # the scratch tar is gone


def test_load_script_replayed_from_a_file_and_from_stdin_loads_the_image(
    ctr: Ctr, other_root: Ctr, worker: Worker
) -> None:
    archive = worker.scratch / "busybox-replay.tar.gz"
    archive.write_bytes(gzip.compress(ctr("save", "busybox", binary=True).ok().raw))
    wanted = json.loads(ctr("image", "inspect", "busybox").ok().out)[0]["Id"]
    replay(dry(other_root, "load", "--input", str(archive)))
    loaded = other_root.image_ids()
    assert json.loads(other_root("image", "inspect", "busybox").ok().out)[0]["Id"] == wanted
    other_root("rmi", "busybox").ok()
    replay(dry(other_root, "load", stdin=archive.read_bytes()), stdin=archive.read_bytes())
    assert other_root.image_ids() == loaded
    assert other_root("run", "--rm", "--network", "none", "busybox", "true").code == 0
    archive.unlink()


def test_import_from_stdin_script_replayed_reads_the_same_stdin(
    other_root: Ctr, rootfs_tar: object
) -> None:
    data = Path(rootfs_tar()).read_bytes()  # type: ignore[operator]
    script = dry(other_root, "import", "-", "piped:1", stdin=data)
    assert "\ncat > " in script  # stdin is spooled by the script itself
    replay(script, stdin=data)
    result = other_root("run", "--rm", "--network", "none", "piped:1", "ls", "/bin/busybox")
    assert result.ok().out == "/bin/busybox\n"


def test_commit_script_replayed_makes_the_image_of_the_changes(ctr: Ctr) -> None:
    ctr("run", "--name", "to-commit", "--network", "none", "busybox", "sh", "-c",
        "echo committed > /marker").ok()
    try:
        script = dry(ctr, "commit", "to-commit", "replayed-commit:1")
        replay(script)
        result = ctr("run", "--rm", "--network", "none", "replayed-commit:1", "cat", "/marker")
        assert result.ok().out == "committed\n"
        assert len(layers_of(ctr, "replayed-commit:1")) == len(layers_of(ctr, "busybox")) + 1
    finally:
        ctr("rm", "to-commit").ok()
        ctr("rmi", "replayed-commit:1")


def test_volume_create_and_rm_scripts_replayed(ctr: Ctr) -> None:
    replay(dry(ctr, "volume", "create", "replayed-vol"))
    assert "replayed-vol" in ctr("volume", "ls", "-q").ok().out.split()
    ctr("run", "--rm", "--network", "none", "-v", "replayed-vol:/data", "busybox", "touch",
        "/data/x").ok()
    replay(dry(ctr, "volume", "rm", "replayed-vol"))
    assert "replayed-vol" not in ctr("volume", "ls", "-q").ok().out.split()


def test_network_create_connect_disconnect_rm_scripts_replayed(ctr: Ctr) -> None:
    ctr("run", "--rm", "busybox", "true").ok()  # the default network, made on first use
    before_links, before_rules = sorted(links()), sorted(shellctr_rules())
    replay(dry(ctr, "network", "create", "--subnet", "10.251.7.0/24", "replayed-net"))
    net = json.loads(ctr("network", "inspect", "replayed-net").ok().out)[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == "10.251.7.0/24"
    assert len(links()) == len(before_links) + 1  # its bridge
    cid = run_detached(ctr, "busybox", "sleep", "600")  # on the default bridge
    try:
        replay(dry(ctr, "network", "connect", "--ip", "10.251.7.9", "replayed-net", cid))
        shown = ctr("exec", cid, "ip", "-o", "-4", "addr").ok().out
        assert "10.251.7.9/24" in shown, shown
        assert "replayed-net" in inspect(ctr, cid)["NetworkSettings"]["Networks"]
        replay(dry(ctr, "network", "disconnect", "replayed-net", cid))
        assert "10.251.7.9" not in ctr("exec", cid, "ip", "-o", "-4", "addr").ok().out
        ctr("rm", "--force", cid).ok()
        replay(dry(ctr, "network", "rm", "replayed-net"))
    finally:
        ctr("rm", "--force", cid)
        ctr("network", "rm", "replayed-net")
    assert ctr("network", "inspect", "replayed-net").code != 0
    assert sorted(links()) == before_links and sorted(shellctr_rules()) == before_rules


def started_events(ctr: Ctr, since: str, cid: str) -> list[str]:
    until = f"{time.time() + 0.001:.6f}"
    out = ctr("events", "--since", since, "--until", until, "--format", "json",
              "--filter", "event=start", trace=False).ok().out
    return [event["Actor"]["ID"] for event in map(json.loads, out.splitlines())
            if event["Actor"]["ID"] == cid]


def test_detached_run_script_replayed_in_a_pipeline_ends_with_the_container_running(
    ctr: Ctr
) -> None:
    """`shellctr --dry-run run -d ... | bash | cat` ends (the monitor has none of the
    pipeline's stdio), and leaves the container recorded as `run -d` leaves it: running,
    with its PID 1, its start time and its `start` event."""
    since = f"{time.time():.6f}"
    script = dry(ctr, "run", "-d", "--name", "piped-bg", "--network", "none", "busybox",
                 "sleep", "600")
    try:
        done = subprocess.run(["bash", "-c", "bash | cat"], input=script.encode(),
                              capture_output=True, check=False, timeout=DEFAULT_TIMEOUT)
        assert done.returncode == 0, done.stderr.decode()
        state = inspect(ctr, "piped-bg")["State"]
        assert state["Status"] == "running" and state["Pid"] > 0, state
        assert Path(f"/proc/{state['Pid']}/cmdline").read_bytes() == b"sleep\x00600\x00"
        assert not state["StartedAt"].startswith("0001-"), state
        assert started_events(ctr, since, inspect(ctr, "piped-bg")["Id"]) != []
        ctr("stop", "--time", "0", "piped-bg").ok()
        assert inspect(ctr, "piped-bg")["State"]["Status"] == "exited"
    finally:
        ctr("rm", "--force", "piped-bg")


def test_foreground_run_script_replayed_records_it_running_and_ends_with_its_code(
    ctr: Ctr, worker: Worker
) -> None:
    """A replayed foreground `run --rm` whose command exits 3: running while it runs
    (with its `start` event), then torn down and removed by the script, whose exit status
    is the command's (set -e does not end it before its teardown)."""
    gate = Path(tempfile.mkdtemp(prefix="replay-gate-", dir=worker.scratch))
    since = f"{time.time():.6f}"
    script = dry(ctr, "run", "--rm", "--name", "replayed-fg", "--network", "none", "-v",
                 f"{gate}:/gate", "busybox", "sh", "-c",
                 "echo waiting; while [ ! -e /gate/go ]; do sleep 0.05; done; exit 3")
    before = sorted(links())
    replayed = subprocess.Popen(["bash", "-c", script], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ctr("inspect", "--format", "{{.State.Status}}", "replayed-fg",
                             trace=False).out.strip() == "running", "the replayed run")
        cid = inspect(ctr, "replayed-fg")["Id"]
        assert started_events(ctr, since, cid) != []
        (gate / "go").touch()
        out, err = replayed.communicate(timeout=DEFAULT_TIMEOUT)
        assert replayed.returncode == 3, err.decode()
        assert out == b"waiting\n"
        assert ctr.container_ids() == []  # --rm: the script's hook removed it
        assert sorted(links()) == before
    finally:
        if replayed.poll() is None:
            replayed.kill()
            replayed.wait()
        ctr("rm", "--force", "replayed-fg")
        (gate / "go").unlink(missing_ok=True)
        gate.rmdir()


def test_dry_run_of_a_detached_terminal_is_refused_at_once(ctr: Ctr) -> None:
    """`run -dt` and `start` of a -t container: the terminal's master goes to the monitor
    through shellctr's own process, which a script has not: refused, nothing printed."""
    message = ("shellctr: --dry-run cannot print a detached start with a terminal (-d with "
               "-t) (drop -t or -d, or run it without --dry-run)")
    refused = ctr("--dry-run", "run", "-dt", "busybox", "sh", trace=False)
    assert (refused.code, refused.out, refused.err_lines) == (125, "", [message]), str(refused)
    ctr("create", "-t", "--name", "term", "busybox", "sh").ok()
    refused = ctr("--dry-run", "start", "term", trace=False)  # start's errors exit 1
    assert (refused.code, refused.out, refused.err_lines) == (1, "", [message]), str(refused)
    assert inspect(ctr, "term")["State"]["Status"] == "created"
    ctr("rm", "term").ok()
