"""The container records as the engine reads them: plain dicts, typed for mypy.

Imported only for type checking (`if TYPE_CHECKING:`): at run time a record is the dict
json.loads made, so reading one costs no import of pydantic or typing. The pydantic models
in state.py stay the schema of record; tests/unit/test_records.py holds these TypedDicts
to them, key for key, and every record shellctr writes to them.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class PortRecord(TypedDict):
    proto: str
    host_ip: str
    host_port: int
    host_port_end: int
    port: int


class MountRecord(TypedDict):
    type: Literal["bind", "volume", "tmpfs"]
    source: str
    target: str
    readonly: bool
    options: str
    propagation: str
    nocopy: bool
    anonymous: bool


class DeviceRecord(TypedDict):
    host: str
    container: str
    permissions: str
    kind: str
    major: int
    minor: int


class AttachmentRecord(TypedDict, total=False):
    ip: str
    aliases: list[str]


class ConfigRecord(TypedDict):
    """config.json (state.ContainerConfig): frozen at create."""

    schema_version: int
    id: str
    created: str
    image: str
    image_id: str
    layers: list[str]
    path: str
    args: list[str]
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    working_dir: str
    user: str
    hostname: str
    tty: bool
    interactive: bool
    auto_remove: bool
    cgroup_parent: str
    labels: dict[str, str]
    stop_signal: str
    mounts: list[MountRecord]
    read_only: bool
    ports: list[PortRecord]
    publish_all: bool
    exposed: list[str]
    mac_address: str
    dns: list[str]
    dns_search: list[str]
    dns_options: list[str]
    extra_hosts: list[str]
    cap_add: list[str]
    cap_drop: list[str]
    privileged: bool
    security_opt: list[str]
    seccomp_profile: str
    no_new_privileges: bool
    devices: list[DeviceRecord]
    device_cgroup_rules: list[str]
    stop_timeout: int | None
    init: bool
    ulimits: list[dict[str, Any]]
    shm_size: int
    sysctls: dict[str, str]
    group_add: list[str]
    ipc_mode: str
    pid_mode: str
    uts_mode: str
    log_driver: str
    log_opts: dict[str, str]
    healthcheck: dict[str, Any] | None


class SettingsRecord(TypedDict):
    """What changes after create (in state.json): name, limits, restart policy, networks."""

    name: str
    memory: int
    memory_swap: int
    memory_reservation: int
    oom_kill_disable: bool
    cpu_shares: int
    cpu_period: int
    cpu_quota: int
    cpuset_cpus: str
    cpuset_mems: str
    pids_limit: int
    restart_policy: str
    restart_max: int
    network_mode: str
    networks: dict[str, AttachmentRecord]


class StateRecord(SettingsRecord):
    """state.json (state.ContainerState): the settings, and the container's life."""

    schema_version: int
    status: Literal["created", "running", "exited"]
    pid: int
    pid_start: int
    monitor_pid: int
    monitor_start: int
    exit_code: int
    error: str
    started_at: str | None
    finished_at: str | None
    oom_killed: bool
    stopping: bool
    restart_count: int
    starter_pid: int
    starter_start: int


class ContainerRecord(ConfigRecord, SettingsRecord):
    """A container as it is now: its frozen config with its current settings
    (Store.container)."""


Record = dict[str, Any]  # any other record (images, networks, volumes)
