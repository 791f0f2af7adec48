"""The confinement flags of `run`/`create`/`exec`, as Docker reads them: capabilities
(--cap-add, --cap-drop, --privileged), --security-opt, --device and
--device-cgroup-rule. Pure: values in, values (or a ShellctrError) out."""

from __future__ import annotations

from shellctr.core.errors import ShellctrError

# capability numbers, <linux/capability.h>: the index is the number
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# Docker's default set: CapBnd 00000000a80425fb
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE",
                "SETFCAP")
SECURITY_OPTS = ("seccomp", "no-new-privileges", "apparmor", "label")


def cap_name(word: str) -> str:
    """`net_admin`, `CAP_NET_ADMIN` or `ALL` -> Docker's stored form (`CAP_NET_ADMIN`,
    `ALL`); an unknown name is refused."""
    name = word.strip().upper()
    if name == "ALL":
        return name
    bare = name.removeprefix("CAP_")
    if bare not in CAPABILITIES:
        raise ShellctrError(f"unknown capability: {word!r}",
                            "use a name from capabilities(7), e.g. NET_ADMIN, or ALL")
    return "CAP_" + bare


def capabilities(cap_add: list[str], cap_drop: list[str], privileged: bool,
                 last_cap: int) -> list[int]:
    """The capability numbers a container's processes keep (bounding, permitted,
    effective), Docker's way: the default set, then --cap-drop (ALL: none), then
    --cap-add (ALL: every one); --privileged: every one this kernel has."""
    every = set(range(min(last_cap, len(CAPABILITIES) - 1) + 1))
    if privileged or "ALL" in cap_add:
        return sorted(every)
    kept = set() if "ALL" in cap_drop else {CAPABILITIES.index(n) for n in DEFAULT_CAPS}
    kept -= {CAPABILITIES.index(n[4:]) for n in cap_drop if n != "ALL"}
    kept |= {CAPABILITIES.index(n[4:]) for n in cap_add if n != "ALL"}
    return sorted(kept & every)


def cap_names(numbers: list[int]) -> list[str]:
    return ["CAP_" + CAPABILITIES[n] for n in numbers]


def parse_security_opts(items: list[str], lsms: set[str]) -> dict[str, object]:
    """`--security-opt` values -> {"seccomp": "" (default) | "unconfined" | PATH,
    "no_new_privileges": bool}. `lsms` are the host's active security modules
    (/sys/kernel/security/lsm): apparmor=/label= need theirs."""
    found: dict[str, object] = {"seccomp": "", "no_new_privileges": True}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep and ":" in item:  # Docker's old `seccomp:unconfined` spelling
            key, sep, value = item.partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise ShellctrError(f"invalid --security-opt {item!r}",
                                    "use no-new-privileges, no-new-privileges=true or =false")
            found["no_new_privileges"] = value != "false"
        elif key == "seccomp":
            if not value:
                raise ShellctrError(f"invalid --security-opt {item!r}",
                                    "use seccomp=unconfined or seccomp=PROFILE.json")
            found["seccomp"] = value
        elif key in ("apparmor", "label"):
            module = "apparmor" if key == "apparmor" else "selinux"
            if module not in lsms:
                raise ShellctrError(f"--security-opt {item}: this host has no {module}",
                                    f"drop the option; the active security modules are "
                                    f"{', '.join(sorted(lsms)) or 'none'}")
            if key == "label" and value != "disable":
                raise ShellctrError(f"--security-opt {item}: shellctr does not label "
                                    "containers", "use label=disable, or drop the option")
            if key == "apparmor" and value != "unconfined":
                raise ShellctrError(f"--security-opt {item}: shellctr does not load AppArmor "
                                    "profiles", "use apparmor=unconfined, or drop the option")
        else:
            raise ShellctrError(f"invalid --security-opt {item!r}",
                                f"use one of {', '.join(SECURITY_OPTS)}")
    return found


def parse_device(spec: str) -> dict[str, str]:
    """`--device HOST[:CONTAINER][:PERMISSIONS]` (permissions: some of r, w, m)."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ShellctrError(f"invalid device {spec!r}", "use --device HOST[:CONTAINER][:rwm]")
    host = parts[0]
    container, permissions = host, "rwm"
    if len(parts) == 2:
        if valid_permissions(parts[1]):
            permissions = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, permissions = parts[1], parts[2]
    for path in (host, container):
        if not path.startswith("/"):
            raise ShellctrError(f"invalid device {spec!r}: {path} is not an absolute path",
                                "use --device /dev/NAME[:/dev/NAME][:rwm]")
    if not valid_permissions(permissions):
        raise ShellctrError(f"invalid device {spec!r}: bad permissions {permissions!r}",
                            "use some of r, w and m")
    return {"host": host, "container": container, "permissions": permissions}


def valid_permissions(text: str) -> bool:
    return bool(text) and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def parse_cgroup_rule(rule: str) -> str:
    """`--device-cgroup-rule 'c 1:3 rwm'` (type a|b|c, major and minor numbers or *)."""
    words = rule.split()
    ok = len(words) == 3 and words[0] in ("a", "b", "c") and valid_permissions(words[2])
    if ok:
        major, sep, minor = words[1].partition(":")
        ok = bool(sep) and all(n == "*" or n.isdigit() for n in (major, minor))
    if not ok:
        raise ShellctrError(f"invalid device cgroup rule {rule!r}",
                            "use TYPE MAJOR:MINOR PERMS, e.g. 'c 1:3 rwm' or 'c 81:* rw'")
    return " ".join(words)
