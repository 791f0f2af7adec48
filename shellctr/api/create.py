"""`POST /containers/create`'s body (Config + HostConfig + NetworkingConfig) into the
RunRequest that `run`/`create`'s flags make: every field the CLI's flags cover is
translated into the flag's own text, so that the engine checks it exactly as it checks
the flag. A field of the wrong type is a 400 before anything is created."""

from __future__ import annotations

from typing import Any

from shellctr.api.routes import bad_request, familiar
from shellctr.parts.request import RunRequest


class Body:
    """A JSON object whose fields are read with their types checked."""

    def __init__(self, value: Any, where: str) -> None:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise bad_request(f"{where} must be a JSON object")
        self.value, self.where = value, where

    def get(self, key: str) -> Any:
        """The field `key`, matched as Go's encoding/json does (the Engine's decoder): the
        exact name, else the same name in any case (docker-py sends `detachKeys`)."""
        if key in self.value:
            return self.value[key]
        folded = key.casefold()
        return next((value for name, value in self.value.items()
                     if isinstance(name, str) and name.casefold() == folded), None)

    def _typed(self, key: str, kinds: tuple[type, ...], what: str) -> Any:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise bad_request(f"{self.where}.{key} must be {what}")
        if not isinstance(value, kinds):
            raise bad_request(f"{self.where}.{key} must be {what}")
        return value

    def text(self, key: str) -> str | None:
        return self._typed(key, (str,), "a string")  # type: ignore[no-any-return]

    def number(self, key: str) -> int | None:
        value = self._typed(key, (int, float), "a number")
        return None if value is None else int(value)

    def flag(self, key: str) -> bool:
        return bool(self._typed(key, (bool,), "a boolean"))

    def texts(self, key: str, one_string: bool = False) -> list[str]:
        """A list of strings (`one_string`: or one string, as Cmd and Entrypoint may be)."""
        value = self.get(key)
        if value is None:
            return []
        if isinstance(value, str) and one_string:
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise bad_request(f"{self.where}.{key} must be a list of strings")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        return Body(self.get(key), f"{self.where}.{key}").value

    def child(self, key: str) -> Body:
        return Body(self.get(key), f"{self.where}.{key}")


def run_request(body: Any, name: str | None) -> RunRequest:
    config = Body(body, "the body")
    host = config.child("HostConfig")
    image = config.text("Image")
    if not image:
        raise bad_request("Config.Image is required")
    values: dict[str, Any] = {
        "image": familiar(image), "name": name or None,
        "hostname": config.text("Hostname") or None,
        "user": config.text("User") or None,
        "workdir": config.text("WorkingDir") or None,
        "tty": config.flag("Tty"), "interactive": config.flag("OpenStdin"),
        # `NAME` alone would take the service's own value of NAME: only NAME=VALUE
        "env": [item for item in config.texts("Env") if "=" in item],
        "label": [f"{key}={value}" for key, value in labels(config).items()],
        "mac_address": config.text("MacAddress") or None,
        "rm": host.flag("AutoRemove"), "read_only": host.flag("ReadonlyRootfs"),
    }
    values.update(command_of(config))
    values.update(limits_of(host))
    values.update(storage_of(config, host))
    values.update(network_of(config, host))
    policy = host.child("RestartPolicy")
    restart = policy.text("Name") or "no"
    if restart == "on-failure" and policy.number("MaximumRetryCount"):
        restart += f":{policy.number('MaximumRetryCount')}"
    values["restart"] = restart
    if host.text("CgroupParent"):
        values["cgroup_parent"] = host.text("CgroupParent")
    return RunRequest(**values)


def labels(config: Body) -> dict[str, str]:
    found = config.mapping("Labels")
    if not all(isinstance(value, str) for value in found.values()):
        raise bad_request("Labels must map strings to strings")
    return found


