"""What a builder needs around the parsed steps, as Docker's classic builder does it: the
build args (global and per stage, `--build-arg` overrides, the predefined proxy args, the
args a RUN consumes), the `Step N/M : ...` line, the history's `created_by` strings and the
config values some instructions compute (WORKDIR, EXPOSE, STOPSIGNAL)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from shellctr.parts import golang
from shellctr.parts.dockerfile_steps import (
    ArgStep,
    CmdStep,
    EntrypointStep,
    EnvStep,
    ExposeStep,
    Healthcheck,
    HealthcheckStep,
    LabelStep,
    MaintainerStep,
    OnbuildStep,
    ShellStep,
    Step,
    StopSignalStep,
    UserStep,
    VolumeStep,
    WorkdirStep,
)
from shellctr.parts.dockerfile_words import Lexer

# usable in every stage without an ARG, and left out of the history and cache unless declared
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM",
                 "BUILDOS", "BUILDARCH", "BUILDVARIANT")


def platform_args(os: str = "linux", arch: str = "amd64", variant: str = "",
                  build: tuple[str, str, str] | None = None) -> dict[str, str]:
    """BuildKit's automatic platform args (Docker's classic builder has none): in the global
    scope (FROM) always, in a stage once it says `ARG TARGETARCH` etc."""
    build_os, build_arch, build_variant = build or (os, arch, variant)

    def platform(o: str, a: str, v: str) -> str:
        return "/".join(part for part in (o, a, v) if part)

    return {"TARGETPLATFORM": platform(os, arch, variant), "TARGETOS": os, "TARGETARCH": arch,
            "TARGETVARIANT": variant,
            "BUILDPLATFORM": platform(build_os, build_arch, build_variant),
            "BUILDOS": build_os, "BUILDARCH": build_arch, "BUILDVARIANT": build_variant}


def env_map(env: Iterable[str]) -> dict[str, str]:
    """`["K=V", ...]` as a mapping (the last one wins, as Docker)."""
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


class BuildArgs:
    """The build args of one build (Docker's BuildArgs): `options` are `--build-arg K=V`
    (None: `--build-arg K` with no value, which leaves the default); `automatic` are values
    that need no `--build-arg` (platform_args, if the builder offers them).

    The global ARGs (before the first FROM) are usable in FROM; a stage sees an arg only
    after its own `ARG name` (which takes the global value when it gives no default)."""

    def __init__(self, options: Mapping[str, str | None] | None = None,
                 automatic: Mapping[str, str] | None = None) -> None:
        self.options: dict[str, str | None] = dict(options or {})
        self.automatic = dict(automatic or {})
        self.meta: dict[str, str | None] = dict(self.automatic)
        self.allowed: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def for_stage(self) -> BuildArgs:
        """The args a new stage starts with: the global ones known, none declared."""
        stage = BuildArgs(self.options, self.automatic)
        stage.meta = dict(self.meta)
        stage.referenced = set(self.referenced)
        return stage

    def declare_global(self, step: ArgStep) -> None:
        """An ARG before the first FROM (expanded with the global args before it)."""
        expanded, _ = step.expand(self.global_values())
        for decl in expanded.args:
            self.declare(decl.key, decl.default)
            self.meta[decl.key] = decl.default

    def declare(self, key: str, default: str | None) -> None:
        """An `ARG key[=default]` in the current stage (already expanded)."""
        self.allowed[key] = default
        self.referenced.add(key)

    def merge_referenced(self, stage: BuildArgs) -> None:
        self.referenced |= stage.referenced

    def _value(self, key: str, declared: Mapping[str, str | None]) -> str | None:
        if self.options.get(key) is not None:
            return self.options[key]
        default = declared.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def values(self, declared: Mapping[str, str | None]) -> dict[str, str]:
        """Each declared arg's value (override, default, global value), with the proxy args
        given on the command line; args without a value are left out."""
        out = {}
        for key in [*declared, *PROXY_ARGS]:
            value = self._value(key, declared)
            if value is not None:
                out[key] = value
        return out

    def global_values(self) -> dict[str, str]:
        """What FROM expands with: the global args' values (and the automatic ones)."""
        out = dict(self.automatic)
        out.update(self.values(self.meta))
        return out

    def environment(self, config_env: Sequence[str]) -> list[str]:
        """The stage's args as `K=V`, less the ones the config's Env already sets: what a
        RUN gets in its environment on top of Env (sorted, Docker's order is random)."""
        config = env_map(config_env)
        return [f"{key}={value}" for key, value in sorted(self.values(self.allowed).items())
                if key not in config]

    def expansion_env(self, config_env: Sequence[str]) -> dict[str, str]:
        """What an instruction's `$VAR` sees: the config's Env, then the stage's args."""
        out = env_map(config_env)
        out.update(env_map(self.environment(config_env)))
        return out

    def run_args(self, config_env: Sequence[str]) -> list[str]:
        """The args a RUN consumes, as Docker's cache key and history record them: every
        declared arg in its environment (a proxy arg only if declared)."""
        return [item for item in self.environment(config_env)
                if item.partition("=")[0] in self.allowed
                or item.partition("=")[0] not in PROXY_ARGS]

    def run_history(self, command: Sequence[str], config_env: Sequence[str]) -> list[str]:
        """The RUN's command as the history and the cache see it: `|2 A=1 B=2 /bin/sh -c make`
        when it consumes args, else the command itself."""
        consumed = self.run_args(config_env)
        if not consumed:
            return list(command)
        return [f"|{len(consumed)}", *consumed, *command]

    def unused(self) -> list[str]:
        """`--build-arg` names no ARG declared (proxy and automatic ones never count)."""
        return sorted(key for key in self.options
                      if key not in self.referenced and key not in PROXY_ARGS
                      and key not in self.automatic)

    def unused_warning(self) -> str | None:
        """Docker's classic builder's line for them, or None."""
        names = self.unused()
        if not names:
            return None
        return f"[Warning] One or more build-args {golang.format_v(names)} were not consumed"


def step_line(number: int, total: int, text: str) -> str:
    """`Step 3/9 : RUN make`."""
    return f"Step {number}/{total} : {text}"


def global_arg_values(meta_args: Sequence[ArgStep],
                      options: Mapping[str, str | None] | None = None,
                      automatic: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values FROM lines see, for a Dockerfile's global ARGs and the `--build-arg`s."""
    args = BuildArgs(options, automatic)
    for step in meta_args:
        args.declare_global(step)
    return args.global_values()


# -- config values ---------------------------------------------------------------------------


def workdir(current: str, requested: str) -> str:
    """The new WorkingDir: relative to the current one, cleaned (Docker's normalizeWorkdir)."""
    if not requested:
        raise ValueError("cannot normalize nothing")
    if not requested.startswith("/"):
        return golang.clean("/" + current + "/" + requested)
    return golang.clean(requested)


def _port_range(text: str, what: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        if not start.isdecimal() or (sep and not end.isdecimal()):
            raise ValueError
        low = int(start)
        high = int(end) if sep else low
    except ValueError:
        raise ValueError(f"invalid {what}: {text}") from None
    if low > 65535 or high > 65535 or high < low:
        raise ValueError(f"invalid {what}: {text}")
    return low, high


def exposed_ports(specs: Sequence[str]) -> list[str]:
    """EXPOSE's ports (`80`, `53/udp`, `8000-8002`, even `ip:host:ctr`) as the config's
    ExposedPorts keys (`80/tcp`), in the order given; ValueError as Docker's."""
    out: list[str] = []
    for raw in specs:
        parts = raw.split(":")
        container = parts[-1]
        host = parts[-2] if len(parts) > 1 else ""
        port, _, proto = container.partition("/")
        if not port:
            raise ValueError(f"no port specified: {raw}<empty>")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid proto: {proto}")
        low, high = _port_range(port, "containerPort")
        if host:
            host_low, host_high = _port_range(host, "hostPort")
            if high - low != host_high - host_low and high != low:
                raise ValueError("invalid ranges specified for container and host Ports: "
                                 f"{port} and {host}")
        for number in range(low, high + 1):
            key = f"{number}/{proto}"
            if key not in out:
                out.append(key)
    return out


_SIGNAL_NAMES = ("ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO",
                 "IOT", "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP",
                 "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM",
                 "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX")
_SIGNALS = (frozenset(_SIGNAL_NAMES) | {f"RTMIN+{i}" for i in range(1, 16)}
            | {f"RTMAX-{i}" for i in range(1, 15)})


def check_signal(name: str) -> None:
    """STOPSIGNAL's value must be a Linux signal: `SIGTERM`, `term`, `15`, `SIGRTMIN+3`
    (Docker's signal.ParseSignal)."""
    if re.fullmatch(r"[+-]?[0-9]+", name):
        if int(name) == 0:
            raise ValueError(f"Invalid signal: {name}")
        return
    if name.upper().removeprefix("SIG") not in _SIGNALS:
        raise ValueError(f"Invalid signal: {name}")


# -- history ---------------------------------------------------------------------------------


def nop(shell: Sequence[str], comment: str) -> list[str]:
    """The Cmd Docker records for a metadata step: `/bin/sh -c #(nop)  CMD ["sh"]`."""
    return [*shell, "#(nop) ", comment]


def nop_single(shell: Sequence[str], comment: str) -> list[str]:
    """The one-argument form WORKDIR, COPY and ADD use: `/bin/sh -c #(nop) WORKDIR /app`."""
    return [*shell, "#(nop) " + comment]


def format_healthcheck(health: Healthcheck) -> str:
    """The Healthcheck as Docker's history shows it (Go's `%q` of the config's pointer:
    `&{["CMD-SHELL" "x"] "30s" "3s" "0s" "0s" '\\x03'}`)."""
    durations = (health.interval, health.timeout, health.start_period, health.start_interval)
    return ("&{" + golang.format_q(health.test) + " "
            + " ".join(golang.quote(golang.format_duration(d)) for d in durations)
            + " " + golang.quote_rune(health.retries) + "}")


def metadata_comment(step: Step, shell: Sequence[str], working_dir: str = "") -> str:
    """The comment the classic builder commits for a step that changes only the config
    (`step` already expanded; `shell` is the config's Shell after the step, `working_dir`
    the WorkingDir after a WORKDIR)."""
    if isinstance(step, EnvStep):
        return "ENV " + " ".join(str(pair) for pair in step.pairs)
    if isinstance(step, LabelStep):
        return "LABEL " + " ".join(str(pair) for pair in step.pairs)
    if isinstance(step, MaintainerStep):
        return "MAINTAINER " + step.maintainer
    if isinstance(step, OnbuildStep):
        return "ONBUILD " + step.expression
    if isinstance(step, CmdStep | EntrypointStep):
        return f"{step.keyword} " + golang.format_q(step.resolve(shell))
    if isinstance(step, HealthcheckStep):
        return "HEALTHCHECK " + format_healthcheck(step.health)
    if isinstance(step, ExposeStep):
        return "EXPOSE " + " ".join(step.ports)
    if isinstance(step, UserStep):
        return "USER " + step.user
    if isinstance(step, VolumeStep):
        return "VOLUME " + golang.format_v(step.paths)
    if isinstance(step, StopSignalStep):
        return "STOPSIGNAL " + step.signal
    if isinstance(step, ArgStep):
        return "ARG " + " ".join(str(decl) for decl in step.args)
    if isinstance(step, ShellStep):
        return "SHELL " + golang.format_v(step.shell)
    if isinstance(step, WorkdirStep):
        return "WORKDIR " + working_dir
    raise TypeError(f"{step.keyword} is not a metadata step")


def created_by(step: Step, shell: Sequence[str], working_dir: str = "") -> str:
    """history.created_by of a metadata step, as the classic builder writes it."""
    comment = metadata_comment(step, shell, working_dir)
    if isinstance(step, WorkdirStep):
        return " ".join(nop_single(shell, comment))
    return " ".join(nop(shell, comment))


def copy_created_by(keyword: str, shell: Sequence[str], source_hash: str, dest: str,
                    chown: str = "") -> str:
    """history.created_by of COPY/ADD: `/bin/sh -c #(nop) COPY file:<sha256> in /dest `
    (the trailing space is Docker's); `source_hash` is `file:`/`dir:`/`multi:` + hex."""
    owner = f"--chown={chown} " if chown else ""
    return " ".join(nop_single(shell, f"{keyword} {owner}{source_hash} in {dest} "))


def unexpanded_words(word: str, escape: str = "\\") -> list[str]:
    """A word split as Docker would, with variables left as written (for a dry-run plan)."""
    return Lexer(escape, skip_unset=True).process_words(word, {})
