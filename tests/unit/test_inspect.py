"""inspect: containers and images as the JSON Docker prints for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.layout import Layout
from shellctr.core.state import Image
from shellctr.core.store import Store
from shellctr.engine.create import create
from shellctr.engine.inspect import ZERO_TIME, container_json, image_json
from shellctr.parts.netopts import parse_publish

from .helpers import (
    CID,
    IMAGE_ID,
    LAYER,
    T0,
    T1,
    T2,
    RecordingHost,
    image_model,
    install_image,
    run_request,
    set_state,
)

pytestmark = pytest.mark.usefixtures("fixed")


def web(layout: Layout, **options: Any) -> Store:
    install_image(layout, image_model(config={"Entrypoint": ["/init"], "Cmd": ["--serve"],
                                              "Env": ["LANG=C"]}))
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", name="web", hostname="box", **options))
    return store


def test_a_created_container(layout: Layout, cgroup_root: Path) -> None:
    for name in ("memory", "cpu", "pids"):  # v1: the limits need their controllers
        (cgroup_root / name).mkdir()
    store = web(layout, label=["app=shop", "tier"], restart="on-failure:3", user="1000",
                workdir="/srv", env=["A=1"], memory="64m",
                limits={"cpus": "0.5", "pids_limit": "20"})
    data = container_json(store, CID)
    cdir = layout.container_dir(CID)
    assert data == {
        "Id": CID,
        "Created": T0,
        "Path": "/init",
        "Args": ["--serve"],
        "State": {
            "Status": "created",
            "Running": False,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": ZERO_TIME,  # never: Go's zero time, as Docker prints it
            "FinishedAt": ZERO_TIME,
        },
        "Image": f"sha256:{IMAGE_ID}",
        "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"),
        "HostsPath": str(cdir / "hosts"),
        "LogPath": str(cdir / "container.log"),
        "Name": "/web",  # Docker's leading slash
        "RestartCount": 0,
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": False,
            "Memory": 64 * 1024 * 1024,  # bytes; 0: no limit
            "MemorySwap": 128 * 1024 * 1024,
            "MemoryReservation": 0,
            "OomKillDisable": False,
            "CpuShares": 0,
            "CpuPeriod": 100000,
            "CpuQuota": 50000,
            "CpusetCpus": "",
            "CpusetMems": "",
            "PidsLimit": 20,
            "CgroupParent": "",
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "NetworkMode": "none",
            "ReadonlyRootfs": False,
            "CapAdd": None,
            "CapDrop": None,
            "Privileged": False,
            "SecurityOpt": None,
            "Devices": [],
            "DeviceCgroupRules": None,
            "Tmpfs": None,
            "Init": None, "Ulimits": None, "ShmSize": 64 * 1024 * 1024, "Sysctls": None,
            "GroupAdd": None, "IpcMode": "private", "PidMode": "", "UTSMode": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "PortBindings": {}, "PublishAllPorts": False, "Dns": [], "DnsSearch": [],
            "DnsOptions": [], "ExtraHosts": [],
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": str(layout.layer_dir(LAYER)),
                "UpperDir": str(cdir / "upper"),
                "WorkDir": str(cdir / "work"),
                "MergedDir": str(cdir / "rootfs"),
            },
        },
        "Mounts": [],
        "Config": {
            "Hostname": "box",
            "User": "1000",
            "Tty": False,
            "OpenStdin": False,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOSTNAME=box", "LANG=C", "A=1"],
            "Cmd": ["--serve"],
            "Image": "busybox",
            "WorkingDir": "/srv",
            "Entrypoint": ["/init"],
            "Labels": {"app": "shop", "tier": ""},
            "ExposedPorts": None,
        },
        "NetworkSettings": {"SandboxKey": "", "Ports": {}, "IPAddress": "", "Gateway": "",
                            "IPPrefixLen": 0, "MacAddress": "", "Networks": {}},
    }
    json.dumps(data)  # plain JSON: what `inspect` prints


def test_zero_time_is_gos() -> None:
    assert ZERO_TIME == "0001-01-01T00:00:00Z"


def test_no_entrypoint_or_cmd_is_null_as_in_docker(layout: Layout) -> None:
    store = web(layout, entrypoint="", command=["ls", "-l"])
    config = container_json(store, CID)["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (None, ["ls", "-l"])
    store = web(Layout(layout.root.parent / "r2", layout.runroot.parent / "rr2"),
                entrypoint="/bin/echo")
    config = container_json(store, CID)["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (["/bin/echo"], None)


def test_an_exited_container(layout: Layout) -> None:
    store = web(layout)
    set_state(layout, "exited", exit_code=137, started_at=T1, finished_at=T2, restart_count=4,
        error="killed", oom_killed=True)
    data = container_json(store, CID)
    assert data["State"] == {
        "Status": "exited", "Running": False, "Paused": False, "Restarting": False,
        "OOMKilled": True, "Dead": False, "Pid": 0, "ExitCode": 137, "Error": "killed",
        "StartedAt": T1, "FinishedAt": T2}
    assert data["RestartCount"] == 4


def test_a_running_container_reconciled_first(layout: Layout) -> None:
    import os

    from shellctr.core.facts import process_start

    store = web(layout)
    me = os.getpid()  # a live process as PID 1
    set_state(layout, "running", pid=me, pid_start=process_start(me), started_at=T1)
    state = container_json(store, CID)["State"]
    assert (state["Status"], state["Running"], state["Pid"]) == ("running", True, me)
    assert (state["StartedAt"], state["FinishedAt"]) == (T1, ZERO_TIME)
    # its PID 1 gone without a word: inspect shows the end, as every command does
    set_state(layout, "running", pid=me, pid_start=1, started_at=T1)
    state = container_json(store, CID)["State"]
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == (
        "exited", False, 0, 255)


def test_a_paused_container(layout: Layout, cgroup_root: Path) -> None:
    import os

    from shellctr.core.facts import process_start

    store = web(layout)
    me = os.getpid()
    set_state(layout, "running", pid=me, pid_start=process_start(me), started_at=T1)
    mine = cgroup_root / "freezer" / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "freezer.state").write_text("FROZEN\n")
    state = container_json(store, CID)["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)


def test_image_json() -> None:
    image = image_model(repo_tags=["busybox:latest", "bb:1"], comment="made here",
                        config={"Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/w"})
    assert image_json(image.model_dump(mode="json")) == {
        "Id": f"sha256:{IMAGE_ID}",
        "RepoTags": ["busybox:latest", "bb:1"],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "made here",
        "Created": T0,
        "Author": "",
        "Config": {"User": "", "ExposedPorts": None, "Env": ["A=1"], "Cmd": ["sh"],
                   "Volumes": None, "WorkingDir": "/w", "Entrypoint": None, "Labels": None},
        "Architecture": "",
        "Os": "linux",
        "Size": 1234,
        "GraphDriver": {"Name": "overlay", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": [f"sha256:{LAYER}"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def test_image_json_shows_the_oci_config_fields() -> None:
    image = image_model(digest="ef" * 32, author="me", config={
        "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
        "Labels": {"a": "b"}, "StopSignal": "SIGQUIT"})
    data = image_json(image.model_dump(mode="json"))
    assert data["RepoDigests"] == [f"busybox@sha256:{'ef' * 32}"]
    assert data["Author"] == "me"
    assert data["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert data["Config"]["Volumes"] == {"/data": {}}
    assert data["Config"]["Labels"] == {"a": "b"}
    assert data["Config"]["StopSignal"] == "SIGQUIT"


def test_image_json_of_a_record_without_the_optional_fields_shows_the_models_defaults(
) -> None:
    full = image_model().model_dump(mode="json")
    oldest = {key: full[key] for key in ("id", "repo_tags", "created", "layers", "size")}
    assert image_json(oldest) == image_json(Image.model_validate(oldest).model_dump(mode="json"))


def test_port_bindings_show_each_port_of_a_range_and_a_host_range_whole(
        layout: Layout) -> None:
    store = web(layout, network={"network": "none", "publish": [], "expose": ["7000-7001"]})
    data = container_json(store, CID)
    assert data["Config"]["ExposedPorts"] == {"7000/tcp": {}, "7001/tcp": {}}
    config = store.container_config(CID)
    config["ports"] = parse_publish("127.0.0.1:8000-8001:80-81") + parse_publish(
        "9000-9010:90/udp")
    store.write(layout.container_config(CID), config)
    assert container_json(store, CID)["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8001"}],
        "90/udp": [{"HostIp": "", "HostPort": "9000-9010"}]}
