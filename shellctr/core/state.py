"""The shape of every state record, as pydantic models, and typed reads of them.

Records are written by store.py (atomic JSON) and read back here, validated. `run`
writes its records without importing pydantic (see store.py); unit tests validate
what it writes against these models. New instances are built with `model_validate`
(`model_copy(update=)` would skip validation).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shellctr.core.errors import CorruptRecord
from shellctr.core.store import Store

HEX64 = r"^[0-9a-f]{64}$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageConfig(Model):
    """The part of an OCI image config that `run` honours (OCI field names)."""

    Env: list[str] = Field(default_factory=list)
    Cmd: list[str] | None = None
    Entrypoint: list[str] | None = None
    WorkingDir: str = ""
    User: str = ""
    ExposedPorts: dict[str, dict[str, Any]] = Field(default_factory=dict)  # "80/tcp": {}
    Volumes: dict[str, dict[str, Any]] = Field(default_factory=dict)  # "/data": {}
    Labels: dict[str, str] = Field(default_factory=dict)
    StopSignal: str = ""
    Healthcheck: dict[str, Any] | None = None  # HEALTHCHECK: Test, Interval (ns)... (run)


class HistoryEntry(Model):
    """One step of how the image was made (OCI config `history`)."""

    created: datetime | None = None
    created_by: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False  # a step that made no layer (e.g. a config change)


class LayerBlob(Model):
    """A layer as a registry serves it: its (compressed) blob's digest, size and type."""

    digest: str = Field(pattern=HEX64)
    size: int = Field(ge=0)
    media_type: str


class Image(Model):
    schema_version: Literal[1] = 1
    id: str = Field(pattern=HEX64)  # sha256 of its OCI config blob (blobs/sha256/<id>)
    repo_tags: list[str] = Field(default_factory=list)
    created: datetime
    layers: list[str] = Field(min_length=1)  # diff ids (sha256 hex), bottom layer first
    size: int = Field(ge=0)  # bytes of file content across the layers
    config: ImageConfig = Field(default_factory=ImageConfig)
    comment: str = ""
    author: str = ""
    history: list[HistoryEntry] = Field(default_factory=list)
    layer_sizes: list[int] = Field(default_factory=list)  # bytes of file content, per layer
    tar_sizes: list[int] = Field(default_factory=list)  # bytes of each layer's tar
    digest: str = ""  # sha256 hex of its OCI manifest (`images --digests`)
    # NAME@sha256:... of each manifest pulled from (or pushed to) a registry for it
    repo_digests: list[str] = Field(default_factory=list)
    # pulled: the compressed blob of each layer as the registry served it (its digest,
    # blobs/sha256/<digest>, and media type), kept so that a push sends the same bytes
    layer_blobs: list[LayerBlob] = Field(default_factory=list)
    manifest: str = ""  # pulled: sha256 hex of the platform's manifest, kept in blobs/


class MountPoint(Model):
    """One of a container's mounts (`-v`, `--mount`, `--tmpfs`, image VOLUMEs)."""

    type: Literal["bind", "volume", "tmpfs"]
    source: str = ""  # bind: the host path; volume: its name; tmpfs: ""
    target: str = Field(pattern=r"^/.")  # absolute, clean, not /
    readonly: bool = False
    options: str = ""  # tmpfs: mount(8) options (noexec,nosuid,nodev,size=64m,...)
    propagation: str = ""  # bind, volume: as given ([r]slave applied, [r]shared refused)
    nocopy: bool = False  # volume: not seeded from the image
    anonymous: bool = False  # volume: named by shellctr, removed by rm -v / --rm


class DeviceMapping(Model):
    """`--device HOST[:CONTAINER][:PERMS]` (Docker's HostConfig.Devices entry)."""

    host: str = Field(pattern=r"^/")
    container: str = Field(pattern=r"^/")
    permissions: str = Field(default="rwm", pattern=r"^[rwm]{1,3}$")
    kind: Literal["c", "b"] = "c"  # read on the host at create
    major: int = Field(default=0, ge=0)
    minor: int = Field(default=0, ge=0)


class Volume(Model):
    """A named or anonymous volume: ROOT/volumes/<name>/{volume.json,_data}."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
    driver: Literal["local"] = "local"
    created: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    options: dict[str, str] = Field(default_factory=dict)
    anonymous: bool = False


class PortBinding(Model):
    """A published port (`-p`); host_port 0 until the start picks a free one."""

    proto: Literal["tcp", "udp"] = "tcp"
    host_ip: str = ""  # "": every address of the host
    host_port: int = Field(default=0, ge=0, le=65535)
    # -p 8000-8010:80: the last port of the host range whose first free port the start
    # takes (host_port is the first); 0: no range. Never in an endpoint's ports.
    host_port_end: int = Field(default=0, ge=0, le=65535)
    port: int = Field(ge=1, le=65535)  # inside the container


class NetworkAttachment(Model):
    """A network a container joins when it starts (`--network`, `network connect`)."""

    ip: str = ""  # --ip; "": the next free address
    aliases: list[str] = Field(default_factory=list)  # --network-alias, connect --alias


class Endpoint(Model):
    """A running container's place on a network."""

    name: str
    ip: str
    mac: str
    aliases: list[str] = Field(default_factory=list)
    veth: str = Field(max_length=15)  # the host end of its veth pair
    ifname: str = Field(max_length=15)  # eth<n> inside
    ports: list[PortBinding] = Field(default_factory=list)  # as bound (host ports chosen)
    shared: bool = False  # a --network container:<this one> joined its netns


class Network(Model):
    schema_version: Literal[1] = 1
    id: str = Field(pattern=HEX64)
    name: str = Field(min_length=1)
    driver: Literal["bridge"] = "bridge"
    created: datetime
    bridge: str = Field(max_length=15)
    subnet: str
    gateway: str
    ip_range: str = ""
    internal: bool = False
    dns: bool = False  # a resolver for its containers' names (user networks)
    labels: dict[str, str] = Field(default_factory=dict)
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)  # container id -> endpoint


class Ulimit(Model):
    """`--ulimit NAME=SOFT:HARD` (-1: unlimited)."""

    name: str
    soft: int = Field(ge=-1)
    hard: int = Field(ge=-1)


class Healthcheck(Model):
    """Docker's Healthcheck config (durations in ns; 0: the default)."""

    Test: list[str] = Field(min_length=1)  # ["CMD-SHELL", cmd], ["CMD", ...], ["NONE"]
    Interval: int = Field(default=0, ge=0)
    Timeout: int = Field(default=0, ge=0)
    StartPeriod: int = Field(default=0, ge=0)
    Retries: int = Field(default=0, ge=0)


class ContainerConfig(Model):
    """Frozen when the container is created (containers/<id>/config.json). What may change
    later lives in its state (ContainerState's settings)."""

    schema_version: Literal[2] = 2
    id: str = Field(pattern=HEX64)
    created: datetime
    image: str  # as the user wrote it
    image_id: str = Field(pattern=HEX64)
    layers: list[str] = Field(min_length=1)  # bottom layer first
    path: str = Field(min_length=1)  # the program, as Docker's inspect `Path`
    args: list[str] = Field(default_factory=list)
    entrypoint: list[str] = Field(default_factory=list)  # Docker's Config.Entrypoint
    cmd: list[str] = Field(default_factory=list)  # Docker's Config.Cmd
    env: list[str]
    working_dir: str = "/"
    user: str = ""
    hostname: str
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    cgroup_parent: str = ""  # --cgroup-parent; "": shellctr's own parent, `shellctr`
    labels: dict[str, str] = Field(default_factory=dict)
    stop_signal: str = ""  # the image's StopSignal; "": SIGTERM
    mounts: list[MountPoint] = Field(default_factory=list)  # parents before children
    read_only: bool = False  # --read-only: the rootfs (not its mounts) is read-only
    ports: list[PortBinding] = Field(default_factory=list)
    publish_all: bool = False  # -P
    exposed: list[str] = Field(default_factory=list)  # 80/tcp: the image's, --expose, -p
    mac_address: str = ""
    dns: list[str] = Field(default_factory=list)
    dns_search: list[str] = Field(default_factory=list)
    dns_options: list[str] = Field(default_factory=list)
    extra_hosts: list[str] = Field(default_factory=list)  # hosts lines from --add-host
    # confinement (issue 13): as Docker's HostConfig.CapAdd/CapDrop/Privileged/SecurityOpt
    cap_add: list[str] = Field(default_factory=list)  # CAP_NET_ADMIN, ..., or ALL
    cap_drop: list[str] = Field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = Field(default_factory=list)  # as given
    seccomp_profile: str = ""  # "": the default; "unconfined"; else the profile's JSON
    no_new_privileges: bool = True  # shellctr's default (Docker's is off)
    devices: list[DeviceMapping] = Field(default_factory=list)
    device_cgroup_rules: list[str] = Field(default_factory=list)  # "c 1:3 rwm"
    # issue 16: process, confinement, logs, health (parts/runflags.py)
    stop_timeout: int | None = None  # --stop-timeout; None: 10 s
    init: bool = False  # --init: shellctr's static init is PID 1
    ulimits: list[Ulimit] = Field(default_factory=list)
    shm_size: int = Field(default=0, ge=0)  # bytes; 0: 64 MiB
    sysctls: dict[str, str] = Field(default_factory=dict)
    group_add: list[str] = Field(default_factory=list)
    ipc_mode: str = "private"  # private, shareable, host, container:<id>
    pid_mode: str = ""  # "": its own; host; container:<id>
    uts_mode: str = ""  # "": its own; host
    log_driver: Literal["json-file", "local", "none"] = "json-file"
    log_opts: dict[str, str] = Field(default_factory=dict)  # max-size, max-file
    healthcheck: Healthcheck | None = None  # the flags over the image's HEALTHCHECK


class ContainerState(Model):
    """Mutable (containers/<id>/state.json): the container's settings that `rename`,
    `update` and `network connect`/`disconnect` change, and its life, rewritten whenever
    it moves on."""

    schema_version: Literal[2] = 2
    # -- settings
    name: str = Field(min_length=1)
    memory: int = Field(default=0, ge=0)  # -m, bytes; 0: no limit
    memory_swap: int = Field(default=0, ge=-1)  # RAM + swap; 0: twice -m; -1: unlimited
    memory_reservation: int = Field(default=0, ge=0)  # soft limit, bytes
    oom_kill_disable: bool = False
    cpu_shares: int = Field(default=0, ge=0)  # relative weight; 0: the default (1024)
    cpu_period: int = Field(default=0, ge=0)  # µs; --cpus sets it to 100000
    cpu_quota: int = Field(default=0, ge=-1)  # µs of CPU per period; 0 / -1: no quota
    cpuset_cpus: str = ""  # e.g. 0-1,3; "": all of the host's
    cpuset_mems: str = ""
    pids_limit: int = Field(default=0, ge=0)  # 0: no limit
    restart_policy: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    restart_max: int = Field(default=0, ge=0)  # on-failure:N; 0 means no limit
    network_mode: str = "none"  # none, host, container:<ref>, or a network's name
    networks: dict[str, NetworkAttachment] = Field(default_factory=dict)  # in join order
    # -- life
    status: Literal["created", "running", "exited"] = "created"
    pid: int = Field(default=0, ge=0)  # host pid of the container's PID 1
    pid_start: int = 0  # its start time (clock ticks since boot), to detect pid reuse
    monitor_pid: int = Field(default=0, ge=0)  # the shellctr process waiting for it
    monitor_start: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    oom_killed: bool = False  # the kernel's OOM killer killed a process of it
    stopping: bool = False  # stopped by the user: the restart policy must not restart it
    restart_count: int = Field(default=0, ge=0)  # restarts done by the restart policy
    # while `created`: the shellctr process starting it, which records it running (the
    # monitor's hook waits for it, so a quick end is recorded after the start)
    starter_pid: int = Field(default=0, ge=0)
    starter_start: int = 0


M = TypeVar("M", bound=Model)


def evolve(model: M, **changes: Any) -> M:
    """A validated copy of `model` with `changes` applied."""
    return type(model).model_validate({**model.model_dump(), **changes})


def load(store: Store, model: type[M], path: Path) -> M:
    return model.model_validate(store.read(path))


def save(store: Store, path: Path, model: Model) -> None:
    store.write(path, model.model_dump(mode="json"))


def images(store: Store, corrupt: list[CorruptRecord] | None = None) -> list[Image]:
    """Every image whose record can be read (the corrupt ones: added to `corrupt`)."""
    found = []
    for record in store.image_records(corrupt):
        try:
            found.append(Image.model_validate(record))
        except ValidationError as err:  # a record no shellctr wrote
            if corrupt is not None:
                corrupt.append(CorruptRecord(store.layout.image_file(record["id"]),
                                             f"not an image ({err.error_count()} errors)"))
    return found


def volumes(store: Store) -> list[Volume]:
    found = []
    for name in store.volume_names():
        try:
            found.append(load(store, Volume, store.layout.volume_record(name)))
        except (FileNotFoundError, CorruptRecord, ValidationError):  # removed; corrupt
            continue
    return found
