"""`inspect`: containers and images as the JSON Docker prints for them (containers from
their plain records: `inspect` imports no pydantic)."""

from __future__ import annotations

import os

from shellctr.core.store import Store
from shellctr.engine import cgroup
from shellctr.engine.lifecycle import container_group, reconcile
from shellctr.inside.jsonlite import loads
from shellctr.parts.netopts import DEFAULT_NETWORK

TYPE_CHECKING = False  # typing is not imported at run time: inspect pays for each module
if TYPE_CHECKING:
    from typing import Any

    from shellctr.core.records import ContainerRecord, MountRecord, Record, StateRecord

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, as Docker prints "never"


def _time(value: Any) -> str:
    """A record's time as Docker prints it: ISO 8601 in UTC (`Z`); never: Go's zero."""
    if value is None:
        return ZERO_TIME
    if isinstance(value, str):
        return value
    return str(value.isoformat().replace("+00:00", "Z"))


def container_json(store: Store, cid: str, *, state: StateRecord | None = None,
                   container: ContainerRecord | None = None,
                   networks: list[Record] | None = None) -> dict[str, Any]:
    """`docker inspect` of a container. A listing of many (the API's /containers/json)
    gives what it has read already: the reconciled state, the record, every network."""
    state = reconcile(store, cid) if state is None else state
    container = store.container(cid) if container is None else container
    layout = store.layout
    running = state["status"] == "running"
    paused = running and cgroup.is_frozen(store.host.facts, container_group(container))
    mounts = container["mounts"]
    return {
        "Id": container["id"],
        "Created": _time(container["created"]),
        "Path": container["path"],
        "Args": container["args"],
        "State": {
            "Status": "paused" if paused else state["status"],
            "Running": running,
            "Paused": paused,
            "Restarting": False,
            "OOMKilled": state["oom_killed"],
            "Dead": False,
            "Pid": state["pid"] if running else 0,
            "ExitCode": state["exit_code"],
            "Error": state["error"],
            "StartedAt": _time(state["started_at"]),
            "FinishedAt": _time(state["finished_at"]),
            **health_json(store, container),
        },
        "Image": f"sha256:{container['image_id']}",
        "ResolvConfPath": layout.container_etc_file_at(cid, "resolv.conf"),
        "HostnamePath": layout.container_etc_file_at(cid, "hostname"),
        "HostsPath": layout.container_etc_file_at(cid, "hosts"),
        "LogPath": layout.container_log_at(cid),
        "Name": "/" + container["name"],
        "RestartCount": state["restart_count"],
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": container["auto_remove"],
            "Memory": container["memory"],
            # Docker's MemorySwap: RAM + swap, twice Memory unless set; -1: unlimited
            "MemorySwap": container["memory_swap"] or 2 * container["memory"],
            "MemoryReservation": container["memory_reservation"],
            "OomKillDisable": container["oom_kill_disable"],
            "CpuShares": container["cpu_shares"],
            "CpuPeriod": container["cpu_period"],
            "CpuQuota": container["cpu_quota"],
            "CpusetCpus": container["cpuset_cpus"],
            "CpusetMems": container["cpuset_mems"],
            "PidsLimit": container["pids_limit"] or None,  # Docker: null when unlimited
            "CgroupParent": container["cgroup_parent"],
            "RestartPolicy": {"Name": container["restart_policy"],
                              "MaximumRetryCount": container["restart_max"]},
            # Docker's name for the default network (its bridge's own name is in
            # NetworkSettings.Networks)
            "NetworkMode": "bridge" if container["network_mode"] == DEFAULT_NETWORK
            else container["network_mode"],
            "ReadonlyRootfs": container["read_only"],
            # as Docker: null when not given
            "CapAdd": container["cap_add"] or None,
            "CapDrop": container["cap_drop"] or None,
            "Privileged": container["privileged"],
            "SecurityOpt": container["security_opt"] or None,
            "Devices": [{"PathOnHost": d["host"], "PathInContainer": d["container"],
                         "CgroupPermissions": d["permissions"]} for d in container["devices"]],
            "DeviceCgroupRules": container["device_cgroup_rules"] or None,
            "Tmpfs": {m["target"]: m["options"] for m in mounts if m["type"] == "tmpfs"}
            or None,
            **process_host_config(container),
            **host_network_config(container),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(layout.layer_dir_at(d)
                                     for d in reversed(container["layers"])),
                "UpperDir": layout.container_upper_at(cid),
                "WorkDir": layout.container_work_at(cid),
                "MergedDir": layout.container_rootfs_at(cid),
            },
        },
        "Mounts": [mount_json(store, mount) for mount in mounts],
        "Config": {
            "Hostname": container["hostname"],
            "User": container["user"],
            "Tty": container["tty"],
            "OpenStdin": container["interactive"],
            "Env": container["env"],
            "Cmd": container["cmd"] or None,
            "Image": container["image"],
            "WorkingDir": container["working_dir"],
            "Entrypoint": container["entrypoint"] or None,
            "Labels": container["labels"],
            "ExposedPorts": {spec: {} for spec in container["exposed"]} or None,
            **({"StopSignal": container["stop_signal"]} if container["stop_signal"] else {}),
            **({"StopTimeout": container["stop_timeout"]}
               if container.get("stop_timeout") is not None else {}),
            **({"Healthcheck": container["healthcheck"]} if container.get("healthcheck")
               else {}),
        },
        "NetworkSettings": network_settings(store, container, running, networks),
    }


def health_json(store: Store, container: ContainerRecord) -> dict[str, Any]:
    """State.Health, with a health check only."""
    health = container.get("healthcheck")
    if health is None or health["Test"][0] == "NONE":
        return {}
    from shellctr.engine.health import read

    return {"Health": read(store, container["id"]) or
            {"Status": "starting", "FailingStreak": 0, "Log": []}}


def process_host_config(container: ContainerRecord) -> dict[str, Any]:
    """The issue-16 part of HostConfig, in Docker's names."""
    return {
        "Init": container.get("init") or None,
        "Ulimits": [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]}
                    for u in container.get("ulimits", [])] or None,
        "ShmSize": container.get("shm_size") or 64 * 1024 * 1024,
        "Sysctls": container.get("sysctls") or None,
        "GroupAdd": container.get("group_add") or None,
        "IpcMode": container.get("ipc_mode") or "private",
        "PidMode": container.get("pid_mode", ""),
        "UTSMode": container.get("uts_mode", ""),
        "LogConfig": {"Type": container.get("log_driver") or "json-file",
                      "Config": container.get("log_opts") or {}},
    }


# -- networking (issue 5) -----------------------------------------------------------------
def host_network_config(container: ContainerRecord) -> dict[str, Any]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in container["ports"]:
        bindings.setdefault(f"{port['port']}/{port['proto']}", []).append(
            {"HostIp": port["host_ip"], "HostPort": str(port["host_port"] or "") + (
                f"-{port['host_port_end']}" if port["host_port_end"] else "")})
    return {"PortBindings": bindings, "PublishAllPorts": container["publish_all"],
            "Dns": container["dns"], "DnsSearch": container["dns_search"],
            "DnsOptions": container["dns_options"],
            # kept as hosts lines (IP<tab>NAME); Docker shows NAME:IP
            "ExtraHosts": [f"{line.partition(chr(9))[2]}:{line.partition(chr(9))[0]}"
                           for line in container["extra_hosts"]]}


def network_settings(store: Store, container: ContainerRecord, running: bool,
                     found: list[Record] | None = None) -> dict[str, Any]:
    """Docker's NetworkSettings: the endpoints of a running container, by network
    (`found`: every network's record, if read already)."""
    from shellctr.engine.network import netns_path_at, records

    cid = container["id"]
    found = records(store) if found is None else found
    networks: dict[str, Any] = {}
    ports: dict[str, Any] = {spec: None for spec in container["exposed"]}
    for record in found if running else []:
        endpoint = record["endpoints"].get(cid)
        if endpoint is None:
            continue
        networks[record["name"]] = {
            "NetworkID": record["id"], "EndpointID": endpoint["veth"],
            "Gateway": record["gateway"], "IPAddress": endpoint["ip"],
            "IPPrefixLen": int(record["subnet"].split("/")[1]),
            "MacAddress": endpoint["mac"],
            "Aliases": dns_names(record["name"], cid, endpoint["aliases"]),
        }
        for binding in endpoint["ports"]:
            ports.setdefault(f"{binding['port']}/{binding['proto']}", None)
            ports[f"{binding['port']}/{binding['proto']}"] = [
                *(ports[f"{binding['port']}/{binding['proto']}"] or []),
                {"HostIp": binding["host_ip"] or "0.0.0.0",
                 "HostPort": str(binding["host_port"])}]
    sandbox = netns_path_at(store.host.facts, cid) if networks else ""
    if not running:  # as Docker: the networks it will join, without addresses yet
        from shellctr.engine.network import wanted_networks

        ids = {record["name"]: record["id"] for record in found}
        for name, wanted in wanted_networks(container).items():
            networks[name] = {
                "NetworkID": ids.get(name, ""), "EndpointID": "", "Gateway": "",
                "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
                "Aliases": dns_names(name, cid,
                                     list(wanted.get("aliases") or [])),  # type: ignore[call-overload]
            }
    first: dict[str, Any] = next(iter(networks.values()), {}) if running else {}
    return {
        "SandboxKey": sandbox,
        "Ports": ports,
        "IPAddress": first.get("IPAddress", ""), "Gateway": first.get("Gateway", ""),
        "IPPrefixLen": first.get("IPPrefixLen", 0), "MacAddress": first.get("MacAddress", ""),
        "Networks": networks,
    }


def dns_names(network: str, cid: str, aliases: list[str]) -> list[str] | None:
    """Docker's Aliases: on a user network (whose resolver answers for the container's
    short id too, see dns.entry) the aliases and the short id."""
    from shellctr.parts.netopts import DEFAULT_NETWORK

    if network == DEFAULT_NETWORK:
        return aliases or None
    return list(dict.fromkeys([*aliases, cid[:12]]))


