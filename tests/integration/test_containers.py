"""Containers after `run`: --rm, ps, names and lookup, rm (running or not), export."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from .support import DEFAULT_TIMEOUT, FULL_ID, SHORT_ID, Ctr, Worker, wait_for

NAME = re.compile(r"^[a-z]+_[a-z]+[0-9]?$")  # Docker's adjective_scientist


def ps_rows(ctr: Ctr, *flags: str) -> list[str]:
    """`ps` output lines, header checked and dropped."""
    result = ctr("ps", *flags).ok()
    header, *rows = result.out.splitlines()
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                              "PORTS", "NAMES"], str(result)
    return rows


def test_rm_flag_leaves_no_trace(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--rm", "--name", "ephemeral", "busybox", "sh", "-c", "echo x > /file").ok()
    assert ps_rows(ctr, "-a") == []
    assert ctr.container_ids() == []
    assert list((worker.root / "containers").iterdir()) == []
    assert list((worker.runroot / "containers").iterdir()) == []
    ctr("run", "--rm", "--name", "ephemeral", "busybox", "true").ok()  # the name is free again


def test_stopped_container_shows_in_ps_all_only(ctr: Ctr) -> None:
    assert ctr("run", "--name", "three", "busybox", "sh", "-c", "exit 3").code == 3
    try:
        rows = ps_rows(ctr, "-a")
        assert len(rows) == 1, rows
        row = rows[0]
        assert SHORT_ID.match(row.split()[0]), row
        assert row.split()[1] == "busybox", row
        assert '"sh -c exit 3"' in row, row
        assert re.search(r"\bExited \(3\) .+ ago\b", row), row
        assert row.split()[-1] == "three", row
        assert ps_rows(ctr) == []
        assert ctr("ps", "-q").ok().out == ""
    finally:
        ctr("rm", "three").ok()


def test_ps_quiet_prints_short_ids_and_no_trunc_full_ids(ctr: Ctr) -> None:
    ctr("run", "--name", "first", "busybox", "true").ok()
    ctr("run", "--name", "second", "busybox", "true").ok()
    try:
        short = ctr("ps", "-aq").ok().out.split()
        assert len(short) == 2 and all(SHORT_ID.match(cid) for cid in short), short
        full = ctr("ps", "-aq", "--no-trunc").ok().out.split()
        assert len(full) == 2 and all(FULL_ID.match(cid) for cid in full), full
        assert [cid[:12] for cid in full] == short
        rows = ps_rows(ctr, "-a", "--no-trunc")
        assert sorted(row.split()[0] for row in rows) == sorted(full)
        assert [row.split()[-1] for row in rows] == ["second", "first"]  # newest first
    finally:
        ctr("rm", "first", "second").ok()


def test_generated_names_are_docker_style_and_unique(ctr: Ctr) -> None:
    for _ in range(3):
        ctr("run", "busybox", "true").ok()
    try:
        names = [row.split()[-1] for row in ps_rows(ctr, "-a")]
        assert len(names) == 3
        assert all(NAME.match(name) for name in names), names
        assert len(set(names)) == 3, names
    finally:
        ctr("rm", *ctr.container_ids()).ok()


def test_long_command_is_truncated_in_ps_but_not_with_no_trunc(ctr: Ctr) -> None:
    script = "echo a long command line that does not fit"
    ctr("run", "--name", "wordy", "busybox", "sh", "-c", script).ok()
    try:
        row = ps_rows(ctr, "-a")[0]
        assert script not in row and "…" in row, row
        assert f'"sh -c {script}"' in ps_rows(ctr, "-a", "--no-trunc")[0]
    finally:
        ctr("rm", "wordy").ok()


def unique_prefix(cid: str, others: list[str], start: int = 4) -> str:
    for length in range(start, len(cid)):
        if not any(other != cid and other.startswith(cid[:length]) for other in others):
            return cid[:length]
    return cid


def test_rm_finds_a_container_by_full_id_prefix_or_name(ctr: Ctr) -> None:
    for name in ("by-full-id", "by-prefix", "by-name"):
        ctr("run", "--name", name, "busybox", "true").ok()
    rows = {row.split()[-1]: row.split()[0] for row in ps_rows(ctr, "-a", "--no-trunc")}
    every = list(rows.values())
    full = rows["by-full-id"]
    result = ctr("rm", full).ok()
    assert result.out.split() == [full], str(result)
    prefix = unique_prefix(rows["by-prefix"], every)
    assert ctr("rm", prefix).ok().out.split() == [prefix]
    assert ctr("rm", "by-name").ok().out.split() == ["by-name"]
    assert ctr.container_ids() == []


def test_rm_unknown_container_fails(ctr: Ctr) -> None:
    result = ctr("rm", "no-such-container", trace=False)
    assert result.code != 0, str(result)
    assert len(result.err_lines) == 1, str(result)
    assert result.err_lines[0].startswith("shellctr:"), str(result)
    assert "no-such-container" in result.err_lines[0], str(result)
    assert result.out == "", str(result)


def test_rm_running_container_refuses(ctr: Ctr, worker: Worker) -> None:
    sleeper = ctr.popen("run", "--name", "sleeper", "busybox", "sleep", "1000")
    try:
        wait_for(lambda: any(" Up " in row and row.endswith("sleeper") for row in ps_rows(ctr))
                 or sleeper.process.poll() is not None,
                 "the container to show as Up in ps")
        assert sleeper.process.poll() is None, sleeper.output_so_far()

        refused = ctr("rm", "sleeper", trace=False)
        assert refused.code == 1, str(refused)  # Docker's code for an engine error
        assert "stop" in refused.err and "-f" in refused.err, str(refused)
        assert any(row.endswith("sleeper") for row in ps_rows(ctr)), "rm removed it anyway"

        ctr("rm", "-f", "sleeper").ok()
        result = sleeper.wait(timeout=DEFAULT_TIMEOUT)
        assert result.code == 137, str(result)  # 128 + SIGKILL, as Docker reports it
        complaints = [line for line in result.err.splitlines()
                      if line.startswith(("unshare:", "shellctr:"))]
        assert complaints == [], str(result)
        assert ps_rows(ctr, "-a") == []
        assert list((worker.root / "containers").iterdir()) == []
        assert list((worker.runroot / "containers").iterdir()) == []
    finally:
        sleeper.kill()


def test_rm_force_a_running_rm_container(ctr: Ctr) -> None:
    sleeper = ctr.popen("run", "--rm", "--name", "sleeper", "busybox", "sleep", "1000")
    try:
        wait_for(lambda: any(row.endswith("sleeper") for row in ps_rows(ctr))
                 or sleeper.process.poll() is not None, "the container to run")
        ctr("rm", "-f", "sleeper").ok()
        result = sleeper.wait(timeout=DEFAULT_TIMEOUT)
        assert result.code == 137, str(result)
        assert ps_rows(ctr, "-a") == []
    finally:
        sleeper.kill()


# -- export ---------------------------------------------------------------------------
def names_in(archive: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    return {member.name.removeprefix("./"): member for member in archive.getmembers()}


def test_export_to_a_file(ctr: Ctr, tmp_path: Path) -> None:
    ctr("run", "--name", "exported", "busybox", "sh", "-c", "echo data > /hello").ok()
    try:
        target = tmp_path / "out.tar"
        ctr("export", "-o", str(target), "exported").ok()
        with tarfile.open(target) as archive:
            members = names_in(archive)
            assert members["bin/busybox"].isfile()
            assert members["bin/busybox"].mode & 0o111
            hello = archive.extractfile(members["hello"])
            assert hello is not None and hello.read() == b"data\n"
            assert not any(name.startswith("proc/") for name in members), sorted(members)
    finally:
        ctr("rm", "exported").ok()


def test_export_to_stdout(ctr: Ctr) -> None:
    ctr("run", "--name", "exported", "busybox", "sh", "-c", "echo data > /hello").ok()
    try:
        short = ctr.container_ids()[0]
        result = ctr("export", short, binary=True)
        assert result.code == 0, str(result)
        with tarfile.open(fileobj=io.BytesIO(result.raw)) as archive:
            members = names_in(archive)
            assert "bin/busybox" in members
            hello = archive.extractfile(members["hello"])
            assert hello is not None and hello.read() == b"data\n"
    finally:
        ctr("rm", "exported").ok()
