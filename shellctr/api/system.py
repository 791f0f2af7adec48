"""System endpoints: `_ping`, version, info, system/df, auth; and the seams of what
other issues bring (events, build, pull, push): 501 with a message until they land."""

from __future__ import annotations

import os
import platform
from typing import Any

from shellctr.api.routes import ROUTES, ApiError, Call, Json, Raw, Streamed
from shellctr.api.server import API_VERSION, MIN_API_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

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
    from shellctr.api.images import image_summary
    from shellctr.api.volumes import volume_summary
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
    """`docker login`: the credentials are checked against the registry as `shellctr
    login` checks them (401 if refused); the client keeps them, the service does not."""
    from shellctr.api.images import auth_config
    from shellctr.engine.registry_auth import check_login, server_name
    from shellctr.engine.registry_http import Unauthorized
    from shellctr.parts.reference import DOCKER_HUB

    config = auth_config(call.json_body(), "auth body")
    server = config.get("serveraddress") or ""
    registry = server_name(server) if server else DOCKER_HUB
    try:
        check_login(call.host, registry, config.get("username", ""),
                    config.get("password", ""))
    except Unauthorized as err:
        raise ApiError(401, str(err)) from None
    return Json({"Status": "Login Succeeded", "IdentityToken": ""})


def not_yet(what: str, issue: int) -> Any:
    def refuse(call: Call) -> None:
        call.drain_body()
        raise ApiError(501, f"{what} is not implemented by shellctr's API yet (issue {issue})")
    return refuse


_BUILDS = __import__("threading").Lock()  # the engine stages a context per process id


class StreamLines:
    """The builder's output (`out=`) as the classic builder's JSON lines:
    {"stream": "Step 1/3 : FROM busybox\\n"}, each written as it comes."""

    def __init__(self, out: Any) -> None:
        self.target, self.pending = out, ""

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def write(self, text: str) -> int:
        import json

        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.target.write(json.dumps({"stream": line + "\n"}).encode() + b"\r\n")
        return len(text)


@ROUTES.add("POST", "/build")
def build(call: Call) -> Streamed:
    """`docker build` (the classic builder): the context tar in the body, checked and
    extracted as `shellctr build -` does; the builder's lines streamed as JSON lines."""
    import json

    from shellctr.core.errors import ShellctrError
    from shellctr.engine.build import build as run_build
    from shellctr.engine.build_context import BuildOptions, prepared_context
    from shellctr.parts.reference import normalize_ref

    def mapping(name: str) -> dict[str, Any]:
        value = call.json_arg(name) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str | None)
                                                  for v in value.values()):
            raise ApiError(400, f"{name} must be a JSON object of strings")
        return value

    tags = [tag for tag in call.query.get("t", []) if tag]
    for tag in tags:
        normalize_ref(tag)  # a bad name is a 400 before anything is built
    build_args, labels = mapping("buildargs"), mapping("labels")
    if (call.arg("platform") or "linux") not in ("linux", "linux/amd64"):
        raise ApiError(400, "shellctr builds for linux/amd64 only")
    options: dict[str, Any] = {
        "tags": tags, "build_args": build_args, "target": call.arg("target") or None,
        "no_cache": call.flag("nocache"), "labels": {k: v or "" for k, v in labels.items()},
        "quiet": call.flag("q"), "network": call.arg("networkmode") or None,
        "rm": call.flag("rm", True), "force_rm": call.flag("forcerm"),
    }
    if options["network"] == "default":
        options["network"] = None
    dockerfile = call.arg("dockerfile") or None
    body = call.body()

    def write(out: Any) -> None:
        try:
            with _BUILDS, prepared_context(call.host, call.store, "-", dockerfile,
                                           body) as (data, name, tree):  # type: ignore[arg-type]
                image_id = run_build(call.host, call.store, BuildOptions(
                    dockerfile=data, dockerfile_name=name, context=tree, **options),
                    out=StreamLines(out))  # type: ignore[arg-type]
            out.write(json.dumps({"aux": {"ID": f"sha256:{image_id}"}}).encode() + b"\r\n")
        except ShellctrError as err:
            message = str(err)
            out.write(json.dumps({"errorDetail": {"message": message},
                                  "error": message}).encode() + b"\r\n")

    return Streamed(content_type="application/json", writer=write)


@ROUTES.add("GET", "/events")
def events(call: Call) -> Streamed:
    """`docker events`: the journal's events (replayed for `since`/`until`), then the
    new ones as they are appended, one JSON object a line, until `until` or the client
    goes."""
    import json
    import time

    from shellctr.engine import events as journal

    filters = call.filters()
    since, until = journal.to_ns(call.arg("since")), journal.to_ns(call.arg("until"))
    replayed, inode, offset = journal.replay(call.store, since, until)

    def chunks() -> Iterator[bytes]:
        for event in replayed if since is not None or until is not None else []:
            if journal.matches(event, filters):
                yield json.dumps(event).encode() + b"\n"
        if until is not None and until <= time.time_ns():
            return
        yield b""  # the headers go now: a client waits for them before it starts a verb
        for event in journal.follow(call.store, inode, offset, until):
            if journal.matches(event, filters) and (since is None or event["timeNano"] >= since):
                yield json.dumps(event).encode() + b"\n"

    return Streamed(chunks())