def mount_json(store: Store, mount: MountRecord) -> dict[str, Any]:
    """One of Docker's `Mounts` entries."""
    kind, source, readonly = mount["type"], mount["source"], mount["readonly"]
    entry: dict[str, Any] = {"Type": kind}
    if kind == "volume":
        entry.update(Name=source, Source=store.layout.volume_data_at(source),
                     Destination=mount["target"], Driver="local", Mode="", RW=not readonly,
                     Propagation="")
    else:
        entry.update(Source=source, Destination=mount["target"],
                     Mode="ro" if readonly else "", RW=not readonly,
                     Propagation=mount["propagation"] or ("rprivate" if kind == "bind"
                                                          else ""))
    return entry


# state.ImageConfig's defaults, for records written before a field was
IMAGE_CONFIG: dict[str, Any] = {"Env": [], "Cmd": None, "Entrypoint": None, "WorkingDir": "",
                                "User": "", "ExposedPorts": {}, "Volumes": {}, "Labels": {},
                                "StopSignal": ""}


def image_json(image: Record, store: Store | None = None) -> dict[str, Any]:
    """An image as `docker image inspect` shows it, from its plain record (state.Image's
    shape: inspecting imports no pydantic)."""
    platform: dict[str, Any] = {}
    if store is not None and os.path.isfile(store.layout.blob_at(image["id"])):
        with open(store.layout.blob_at(image["id"]), "rb") as blob:
            document = loads(blob.read().decode())
        platform = {key: document[key] for key in ("architecture", "os", "variant")
                    if key in document}
    config = {**IMAGE_CONFIG, **image.get("config", {})}
    repo = [tag.rpartition(":")[0] for tag in image["repo_tags"]]
    digest = image.get("digest", "")
    return {
        "Id": f"sha256:{image['id']}",
        "RepoTags": image["repo_tags"],
        "RepoDigests": image.get("repo_digests") or (
            [f"{name}@sha256:{digest}" for name in dict.fromkeys(repo)] if digest else []),
        "Parent": "",
        "Comment": image.get("comment", ""),
        "Created": _time(image["created"]),
        "Author": image.get("author", ""),
        "Config": {
            "User": config["User"],
            "ExposedPorts": config["ExposedPorts"] or None,
            "Env": config["Env"],
            "Cmd": config["Cmd"],
            "Volumes": config["Volumes"] or None,
            "WorkingDir": config["WorkingDir"],
            "Entrypoint": config["Entrypoint"],
            "Labels": config["Labels"] or None,
            **({"StopSignal": config["StopSignal"]} if config["StopSignal"] else {}),
        },
        "Architecture": platform.get("architecture", ""),
        **({"Variant": platform["variant"]} if "variant" in platform else {}),
        "Os": platform.get("os", "linux"),
        "Size": image["size"],
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": ":".join(
            store.layout.layer_dir_at(d) for d in reversed(image["layers"]))}
            if store is not None else {}},
        "RootFS": {"Type": "layers", "Layers": [f"sha256:{d}" for d in image["layers"]]},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


# -- networks and volumes --------------------------------------------------------------
def network_json(store: Store, record: Record) -> dict[str, Any]:
    """A network as Docker's `network inspect` shows it."""
    from shellctr.parts.netopts import DEFAULT_NETWORK

    return {
        "Name": record["name"], "Id": record["id"], "Created": record["created"],
        "Scope": "local", "Driver": record["driver"], "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [
            {"Subnet": record["subnet"], "Gateway": record["gateway"],
             **({"IPRange": record["ip_range"]} if record["ip_range"] else {})}]},
        "Internal": record["internal"], "Attachable": False, "Ingress": False,
        "Containers": {cid: {"Name": ep["name"], "EndpointID": ep["veth"],
                             "MacAddress": ep["mac"],
                             "IPv4Address": f"{ep['ip']}/{record['subnet'].split('/')[1]}",
                             "IPv6Address": ""}
                       for cid, ep in record["endpoints"].items()},
        "Options": {"com.docker.network.bridge.name": record["bridge"],
                    **({"com.docker.network.bridge.default_bridge": "true"}
                       if record["name"] == DEFAULT_NETWORK else {})},
        "Labels": record.get("labels", {}),
    }


def volume_json(store: Store, name: str) -> dict[str, Any]:
    """A volume as Docker shows it, from its plain record (state.Volume's shape and
    defaults; listing volumes imports no pydantic)."""
    from shellctr.core.store import clock
    from shellctr.engine.volume import ANONYMOUS_LABEL, read_volume

    datetime, _ = clock()

    volume = read_volume(store, name)  # NotFound with Docker's words
    labels = {**volume.get("labels", {}),
              **({ANONYMOUS_LABEL: ""} if volume.get("anonymous") else {})}
    return {
        "CreatedAt": datetime.fromisoformat(volume["created"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": volume.get("driver", "local"),
        "Labels": labels or None,
        "Mountpoint": store.layout.volume_data_at(name),
        "Name": volume["name"],
        "Options": volume.get("options") or None,
        "Scope": "local",
    }
