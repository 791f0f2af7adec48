"""The process and confinement flags of `run`/`create` (issue 16), each parsed as Docker
parses it into the container's frozen config: --ulimit, --shm-size, --sysctl, --group-add,
--ipc, --pid, --uts, --init, --stop-timeout, --log-driver/--log-opt, --health-*,
--label-file. Pure: the caller reads files and the other containers."""

from __future__ import annotations

import re

from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# --ulimit NAME=SOFT[:HARD]: Docker's names, and the RLIMIT_* number of each (Linux)
ULIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}
DEFAULT_SHM = 64 * 1024 * 1024  # Docker's /dev/shm
# --sysctl: the namespaced ones Docker (runc) allows; net.* needs the container's own netns
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
UTS_SYSCTLS = ("kernel.domainname",)
LOG_DRIVERS = ("json-file", "local", "none")
LOG_OPTS = {"json-file": ("max-size", "max-file", "compress", "labels", "env", "tag"),
            "local": ("max-size", "max-file", "compress"), "none": ()}
# the local driver rotates by default, as Docker's: 5 files of 20 MiB
LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5"}
# Docker's health check defaults (ns, as the image config's Healthcheck)
SECOND = 1_000_000_000
HEALTH_DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0,
                   "Retries": 3}


def parse_ulimits(items: list[str]) -> list[dict[str, object]]:
    """`--ulimit nofile=1024[:2048]` -> [{"name", "soft", "hard"}]; -1: unlimited."""
    found: dict[str, dict[str, object]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        match = re.fullmatch(r"(-?\d+)(?::(-?\d+))?", value)
        if not sep or name not in ULIMITS or match is None:
            raise ShellctrError(f"invalid ulimit {item!r}", "use NAME=SOFT[:HARD] with NAME one "
                                f"of {', '.join(sorted(ULIMITS))}")
        soft, hard = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if soft < -1 or hard < -1 or (hard != -1 and (soft == -1 or soft > hard)):
            raise ShellctrError(f"invalid ulimit {item!r}: soft limit {soft} is above the "
                                f"hard limit {hard}", "give SOFT <= HARD")
        found[name] = {"name": name, "soft": soft, "hard": hard}
    return list(found.values())


def parse_shm_size(text: str | None) -> int:
    """`--shm-size 128m` -> bytes (0: not given, Docker's 64 MiB)."""
    if text is None:
        return 0
    from shellctr.parts.cgroups import parse_size

    size = parse_size(text)
    if size <= 0:
        raise ShellctrError(f"invalid --shm-size {text!r}", "give a size above 0, e.g. 128m")
    return size


def parse_sysctls(items: list[str], network_mode: str, ipc_mode: str,
                  uts_mode: str) -> dict[str, str]:
    """`--sysctl KEY=VALUE`: only the namespaced ones, and only in a namespace of the
    container's own (as Docker/runc refuse the others)."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.replace("/", ".")
        if not sep or not re.fullmatch(r"[a-z0-9_]+(\.[a-zA-Z0-9_.-]+)+", key):
            raise ShellctrError(f"invalid sysctl {item!r}", "use --sysctl KEY=VALUE")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_mode == "host" or ipc_mode.startswith("container:"):
                raise ShellctrError(f"sysctl {key!r} is not allowed with --ipc {ipc_mode}",
                                    "give the container its own IPC namespace")
        elif key in UTS_SYSCTLS:
            if uts_mode == "host":
                raise ShellctrError(f"sysctl {key!r} is not allowed with --uts host",
                                    "give the container its own UTS namespace")
        elif key.startswith("net."):
            if network_mode == "host" or network_mode.startswith("container:"):
                raise ShellctrError(f"sysctl {key!r} is not allowed in the host's network "
                                    "namespace", "use a network of the container's own")
        else:
            raise ShellctrError(f"sysctl {key!r} is not allowed",
                                "only namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, "
                                "fs.mqueue.*, net.*) may be set for a container")
        found[key] = value
    return found


def parse_group_add(items: list[str]) -> list[str]:
    for item in items:
        if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?", item):
            raise ShellctrError(f"invalid --group-add {item!r}", "give a group name or gid")
    return list(dict.fromkeys(items))


def parse_namespace_mode(flag: str, value: str | None, allowed: tuple[str, ...],
                         default: str) -> str:
    """--ipc/--pid/--uts: one of `allowed`, or `container:NAME` where allowed."""
    if value is None or value == "":
        return default
    if value in allowed or ("container:" in allowed and value.startswith("container:")
                            and value.partition(":")[2]):
        return value
    choices = ", ".join(a + ("NAME" if a == "container:" else "") for a in allowed)
    raise ShellctrError(f"invalid {flag} mode {value!r}", f"use {choices}")


def parse_stop_timeout(value: str | None) -> int | None:
    if value is None:
        return None
    from shellctr.parts.cgroups import parse_int

    return parse_int(value, "--stop-timeout")


def parse_log(driver: str | None, options: list[str]) -> tuple[str, dict[str, str]]:
    """`--log-driver json-file|local|none` and `--log-opt KEY=VALUE` (sizes and counts
    checked)."""
    driver = driver or "json-file"
    if driver not in LOG_DRIVERS:
        raise ShellctrError(f"unknown log driver {driver!r}",
                            f"use one of {', '.join(LOG_DRIVERS)}")
    opts: dict[str, str] = dict(LOCAL_DEFAULTS) if driver == "local" else {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or key not in LOG_OPTS[driver]:
            raise ShellctrError(f"unknown log opt {key!r} for {driver} log driver",
                                f"{driver} takes {', '.join(LOG_OPTS[driver]) or 'none'}")
        opts[key] = value
    log_limits(opts)  # checked now
    return driver, opts


def log_limits(opts: Mapping[str, str]) -> tuple[int, int]:
    """(max bytes per file, files kept) from the log opts; (0, 1): no rotation."""
    from shellctr.parts.cgroups import parse_size

    size = parse_size(opts["max-size"]) if opts.get("max-size", "-1") != "-1" else 0
    count_text = opts.get("max-file", "1")
    if not count_text.isdigit() or int(count_text) < 1:
        raise ShellctrError(f"invalid max-file {count_text!r}", "give a number of files >= 1")
    if int(count_text) > 1 and not size:
        raise ShellctrError("max-file is only valid with max-size", "give max-size too")
    return size, int(count_text)


def parse_health(request: Any, image_health: Mapping[str, Any] | None
                 ) -> dict[str, Any] | None:
    """The container's Healthcheck (Docker's config shape: Test, Interval, Timeout,
    StartPeriod, Retries; durations in ns): the --health-* flags over the image's
    HEALTHCHECK; None: no health check; Test ["NONE"] turns the image's off."""
    from shellctr.parts.golang import parse_duration

    if request.no_healthcheck:
        if request.health_cmd is not None:
            raise ShellctrError("--no-healthcheck conflicts with --health-* options",
                                "give one or the other")
        return {"Test": ["NONE"]}
    health: dict[str, Any] = dict(image_health or {})
    if request.health_cmd is not None:
        health["Test"] = ["CMD-SHELL", request.health_cmd]
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod")):
        text = getattr(request, flag)
        if text is None:
            continue
        try:
            value = parse_duration(text)
        except ValueError as err:
            raise ShellctrError(f"invalid --{flag.replace('_', '-')} {text!r}: {err}",
                                "give a duration like 30s, 1m30s or 500ms") from None
        if value < 0 or (0 < value < 1_000_000):  # Docker: at least 1ms, or 0 (the default)
            raise ShellctrError(f"--{flag.replace('_', '-')} cannot be less than 1ms",
                                "give a duration like 30s")
        health[key] = value
    if request.health_retries is not None:
        if request.health_retries < 0:
            raise ShellctrError("--health-retries cannot be negative", "give 0 or more")
        health["Retries"] = request.health_retries
    test = health.get("Test") or []
    if not test or test[0] == "NONE":
        return {"Test": ["NONE"]} if test else None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise ShellctrError(f"invalid health check test {test!r}", "use --health-cmd CMD")
    return health


def health_settings(health: Mapping[str, Any]) -> dict[str, int]:
    """Interval, Timeout, StartPeriod (ns) and Retries, with Docker's defaults for 0."""
    return {key: int(health.get(key) or default) for key, default in HEALTH_DEFAULTS.items()}


def health_argv(test: list[str]) -> list[str]:
    """The command the check runs in the container: CMD-SHELL through /bin/sh -c."""
    return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])


def parse_label_file(text: str) -> list[str]:
    """A --label-file's lines (KEY=VALUE or KEY), without blanks and # comments."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
