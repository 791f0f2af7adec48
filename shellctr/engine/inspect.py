"""`inspect`: containers and images as the JSON Docker prints for them."""

from __future__ import annotations

from typing import Any

from shellctr.core.state import (
    ContainerConfig,
    ContainerState,
    Image,
    MountPoint,
    container_config,
)
from shellctr.core.store import Store
from shellctr.engine import cgroup
from shellctr.engine.lifecycle import reconcile
from shellctr.parts.cgroups import group_of

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, as Docker prints "never"


def _time(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ZERO_TIME


def container_json(store: Store, cid: str) -> dict[str, Any]:
    config: ContainerConfig = container_config(store, cid)
    state: ContainerState = reconcile(store, cid)
    layout = store.layout
    running = state.status == "running"
    paused = running and cgroup.is_frozen(store.host.facts, group_of(cid, config.cgroup_parent))
    return {
        "Id": config.id,
        "Created": _time(config.created),
        "Path": config.path,
        "Args": config.args,
        "State": {
            "Status": "paused" if paused else state.status,
            "Running": running,
            "Paused": paused,
            "Restarting": False,
            "OOMKilled": state.oom_killed,
            "Dead": False,
            "Pid": state.pid if running else 0,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": _time(state.started_at),
            "FinishedAt": _time(state.finished_at),
        },
        "Image": f"sha256:{config.image_id}",
        "ResolvConfPath": str(layout.container_etc_file(cid, "resolv.conf")),
        "HostnamePath": str(layout.container_etc_file(cid, "hostname")),
        "HostsPath": str(layout.container_etc_file(cid, "hosts")),
        "LogPath": str(layout.container_log(cid)),
        "Name": "/" + config.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": config.auto_remove,
            "Memory": config.memory,
            # Docker's MemorySwap: RAM + swap, twice Memory unless set; -1: unlimited
            "MemorySwap": config.memory_swap or 2 * config.memory,
            "MemoryReservation": config.memory_reservation,
            "OomKillDisable": config.oom_kill_disable,
            "CpuShares": config.cpu_shares,
            "CpuPeriod": config.cpu_period,
            "CpuQuota": config.cpu_quota,
            "CpusetCpus": config.cpuset_cpus,
            "CpusetMems": config.cpuset_mems,
            "PidsLimit": config.pids_limit or None,  # Docker: null when unlimited
            "CgroupParent": config.cgroup_parent,
            "RestartPolicy": {"Name": config.restart_policy,
                              "MaximumRetryCount": config.restart_max},
            "NetworkMode": config.network_mode,
            "ReadonlyRootfs": config.read_only,
            "Tmpfs": {m.target: m.options for m in config.mounts if m.type == "tmpfs"} or None,
            **host_network_config(config),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(str(layout.layer_dir(d)) for d in reversed(config.layers)),
                "UpperDir": str(layout.container_upper(cid)),
                "WorkDir": str(layout.container_work(cid)),
                "MergedDir": str(layout.container_rootfs(cid)),
            },
        },
        "Mounts": [mount_json(store, mount) for mount in config.mounts],
        "Config": {
            "Hostname": config.hostname,
            "User": config.user,
            "Tty": config.tty,
            "OpenStdin": config.interactive,
            "Env": config.env,
            "Cmd": config.cmd or None,
            "Image": config.image,
            "WorkingDir": config.working_dir,
            "Entrypoint": config.entrypoint or None,
            "Labels": config.labels,
            "ExposedPorts": {spec: {} for spec in config.exposed} or None,
            **({"StopSignal": config.stop_signal} if config.stop_signal else {}),
        },
        "NetworkSettings": network_settings(store, config, running),
    }


# -- networking (issue 5) -----------------------------------------------------------------
def host_network_config(config: ContainerConfig) -> dict[str, Any]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in config.ports:
        bindings.setdefault(f"{port.port}/{port.proto}", []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.host_port or "") + (
                f"-{port.host_port_end}" if port.host_port_end else "")})
    return {"PortBindings": bindings, "PublishAllPorts": config.publish_all,
            "Dns": config.dns, "DnsSearch": config.dns_search,
            "DnsOptions": config.dns_options,
            # kept as hosts lines (IP<tab>NAME); Docker shows NAME:IP
            "ExtraHosts": [f"{line.partition(chr(9))[2]}:{line.partition(chr(9))[0]}"
                           for line in config.extra_hosts]}


