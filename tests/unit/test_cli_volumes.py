"""The storage verbs in-process: volume create/ls/inspect/rm/prune, and the run flags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shellctr.core.layout import Layout

from .helpers import install_image, snapshot


def test_volume_verbs(cli: Any, layout: Layout) -> None:
    assert cli("volume", "create", "-l", "a=b", "--name", "one") == (0, "one\n", "")
    assert cli("volume", "create", "two")[:2] == (0, "two\n")
    code, out, _ = cli("volume", "ls")
    assert (code, out) == (0, "DRIVER    VOLUME NAME\nlocal     one\nlocal     two\n")
    code, out, _ = cli("volume", "inspect", "-f", "{{.Name}} {{.Mountpoint}}", "one")
    assert out == f"one {layout.volume_data('one')}\n"
    [record] = json.loads(cli("volume", "inspect", "one")[1])
    assert sorted(record) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name",
                              "Options", "Scope"]
    assert record["Labels"] == {"a": "b"} and record["Options"] is None
    assert cli("volume", "ls", "-q", "--filter", "label=a")[1] == "one\n"
    assert cli("volume", "rm", "one", "nope") == (
        1, "one\n", "shellctr: get nope: no such volume\n")
    assert cli("volume", "rm", "-f", "nope")[0] == 0
    assert cli("volume", "prune", "-f") == (0, "Total reclaimed space: 0B\n", "")
    assert cli("volume", "prune", "-f", "-a")[1] == \
        "Deleted Volumes:\ntwo\n\nTotal reclaimed space: 0B\n"


def test_volume_ls_label_filters_must_all_hold(cli: Any) -> None:
    assert cli("volume", "create", "-l", "a=1", "-l", "b=2", "both")[0] == 0
    assert cli("volume", "create", "-l", "a=1", "only-a")[0] == 0
    ls = ("volume", "ls", "-q", "--filter")
    assert cli(*ls, "label=a", "--filter", "label=b")[1] == "both\n"
    assert cli(*ls, "label=a=1", "--filter", "label=b=3")[1] == ""
    assert cli(*ls, "label=a")[1] == "both\nonly-a\n"
    # other keys' values are still alternatives
    assert cli(*ls, "name=both", "--filter", "name=only-a")[1] == "both\nonly-a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["volume", "create", "a/b"], 'create a/b: "a/b" includes invalid characters'),
    (["volume", "create", "--name", "x1", "x2"], "conflicting options"),
    (["volume", "ls", "-f", "color=red"], "invalid filter 'color=red'"),
])
def test_volume_errors(cli: Any, layout: Layout, args: list[str], message: str) -> None:
    code, out, err = cli(*args)
    assert code == 1 and out == "" and err.startswith(f"shellctr: {message}")
    assert not layout.volumes_dir.exists()


@pytest.mark.parametrize("flags", [
    ["-v", "relative/path:/x"], ["-v", "/x:relative"], ["--mount", "type=bogus,target=/x"],
    ["--tmpfs", "relative"], ["--volumes-from", "nobody"], ["--mount", "type=volume"],
])
def test_bad_storage_flags_create_nothing(cli: Any, layout: Layout, flags: list[str]) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    code, out, err = cli("run", "--rm", *flags, "busybox", "true")
    assert code == 125 and out == "" and err.count("\n") == 1 and err.startswith("shellctr: ")
    assert snapshot(layout.root) == before


def test_cp_refuses_two_hosts_or_two_containers(cli: Any) -> None:
    assert cli("cp", "/a", "/b")[2] == "shellctr: must specify at least one container source " \
        "(use CTR:PATH)\n"
    assert cli("cp", "a:/x", "b:/y")[2].startswith(
        "shellctr: copying between containers is not supported")
