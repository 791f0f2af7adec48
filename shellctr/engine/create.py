"""Creating a container: from a RunRequest and its image to its directories and records.

Everything that can be refused is checked before anything is made (the image, the name,
the flags, the network, the mounts); then, under the lock, the name and id are taken and
the container's directory and records are written: config.json (frozen) and state.json
(`created`, with the settings that may change later). Nothing runs yet (start.py).
This is on the hot path of `run`: stdlib only.
"""

from __future__ import annotations

import os
from pathlib import Path

from shellctr.core.errors import Conflict, NotFound, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import container_name, generate_name, new_id, short_id
from shellctr.core.store import CONTAINER_SCHEMA, SETTINGS, Record, Store, now_iso
from shellctr.engine import cgroup, confine
from shellctr.engine.lifecycle import FRESH_LIFE
from shellctr.parts import netopts, runflags
from shellctr.parts.cgroups import parse_parent
from shellctr.parts.reference import find_image_record
from shellctr.parts.request import (
    RunRequest,
    build_command,
    build_env,
    parse_env,
    parse_labels,
    parse_restart,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from shellctr.core.records import ContainerRecord
    from shellctr.engine.layers import PreparedLayer


def create(host: Host, store: Store, request: RunRequest,
           starting: bool = False) -> ContainerRecord:
    """Write a new container's directories and records; nothing runs yet. `starting`
    (run): refuse first what its start would refuse (addresses, ports)."""
    image = find_image_record(store.image_records(), request.image)
    image_config = image["config"]
    if request.name is not None:
        request.name = container_name(request.name)  # `/web` is `web`, as in Docker
    workdir = request.workdir or image_config["WorkingDir"] or "/"
    if not workdir.startswith("/"):
        raise ShellctrError(f"the working directory {workdir!r} is not absolute",
                            "use an absolute path with -w")
    entrypoint, cmd = build_command(request, image_config["Entrypoint"], image_config["Cmd"])
    argv = entrypoint + cmd
    restart_policy, restart_max = parse_restart(request.restart, request.rm)
    labels = parse_labels(process_labels(host, request))
    env = parse_env(request, os.environ, lambda path: host.facts.read_text(path))
    network = netopts.network_config(request, image_config)
    mode = network.pop("network_mode")
    if mode == "host" and (request.publish or request.publish_all):
        host.err.write("WARNING: Published ports are discarded when using host network mode\n")
    networks = network.pop("networks")
    if netopts.is_bridged(mode):
        from shellctr.engine.endpoint import precheck
        from shellctr.engine.network import require_network

        if mode != netopts.DEFAULT_NETWORK:
            require_network(store, mode)  # refused now, as Docker does
        if starting:  # as what its start would refuse
            precheck(host, store, networks, network["ports"])
    limits = cgroup.parse_limits(host.facts, request.limits())
    confinement = confine.config_of(host.facts, request)
    process = process_config(store, request, image_config, mode)
    if request.cidfile is not None and host.facts.exists(Path(request.cidfile)):
        raise Conflict(f"container ID file found, make sure the other container isn't "
                       f"running or delete {request.cidfile}", "remove the file first")
    parent = parse_parent(request.cgroup_parent) if request.cgroup_parent else ""
    layout = store.layout
    mounts: list[Record] = []
    if (request.volume or request.mount or request.tmpfs or request.volumes_from
            or image_config.get("Volumes") or image_config.get("volumes")):
        from shellctr.engine import volume  # checked here, before anything is created

        mounts = volume.collect(store, request.volume, request.mount, request.tmpfs,
                                request.volumes_from, image_config)
        volume.check_propagation(host.facts, layout, mounts)
    store.prepare()
    extracted: list[PreparedLayer] = []  # (layers is not imported on the run path)
    # a committed layer's files (from its tar), a pulled one's (from its compressed blob),
    # extracted on the image's first use, outside the lock
    with Rollback(host) as scratch:
        if not all(host.exists(layout.layer_dir(d)) for d in image["layers"]):
            from shellctr.engine.layers import kept_blobs, prepare_layer_dirs

            extracted = prepare_layer_dirs(host, layout, image["layers"], scratch, kept_blobs(
                image["layers"], list(image.get("layer_blobs") or [])))
        with store.lock(), Rollback(host) as rollback:
            if not store.exists(layout.image_file(image["id"])):  # an rmi got the lock first
                raise NotFound(f"image {request.image} was removed meanwhile",
                               "load or pull it again")
            names = store.container_names()
            if request.name is not None and request.name in names.values():
                holder = next(cid for cid, name in names.items() if name == request.name)
                raise Conflict(
                    f'the container name "{request.name}" is already in use by container '
                    f"{short_id(holder)}",
                    "remove that container or choose another name",
                )
            if extracted:  # under the lock: into place, unless another create was first
                from shellctr.engine.image_record import publish_layers

                publish_layers(host, store, extracted, rollback)
            cid = new_id()
            hostname = request.hostname or short_id(cid)
            config: Record = {  # shaped like state.ContainerConfig
                "schema_version": CONTAINER_SCHEMA,
                "id": cid,
                "created": now_iso(),
                "image": request.image,
                "image_id": image["id"],
                "layers": image["layers"],
                "path": argv[0],
                "args": argv[1:],
                "entrypoint": entrypoint,
                "cmd": cmd,
                "env": build_env(request, image_config["Env"], hostname, env),
                "working_dir": workdir,
                "user": request.user if request.user is not None else image_config["User"],
                "hostname": hostname,
                "tty": request.tty,
                "interactive": request.interactive,
                "auto_remove": request.rm,
                "cgroup_parent": parent,
                "labels": {**(image_config.get("Labels") or {}), **labels},  # -l wins
                "stop_signal": request.stop_signal or image_config.get("StopSignal") or "",
                "mounts": mounts,  # volume.mount_record; anonymous volumes named below
                "read_only": request.read_only,
                **network,  # ports, exposed, dns... (netopts.network_config)
                **confinement,  # cap_add, privileged, seccomp... (engine.confine)
                **process,  # init, ulimits, ipc_mode, healthcheck... (process_config)
            }
            state: Record = {  # shaped like state.ContainerState
                "schema_version": CONTAINER_SCHEMA,
                "name": request.name or generate_name(names.values()),
                **limits,  # memory, cpu_shares... (parts.cgroups.LIMIT_DEFAULTS)
                "restart_policy": restart_policy,
                "restart_max": restart_max,
                "network_mode": mode,
                "networks": networks,
                **FRESH_LIFE,
                "restart_count": 0,
                # this process: a `run` starts it next (lifecycle.record_starting)
                "starter_pid": os.getpid(),
                "starter_start": host.facts.process_start(os.getpid()) or 0,
            }
            container: Record = {**config, **{key: state[key] for key in SETTINGS}}
            write_container(host, store, config, state, container, mounts, rollback)
            if request.cidfile is not None:
                host.write_file(Path(request.cidfile), cid, rollback=rollback)
    from shellctr.engine import events

    events.emit(store, "container", "create", container["id"],
                events.container_attributes(container))  # type: ignore[arg-type]
    return container  # type: ignore[return-value]


def process_labels(host: Host, request: RunRequest) -> list[str]:
    """--label-file's lines, then -l (which win)."""
    lines: list[str] = []
    for path in request.label_file:
        try:
            lines += runflags.parse_label_file(host.facts.read_text(path))
        except OSError as err:
            raise NotFound(f"cannot read label file {path}: {err.strerror}",
                           "check the path") from err
    return lines + request.label


def process_config(store: Store, request: RunRequest, image_config: Record,
                   network_mode: str) -> Record:
    """The issue-16 fields of the config (state.ContainerConfig): checked, normalised."""
    ipc = runflags.parse_namespace_mode("--ipc", request.ipc,
                                        ("private", "shareable", "host", "container:"),
                                        "private")
    pid = runflags.parse_namespace_mode("--pid", request.pid, ("host", "container:"), "")
    uts = runflags.parse_namespace_mode("--uts", request.uts, ("host",), "")
    if uts == "host" and request.hostname is not None:
        raise ShellctrError("conflicting options: hostname and the UTS mode",
                            "drop -h or --uts host")
    ipc, pid = shared_namespace(store, ipc, "ipc"), shared_namespace(store, pid, "pid")
    if request.attach:
        for stream in request.attach:
            if stream.lower() not in ("stdin", "stdout", "stderr"):
                raise ShellctrError(f"invalid argument {stream!r} for -a",
                                    "use -a stdin, -a stdout or -a stderr")
        if request.detach:
            raise ShellctrError("conflicting options: -a and -d", "use one or the other")
    if request.detach_keys is not None:
        from shellctr.engine.terminal import parse_detach_keys

        parse_detach_keys(request.detach_keys)
    log_driver, log_opts = runflags.parse_log(request.log_driver, request.log_opt)
    return {
        "stop_timeout": runflags.parse_stop_timeout(request.stop_timeout),
        "init": request.init,
        "ulimits": runflags.parse_ulimits(request.ulimit),
        "shm_size": runflags.parse_shm_size(request.shm_size),
        "sysctls": runflags.parse_sysctls(request.sysctl, network_mode, ipc, uts),
        "group_add": runflags.parse_group_add(request.group_add),
        "ipc_mode": ipc,
        "pid_mode": pid,
        "uts_mode": uts,
        "log_driver": log_driver,
        "log_opts": log_opts,
        "healthcheck": runflags.parse_health(request, image_config.get("Healthcheck")),
    }


def shared_namespace(store: Store, mode: str, kind: str) -> str:
    """`container:NAME` -> `container:<id>` of a container that exists (its namespace is
    joined when this one starts); an ipc namespace only if that one made it shareable."""
    if not mode.startswith("container:"):
        return mode
    from shellctr.core.ids import find

    cid = find(mode.partition(":")[2], store.container_names(), "container")
    if kind == "ipc" and store.container_config(cid).get("ipc_mode") not in ("shareable",):
        raise ShellctrError(f"cannot join the IPC namespace of container {short_id(cid)}: "
                            "it is not shareable", "create that one with --ipc shareable")
    return f"container:{cid}"


def write_container(host: Host, store: Store, config: Record, state: Record,
                    container: Record, mounts: list[Record], rollback: Rollback) -> None:
    """The container's directories, /etc files and records (the caller holds the lock):
    made under a hidden name, then renamed into place, so that a kill at any point leaves
    either a whole container or a leftover `system prune` collects (.ID.creating)."""
    layout, cid = store.layout, config["id"]
    host.step(f"create container {short_id(cid)} ({state['name']})")
    if mounts:  # volumes created on first use, missing -v host dirs
        from shellctr.engine import volume

        volume.prepare(host, store, mounts, rollback)
    final = layout.container_dir(cid)
    building = store.creating(cid)

    def inside(path: Path) -> Path:
        return building / path.relative_to(final)

    # the undo of this first mkdir removes everything below it
    host.mkdir(building, mode=0o700, rollback=rollback)
    for path in (layout.container_upper(cid), layout.container_work(cid),
                 layout.container_rootfs(cid)):
        host.mkdir(inside(path))
    host.write_file(inside(layout.container_etc_file(cid, "hostname")), config["hostname"] + "\n")
    mode = state["network_mode"]
    if not netopts.is_bridged(mode):  # else: written at start
        host.write_file(inside(layout.container_etc_file(cid, "hosts")),
                        netopts.hosts_text(container))
        resolv = host.facts.resolv_conf()  # on the host network, its resolvers work
        if mode != "host":
            resolv = netopts.without_loopback_resolvers(resolv)
        host.write_file(inside(layout.container_etc_file(cid, "resolv.conf")),
                        netopts.resolv_text(container, resolv))
    store.write(inside(layout.container_config(cid)), config)
    store.write(inside(layout.container_state(cid)), state)
    host.rename(building, final, rollback=rollback)