def network_settings(store: Store, config: ContainerConfig, running: bool) -> dict[str, Any]:
    """Docker's NetworkSettings: the endpoints of a running container, by network."""
    from shellctr.engine.network import netns_path, records

    networks: dict[str, Any] = {}
    ports: dict[str, Any] = {spec: None for spec in config.exposed}
    for record in records(store) if running else []:
        endpoint = record["endpoints"].get(config.id)
        if endpoint is None:
            continue
        networks[record["name"]] = {
            "NetworkID": record["id"], "EndpointID": endpoint["veth"],
            "Gateway": record["gateway"], "IPAddress": endpoint["ip"],
            "IPPrefixLen": int(record["subnet"].split("/")[1]),
            "MacAddress": endpoint["mac"], "Aliases": endpoint["aliases"] or None,
        }
        for binding in endpoint["ports"]:
            ports.setdefault(f"{binding['port']}/{binding['proto']}", None)
            ports[f"{binding['port']}/{binding['proto']}"] = [
                *(ports[f"{binding['port']}/{binding['proto']}"] or []),
                {"HostIp": binding["host_ip"] or "0.0.0.0",
                 "HostPort": str(binding["host_port"])}]
    first: dict[str, Any] = next(iter(networks.values()), {})
    return {
        "SandboxKey": str(netns_path(store.host.facts, config.id)) if networks else "",
        "Ports": ports,
        "IPAddress": first.get("IPAddress", ""), "Gateway": first.get("Gateway", ""),
        "IPPrefixLen": first.get("IPPrefixLen", 0), "MacAddress": first.get("MacAddress", ""),
        "Networks": networks,
    }


def mount_json(store: Store, mount: MountPoint) -> dict[str, Any]:
    """One of Docker's `Mounts` entries."""
    entry: dict[str, Any] = {"Type": mount.type}
    if mount.type == "volume":
        entry.update(Name=mount.source, Source=str(store.layout.volume_data(mount.source)),
                     Destination=mount.target, Driver="local", Mode="", RW=not mount.readonly,
                     Propagation="")
    else:
        entry.update(Source=mount.source, Destination=mount.target,
                     Mode="ro" if mount.readonly else "", RW=not mount.readonly,
                     Propagation=mount.propagation or ("rprivate" if mount.type == "bind"
                                                       else ""))
    return entry


def image_json(image: Image, store: Store | None = None) -> dict[str, Any]:
    """An image as `docker image inspect` shows it."""
    platform: dict[str, Any] = {}
    if store is not None and store.layout.blob(image.id).is_file():
        import json
        document = json.loads(store.layout.blob(image.id).read_bytes())
        platform = {key: document[key] for key in ("architecture", "os", "variant")
                    if key in document}
    config = image.config
    repo = [tag.rpartition(":")[0] for tag in image.repo_tags]
    return {
        "Id": f"sha256:{image.id}",
        "RepoTags": image.repo_tags,
        "RepoDigests": [f"{name}@sha256:{image.digest}" for name in dict.fromkeys(repo)]
        if image.digest else [],
        "Parent": "",
        "Comment": image.comment,
        "Created": _time(image.created),
        "Author": image.author,
        "Config": {
            "User": config.User,
            "ExposedPorts": config.ExposedPorts or None,
            "Env": config.Env,
            "Cmd": config.Cmd,
            "Volumes": config.Volumes or None,
            "WorkingDir": config.WorkingDir,
            "Entrypoint": config.Entrypoint,
            "Labels": config.Labels or None,
            **({"StopSignal": config.StopSignal} if config.StopSignal else {}),
        },
        "Architecture": platform.get("architecture", ""),
        **({"Variant": platform["variant"]} if "variant" in platform else {}),
        "Os": platform.get("os", "linux"),
        "Size": image.size,
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": ":".join(
            str(store.layout.layer_dir(d)) for d in reversed(image.layers))}
            if store is not None else {}},
        "RootFS": {"Type": "layers", "Layers": [f"sha256:{d}" for d in image.layers]},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }
