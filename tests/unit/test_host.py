"""The door's one executor: the pinned environment, stdin, failures and missing tools,
the same through plumbum and through the standard library (lean verbs)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from shellctr.core import runner as door
from shellctr.core.errors import HostCommandError
from shellctr.core.host import Host

BACKENDS = [pytest.param(False, id="plumbum"), pytest.param(True, id="lean")]


def quiet(lean: bool) -> Host:
    return Host(out=io.StringIO(), err=io.StringIO(), lean=lean)


@pytest.mark.parametrize("lean", BACKENDS)
def test_commands_run_with_the_pinned_environment_not_the_callers(
        lean: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("SHELLCTR_SECRET", "x")
    lines = quiet(lean).run(["env"]).splitlines()
    assert sorted(lines) == ["LC_ALL=C", f"PATH={door.SYSTEM_PATH}"]


@pytest.mark.parametrize("lean", BACKENDS)
def test_stdin_is_dev_null_unless_the_step_feeds_it(lean: bool) -> None:
    host = quiet(lean)
    assert host.run(["cat"]) == ""  # would wait for the caller's stdin if it were inherited
    assert host.run(["cat"], input="fed\n") == "fed\n"


@pytest.mark.parametrize("lean", BACKENDS)
def test_a_failing_command_is_one_line_with_its_last_stderr_line(lean: bool) -> None:
    with pytest.raises(HostCommandError) as raised:
        quiet(lean).run(["sh", "-c", "echo first >&2; echo 'no such device' >&2; exit 3"])
    assert raised.value.message == "sh failed: no such device"
    assert raised.value.hint == (
        "command: sh -c 'echo first >&2; echo '\"'\"'no such device'\"'\"' >&2; exit 3'")


@pytest.mark.parametrize("lean", BACKENDS)
def test_a_failure_without_stderr_names_the_exit_status(lean: bool) -> None:
    with pytest.raises(HostCommandError) as raised:
        quiet(lean).run(["false"])
    assert str(raised.value) == "false failed: exit status 1 (command: false)"


@pytest.mark.parametrize("lean", BACKENDS)
def test_a_missing_tool_names_its_debian_package(lean: bool, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(door.ENVIRONMENT, "PATH", str(tmp_path))  # nothing is installed
    with pytest.raises(HostCommandError) as raised:
        quiet(lean).run(["ip", "link", "show"])
    assert str(raised.value) == "ip is not installed (apt-get install iproute2)"
    with pytest.raises(HostCommandError, match=r"^iptables is not installed"):
        quiet(lean).probe(["iptables", "--list-rules"])


@pytest.mark.parametrize("lean", BACKENDS)
def test_a_probe_returns_code_and_both_streams(lean: bool) -> None:
    code, out, err = quiet(lean).probe(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (code, out, err) == (4, "out\n", "err\n")


def test_a_missing_tool_is_one_line_and_exit_1_on_the_command_line(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(door.ENVIRONMENT, "PATH", str(tmp_path / "empty"))
    code, _, err = cli("network", "create", "--subnet", "10.99.0.0/24", "lab")
    assert code == 1
    assert err.endswith("ip is not installed (apt-get install iproute2)\n")
    assert err.count("\n") == 1


def test_the_doors_devnull_is_subprocess_devnull() -> None:
    """host.DEVNULL is spelled out so that importing the door does not import subprocess."""
    import subprocess

    from shellctr.core import host

    assert host.DEVNULL == subprocess.DEVNULL


def test_a_spawn_without_pipes_passes_only_its_fds_and_resets_sigpipe(tmp_path: Path) -> None:
    """The door's lean spawn (os.posix_spawn, not subprocess): the given env exactly, stdio
    as given, the pass_fds (close-on-exec though they are here), no other inherited fd,
    SIGPIPE (which Python ignores) at its default, a session of its own; shown as env -i."""
    import os
    import shlex

    from shellctr.core.hostio import Spawned

    kept_read, kept = os.pipe()  # close-on-exec, as Python makes every fd
    stray_read, stray = os.pipe()
    os.set_inheritable(stray, True)  # as an fd we inherited from our caller would be
    out = (tmp_path / "out").open("wb")
    script = ('ls /proc/self/fd; grep -E "^SigIgn" /proc/self/status; '
              'echo "sid=$(cut -d " " -f 6 /proc/$$/stat)"; tr "\\0" "\\n" </proc/$$/environ')
    host = Host(trace=True, out=io.StringIO(), err=io.StringIO())
    try:
        process = host.spawn(["/bin/sh", "-c", script], env={"A": "1 2"},
                             stdin=-3, stdout=out, stderr=out, pass_fds=(kept,),
                             start_new_session=True)
        assert isinstance(process, Spawned)
        assert process.wait() == 0 and process.poll() == 0
    finally:
        out.close()
        for fd in (kept_read, kept, stray_read, stray):
            os.close(fd)
    lines = (tmp_path / "out").read_text().split("\n")
    fds = {int(line) for line in lines if line.isdigit()}
    assert kept in fds and stray not in fds and fds <= {0, 1, 2, 3, kept}  # 3: ls's own
    ignored = next(line for line in lines if line.startswith("SigIgn:")).split()[1]
    assert not int(ignored, 16) >> (13 - 1) & 1  # SIGPIPE (13) at its default
    assert f"sid={os.getsid(0)}" not in lines and any(line.startswith("sid=") for line in lines)
    assert [line for line in lines if "=" in line and not line.startswith("sid=")] == ["A=1 2"]
    assert isinstance(host.err, io.StringIO)
    assert host.err.getvalue() == (
        f"+ env --ignore-environment 'A=1 2' /bin/sh -c {shlex.quote(script)}\n")


def test_a_spawned_process_killed_by_a_signal_waits_as_popen_does() -> None:
    from shellctr.core import hostio

    process = hostio.spawn(["/bin/sh", "-c", "kill -TERM $$"], {}, (None, None, None), (), False)
    assert process.wait() == -15 and process.returncode == -15
    with pytest.raises(FileNotFoundError):
        hostio.spawn(["/no/such/program"], {}, (None, None, None), (), False)


def test_remove_tree_removes_links_as_themselves_never_what_they_point_to(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep").write_text("host file")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file").write_text("x")
    (tree / "a" / "to-dir").symlink_to(outside)  # a container's link out of its tree
    (tree / "to-file").symlink_to(outside / "sub" / "keep")
    (tree / "dangling").symlink_to(tmp_path / "nothing")
    (tree / "a" / "locked").mkdir(mode=0)  # as overlay's work/work
    Host(out=io.StringIO(), err=io.StringIO()).remove_tree(tree)
    assert not tree.exists() and not tree.is_symlink()
    assert (outside / "sub" / "keep").read_text() == "host file"


def test_now_iso_is_datetimes_isoformat_in_utc() -> None:
    from datetime import UTC, datetime

    from shellctr.core.store import now_iso

    before = datetime.now(UTC)
    stamp = now_iso()
    after = datetime.now(UTC)
    assert stamp.endswith("Z") and "T" in stamp
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before <= parsed <= after
    assert parsed.isoformat().replace("+00:00", "Z") == stamp


@pytest.mark.parametrize("text", ["nameserver 10.2.0.1\n", "nameserver 10.2.0.1\n" * 40, ""],
                         ids=["shorter", "longer", "empty"])
def test_rewrite_file_replaces_the_text_in_place(tmp_path: Path, text: str) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\nsearch example.org\n")
    inode = path.stat().st_ino
    host = quiet(True)
    host.trace = True
    host.rewrite_file(path, text)
    assert path.read_text() == text and path.stat().st_ino == inode  # bind mounts see it
    assert host.err.getvalue() == (  # type: ignore[attr-defined]
        f"+ cat > {path} <<'EOF'\n{text}EOF\n" if text else f"+ printf %s '' | cat > {path}\n")
