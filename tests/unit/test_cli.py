"""The CLI in-process: exit codes, one-line errors, --dry-run scripts, listings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import shellctr.core.host
from shellctr.cli.flags import verb_of
from shellctr.cli.parser import VerbTable, build_parser
from shellctr.core.layout import Layout

from .helpers import (
    MONITOR,
    MONITOR_NAME,
    ROOTFS,
    T2,
    FakeInit,
    RecordingHost,
    fake_tar,
    install_image,
    snapshot,
    tar_bytes,
)

pytestmark = pytest.mark.usefixtures("restore_signals")  # `run` forwards signals

HEADER_PS = "CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES"
HEADER_IMAGES = "REPOSITORY   TAG   IMAGE ID   CREATED   SIZE"


@pytest.fixture
def fake() -> FakeInit:
    """What runs in place of the monitor (and the container) in `recording`."""
    return FakeInit()


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch, fake: FakeInit) -> list[RecordingHost]:
    """The CLI's Host is a RecordingHost: tar is done in Python, the monitor by a fake."""
    hosts: list[RecordingHost] = []

    def make(**kwargs: Any) -> RecordingHost:
        host = RecordingHost(**kwargs, err=sys.stderr,
                             substitute={"tar": fake_tar, MONITOR_NAME: fake})
        hosts.append(host)
        return host

    monkeypatch.setattr(shellctr.core.host, "Host", make)
    return hosts


