"""A container's confinement: what `create` records of --cap-add/--cap-drop/--privileged/
--security-opt/--device/--device-cgroup-rule, and what init.py is then given (capability
numbers and the kernel's last one, read here on the host; the seccomp filter, compiled
here; device nodes). init.py never reads a kernel fact from inside the container: a
volume could fake its /proc (issue 13, defect 2)."""

from __future__ import annotations

from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.layout import CHECKOUT
from shellctr.parts import confine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.facts import Facts
    from shellctr.core.host import Host
    from shellctr.core.layout import Layout
    from shellctr.core.records import ContainerRecord, Record
    from shellctr.parts.request import RunRequest

UNCONFINED = "unconfined"


def config_of(facts: Facts, request: RunRequest) -> Record:
    """The confinement fields of a new container's config (state.ContainerConfig);
    a bad flag is refused here, before anything is created."""
    if request.userns not in (None, "", "host"):
        raise ShellctrError(f"--userns {request.userns}: shellctr runs containers in the "
                            "host's user namespace", "drop --userns, or use --userns host")
    cap_add = [confine.cap_name(word) for word in request.cap_add]
    own = own_caps(facts) if cap_add else set()
    missing = [name for name in cap_add
               if name != "ALL" and confine.CAPABILITIES.index(name[4:]) not in own]
    if missing:
        raise ShellctrError(f"cannot add {', '.join(missing)}: shellctr itself runs without "
                            "it (its bounding set lacks it)", "drop that --cap-add")
    cap_drop = [confine.cap_name(word) for word in request.cap_drop]
    options = confine.parse_security_opts(request.security_opt, facts.security_modules())
    seccomp = str(options["seccomp"])
    profile = seccomp
    if seccomp and seccomp != UNCONFINED:
        from shellctr.inside import seccomp as filters

        try:
            profile = facts.read_text(seccomp)
        except OSError as err:
            raise ShellctrError(f"cannot read the seccomp profile {seccomp}: {err.strerror}",
                                "give the path of a JSON profile") from None
        try:  # refused now, not at start
            machine, release = facts.kernel()
            filters.build(filters.read_profile(profile, seccomp), set(), machine,
                          filters.version(release))
        except filters.ProfileError as err:
            raise ShellctrError(err.message, err.hint) from None
    devices = []
    for item in request.device:
        mapping = confine.parse_device(item)
        node = facts.device(mapping["host"])
        if node is None:
            raise ShellctrError(f"error gathering device information while adding device "
                                f"{mapping['host']}: not a device node",
                                "give a character or block device, e.g. /dev/fuse")
        kind, major, minor = node
        devices.append({**mapping, "kind": kind, "major": major, "minor": minor})
    return {
        "cap_add": cap_add,
        "cap_drop": cap_drop,
        "privileged": request.privileged,
        "security_opt": list(request.security_opt),
        "seccomp_profile": profile,
        "no_new_privileges": bool(options["no_new_privileges"]),
        "devices": devices,
        "device_cgroup_rules": [confine.parse_cgroup_rule(r) for r in request.device_cgroup_rule],
    }


def exec_helper() -> Path:
    """The static last step (`make` builds it from shellctr/exec.c)."""
    binary = CHECKOUT / "build" / "shellctr-exec"
    if not binary.exists():
        raise ShellctrError(f"{binary} is missing", "run make to build it")
    return binary


def last_cap(facts: Facts) -> int:
    """The host kernel's highest capability number (read on the host, never inside)."""
    text = facts.read_text(facts.proc / "sys/kernel/cap_last_cap", "")
    return int(text) if text.strip().isdigit() else len(confine.CAPABILITIES) - 1


def own_caps(facts: Facts) -> set[int]:
    """The capabilities shellctr itself may pass on: its own bounding set (a host may run
    it without some, e.g. CAP_SYS_RESOURCE in a container)."""
    for line in facts.read_text(facts.proc / "self/status", "").splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(64) if mask >> n & 1}
    return set(range(len(confine.CAPABILITIES)))


def profile_file(layout: Layout, container: ContainerRecord) -> Path:
    """The seccomp profile the container's filter is compiled from: the default, or the
    container's own (written to its run dir at start, see write_profile)."""
    if not container.get("seccomp_profile", ""):  # (inside/seccomp.py's DEFAULT_PROFILE)
        return CHECKOUT / "shellctr" / "inside" / "seccomp_default.json"
    return layout.container_run_dir(container["id"]) / "seccomp.json"


def write_profile(host: Host, layout: Layout, container: ContainerRecord) -> None:
    """--security-opt seccomp=PROFILE.json: the profile as given at create, to compile."""
    profile = str(container.get("seccomp_profile", ""))
    if profile not in ("", UNCONFINED) and not container.get("privileged"):
        host.write_file(profile_file(layout, container), profile, mode=0o600, durable=False)


def filter_file(layout: Layout, cid: str, caps: list[int]) -> Path:
    """Where a container's seccomp filter for a process with `caps` is kept, compiled:
    its run dir (gone with the container, and at a reboot, when the kernel may change)."""
    mask = sum(1 << number for number in caps)
    return layout.container_run_dir(cid) / f"seccomp-{mask:x}.bpf"


def compile_filter(host: Host, profile: Path, caps: list[int], target: Path) -> None:
    """Compile the seccomp `profile` for a process with `caps` into `target` (struct
    sock_filter[], what prctl loads), shown as the command that writes the same bytes;
    through a temporary file renamed into place, so that a kill leaves no half filter."""
    import os
    import sys

    from shellctr.inside import seccomp

    names = ["CAP_" + confine.CAPABILITIES[number] for number in caps]
    machine, release = host.facts.kernel()
    try:  # (the plan's text under --dry-run: a profile written by this start)
        text = host.facts.read_text(profile)
        program = seccomp.encode(seccomp.build(seccomp.read_profile(text, path_arg(profile)),
                                               set(names), machine, seccomp.version(release)))
    except seccomp.ProfileError as err:
        raise ShellctrError(f"seccomp: {err.message}", err.hint) from None
    except OSError as err:
        raise ShellctrError(f"seccomp: cannot read the profile {profile}: {err.strerror}",
                            "start the container again") from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    host.produce(["env", f"PYTHONPATH={path_arg(CHECKOUT)}", sys.executable, "-m",
                  "shellctr.inside.seccomp", path_arg(profile), *names], partial,
                 lambda out: out.write(program))
    host.rename(partial, target)


def container_filter(host: Host, layout: Layout, container: ContainerRecord,
                     spec: dict[str, object]) -> Path | None:
    """The seccomp filter of the process `spec` (spec_of's) confines, compiled once per
    container and set of capabilities (None: no filter applies)."""
    if "seccomp_profile" not in spec:
        return None
    caps = [int(number) for number, _ in spec["caps"]]  # type: ignore[attr-defined]
    target = filter_file(layout, container["id"], caps)
    if not host.facts.exists(target):
        compile_filter(host, Path(str(spec["seccomp_profile"])), caps, target)
    return target


def spec_of(facts: Facts, layout: Layout, container: ContainerRecord,
            privileged_exec: bool = False) -> dict[str, object]:
    """The confinement part of init.py's spec, for PID 1 or (`exec --privileged`) one
    exec'd process."""
    privileged = bool(container.get("privileged"))
    top, own = last_cap(facts), own_caps(facts)
    caps = [n for n in confine.capabilities(list(container.get("cap_add") or []),
                                            list(container.get("cap_drop") or []),
                                            privileged or privileged_exec, top)
            if n in own]
    spec: dict[str, object] = {
        "exec_helper": path_arg(exec_helper()),
        "caps": [[n, confine.CAPABILITIES[n].lower()] for n in caps],
        "last_cap": top,
        "no_new_privs": bool(container.get("no_new_privileges", True)),
    }
    if privileged:
        spec["privileged"] = True
    else:
        from shellctr.engine import cgroup

        if not cgroup.device_cgroup(facts):
            # no device cgroup (a v1 host without the devices hierarchy): Podman's way
            # instead, no CAP_MKNOD and a nodev rootfs, so only /dev's own nodes open
            mknod = confine.CAPABILITIES.index("MKNOD")
            caps = [n for n in caps if n != mknod]
            spec["caps"] = [[n, confine.CAPABILITIES[n].lower()] for n in caps]
            spec["rootfs_nodev"] = True
    seccomp = str(container.get("seccomp_profile") or "")
    if not privileged and seccomp != UNCONFINED:
        # the filter is compiled from this file for `caps` (container_filter)
        spec["seccomp_profile"] = path_arg(profile_file(layout, container))
    return spec
