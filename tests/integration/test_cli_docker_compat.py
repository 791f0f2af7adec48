"""The CLI as scripts written for Docker use it, on real containers: every --format json
parsed back, Docker's exit code on each verb's error path, the read verbs (version, info,
system df, top, history, wait of a created container), the container group."""

from __future__ import annotations

import json
import re
from typing import Any

from .support import Ctr, inspect, one_line_error, remove_all, run_detached, wait_for


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, text
    return [json.loads(line) for line in lines]


def test_every_listing_s_json_parses_back(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "lister", "-l", "a=b", "-v", "listvol:/data",
                           "busybox", "sleep", "1000")
        [row] = json_lines(ctr("ps", "--format", "json", trace=False).ok().out)
        assert (row["ID"], row["Names"], row["State"]) == (cid[:12], "lister", "running")
        assert row["Mounts"] == "listvol" and row["Networks"] == "shellctr0"
        [stat] = json_lines(ctr("stats", "--no-stream", "--format", "json", "lister",
                                trace=False).ok().out)
        assert stat["Name"] == "lister" and str(stat["CPUPerc"]).endswith("%")
        images = json_lines(ctr("images", "--format", "json", trace=False).ok().out)
        assert any(image["Repository"] == "busybox" for image in images)
        assert json_lines(ctr("image", "ls", "--format", "json", trace=False).ok().out) == images
        history = json_lines(ctr("history", "--format", "json", "busybox", trace=False).ok().out)
        assert history[0]["CreatedBy"] == "shellctr import"
        networks = json_lines(ctr("network", "ls", "--format", "json", trace=False).ok().out)
        assert "shellctr0" in [network["Name"] for network in networks]
        volumes = json_lines(ctr("volume", "ls", "--format", "json", trace=False).ok().out)
        assert [volume["Name"] for volume in volumes] == ["listvol"]
        for verb in (["inspect"], ["container", "inspect"]):
            [record] = json_lines(ctr(*verb, "--format", "json", "lister", trace=False).ok().out)
            assert record["Id"] == cid
            # Docker's name for the default network; the bridge keeps its own name
            assert record["HostConfig"]["NetworkMode"] == "bridge"
            assert "shellctr0" in record["NetworkSettings"]["Networks"]
        [image] = json_lines(ctr("image", "inspect", "--format", "json", "busybox",
                                 trace=False).ok().out)
        assert image["RepoTags"] == ["busybox:latest"]
        [network] = json_lines(ctr("network", "inspect", "-f", "json", "bridge",
                                   trace=False).ok().out)
        assert network["Name"] == "shellctr0"
        [volume] = json_lines(ctr("volume", "inspect", "-f", "json", "listvol",
                                  trace=False).ok().out)
        assert volume["Name"] == "listvol"
        [version] = json_lines(ctr("version", "--format", "json", trace=False).ok().out)
        assert version["Client"]["Version"] == version["Server"]["Version"]
        [info] = json_lines(ctr("info", "--format", "json", trace=False).ok().out)
        assert (info["ContainersRunning"], info["Volumes"], info["Driver"]) == (1, 1, "overlay2")
        df = json_lines(ctr("system", "df", "--format", "json", trace=False).ok().out)
        assert [(row["Type"], row["Active"]) for row in df][:3] == [
            ("Images", "1"), ("Containers", "1"), ("Local Volumes", "1")]
    finally:
        remove_all(ctr)
        ctr("volume", "rm", "listvol", trace=False)


def test_engine_errors_exit_1_and_run_s_125(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "busy", "-v", "usedvol:/v", "busybox", "sleep", "1000")
        ctr("network", "create", "usednet").ok()
        ctr("network", "connect", "usednet", "busy").ok()
        for argv in (["rm", "busy"], ["rmi", "busybox"], ["image", "rm", "busybox"],
                     ["network", "rm", "usednet"], ["volume", "rm", "usedvol"],
                     ["port", "busy", "80"], ["stop", "nosuch"], ["inspect", "nosuch"],
                     ["rmi", "nosuch"], ["image", "rm", "nosuch"], ["volume", "rm", "nosuch"],
                     ["network", "rm", "nosuch"], ["container", "rm", "nosuch"],
                     ["logs", "nosuch"], ["kill", "nosuch"]):
            result = ctr(*argv, trace=False)
            assert result.code == 1, str(result)
            assert len(result.err_lines) == 1 and "Traceback" not in result.err, str(result)
        message = one_line_error(ctr("volume", "rm", "usedvol", trace=False))
        assert "[busy]" in message  # the container by its name
        result = ctr("run", "--rm", "nosuch-image", trace=False)
        assert result.code == 125, str(result)
        result = ctr("ps", "--bogus", trace=False)
        assert result.code == 125 and result.err_lines == [
            "shellctr: unknown flag: --bogus (see 'shellctr ps --help')"], str(result)
        result = ctr("run", "--pid", "host", "busybox", "true", trace=False)
        assert result.code == 125 and "unknown flag: --pid" in result.err, str(result)
    finally:
        remove_all(ctr)
        ctr("network", "rm", "usednet", trace=False)
        ctr("volume", "rm", "usedvol", trace=False)


