"""The typed requests of `run`/`create` (RunRequest) and `exec` (ExecRequest), and the
pure steps that turn one into a container's command, environment and settings.

Every flag is parsed once, by argparse, into one of these: an attribute is named as the
flag's dest (`--env-file` -> `env_file`), and the engine reads the attribute. The names
live in argparse and here, nowhere else. (A plain class: dataclasses costs every `run`
~5 ms to import.)
"""

from __future__ import annotations

from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
# the limit flags (each needs the cgroup controller parts.cgroups.NEEDS names)
LIMITS = ("memory", "memory_swap", "memory_reservation", "oom_kill_disable", "cpus",
          "cpu_shares", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit")


class Request:
    """Attributes from keyword arguments, each defaulting to the class's value (a fresh
    copy of a list default); an unknown name is an error."""

    def __init__(self, **values: Any) -> None:
        names = self.fields()
        unknown = set(values) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        for name in names:
            default = getattr(type(self), name, None)
            value = values.get(name, default)
            setattr(self, name, list(value) if isinstance(value, list) else value)

    @classmethod
    def fields(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names += [name for name in vars(klass).get("__annotations__", {})
                      if name not in names]
        return names

    @classmethod
    def from_args(cls, args: object) -> Any:
        """The request from argparse's namespace (its dests are the field names)."""
        return cls(**{name: getattr(args, name) for name in cls.fields()
                      if hasattr(args, name)})


class ProcessRequest(Request):
    """What `run`/`create` and `exec` share: the process to run and how."""

    command: list[str] = []
    env: list[str] = []  # -e NAME=VALUE, or -e NAME (the caller's value)
    env_file: list[str] = []
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    interactive: bool = False


class RunRequest(ProcessRequest):
    """Everything `run` and `create` were asked for."""

    image: str = ""
    name: str | None = None
    hostname: str | None = None
    entrypoint: str | None = None
    rm: bool = False  # --rm: removed when it exits
    detach: bool = False
    restart: str = "no"
    label: list[str] = []
    # limits, as typed (cgroup.parse_limits checks them against the host)
    memory: str | None = None
    memory_swap: str | None = None
    memory_reservation: str | None = None
    oom_kill_disable: bool = False
    cpus: str | None = None
    cpu_shares: str | None = None
    cpu_period: str | None = None
    cpu_quota: str | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | None = None
    cgroup_parent: str | None = None
    # storage (engine/volume.collect)
    volume: list[str] = []
    mount: list[str] = []
    tmpfs: list[str] = []
    read_only: bool = False
    volumes_from: list[str] = []
    # network (netopts.network_config)
    network: str | None = None
    ip: str | None = None
    aliases: list[str] = []
    publish: list[str] = []
    publish_all: bool = False
    expose: list[str] = []
    mac_address: str | None = None
    dns: list[str] = []
    dns_search: list[str] = []
    dns_options: list[str] = []
    add_host: list[str] = []
    # confinement (parts.confine)
    cap_add: list[str] = []
    cap_drop: list[str] = []
    privileged: bool = False
    security_opt: list[str] = []
    device: list[str] = []
    device_cgroup_rule: list[str] = []
    userns: str | None = None  # only `host` (shellctr makes no user namespace)
    # process, confinement, logs, health (parts/runflags.py)
    label_file: list[str] = []
    cidfile: str | None = None
    stop_signal: str | None = None
    stop_timeout: str | None = None
    init: bool = False
    ulimit: list[str] = []
    shm_size: str | None = None
    sysctl: list[str] = []
    group_add: list[str] = []
    ipc: str | None = None
    pid: str | None = None
    uts: str | None = None
    attach: list[str] = []
    detach_keys: str | None = None
    log_driver: str | None = None
    log_opt: list[str] = []
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_start_period: str | None = None
    health_retries: int | None = None
    no_healthcheck: bool = False

    def limits(self) -> dict[str, object]:
        """The limit flags as given (None or False: not given)."""
        return {name: getattr(self, name) for name in LIMITS}


class ExecRequest(ProcessRequest):
    """`exec CONTAINER COMMAND...`."""

    container: str = ""
    detach: bool = False
    privileged: bool = False  # every capability for this process, as Docker's exec
    detach_keys: str | None = None  # exec -it: what detaches (ctrl-p,ctrl-q)


# -- from a request to a container -------------------------------------------------------
def parse_env(request: ProcessRequest, environ: Mapping[str, str],
              read_file: Any) -> dict[str, str]:
    """`--env-file` then `-e`, as Docker reads them; `-e NAME` takes the caller's value
    (from `environ`). `read_file(path) -> str` reads an env file."""
    pairs: dict[str, str] = {}
    lines: list[str] = []
    for env_file in request.env_file:
        try:
            text = read_file(env_file)
        except (OSError, ValueError, UnicodeDecodeError) as err:  # ValueError: a NUL in it
            from shellctr.core.errors import NotFound
            reason = err.strerror if isinstance(err, OSError) else "not a readable text file"
            raise NotFound(f"cannot read env file {env_file!r}: {reason}") from err
        # as Docker: a UTF-8 byte order mark goes; leading blanks go, trailing ones are
        # part of the value
        lines += [line.lstrip() for line in text.removeprefix("\ufeff").splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    for item in lines + request.env:
        key, sep, value = item.partition("=")
        if not key or key != key.strip() or " " in key:
            raise ShellctrError(
                f"invalid environment variable: {item!r}", "use -e NAME=VALUE or -e NAME"
            )
        if sep:
            pairs[key] = value
        elif key in environ:  # `-e NAME`: pass the caller's NAME, if set
            pairs[key] = environ[key]
    return pairs


def build_env(request: RunRequest, image_env: list[str], hostname: str,
              given: dict[str, str]) -> list[str]:
    """PATH, HOSTNAME, (TERM), the image's ENV, then -e / --env-file; nothing else."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if request.tty:
        env["TERM"] = "xterm"
    env.update(item.split("=", 1) for item in image_env if "=" in item)  # type: ignore[misc]
    env.update(given)
    return [f"{key}={value}" for key, value in env.items()]


def parse_restart(value: str, auto_remove: bool) -> tuple[str, int]:
    """`--restart no|on-failure[:N]|always|unless-stopped` -> (policy, max retries)."""
    policy, colon, count = value.partition(":")
    if policy not in RESTART_POLICIES or (
            colon and (policy != "on-failure" or not count.isdigit())):  # `on-failure:` too
        raise ShellctrError(f"invalid restart policy {value!r}",
                            "use no, on-failure[:N], always or unless-stopped")
    if auto_remove and policy != "no":
        raise ShellctrError("conflicting options: --restart and --rm",
                            "a container removed when it exits cannot be restarted")
    return policy, int(count or 0)


def parse_labels(items: list[str]) -> dict[str, str]:
    """`-l KEY=VALUE` (or `-l KEY`, an empty value)."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ShellctrError(f"invalid label {item!r}", "use -l KEY=VALUE")
        labels[key] = value
    return labels


def build_command(request: RunRequest, entrypoint: list[str] | None,
                  cmd: list[str] | None) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) as Docker combines them: `--entrypoint` drops the image's CMD."""
    if request.entrypoint is not None:
        entry = [request.entrypoint] if request.entrypoint else []
        args = request.command
    else:
        entry, args = list(entrypoint or []), request.command or list(cmd or [])
    if not entry + args:
        raise ShellctrError("no command specified", "give a command after the image name")
    return entry, args
