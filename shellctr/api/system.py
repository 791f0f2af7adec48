"""System endpoints: `_ping`, version, info, system/df, auth; and the seams of what
other issues bring (events, build, pull, push): 501 with a message until they land."""

from __future__ import annotations

import os
import platform
from typing import Any

from shellctr.api.server import API_VERSION, MIN_API_VERSION, ROUTES, ApiError, Call, Json, Raw

VERSION = "0.1.0"


@ROUTES.add("GET", "/_ping")
def ping(call: Call) -> Raw:
    headers = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
               "Pragma": "no-cache"}
    return Raw(b"OK", "text/plain; charset=utf-8", headers=headers)


@ROUTES.add("GET", "/version")
def version(call: Call) -> dict[str, Any]:
    release = platform.release()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "Platform": {"Name": "shellctr"},
        "Components": [{"Name": "Engine", "Version": VERSION,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                    "Os": "linux", "Arch": arch, "KernelVersion": release}}],
        "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": arch,
        "KernelVersion": release, "BuildTime": "",
    }


def container_counts(call: Call) -> tuple[int, int, int, int]:
    """(all, running, paused, stopped), each reconciled as `ps` does."""
    from shellctr.engine import cgroup
    from shellctr.engine.lifecycle import container_group, reconcile

    store = call.store
    running = paused = stopped = 0
    for cid in store.container_ids():
        try:
            state = reconcile(store, cid)
            if state["status"] != "running":
                stopped += 1
            elif cgroup.is_frozen(call.host.facts, container_group(store.container(cid))):
                paused += 1
            else:
                running += 1
        except FileNotFoundError:  # removed as we looked
            continue
    return running + paused + stopped, running, paused, stopped


@ROUTES.add("GET", "/info")
def info(call: Call) -> dict[str, Any]:
    from shellctr.core.state import images
    from shellctr.engine import cgroup

    total, running, paused, stopped = container_counts(call)
    facts = call.host.facts
    memory = 0
    for line in facts.read_text("/proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    unified = cgroup.unified(facts)
    layout = call.store.layout
    return {
        "ID": "shellctr", "Name": platform.node(),
        "Containers": total, "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": stopped, "Images": len(images(call.store)),
        "Driver": "overlay", "DriverStatus": [], "DockerRootDir": str(layout.root),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "OomKillDisable": True,
        "IPv4Forwarding": facts.sysctl("net.ipv4.ip_forward", "0") == "1",
        "Debug": call.service.debug, "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if unified else "1",
        "KernelVersion": platform.release(), "OperatingSystem": "shellctr",
        "OSType": "linux", "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
        "MemTotal": memory, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        "ServerVersion": VERSION, "Runtimes": {"shellctr": {"path": "shellctr"}},
        "DefaultRuntime": "shellctr", "Swarm": {"LocalNodeState": "inactive"},
        "SecurityOptions": ["name=seccomp,profile=unconfined"], "Warnings": [],
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Labels": [],
        "ExperimentalBuild": False, "LiveRestoreEnabled": True,
    }


@ROUTES.add("GET", "/system/df")
def disk_usage(call: Call) -> dict[str, Any]:
    from shellctr.api.objects import image_summary, volume_summary
    from shellctr.core.state import images

    layout = call.store.layout
    return {
        "LayersSize": sum(image.size for image in images(call.store)),
        "Images": [image_summary(call.store, image) for image in images(call.store)],
        "Containers": [],
        "Volumes": [volume_summary(call.store, name) for name in call.store.volume_names()
                    if layout.volume_record(name).exists()],
        "BuildCache": [],
    }


@ROUTES.add("POST", "/auth")
def auth(call: Call) -> Json:
    """`docker login`: the credentials are the client's; there is no registry code yet to
    check them against (issue 12), so they are accepted as given."""
    body = call.json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the auth body must be a JSON object")
    return Json({"Status": "Login Succeeded", "IdentityToken": ""})


def not_yet(what: str, issue: int) -> Any:
    def refuse(call: Call) -> None:
        call.drain_body()
        raise ApiError(501, f"{what} is not implemented by shellctr's API yet (issue {issue})")
    return refuse


# the seams: these land with their own issues (registry 12, build 14, events 16)
ROUTES.add("GET", "/events")(not_yet("events", 16))
ROUTES.add("POST", "/build")(not_yet("build", 14))
ROUTES.add("POST", "/build/prune")(not_yet("build prune", 14))
ROUTES.add("POST", "/images/create")(not_yet("pull (images/create)", 12))
ROUTES.add("POST", "/images/{name*}/push")(not_yet("push", 12))