def test_exec_it_without_a_terminal_is_refused(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "noterm", "busybox", "sleep", "1000")
        result = ctr("exec", "-it", "noterm", "true", input="", trace=False)
        assert result.code == 1 and "the input device is not a TTY" in result.err, str(result)
    finally:
        remove_all(ctr)


def test_wait_of_a_created_container_returns_at_once(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "never", "busybox", "true").ok()
        assert ctr("wait", "never", timeout=20).ok().out == "0\n"
        assert ctr("container", "wait", "--condition", "not-running", "never",
                   timeout=20).ok().out == "0\n"
        waiter = ctr.popen("wait", "--condition", "removed", "never", trace=False)
        wchan = f"/proc/{waiter.process.pid}/wchan"
        wait_for(lambda: "nanosleep" in open(wchan).read(), "the waiter to poll")  # noqa: SIM115
        ctr("rm", "never").ok()
        result = waiter.wait()
        assert (result.code, result.out) == (0, "0\n"), str(result)
        bad = ctr("wait", "--condition", "sometime", "x", trace=False)
        assert bad.code == 1 and "invalid condition" in bad.err, str(bad)
    finally:
        remove_all(ctr)


def test_top_in_docker_s_layout(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "topped", "busybox", "sleep", "1000")
        pid = inspect(ctr, "topped")["State"]["Pid"]
        header, row = ctr("top", "topped", trace=False).ok().out.splitlines()
        starts = {m[0]: m.start() for m in re.finditer(r"\S+", header)}
        assert list(starts)[:2] == ["UID", "PID"] and list(starts)[-1] == "CMD"
        # every title starts a 20-wide column, its values under it, as Docker's
        assert all(start % 20 == 0 for start in starts.values()), header
        assert row[starts["PID"]:].split()[0] == str(pid)
        assert row[starts["CMD"]:] == "sleep 1000"
    finally:
        remove_all(ctr)


def test_history_shows_a_local_parent_and_ps_size(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "changer", "busybox", "sh", "-c",
                     "echo hello > /made; sleep 1000")
        wait_for(lambda: ctr("diff", "changer", trace=False).out.find("/made") >= 0,
                 "the file to be made")
        ctr("commit", "changer", "child:1").ok()
        busybox_id = inspect(ctr, "busybox")["Id"].removeprefix("sha256:")
        rows = ctr("history", "-q", "child:1", trace=False).ok().out.splitlines()
        assert rows[1:] == [busybox_id[:12]], rows  # not <missing>
        code_size = ctr("ps", "-s", "--format", "{{.Size}}", trace=False).ok().out
        assert re.fullmatch(r"\d+(\.\d+)?k?B \(virtual \d+(\.\d+)?[kM]B\)\n", code_size)
        usage = ctr("system", "df", "-v", trace=False).ok().out
        assert "child" in usage and "changer" in usage
    finally:
        remove_all(ctr)
        ctr("rmi", "child:1", trace=False)


def test_build_busybox_twice_is_the_same_image(ctr: Ctr) -> None:
    before = inspect(ctr, "busybox")["Id"]
    ctr("image", "build-busybox").ok()
    assert inspect(ctr, "busybox")["Id"] == before
    assert ctr("images", "-q", "--filter", "dangling=true", trace=False).ok().out == ""


def test_import_from_stdin_names_no_spool_file(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "src", "busybox").ok()
        tar = ctr("export", "src", binary=True, trace=False).ok().raw
        ctr("import", "-", "fromstdin:1", input=tar).ok()
        history = json_lines(ctr("history", "--format", "json", "fromstdin:1",
                                 trace=False).ok().out)
        assert history[0]["Comment"] == "Imported from -", history
    finally:
        remove_all(ctr)
        ctr("rmi", "fromstdin:1", trace=False)