@pytest.fixture
def tar(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    path.write_bytes(tar_bytes(ROOTFS))
    return path


def one_error_line(err: str, starting: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(starting), err


@pytest.mark.parametrize("args", [
    ["ps", "--bogus"],
    ["--bogus", "ps"],
    ["run", "--bogus", "busybox"],
])
def test_unknown_flag_is_one_line_and_125(cli: Any, args: list[str]) -> None:
    code, out, err = cli(*args)
    assert code == 125 and out == ""
    one_error_line(err, "shellctr: unknown flag: ")
    assert err.endswith(" --help')\n")


# the words of the static docker CLI (cobra) for the same command lines, exit 1
@pytest.mark.parametrize(("args", "message"), [
    (["images", "one", "two"], "'shellctr images' requires at most 1 argument"),
    (["rename", "a", "b", "c"], "'shellctr rename' requires 2 arguments"),
    (["port", "a", "b", "c"], "'shellctr port' requires at least 1 and at most 2 arguments"),
    (["logs", "a", "b"], "'shellctr logs' requires 1 argument"),
    (["ps", "x"], "'shellctr ps' accepts no arguments"),
    (["network", "ls", "x"], "'shellctr network ls' accepts no arguments"),
])
def test_too_many_operands_are_refused_in_dockers_words(cli: Any, args: list[str],
                                                        message: str) -> None:
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    one_error_line(err, f"shellctr: {message} (see '")
    assert err.endswith(" --help')\n")


@pytest.mark.parametrize(("args", "message"), [
    ([], "shellctr: 'shellctr' requires at least 1 argument"),
    (["nosuchverb"], "shellctr: unknown command: shellctr nosuchverb"),
    (["rm"], "shellctr: 'shellctr rm' requires at least 1 argument"),
    (["run"], "shellctr: 'shellctr run' requires at least 1 argument"),  # CMD is optional
])
def test_missing_operands_and_unknown_verbs_exit_1_as_docker(cli: Any, args: list[str],
                                                             message: str) -> None:
    code, out, err = cli(*args)
    assert code == 1 and out == ""  # cobra's code for these, as the docker CLI's
    one_error_line(err, message)


def test_run_pull_never_of_a_missing_image_is_one_line(cli: Any, layout: Layout) -> None:
    code, out, err = cli("run", "--pull", "never", "nope", "true")
    assert code == 125 and out == ""
    one_error_line(err, "shellctr: unable to find image 'nope:latest' locally")


def test_run_with_an_empty_env_name(cli: Any, layout: Layout) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    code, out, err = cli("run", "-e", "=x", "busybox", "true")
    assert code == 125 and out == ""
    one_error_line(err, "shellctr: invalid environment variable: '=x'")
    assert snapshot(layout.root) == before


def test_dry_run_run_detach_prints_a_valid_script_and_changes_nothing(
        cli: Any, layout: Layout) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    code, out, err = cli("--dry-run", "run", "-d", "--name", "web", "-l", "app=shop",
                         "--restart", "always", "busybox", "sleep", "60")
    assert (code, err) == (0, "")  # no id printed: stdout is the script
    assert out.startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n"], input=out.encode(), check=True)
    lines = out.splitlines()
    # detached: the monitor in a session of its own, running the `_exited` hook at the end
    monitor = [line for line in lines if line.startswith(f"setsid --fork {MONITOR} ")]
    assert len(monitor) == 1 and " --then 7 " in monitor[0]
    assert " -- unshare --mount --uts --ipc --net --pid --propagation private -- " in monitor[0]
    assert f" -- {MONITOR} --reap -- " in monitor[0]
    assert not any(line.startswith("rmdir ") for line in lines)  # the hook's job
    # then, as `run -d` once init.py is ready, the script records it running and leaves
    started = [n for n, line in enumerate(lines)
               if re.search(f"--runroot {layout.runroot} _started [0-9a-f]{{64}}$", line)]
    assert len(started) == 1 and started[0] > lines.index(monitor[0])
    assert any('"restart_policy":"always"' in line for line in lines)  # the config record
    assert snapshot(layout.root) == before
    assert not layout.runroot.exists()


def test_run_it_without_a_terminal_is_refused_before_create(
        cli: Any, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    install_image(layout)
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    before = snapshot(layout.root)
    code, out, err = cli("run", "-it", "busybox")
    assert (code, out) == (1, "")  # Docker's code for it
    one_error_line(err, "shellctr: the input device is not a TTY")
    assert snapshot(layout.root) == before  # no container left behind


def test_exec_it_without_a_terminal_is_refused_as_run_is(
        cli: Any, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    install_image(layout)
    assert cli("create", "--name", "web", "busybox")[0] == 0
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    code, out, err = cli("exec", "-it", "web", "sh")
    assert (code, out) == (1, "")
    one_error_line(err, "shellctr: the input device is not a TTY")


def test_import_of_a_missing_file(cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("import", str(tmp_path / "nope.tar"))
    assert code == 1
    one_error_line(err, "shellctr: no such file: ")


def test_dry_run_import_prints_a_bash_script_and_changes_nothing(
        cli: Any, layout: Layout, tar: Path) -> None:
    code, out, err = cli("--dry-run", "import", str(tar), "base:1")
    assert (code, err) == (0, "")
    assert out.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail\n" in out
    assert "\ntar --extract --file=" in out and "\nmv --no-target-directory " in out
    subprocess.run(["bash", "-n"], input=out.encode(), check=True)
    assert not layout.root.exists() and not layout.runroot.exists()


@pytest.mark.parametrize("with_lock", [True, False])
def test_dry_run_import_into_an_existing_root_changes_nothing(
        cli: Any, layout: Layout, tar: Path, with_lock: bool) -> None:
    if with_lock:
        install_image(layout)
    else:
        layout.root.mkdir()  # made by hand: not even a lock file yet
    before = snapshot(layout.root)
    code, out, _ = cli("--dry-run", "import", str(tar), "busybox")
    assert code == 0 and "\n# record the image\n" in out and out.startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n"], input=out.encode(), check=True)
    assert snapshot(layout.root) == before


def test_dry_run_import_script_replayed_by_bash_imports_the_image(
        cli: Any, layout: Layout, tmp_path: Path) -> None:
    # members owned by the caller, so that tar --same-owner needs no root
    tar = tmp_path / "mine.tar"
    tar.write_bytes(tar_bytes(ROOTFS, owner=(os.getuid(), os.getgid())))
    _, script, _ = cli("--dry-run", "import", str(tar), "base:1")
    subprocess.run(["bash"], input=script.encode(), check=True, capture_output=True)
    code, out, _ = cli("images")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["base", "1"]]
    layer = next(p for p in layout.layers_dir.iterdir())
    assert (layer / "bin" / "sh").read_bytes() == b"#!fake shell\n"


def test_dry_run_rmi_of_a_missing_image(cli: Any, layout: Layout) -> None:
    code, out, err = cli("--dry-run", "rmi", "nope")
    assert code == 1 and out == ""  # Docker's code for an unknown image
    one_error_line(err, "shellctr: unable to find image 'nope:latest' locally")


def test_dry_run_run_prints_a_valid_script_and_changes_nothing(cli: Any,
                                                               layout: Layout) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    code, out, err = cli("--dry-run", "run", "--rm", "--name", "web", "busybox", "echo", "hi")
    assert (code, err) == (0, "")
    subprocess.run(["bash", "-n"], input=out.encode(), check=True)
    lines = out.splitlines()
    assert any(line.startswith(f"{MONITOR} --attach ") and
               " -- unshare --mount --uts --ipc --net --pid --propagation private -- " in line
               for line in lines)
    assert any(line.startswith("#   setpriv --bounding-set=-all,+chown,") for line in lines)
    # the end as this process would record it: the hook does (--rm: it removes it); the
    # script ends with the container's status, not stopped by set -e before its teardown
    assert re.search(f"--runroot {layout.runroot} _exited [0-9a-f]{{64}}$", lines[-2])
    assert lines[-1] == 'exit "$status"'
    # while the monitor runs in the script's foreground, a hook beside it (no stdio of
    # the script's) records the container running, as this process would
    monitor = next(n for n, line in enumerate(lines) if line.startswith(f"{MONITOR} --attach "))
    assert re.fullmatch(f"setsid --fork .* --runroot {layout.runroot} _started [0-9a-f]{{64}}"
                        " </dev/null >/dev/null 2>&1", lines[monitor - 2])
    assert snapshot(layout.root) == before
    assert not layout.runroot.exists()


def test_images_quiet_on_an_empty_root(cli: Any, layout: Layout) -> None:
    assert cli("images", "-q") == (0, "", "")
    assert not layout.root.exists()


def test_ps_all_on_an_empty_root_prints_only_the_header(cli: Any) -> None:
    assert cli("ps", "-a") == (0, HEADER_PS + "\n", "")
    assert cli("ps", "-q") == (0, "", "")


def test_images_on_an_empty_root_prints_only_the_header(cli: Any) -> None:
    assert cli("images") == (0, HEADER_IMAGES + "\n", "")


def test_trace_prints_each_command_to_stderr(cli: Any, recording: list[RecordingHost],
                                             tar: Path) -> None:
    code, out, err = cli("--trace", "import", str(tar))
    assert code == 0 and out.startswith("sha256:")
    traced = [line for line in err.splitlines() if line.startswith("+ ")]
    assert [line.split()[1] for line in traced] == [
        "mkdir", "mkdir", "mkdir", "mkdir", "mkdir", "mkdir", "mkdir", "cat", "mkdir", "tar",
        "mv", "mv", "printf", "cat"]  # blobs/ is made 0700 itself (no other user reads it)
    assert traced[9].startswith("+ tar --extract --file=")


def test_import_run_ps_rm_rmi(cli: Any, layout: Layout, recording: list[RecordingHost],
                              tar: Path) -> None:
    code, out, err = cli("import", "--change", 'CMD ["sh"]', str(tar), "base:1")
    assert code == 0 and err == ""
    image_id = out.strip().removeprefix("sha256:")
    assert len(image_id) == 64

    code, out, _ = cli("images")
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out.splitlines()[1].split()[:3] == ["base", "1", image_id[:12]]
    assert out.splitlines()[1].endswith("43B")
    assert cli("images", "-q") == (0, image_id[:12] + "\n", "")

    assert cli("run", "--name", "web", "base:1", "echo", "hi")[0] == 0
    code, out, _ = cli("ps", "-a")
    header, row = out.splitlines()
    assert header.split()[:2] == ["CONTAINER", "ID"]
    assert '"echo hi"' in row and "Exited (0) Less than a second ago" in row
    assert row.split()[1] == "base:1" and row.endswith("web")
    assert cli("ps") == (0, HEADER_PS + "\n", "")

    code, _, err = cli("rmi", "base:1")
    assert code == 1
    one_error_line(err, "shellctr: unable to remove image base:1: container ")

    assert cli("rm", "web") == (0, "web\n", "")
    assert cli("rm", "web")[0] == 1  # Docker: no such container
    assert cli("rmi", "base:1") == (0, f"Untagged: base:1\nDeleted: sha256:{image_id}\n", "")
    assert list(layout.layers_dir.iterdir()) == []
    assert cli("images", "-q") == (0, "", "")


# -- detached containers, with the monitor faked ------------------------------------------
def test_run_detach_prints_the_id_and_the_container_lives_on(
        cli: Any, layout: Layout, recording: list[RecordingHost], tar: Path,
        fake: FakeInit) -> None:
    assert cli("import", "--change", 'CMD ["sh"]', str(tar), "base:1")[0] == 0
    fake.code = 3
    code, out, err = cli("run", "-d", "--name", "web", "-l", "app=shop", "-l", "tier=front",
                         "--restart", "on-failure:2", "base:1", "sleep", "60")
    assert (code, err) == (0, "")
    cid = out.strip()
    assert len(cid) == 64 and out == cid + "\n"
    assert fake.attach is False and fake.hook[-2:] == ["_exited", cid]
    assert fake.process is not None
    fake.process.wait(timeout=10)  # the "container" ended: exit.json holds its code

    assert cli("wait", "web") == (0, "3\n", "")
    assert cli("ps", "-a", "--filter", "label=app=shop", "--format",
               "{{.Names}} {{.State}} {{.Labels}}") == (
        0, "web exited app=shop,tier=front\n", "")
    assert cli("ps", "-a", "-f", "exited=0", "-q") == (0, "", "")
    assert cli("ps", "-a", "-f", "exited=3", "-q") == (0, cid[:12] + "\n", "")
    code, out, _ = cli("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} "
                       "{{.State.FinishedAt}} {{.HostConfig.RestartPolicy.Name}}:"
                       "{{.HostConfig.RestartPolicy.MaximumRetryCount}} "
                       "{{json .Config.Labels}}", cid[:6])
    assert (code, out) == (0, f'/web exited 3 {T2} on-failure:2 {{"app":"shop","tier":"front"}}\n')
    assert cli("rename", "web", "api") == (0, "", "")
    assert cli("ps", "-a", "--format", "{{.Names}}") == (0, "api\n", "")
    assert cli("rm", "api") == (0, "api\n", "")


def test_logs_of_a_container(cli: Any, layout: Layout, recording: list[RecordingHost],
                             tar: Path) -> None:
    assert cli("import", "--change", 'CMD ["sh"]', str(tar), "base:1")[0] == 0
    assert cli("create", "--name", "web", "base:1")[0] == 0
    cid = next(iter(layout.containers_dir.iterdir())).name
    assert cli("logs", "web") == (0, "", "")  # nothing printed yet: no log at all
    log = layout.container_log(cid)
    log.write_text(
        '{"log":"one\\n","stream":"stdout","time":"2026-11-29T19:00:01.000000001Z"}\n'
        '{"log":"oops\\n","stream":"stderr","time":"2026-11-29T19:00:02Z"}\n'
        '{"log":"two\\n","stream":"stdout","time":"2026-11-29T19:00:03Z"}\n')
    assert cli("logs", "web") == (0, "one\ntwo\n", "oops\n")
    assert cli("logs", "--tail", "1", "web") == (0, "two\n", "")
    assert cli("logs", "-n", "2", "-t", "web") == (
        0, "2026-11-29T19:00:03Z two\n", "2026-11-29T19:00:02Z oops\n")
    assert cli("logs", "--since", "2026-11-29T19:00:02Z", "--until", "2026-11-29T19:00:02Z",
               "web") == (0, "", "oops\n")
    assert cli("logs", "-f", "web") == (0, "one\ntwo\n", "oops\n")  # not running: ends
    # --details: the log's extra attributes (none), a blank, the line; after -t's time
    assert cli("logs", "--details", "-f", "web") == (0, " one\n two\n", " oops\n")
    assert cli("logs", "--details", "-t", "-n", "1", "web") == (
        0, "2026-11-29T19:00:03Z  two\n", "")
    code, _, err = cli("logs", "--tail", "x", "web")
    assert code == 1
    one_error_line(err, "shellctr: invalid --tail 'x'")
    code, _, err = cli("logs", "--since", "yesterday", "web")
    assert code == 1
    one_error_line(err, "shellctr: invalid time 'yesterday'")


def test_inspect_of_an_image_and_of_nothing(cli: Any, layout: Layout) -> None:
    install_image(layout)
    code, out, err = cli("inspect", "-f", "{{.Id}} {{.RepoTags}}", "busybox")
    assert (code, out, err) == (0, f"sha256:{'ab' * 32} [busybox:latest]\n", "")
    code, out, err = cli("inspect", "nope")
    assert (code, out) == (1, "[]\n")
    one_error_line(err, "shellctr: no such object: nope")
    code, out, err = cli("inspect", "-f", "{{.Nope}}", "busybox")
    assert code == 1
    one_error_line(err, "shellctr: template: :1:2: executing \"\" at <.Nope>: can't evaluate "
                   "field Nope in type struct")


@pytest.mark.parametrize(("args", "message", "code"), [
    (["kill", "-s", "NOPE", "web"], "shellctr: invalid signal: NOPE", 1),
    (["ps", "--filter", "color=red"], "shellctr: invalid filter 'color=red'", 1),
    (["run", "--restart", "sometimes", "busybox"], "shellctr: invalid restart policy", 125),
    (["run", "--rm", "--restart", "always", "busybox"],
     "shellctr: conflicting options: --restart and --rm", 125),
    (["create", "-l", "=x", "busybox"], "shellctr: invalid label '=x'", 125),
    (["start", "-a", "one", "two"], "shellctr: you cannot attach to more than one container",
     125),
])
def test_verb_errors_are_one_line_with_docker_s_code(cli: Any, layout: Layout,
                                                     args: list[str], message: str,
                                                     code: int) -> None:
    """1 for an engine error, as the Docker CLI; 125 for run/create/start -a."""
    install_image(layout)
    before = snapshot(layout.root)
    got, out, err = cli(*args)
    assert (got, out) == (code, "")
    one_error_line(err, message)
    assert snapshot(layout.root) == before


def test_each_failing_container_is_reported_on_its_own_line(cli: Any, layout: Layout) -> None:
    install_image(layout)
    assert cli("create", "--name", "web", "busybox")[0] == 0
    code, out, err = cli("stop", "nope", "web", "gone")
    assert (code, out) == (1, "web\n")  # stopping a stopped container is no error
    assert err == "shellctr: no such container: nope\nshellctr: no such container: gone\n"
    code, out, err = cli("kill", "web")
    assert (code, out) == (1, "")
    one_error_line(err, "shellctr: container web is not running")


@pytest.mark.parametrize("flags", [["--cpus", "99"], ["-m", "1k"], ["--cpuset-cpus", "x"],
                                   ["--pids-limit", "many"]])
def test_run_with_an_impossible_limit_is_refused_before_create(
        cli: Any, layout: Layout, cgroup_root: Path, flags: list[str]) -> None:
    for name in ("memory", "cpu", "cpuset", "pids"):
        (cgroup_root / name).mkdir()
    (cgroup_root / "cpuset" / "cpuset.effective_cpus").write_text("0-1\n")
    install_image(layout)
    before = snapshot(layout.root)
    code, out, err = cli("run", "--rm", *flags, "busybox", "true")
    assert (code, out) == (125, "")
    assert len(err.splitlines()) == 1 and err.startswith("shellctr: "), err
    assert snapshot(layout.root) == before


def test_update_needs_a_flag(cli: Any) -> None:
    code, _, err = cli("update", "web")
    assert code == 1
    one_error_line(err, "shellctr: update needs at least one flag to change")


@pytest.mark.usefixtures("fixed")
def test_update_and_stats_of_a_created_container(cli: Any, layout: Layout,
                                                 cgroup_root: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    (cgroup_root / "pids").mkdir()
    install_image(layout)
    assert cli("create", "--name", "web", "busybox", "true")[0] == 0
    code, out, _ = cli("update", "--pids-limit", "20", "--restart", "always", "web")
    assert (code, out) == (0, "web\n")
    assert cli("inspect", "-f", "{{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
               "web")[1] == "20 always\n"
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    code, out, _ = cli("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}",
                       "web")
    assert (code, out) == (0, "web 0 0B / 0B\n")  # not running: zeros, as Docker
    code, out, _ = cli("stats", "--no-stream")
    assert out.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT",
                           "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]


@pytest.mark.parametrize(("argv", "verb"), [
    (["--root", "/r", "--trace", "run", "-d", "busybox"], "run"),
    (["--runroot", "ps", "images"], "images"),  # ps is --runroot's value here
    (["--root=/r", "ps"], "ps"), (["--help"], None), ([], None)])
def test_the_verb_is_found_before_parsing(argv: list[str], verb: str | None) -> None:
    assert verb_of(argv) == verb


def test_only_the_verb_on_the_command_line_gets_a_parser() -> None:
    verbs = next(action for action in build_parser(["ps", "-a"])._actions
                 if isinstance(action, VerbTable))
    assert list(verbs.choices) == ["ps"]
    assert build_parser(["ps", "-a"]).parse_args(["ps", "-a"]).all is True
    every = next(action for action in build_parser()._actions if isinstance(action, VerbTable))
    assert {"run", "ps", "image", "volume", "network", "attach"} <= set(every.choices)


def test_each_verb_is_registered_by_the_module_the_verb_table_names() -> None:
    import importlib

    from shellctr.cli.flags import MODULES, VERB_MODULES
    from shellctr.cli.parser import Parser

    registered = {}
    for name in MODULES:
        verbs = Parser().add_subparsers(dest="verb")
        importlib.import_module(f"shellctr.cli.{name}").register(verbs)
        registered.update(dict.fromkeys(verbs.choices, name))
    assert registered == VERB_MODULES


def test_help_is_as_wide_as_columns_says(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import shutil

    from shellctr.cli.parser import Formatter

    for columns in ("40", "200", "", "bogus"):
        monkeypatch.setenv("COLUMNS", columns)
        ours, theirs = Formatter("prog"), argparse.HelpFormatter("prog")
        assert ours._width == theirs._width == shutil.get_terminal_size().columns - 2


def test_an_unknown_verb_is_refused_as_docker_does(cli: Any) -> None:
    code, out, err = cli("bogus")
    assert out == ""
    assert code == 1 and err == ("shellctr: unknown command: shellctr bogus "
                                 "(see 'shellctr --help')\n")


def test_sigterm_unwinds_the_command_and_exits_143(cli: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed command undoes what it did so far, as a failing one: no half-made state,
    no temporary file left behind."""
    from shellctr.cli import views as cli_views
    from shellctr.core.host import Rollback

    undone: list[str] = []

    def killed_half_way(args: Any, ctx: Any) -> int:
        with Rollback(ctx.host) as rollback:
            rollback.push("the first step", lambda: undone.append("the first step"))
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(cli_views, "cmd_ps", killed_half_way)
    before = signal.getsignal(signal.SIGTERM)
    code, out, err = cli("ps")
    assert (code, undone, out, err) == (143, ["the first step"], "", "")
    assert signal.getsignal(signal.SIGTERM) is before  # main leaves the process as it was
