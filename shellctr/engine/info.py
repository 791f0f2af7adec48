"""The read verbs about the engine itself: `version`, `info` and `system df`, and the
sizes `ps --size` shows. Docker-shaped records (its field names), read through the
facts; nothing here changes the host."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from typing import Any

from shellctr.core.errors import CorruptRecord
from shellctr.core.host import Host
from shellctr.core.store import Store

API_VERSION = "1.43"  # the Engine API version `system service` answers as
MIN_API_VERSION = "1.24"


def shellctr_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shellctr")
    except PackageNotFoundError:
        return "0.1.0"


def arch() -> str:
    """Go's GOARCH name of this machine, as Docker reports it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def version_record(host: Host) -> dict[str, Any]:
    """`docker version`'s template data: a Client and a Server (Engine) section."""
    facts = host.facts
    version = shellctr_version()
    runtime = f"python{platform.python_version()}"
    kernel = facts.sysctl("kernel.osrelease")
    client = {"Platform": {"Name": "shellctr"}, "Version": version, "ApiVersion": API_VERSION,
              "DefaultAPIVersion": API_VERSION, "GitCommit": "", "GoVersion": runtime,
              "Os": "linux", "Arch": arch(), "BuildTime": "", "Context": "default"}
    details = {"ApiVersion": API_VERSION, "Arch": arch(), "BuildTime": "", "Experimental":
               "false", "GitCommit": "", "GoVersion": runtime, "KernelVersion": kernel,
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    server = {"Platform": {"Name": "shellctr (daemonless)"},
              "Components": [{"Name": "Engine", "Version": version, "Details": details}],
              "Version": version, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
              "GitCommit": "", "GoVersion": runtime, "Os": "linux", "Arch": arch(),
              "KernelVersion": kernel, "BuildTime": ""}
    return {"Client": client, "Server": server}


def container_sizes(host: Host, store: Store, cids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(bytes in the writable layer, bytes of its image) of each container."""
    images = {image["id"]: int(image.get("size") or 0) for image in store.image_records()}
    sizes = {}
    for cid in cids:
        try:
            image_id = store.container_config(cid)["image_id"]
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile, or unreadable
            continue
        rw = host.facts.tree_size(store.layout.container_upper(cid))
        sizes[cid] = (rw, images.get(image_id.removeprefix("sha256:"), 0))
    return sizes


def container_counts(host: Host, store: Store) -> dict[str, int]:
    """Containers: all, running, paused, stopped."""
    from shellctr.engine import cgroup
    from shellctr.engine.lifecycle import container_group, reconcile

    counts = {"Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
              "ContainersStopped": 0}
    for cid in store.container_ids():
        try:
            state, container = reconcile(store, cid), store.container(cid)
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile, or unreadable
            continue
        counts["Containers"] += 1
        if state["status"] != "running":
            counts["ContainersStopped"] += 1
        elif cgroup.is_frozen(host.facts, container_group(container)):
            counts["ContainersPaused"] += 1
        else:
            counts["ContainersRunning"] += 1
    return counts


def os_release(host: Host) -> dict[str, str]:
    fields = {}
    for line in host.facts.read_text("/etc/os-release", "").splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip().strip('"')
    return fields


def memory_total(host: Host) -> int:
    for line in host.facts.read_text(host.facts.proc / "meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def info_record(host: Host, store: Store) -> dict[str, Any]:
    """`docker info`'s data: Docker's field names, shellctr's facts."""
    from shellctr.engine import cgroup

    facts = host.facts
    release = os_release(host)
    layout = store.layout
    version = shellctr_version()
    record: dict[str, Any] = {"ID": facts.read_text("/etc/machine-id", "").strip()}
    record.update(container_counts(host, store))
    record.update({
        "Images": len(store.image_records()),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing_filesystem(host, layout.root)],
                         ["Supports d_type", "true"], ["Using metacopy", "false"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": facts.sysctl("net.ipv4.ip_forward", "0") == "1",
        "Debug": False,
        "NFd": 0,
        "NGoroutines": 0,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroup.unified(facts) else "1",
        "KernelVersion": facts.sysctl("kernel.osrelease"),
        "OperatingSystem": release.get("PRETTY_NAME", "Linux"),
        "OSVersion": release.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "",
        "NCPU": len(cgroup.host_cpus(facts)) or os.cpu_count() or 1,
        "MemTotal": memory_total(host),
        "DockerRootDir": os.fspath(layout.root),
        "Name": facts.sysctl("kernel.hostname"),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": version,
        "Runtimes": {"shellctr": {"path": "unshare"}},
        "DefaultRuntime": "shellctr",
        "LiveRestoreEnabled": True,  # daemonless: containers outlive every shellctr process
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=capabilities,profile=docker-default", "name=maskedpaths",
                            "name=pivot_root"],
        "Volumes": len(store.volume_names()),
        "RunRoot": os.fspath(layout.runroot),
        "Warnings": None,
    })
    return record


def backing_filesystem(host: Host, path: os.PathLike[str] | str) -> str:
    """The filesystem type of the mount holding `path` (Docker: `extfs`, `xfs`...)."""
    best, kind = "", ""
    target = os.path.realpath(path) if os.path.exists(path) else os.fspath(path)
    for line in host.facts.mountinfo().splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4]
        fs_type = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fs_type
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(kind, kind)


def disk_usage(host: Host, store: Store) -> dict[str, Any]:
    """`system df`'s data: each image, container, volume and build cache entry with its
    size and its users, as Docker's /system/df."""
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.volume import volume_users

    facts, layout = host.facts, store.layout
    containers = []
    image_users: dict[str, int] = {}
    for cid in store.container_ids():
        try:
            state, container = reconcile(store, cid), store.container(cid)
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile, or unreadable
            continue
        image_id = container["image_id"].removeprefix("sha256:")
        image_users[image_id] = image_users.get(image_id, 0) + 1
        containers.append({"container": container, "state": state,
                           "size_rw": facts.tree_size(layout.container_upper(cid))})
    images = []
    layer_users: dict[str, int] = {}
    records = store.image_records()
    for image in records:
        for layer in image.get("layers") or []:
            layer_users[layer] = layer_users.get(layer, 0) + 1
    for image in records:
        sizes = list(image.get("layer_sizes") or [])
        layers = list(image.get("layers") or [])
        shared = sum(size for layer, size in zip(layers, sizes, strict=False)
                     if layer_users.get(layer, 0) > 1 and size > 0)
        images.append({"image": image, "size": int(image.get("size") or 0),
                       "shared": shared, "containers": image_users.get(image["id"], 0)})
    volumes = []
    used = volume_users(store)
    for name in store.volume_names():
        volumes.append({"name": name, "links": len(used.get(name, [])),
                        "size": facts.tree_size(layout.volume_data(name))})
    return {"images": images, "containers": containers, "volumes": volumes,
            "build_cache": []}