def command_of(config: Body) -> dict[str, Any]:
    """Entrypoint and Cmd: RunRequest's entrypoint is one word (the flag's); a longer
    Entrypoint's other words go before Cmd, which is what Docker runs."""
    cmd = config.texts("Cmd", one_string=True)
    if config.value.get("Entrypoint") is None:
        return {"command": cmd}
    entrypoint = config.texts("Entrypoint", one_string=True)
    if not entrypoint or entrypoint == [""]:
        return {"entrypoint": "", "command": cmd}
    return {"entrypoint": entrypoint[0], "command": [*entrypoint[1:], *cmd]}


def limits_of(host: Body) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in (("Memory", "memory"), ("MemorySwap", "memory_swap"),
                      ("MemoryReservation", "memory_reservation"),
                      ("CpuShares", "cpu_shares"), ("CpuPeriod", "cpu_period"),
                      ("CpuQuota", "cpu_quota")):
        value = host.number(key)
        if value:  # 0: not set, as Docker
            out[name] = str(value)
    nano = host.number("NanoCpus")
    if nano:
        out["cpus"] = f"{nano / 1e9:g}"
    pids = host.number("PidsLimit")
    if pids and pids > 0:
        out["pids_limit"] = str(pids)
    for key, name in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        if host.text(key):
            out[name] = host.text(key)
    if host.flag("OomKillDisable"):
        out["oom_kill_disable"] = True
    return out


def storage_of(config: Body, host: Body) -> dict[str, Any]:
    volumes = list(host.texts("Binds"))
    binds = {item.split(":")[1] for item in volumes if ":" in item}
    volumes += [target for target in config.mapping("Volumes") if target not in binds]
    mounts = []
    for index, item in enumerate(host.value.get("Mounts") or []):
        mount = Body(item, f"HostConfig.Mounts[{index}]")
        kind, target = mount.text("Type") or "volume", mount.text("Target")
        if not target:
            raise bad_request(f"HostConfig.Mounts[{index}].Target is required")
        words = [f"type={kind}", f"target={target}"]
        if mount.text("Source"):
            words.append(f"source={mount.text('Source')}")
        if mount.flag("ReadOnly"):
            words.append("readonly")
        if kind == "tmpfs":
            size = mount.child("TmpfsOptions").number("SizeBytes")
            if size:
                words.append(f"tmpfs-size={size}")
        mounts.append(",".join(words))
    tmpfs = []
    for target, options in host.mapping("Tmpfs").items():
        if not isinstance(options, str):
            raise bad_request("HostConfig.Tmpfs must map paths to option strings")
        tmpfs.append(f"{target}:{options}" if options else target)
    return {"volume": volumes, "mount": mounts, "tmpfs": tmpfs,
            "volumes_from": host.texts("VolumesFrom")}


def network_of(config: Body, host: Body) -> dict[str, Any]:
    mode = host.text("NetworkMode") or None
    if mode == "default":
        mode = None
    endpoints = config.child("NetworkingConfig").mapping("EndpointsConfig")
    ip, aliases = None, []
    chosen = mode if mode in endpoints else next(iter(endpoints), None)
    if chosen is not None:
        endpoint = Body(endpoints[chosen], f"EndpointsConfig.{chosen}")
        ip = endpoint.child("IPAMConfig").text("IPv4Address") or None
        aliases = endpoint.texts("Aliases")
        if mode is None:
            mode = chosen
    publish = []
    for spec, bindings in host.mapping("PortBindings").items():
        port = spec if "/" in spec else f"{spec}/tcp"
        for index, binding in enumerate(bindings or [{}]):
            bound = Body(binding, f"PortBindings.{spec}[{index}]")
            host_ip, host_port = bound.text("HostIp") or "", bound.text("HostPort") or ""
            if host_ip:
                publish.append(f"{host_ip}:{host_port}:{port}")
            elif host_port:
                publish.append(f"{host_port}:{port}")
            else:
                publish.append(port)
    return {
        "network": mode, "ip": ip, "aliases": aliases, "publish": publish,
        "publish_all": host.flag("PublishAllPorts"),
        "expose": list(config.mapping("ExposedPorts")),
        "dns": host.texts("Dns"), "dns_search": host.texts("DnsSearch"),
        "dns_options": host.texts("DnsOptions"),
        "add_host": host.texts("ExtraHosts"),
    }
