"""A stage's image config as Docker's classic builder changes it, step by step: the pure
half of dispatching the instructions that change only the config (and RUN's and COPY's
view of it). The builder keeps one `StageConfig` per stage, calls `apply` with each
expanded metadata step, and records the `created_by` it returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shellctr.parts.dockerfile_build import (
    BuildArgs,
    check_signal,
    created_by,
    exposed_ports,
    workdir,
)
from shellctr.parts.dockerfile_steps import (
    DEFAULT_SHELL,
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

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class StageConfig:
    """The config fields a Dockerfile can change (Docker's container.Config names in
    `to_config`), plus the builder's own state: `author` (MAINTAINER) and `cmd_set` (a CMD
    of this build, which a later ENTRYPOINT keeps)."""

    env: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    shell: list[str] | None = None
    on_build: list[str] = field(default_factory=list)
    author: str = ""
    cmd_set: bool = False

    @property
    def current_shell(self) -> list[str]:
        return list(self.shell) if self.shell else list(DEFAULT_SHELL)

    def copy(self) -> StageConfig:
        return dataclasses.replace(
            self, env=list(self.env), cmd=None if self.cmd is None else list(self.cmd),
            entrypoint=None if self.entrypoint is None else list(self.entrypoint),
            exposed_ports=list(self.exposed_ports), volumes=list(self.volumes),
            labels=dict(self.labels), shell=None if self.shell is None else list(self.shell),
            on_build=list(self.on_build))

    def set_env(self, key: str, value: str) -> None:
        for i, item in enumerate(self.env):
            if item.partition("=")[0] == key:
                self.env[i] = f"{key}={value}"
                return
        self.env.append(f"{key}={value}")

    def apply(self, step: Step, args: BuildArgs | None = None) -> str:
        """Apply an expanded metadata step; returns its history `created_by`. ValueError for a
        value Docker refuses (a bad signal, a bad port)."""
        if isinstance(step, EnvStep):
            for pair in step.pairs:
                self.set_env(pair.key, pair.value)
        elif isinstance(step, LabelStep):
            for pair in step.pairs:
                self.labels[pair.key] = pair.value
        elif isinstance(step, MaintainerStep):
            self.author = step.maintainer
        elif isinstance(step, CmdStep):
            self.cmd = step.resolve(self.current_shell)
            self.cmd_set = self.cmd_set or bool(step.command)
        elif isinstance(step, EntrypointStep):
            self.entrypoint = step.resolve(self.current_shell)
            if not self.cmd_set:
                self.cmd = None
        elif isinstance(step, HealthcheckStep):
            self.healthcheck = step.health
        elif isinstance(step, ExposeStep):
            for port in exposed_ports(step.ports):
                if port not in self.exposed_ports:
                    self.exposed_ports.append(port)
        elif isinstance(step, UserStep):
            self.user = step.user
        elif isinstance(step, VolumeStep):
            for path in step.paths:
                if path not in self.volumes:
                    self.volumes.append(path)
        elif isinstance(step, StopSignalStep):
            check_signal(step.signal)
            self.stop_signal = step.signal
        elif isinstance(step, OnbuildStep):
            self.on_build.append(step.expression)
        elif isinstance(step, ShellStep):
            self.shell = list(step.shell)
        elif isinstance(step, WorkdirStep):
            self.working_dir = workdir(self.working_dir, step.path)
        elif isinstance(step, ArgStep):
            for decl in step.args:
                if args is not None:
                    args.declare(decl.key, decl.default)
        else:
            raise TypeError(f"{step.keyword} is not a metadata step")
        return created_by(step, self.current_shell, self.working_dir)

    def to_config(self) -> dict[str, Any]:
        """The image config's `config` object (Docker's keys; empty ones left out)."""
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.config()
        if self.volumes:
            out["Volumes"] = {path: {} for path in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        return out


def _health(value: Mapping[str, Any] | None) -> Healthcheck | None:
    if not value:
        return None
    return Healthcheck(tuple(value.get("Test") or ()), int(value.get("Interval") or 0),
                       int(value.get("Timeout") or 0), int(value.get("StartPeriod") or 0),
                       int(value.get("StartInterval") or 0), int(value.get("Retries") or 0))


def _list(value: Sequence[str] | None) -> list[str] | None:
    return None if value is None else list(value)


def begin_stage(base: Mapping[str, Any] | None) -> tuple[StageConfig, list[str]]:
    """A stage's config from its base image's `config` (None for scratch), with Docker's
    default PATH added when missing, and the base's ONBUILD triggers (taken out: a later
    FROM of this image must not run them again)."""
    base = base or {}
    config = StageConfig(
        env=list(base.get("Env") or ()), cmd=_list(base.get("Cmd")),
        entrypoint=_list(base.get("Entrypoint")), working_dir=base.get("WorkingDir") or "",
        user=base.get("User") or "", exposed_ports=list(base.get("ExposedPorts") or {}),
        volumes=list(base.get("Volumes") or {}), labels=dict(base.get("Labels") or {}),
        stop_signal=base.get("StopSignal") or "", healthcheck=_health(base.get("Healthcheck")),
        shell=_list(base.get("Shell")))
    if not any(item.partition("=")[0] == "PATH" for item in config.env):
        config.env.append(f"PATH={DEFAULT_PATH}")
    return config, list(base.get("OnBuild") or ())


def onbuild_trigger_line(count: int) -> str:
    """Docker's line before running a base image's triggers."""
    return f"# Executing {count} build trigger" + ("s" if count > 1 else "")
