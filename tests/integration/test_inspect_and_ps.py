"""`inspect` (Docker-shaped JSON, -f templates) and `ps` (--filter, --format, -n, -l)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from .support import (
    SHORT_ID,
    Ctr,
    Worker,
    inspect,
    one_line_error,
    remove_all,
    rfc3339,
    run_detached,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
ZERO_TIME = "0001-01-01T00:00:00Z"


def test_inspect_is_docker_shaped(ctr: Ctr, worker: Worker) -> None:
    try:
        cid = run_detached(ctr, "--name", "shape", "-l", "tier=web", "--label", "note=x y",
                           "-e", "K=V", "-w", "/srv", "-u", "nobody", "-h", "shapehost",
                           "--restart", "on-failure:3", "busybox", "sleep", "1000")
        record = inspect(ctr, "shape")
        assert record["Id"] == cid
        assert record["Name"] == "/shape"
        assert RFC3339.match(record["Created"]), record["Created"]
        assert (record["Path"], record["Args"]) == ("sleep", ["1000"])
        state = record["State"]
        assert (state["Status"], state["Running"], state["Paused"], state["OOMKilled"],
                state["ExitCode"]) == ("running", True, False, False, 0), state
        assert isinstance(state["Pid"], int) and state["Pid"] > 0, state
        assert RFC3339.match(state["StartedAt"]) and state["StartedAt"] != ZERO_TIME, state
        assert state["FinishedAt"] == ZERO_TIME, state
        config = record["Config"]
        assert config["Image"] == "busybox"
        assert "K=V" in config["Env"] and "HOSTNAME=shapehost" in config["Env"], config
        assert config["Cmd"] == ["sleep", "1000"] and config["Entrypoint"] is None, config
        assert (config["WorkingDir"], config["User"], config["Hostname"]) \
            == ("/srv", "nobody", "shapehost"), config
        assert config["Labels"] == {"tier": "web", "note": "x y"}, config
        assert record["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                         "MaximumRetryCount": 3}
        assert record["HostConfig"]["AutoRemove"] is False
        assert record["Mounts"] == []
        assert Path(record["LogPath"]) == worker.root / "containers" / cid / "container.log"
        assert Path(record["LogPath"]).is_file()

        ctr("stop", "-t", "0", "shape").ok()
        state = inspect(ctr, "shape")["State"]
        assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) \
            == ("exited", False, 0, 137), state
        assert RFC3339.match(state["FinishedAt"]), state
        assert rfc3339(state["FinishedAt"]) >= rfc3339(state["StartedAt"]), state
    finally:
        remove_all(ctr)


def test_inspect_format_templates(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "templated", "-l", "b=2", "-l", "a=1", "busybox",
                     "sleep", "1000")
        pid = ctr("inspect", "-f", "{{.State.Pid}}", "templated", trace=False).ok().out
        assert pid.strip().isdigit(), pid
        assert Path(f"/proc/{pid.strip()}/cmdline").read_bytes() == b"sleep\x001000\x00"
        labels = ctr("inspect", "--format", "{{json .Config.Labels}}", "templated",
                     trace=False).ok().out
        assert json.loads(labels) == {"a": "1", "b": "2"}, labels
        assert ctr("inspect", "-f", "{{.Name}}", "templated",
                   trace=False).ok().out == "/templated\n"
        ctr("create", "--name", "second", "busybox", "true").ok()
        both = ctr("inspect", "-f", "{{.Name}} {{.State.Status}}", "templated", "second",
                   trace=False).ok()
        assert both.out == "/templated running\n/second created\n", str(both)
        one_line_error(ctr("inspect", "-f", "{{.NoSuchField}}", "templated", trace=False))
    finally:
        remove_all(ctr)


def test_inspect_of_an_unknown_name_is_an_error(ctr: Ctr) -> None:
    try:
        alone = ctr("inspect", "no-such-thing", trace=False)
        assert alone.code != 0, str(alone)
        assert alone.err_lines == ["shellctr: no such object: no-such-thing"], str(alone)
        ctr("create", "--name", "known", "busybox", "true").ok()
        mixed = ctr("inspect", "known", "no-such-thing", trace=False)
        assert mixed.code != 0, str(mixed)
        assert [item["Name"] for item in json.loads(mixed.out)] == ["/known"], str(mixed)
        assert len(mixed.err_lines) == 1 and "no-such-thing" in mixed.err, str(mixed)
    finally:
        remove_all(ctr)


# -- ps ------------------------------------------------------------------------------
def names(ctr: Ctr, *flags: str) -> list[str]:
    """`ps FLAGS --format {{.Names}}`: names, newest first."""
    return ctr("ps", *flags, "--format", "{{.Names}}", trace=False).ok().out.split()


def test_ps_filters(ctr: Ctr, rootfs_tar: Callable[..., Path]) -> None:
    ctr("import", str(rootfs_tar()), "other:1").ok()
    try:
        ctr("create", "--name", "fresh", "busybox", "true").ok()
        assert ctr("run", "--name", "job3", "-l", "role=batch", "busybox", "sh", "-c",
                   "exit 3").code == 3
        ctr("run", "--name", "job0", "busybox", "true").ok()
        ctr("create", "--name", "alt", "other:1", "true").ok()
        run_detached(ctr, "--name", "web1", "--label", "role=web", "busybox", "sleep", "1000")

        assert names(ctr) == ["web1"]
        assert names(ctr, "-a") == ["web1", "alt", "job0", "job3", "fresh"]
        assert names(ctr, "--filter", "name=web") == ["web1"]
        assert names(ctr, "-a", "-f", "name=job") == ["job0", "job3"]
        assert names(ctr, "-a", "--filter", "status=exited") == ["job0", "job3"]
        assert names(ctr, "--filter", "status=exited") == ["job0", "job3"]  # implies -a
        assert names(ctr, "--filter", "status=created") == ["alt", "fresh"]
        assert names(ctr, "--filter", "status=running") == ["web1"]
        assert names(ctr, "-a", "--filter", "exited=3") == ["job3"]
        assert names(ctr, "-a", "--filter", "exited=0") == ["job0"]
        assert names(ctr, "-a", "--filter", "label=role") == ["web1", "job3"]
        assert names(ctr, "-a", "--filter", "label=role=web") == ["web1"]
        assert names(ctr, "-a", "--filter", "ancestor=other:1") == ["alt"]
        assert names(ctr, "-a", "--filter", "ancestor=busybox") \
            == ["web1", "job0", "job3", "fresh"]
        job0 = inspect(ctr, "job0")["Id"]
        assert names(ctr, "-a", "--filter", f"id={job0[:12]}") == ["job0"]
        # different keys: all must match; the same key twice: either may
        assert names(ctr, "-a", "-f", "status=exited", "-f", "label=role") == ["job3"]
        assert names(ctr, "-a", "-f", "name=job3", "-f", "name=web1") == ["web1", "job3"]
        assert names(ctr, "-a", "-f", "label=role", "-f", "label=role=web") == ["web1"]
        # created before / after another container
        assert names(ctr, "-a", "-f", "before=job0") == ["job3", "fresh"]
        assert names(ctr, "-a", "-f", "since=job0") == ["web1", "alt"]
        assert names(ctr, "-a", "-f", "since=job3", "-f", "before=alt") == ["job0"]
        assert names(ctr, "-a", "-f", "network=bridge") == ["web1", "alt", "job0", "job3",
                                                           "fresh"]
        assert names(ctr, "-a", "-f", "health=none", "-f", "name=web") == ["web1"]
        assert names(ctr, "-a", "-f", "is-task=true") == []
        one_line_error(ctr("ps", "--filter", "colour=blue", trace=False))
        one_line_error(ctr("ps", "--filter", "status", trace=False))
        one_line_error(ctr("ps", "--filter", "health=ok", trace=False))
    finally:
        remove_all(ctr)
        ctr("rmi", "other:1").ok()


def test_ps_filters_by_volume_network_and_ports(ctr: Ctr) -> None:
    try:
        ctr("network", "create", "shc-psf").ok()
        run_detached(ctr, "--name", "vol", "-v", "shc-psf-data:/srv", "busybox", "sleep",
                     "1000")
        run_detached(ctr, "--name", "pub", "--network", "shc-psf", "-p", "127.0.0.1::80",
                     "--expose", "9000/udp", "busybox", "sleep", "1000")
        assert names(ctr, "-f", "volume=shc-psf-data") == ["vol"]
        assert names(ctr, "-f", "volume=/srv") == ["vol"]
        assert names(ctr, "-f", "network=shc-psf") == ["pub"]
        network_id = ctr("network", "inspect", "-f", "{{.Id}}", "shc-psf",
                         trace=False).ok().out.strip()
        assert names(ctr, "-f", f"network={network_id[:12]}") == ["pub"]
        assert names(ctr, "-f", "publish=80") == ["pub"]
        assert names(ctr, "-f", "publish=80/udp") == []
        assert names(ctr, "-f", "expose=9000/udp") == ["pub"]
        assert names(ctr, "-f", "expose=8999-9001/udp") == ["pub"]
    finally:
        remove_all(ctr)
        ctr("volume", "rm", "shc-psf-data").ok()
        ctr("network", "rm", "shc-psf").ok()


def test_ps_format_last_and_latest(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "first", "busybox", "true").ok()
        assert ctr("run", "--name", "second", "busybox", "sh", "-c", "exit 3").code == 3
        run_detached(ctr, "--name", "third", "busybox", "sleep", "1000")

        ids = ctr("ps", "-a", "--format", "{{.ID}}", trace=False).ok().out.split()
        assert ids == ctr.container_ids() and all(SHORT_ID.match(i) for i in ids), ids
        assert names(ctr, "-a") == ["third", "second", "first"]
        statuses = ctr("ps", "-a", "--format", "{{.Status}}",
                       trace=False).ok().out.splitlines()
        assert statuses[0].startswith("Up "), statuses
        assert re.fullmatch(r"Exited \(3\) .+ ago", statuses[1]), statuses
        assert statuses[2] == "Created", statuses
        mixed = ctr("ps", "-a", "--format", "{{.Names}}: {{.Image}}", trace=False).ok()
        assert mixed.out.splitlines() == ["third: busybox", "second: busybox",
                                          "first: busybox"], str(mixed)

        table = ctr("ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}", trace=False).ok()
        header, *rows = table.out.splitlines()
        assert header.split() == ["CONTAINER", "ID", "NAMES"], str(table)
        assert [row.split() for row in rows] == [[i, n] for i, n in
                                                 zip(ids, ["third", "second", "first"],
                                                     strict=True)], str(table)
        assert header.index("NAMES") == rows[0].index("third"), str(table)  # aligned

        assert names(ctr, "-n", "2") == ["third", "second"]  # any state
        assert names(ctr, "--last", "1") == ["third"]
        assert names(ctr, "-l") == ["third"]
        assert names(ctr, "--latest", "--filter", "status=running") == ["third"]
        assert ctr("ps", "-l", "-q", trace=False).ok().out.split() == ids[:1]
        one_line_error(ctr("ps", "--format", "{{.NoSuchField}}", trace=False))
    finally:
        remove_all(ctr)
