"""Confinement (issue 13): each defect's attack, tried from inside a container and shown
to fail, and the flags that loosen or tighten the confinement as Docker's do.

Non-destructive: victims live in tmp_path; nothing writes to a real host file."""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from .support import (
    APPLETS,
    GROUP,
    HOST_BUSYBOX,
    PASSWD,
    Ctr,
    inspect,
    one_line_error,
    run_detached,
    tar_member,
    write_tar,
)

# the fake outside host (a fixture) and its helpers, shared with the network tests
from .test_network import (
    HOST_IP,
    SERVE,
    cleanup,  # noqa: F401  (a fixture)
    host_connect,
    host_run,
    in_outside,
    outside,  # noqa: F401  (a fixture)
    retry,
)

DOCKER_CAPS = 0xA80425FB


def status_fields(text: str) -> dict[str, str]:
    return {key: value for key, _, value in
            (line.partition(":\t") for line in text.splitlines()) if key}


def status_of(ctr: Ctr, *flags: str) -> dict[str, str]:
    """/proc/self/status of a fresh container's process."""
    return status_fields(ctr("run", "--rm", *flags, "busybox", "cat", "/proc/self/status")
                         .ok().out)


# -- defect 1: the host's interpreter is never reachable ----------------------------------
def host_loader_image(ctr: Ctr, tmp_path: Path) -> str:
    """An image holding the host interpreter's ELF loader and libraries: were the host's
    Python exec'd inside (as /proc/self/exe), this image's loader would run it."""
    python = Path(os.path.realpath(sys.executable))
    libs = {"lib64/ld-linux-x86-64.so.2": Path("/lib64/ld-linux-x86-64.so.2"),
            "lib/x86_64-linux-gnu/libc.so.6": Path("/lib/x86_64-linux-gnu/libc.so.6"),
            "lib/x86_64-linux-gnu/libm.so.6": Path("/lib/x86_64-linux-gnu/libm.so.6")}
    libpython = python.parent.parent / "lib" / "libpython3.11.so.1.0"
    if libpython.exists():
        libs[str(libpython).lstrip("/")] = libpython
    members = [tar_member(d, tarfile.DIRTYPE, mode=0o755) for d in ("bin", "etc", "tmp")]
    members.append(tar_member("bin/busybox", data=HOST_BUSYBOX.read_bytes(), mode=0o755))
    members += [tar_member(f"bin/{a}", tarfile.SYMTYPE, mode=0o777, link="busybox")
                for a in APPLETS]
    members += [tar_member("etc/passwd", data=PASSWD.encode()),
                tar_member("etc/group", data=GROUP.encode())]
    dirs = sorted({str(Path(name).parent) for name in libs})
    for directory in dirs:
        parts = Path(directory).parts
        for i in range(1, len(parts) + 1):
            members.append(tar_member("/".join(parts[:i]), tarfile.DIRTYPE, mode=0o755))
    members += [tar_member(name, data=path.read_bytes(), mode=0o755)
                for name, path in libs.items()]
    seen: set[str] = set()
    unique = [m for m in members if not (m[0].name in seen or seen.add(m[0].name))]
    tar = write_tar(tmp_path / "loader.tar", unique)
    ctr("import", str(tar), "loader-image").ok()
    return "loader-image"


def test_the_command_proc_self_exe_never_runs_the_hosts_interpreter(
        ctr: Ctr, tmp_path: Path) -> None:
    """Defect 1 (CVE-2019-5736 shape): with /proc/self/exe as the command, main exec'd the
    host's Python again inside the container, its ELF loader taken from the image. Now
    the process is the sealed, static shellctr-exec copy, which only prints its usage."""
    image = host_loader_image(ctr, tmp_path)
    try:
        result = ctr("run", "--rm", "--entrypoint", "/proc/self/exe", image,
                     "-c", "print('host interpreter')")
        assert "Python" not in result.err + result.out, str(result)
        assert "host interpreter" not in result.out, str(result)
        assert "usage: shellctr-exec" in result.err, str(result)
        assert result.code == 127, str(result)
    finally:
        ctr("rmi", image).ok()


def test_exec_of_proc_self_exe_never_runs_the_hosts_interpreter(ctr: Ctr,
                                                                 tmp_path: Path) -> None:
    """Defect 1, exec: the exec'd process is the sealed copy when image code first runs."""
    image = host_loader_image(ctr, tmp_path)
    cid = run_detached(ctr, image, "sleep", "1000")
    try:
        result = ctr("exec", cid, "/proc/self/exe", "-c", "print('host interpreter')")
        assert "Python" not in result.err + result.out, str(result)
        assert "usage: shellctr-exec" in result.err, str(result)
        # what a process sees of PID 1's executable: the memfd, not a host path
        link = ctr("exec", cid, "ls", "-l", "/proc/1/exe").ok().out
        assert "bin/sleep" in link or "busybox" in link, link
    finally:
        ctr("rm", "--force", cid).ok()
        ctr("rmi", image).ok()


def test_the_final_step_runs_from_a_sealed_memfd(ctr: Ctr) -> None:
    """Defect 1: when the command cannot be exec'd the process that reports it is the
    sealed copy of shellctr-exec (its /proc/self/exe a memfd, not writable)."""
    result = ctr("run", "--rm", "busybox", "/proc/self/exe", "x", "y")
    assert result.code == 127, str(result)
    assert "usage: shellctr-exec" in result.err, str(result)


# -- defect 2: no mounts on the kernel's trees --------------------------------------------
def test_a_bind_or_volume_on_proc_or_sys_is_refused_and_nothing_is_created(
        ctr: Ctr, tmp_path: Path) -> None:
    """Defect 2: `-v DIR:/proc` was accepted and the capability drop read cap_last_cap
    from the fake /proc (CapBnd 000001fffeffffff)."""
    fake = tmp_path / "proc"
    (fake / "sys" / "kernel").mkdir(parents=True)
    (fake / "sys" / "kernel" / "cap_last_cap").write_text("1\n")
    for flags in (["-v", f"{fake}:/proc"], ["-v", "procvol:/proc"],
                  ["--mount", f"type=bind,source={fake},target=/proc/sys"],
                  ["-v", f"{fake}:/sys/kernel"], ["--tmpfs", "/sys"]):
        result = ctr("run", "--rm", *flags, "busybox", "cat", "/proc/self/status")
        line = one_line_error(result)
        assert "/proc and /sys" in line, str(result)
    assert ctr.container_ids() == []
    assert "procvol" not in ctr("volume", "ls", "--quiet").ok().out


def test_a_link_in_the_image_into_proc_is_no_way_around(ctr: Ctr, tmp_path: Path) -> None:
    """Defect 2, through a link: an image's `/x -> /proc/sys` would lead a bind on /x
    onto the container's /proc."""
    ctr("run", "--name", "linker", "busybox", "ln", "-s", "/proc/sys", "/x").ok()
    try:
        ctr("commit", "linker", "linked").ok()
    finally:
        ctr("rm", "linker").ok()
    try:
        (tmp_path / "victim").mkdir()
        result = ctr("run", "--rm", "-v", f"{tmp_path / 'victim'}:/x", "linked", "true")
        assert result.code == 125, str(result)
        assert "/proc" in result.err and "refusing" in result.err, str(result)
    finally:
        ctr("rmi", "linked").ok()


# -- defects 3 and 4: seccomp --------------------------------------------------------------
def test_every_container_and_exec_has_the_default_seccomp_filter(ctr: Ctr) -> None:
    """Defect 3: `Seccomp: 0` in a container."""
    fields = status_of(ctr)
    assert fields["Seccomp"] == "2", fields
    assert fields["NoNewPrivs"] == "1", fields
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    try:
        status = status_fields(ctr("exec", cid, "cat", "/proc/self/status").ok().out)
        assert status["Seccomp"] == "2", status
        assert int(status["CapBnd"], 16) == DOCKER_CAPS, status
    finally:
        ctr("rm", "--force", cid).ok()


def test_user_and_mount_namespaces_cannot_be_made_inside(ctr: Ctr) -> None:
    """Defect 4: `unshare -U` worked and gave a full capability set inside it."""
    result = ctr("run", "--rm", "busybox", "unshare", "-U", "-r", "cat", "/proc/self/status")
    assert result.code != 0, str(result)
    assert "Operation not permitted" in result.err, str(result)
    result = ctr("run", "--rm", "busybox", "unshare", "-m", "true")
    assert result.code != 0 and "Operation not permitted" in result.err, str(result)
    # fork and threads (clone without CLONE_NEW*) still work
    assert ctr("run", "--rm", "busybox", "sh", "-c", "(echo sub) | cat").ok().out == "sub\n"


def test_cap_sys_admin_lets_the_filter_allow_namespaces(ctr: Ctr) -> None:
    ctr("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "unshare", "-m", "true").ok()


def test_security_opt_seccomp_unconfined_and_a_profile(ctr: Ctr, tmp_path: Path) -> None:
    assert status_of(ctr, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    profile = json.loads((Path(__file__).parents[2] / "shellctr/inside/seccomp_default.json")
                         .read_text())
    profile["syscalls"][0]["names"].remove("mkdir")
    profile["syscalls"][0]["names"].remove("mkdirat")
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile))
    result = ctr("run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                 "mkdir", "/tmp/d")
    assert result.code == 1 and "Operation not permitted" in result.err, str(result)
    path.write_text("{")
    line = one_line_error(ctr("run", "--rm", "--security-opt", f"seccomp={path}",
                              "busybox", "true"))
    assert "not JSON" in line
    assert ctr.container_ids() == []


def test_no_new_privileges_can_be_turned_off(ctr: Ctr) -> None:
    fields = status_of(ctr, "--security-opt", "no-new-privileges=false")
    assert fields["NoNewPrivs"] == "0", fields
    assert fields["Seccomp"] == "2", fields


def test_apparmor_and_label_are_refused_without_the_lsm(ctr: Ctr) -> None:
    for opt in ("apparmor=docker-default", "label=type:svirt_apache_t"):
        line = one_line_error(ctr("run", "--rm", "--security-opt", opt, "busybox", "true"))
        assert "this host has no" in line, line
    assert ctr.container_ids() == []


# -- capabilities ------------------------------------------------------------------------
def test_cap_add_and_cap_drop(ctr: Ctr) -> None:
    fields = status_of(ctr, "--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN")
    assert int(fields["CapEff"], 16) == (DOCKER_CAPS | 1 << 12) & ~1, fields
    assert int(fields["CapBnd"], 16) == (DOCKER_CAPS | 1 << 12) & ~1, fields
    fields = status_of(ctr, "--cap-drop", "ALL", "--cap-add", "KILL")
    assert int(fields["CapBnd"], 16) == 1 << 5, fields
    line = one_line_error(ctr("run", "--rm", "--cap-add", "FLY", "busybox", "true"))
    assert "unknown capability" in line
    missing = [n for n in range(41) if not own_bounding_set() >> n & 1]
    if missing:  # a capability shellctr itself lacks (here CAP_SYS_RESOURCE) is refused
        from shellctr.parts.confine import CAPABILITIES

        line = one_line_error(ctr("run", "--rm", "--cap-add", CAPABILITIES[missing[0]],
                                  "busybox", "true"))
        assert "shellctr itself runs without it" in line, line
    assert ctr.container_ids() == []


def own_bounding_set() -> int:
    """Every capability shellctr itself has (a host may lack some, as this one
    CAP_SYS_RESOURCE): what --privileged can give."""
    return int(status_fields(Path("/proc/self/status").read_text())["CapBnd"], 16)


def test_privileged_has_every_capability_no_seccomp_and_writable_sys(ctr: Ctr) -> None:
    out = ctr("run", "--rm", "--privileged", "busybox", "sh", "-c",
              "cat /proc/self/status; grep ' /sys ' /proc/mounts").ok().out
    fields = status_fields(out)
    assert int(fields["CapBnd"], 16) == own_bounding_set(), fields
    assert fields["Seccomp"] == "0", fields
    assert "sysfs /sys sysfs rw" in out, out


def test_exec_privileged_gets_every_capability(ctr: Ctr) -> None:
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    try:
        status = status_fields(ctr("exec", "--privileged", cid, "cat", "/proc/self/status")
                               .ok().out)
        assert int(status["CapEff"], 16) == own_bounding_set(), status
    finally:
        ctr("rm", "--force", cid).ok()


def test_inspect_shows_the_confinement_as_docker(ctr: Ctr) -> None:
    ctr("create", "--name", "confined", "--cap-add", "NET_ADMIN", "--cap-drop", "chown",
        "--security-opt", "seccomp=unconfined", "--device", "/dev/null:/dev/n2:r",
        "busybox", "true").ok()
    try:
        host_config = inspect(ctr, "confined")["HostConfig"]
        assert host_config["CapAdd"] == ["CAP_NET_ADMIN"]
        assert host_config["CapDrop"] == ["CAP_CHOWN"]
        assert host_config["Privileged"] is False
        assert host_config["SecurityOpt"] == ["seccomp=unconfined"]
        assert host_config["Devices"] == [{"PathOnHost": "/dev/null",
                                           "PathInContainer": "/dev/n2",
                                           "CgroupPermissions": "r"}]
    finally:
        ctr("rm", "confined").ok()


def test_userns_host_is_accepted_and_others_refused(ctr: Ctr) -> None:
    ctr("run", "--rm", "--userns", "host", "busybox", "true").ok()
    one_line_error(ctr("run", "--rm", "--userns", "private", "busybox", "true"))


# -- defect 5: the device cgroup -----------------------------------------------------------
OPEN_NODES = ("for node in 'fuse 10 229' 'tun 10 200' 'loop-control 10 237'; do set -- $node; "
              "mknod /tmp/$1 c $2 $3 || exit 9; "
              "if (exec 3<>/tmp/$1) 2>/dev/null; then echo $1 opened; "
              "else echo $1 refused; fi; done")


def test_fuse_tun_and_loop_control_cannot_be_opened(ctr: Ctr) -> None:
    """Defect 5: a container could mknod and open fuse (10:229), tun (10:200) and
    loop-control (10:237). (Opening is all: nothing is read from or written to them.)"""
    out = ctr("run", "--rm", "busybox", "sh", "-c", OPEN_NODES).ok().out
    assert out.split("\n")[:3] == ["fuse refused", "tun refused", "loop-control refused"], out
    # the standard nodes still work
    ctr("run", "--rm", "busybox", "sh", "-c", "echo x > /dev/null; head -c 1 /dev/zero "
        "> /dev/full 2>/dev/null; head -c 4 /dev/urandom > /dev/null").ok()


HOST_NODES = ("/dev/fuse", "/dev/net/tun", "/dev/loop-control")
needs_host_nodes = pytest.mark.skipif(
    not all(os.path.exists(node) for node in HOST_NODES),
    reason="this host has no fuse, tun or loop-control driver (the test VMs)")


@needs_host_nodes
def test_device_and_device_cgroup_rule_allow_a_node(ctr: Ctr) -> None:
    out = ctr("run", "--rm", "--device", "/dev/fuse", "busybox", "sh", "-c",
              "ls -l /dev/fuse; (exec 3<>/dev/fuse) && echo opened").ok().out
    assert "opened" in out and " 10, 229 " in out, out
    out = ctr("run", "--rm", "--device-cgroup-rule", "c 10:229 rw", "busybox", "sh", "-c",
              OPEN_NODES).ok().out
    assert out.split("\n")[:2] == ["fuse opened", "tun refused"], out
    one_line_error(ctr("run", "--rm", "--device", "/etc/passwd", "busybox", "true"))
    assert ctr.container_ids() == []


@needs_host_nodes
def test_privileged_opens_every_device(ctr: Ctr) -> None:
    out = ctr("run", "--rm", "--privileged", "busybox", "sh", "-c", OPEN_NODES).ok().out
    assert out.split("\n")[:3] == ["fuse opened", "tun opened", "loop-control opened"], out


# -- defect 8: load and media types --------------------------------------------------------
def retyped_oci_archive(ctr: Ctr, tmp_path: Path, layer_type: str) -> Path:
    """busybox saved as an OCI archive whose layer claims another media type (the
    manifest and index rewritten so every digest still verifies)."""
    import hashlib
    import io

    saved = tmp_path / "saved.tar"
    ctr("save", "--format", "oci-archive", "--output", str(saved), "busybox").ok()
    with tarfile.open(saved) as tar:
        members = {m.name: (m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                   for m in tar.getmembers()}
    index = json.loads(members["index.json"][1])
    old = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads(members[f"blobs/sha256/{old}"][1])
    manifest["layers"][0]["mediaType"] = layer_type
    data = json.dumps(manifest).encode()
    new = hashlib.sha256(data).hexdigest()
    index["manifests"][0].update(digest=f"sha256:{new}", size=len(data))
    members.pop(f"blobs/sha256/{old}")
    out = tmp_path / f"retyped-{len(list(tmp_path.iterdir()))}.tar"
    with tarfile.open(out, "w") as tar:
        for name, (member, content) in [*members.items(),
                                        (f"blobs/sha256/{new}", (None, data))]:
            if name == "index.json":
                content = json.dumps(index).encode()
            info = tarfile.TarInfo(name) if member is None else member
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return out


def test_load_refuses_unknown_layer_media_types(ctr: Ctr, tmp_path: Path) -> None:
    """Defect 8: an OCI manifest whose layers have unknown media types loaded silently
    (a zstd or foreign layer read as if it were a tar)."""
    before = ctr.image_ids()
    for media in ("application/vnd.oci.image.layer.v1.tar+zstd",
                  "application/vnd.example.not-a-layer"):
        line = one_line_error(ctr("load", "--input", str(retyped_oci_archive(ctr, tmp_path,
                                                                             media))))
        assert "unsupported layer media type" in line and media in line, line
    assert ctr.image_ids() == before
    # the same archive with a proper type loads
    good = retyped_oci_archive(ctr, tmp_path, "application/vnd.oci.image.layer.v1.tar")
    ctr("load", "--input", str(good)).ok()


# -- defects 6 and 7: only published ports are reachable ---------------------------------
def from_outside(netns: str, script: str, timeout: float = 60) -> tuple[int, str, str]:
    client = in_outside(netns, "/bin/busybox", "sh", "-c", script)
    out, err = client.communicate(timeout=timeout)
    return client.returncode, out, err


def container_ip(ctr: Ctr, name: str) -> str:
    return ctr("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).ok().out.strip()


@pytest.mark.usefixtures("cleanup")
def test_an_unpublished_port_is_not_reachable_from_a_host_routing_the_subnet(
        ctr: Ctr, outside: str) -> None:  # noqa: F811
    """Defect 6: a host on the outside that routes the bridge subnet via this host
    reached any listening container port (FORWARD stayed ACCEPT)."""
    run_detached(ctr, "--name", "web", "-p", "18081:80", "busybox", "sh", "-c",
                 SERVE.format(port=80) + " & " + SERVE.format(port=7000))
    address = container_ip(ctr, "web")
    netns = os.path.basename(outside)
    host_run("ip", "-netns", netns, "route", "add", f"{address}/32", "via", HOST_IP)
    # the published port answers from outside (through the host's address) ...
    code, out, err = from_outside(outside, retry(f"busybox nc {HOST_IP} 18081 </dev/null"))
    assert code == 0 and out.startswith("hello-from-"), err
    # ... the container's unpublished one, routed to directly, does not
    code, out, err = from_outside(
        outside, f"for i in 1 2 3; do busybox nc -w 1 {address} 7000 </dev/null; done; true",
        timeout=30)
    assert "hello-from-" not in out, out
    assert host_connect(7000, address).startswith("hello-from-")  # the host itself may
    rules = host_run("iptables", "--list-rules", "SHELLCTR-FORWARD").stdout
    assert "! -i shellctr0 -o shellctr0" in rules and "-j DROP" in rules, rules


@pytest.mark.usefixtures("cleanup")
def test_a_port_published_on_127_0_0_1_is_not_reachable_from_a_neighbour(
        ctr: Ctr, outside: str) -> None:  # noqa: F811
    """Defect 7 (moby#45610): a neighbour routing 127.0.0.1 via this host reached a
    port published on 127.0.0.1 (the DNAT matched before the martian check)."""
    run_detached(ctr, "--name", "local", "-p", "127.0.0.1:18082:80", "busybox", "sh", "-c",
                 SERVE.format(port=80))
    assert host_connect(18082).startswith("hello-from-")  # from the host: yes
    netns = os.path.basename(outside)
    # the neighbour: its own 127.0.0.1 routed to us instead of its loopback
    for command in (["route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"],
                    ["route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                    ["route", "add", "127.0.0.1/32", "via", HOST_IP, "dev", "eth0"]):
        host_run("ip", "-netns", netns, *command)
    host_run("ip", "netns", "exec", netns, "sysctl", "--quiet", "--write",
             "net.ipv4.conf.eth0.route_localnet=1")
    from_outside(outside, "busybox nc -w 1 127.0.0.1 18082 </dev/null; true", timeout=30)
    # the neighbour never completes a handshake (it drops our 127.0.0.1 replies as
    # martians), but on main its SYN reached the container: a SYN_RECV (03) from it
    neighbour = "0000000000000000FFFF0000026433C6"  # ::ffff:198.51.100.2
    sockets = ctr("exec", "local", "cat", "/proc/net/tcp6", "/proc/net/tcp").ok().out
    assert neighbour not in sockets and "026433C6:" not in sockets, sockets
    raw = host_run("iptables", "--table", "raw", "--list-rules", "PREROUTING").stdout
    assert "-d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 18082" in raw, raw


def test_trace_and_dry_run_show_the_confinement(ctr: Ctr) -> None:
    """The device rules as the echo lines that write them, the capabilities as setpriv's
    bounding set, and the seccomp profile the filter is built from."""
    result = ctr("--dry-run", "run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "true")
    assert result.code == 0, str(result)
    script = result.out + result.err
    assert "devices.deny" in script and "'c 136:* rwm'" in script, script
    assert "seccomp: the filter built from" in script and "seccomp_default.json" in script
    assert "+net_admin" in script
    traced = ctr("run", "--rm", "busybox", "true").ok().err
    assert "# seccomp: the filter built from" in traced, traced
    assert ctr.container_ids() == []


def test_exec_is_held_to_the_device_cgroup_too(ctr: Ctr) -> None:
    cid = run_detached(ctr, "busybox", "sleep", "1000")
    try:
        out = ctr("exec", cid, "sh", "-c", OPEN_NODES).ok().out
        assert out.split("\n")[:1] == ["fuse refused"], out
    finally:
        ctr("rm", "--force", cid).ok()


UNIFIED = Path("/sys/fs/cgroup/unified")  # cgroup v2 beside v1 (hybrid), or at the root


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists() and
                    not Path("/sys/fs/cgroup/cgroup.controllers").exists(),
                    reason="no cgroup v2 hierarchy on this host")
def test_the_v2_device_program_denies_fuse_and_allows_null(tmp_path: Path) -> None:
    """Defect 5 on cgroup v2: the BPF device program shellctr attaches to a v2 cgroup
    (here a throwaway one, of this test) holds a process to the default rules."""
    import subprocess
    import uuid

    from shellctr.core.bpf import attach_device_program
    from shellctr.parts.cgroups import DEFAULT_DEVICE_RULES, device_program, encode_ebpf

    root = UNIFIED if (UNIFIED / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    group = root / f"shellctr-test-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    try:
        attach_device_program(str(group), encode_ebpf(device_program(
            list(DEFAULT_DEVICE_RULES))))
        script = (f"echo $$ > {group}/cgroup.procs; mknod {tmp_path}/fuse c 10 229; "
                  f"(exec 3<>{tmp_path}/fuse) 2>/dev/null && echo fuse opened; "
                  "(exec 3<>/dev/null) && echo null opened")
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                             timeout=30).stdout
        assert out == "null opened\n", out
    finally:
        group.rmdir()


def test_a_containers_eth0_takes_no_router_advertisements(ctr: Ctr) -> None:
    """Defect 6's neighbour: another container on the bridge could become a container's
    IPv6 router with an advertisement (accept_ra was 1)."""
    out = ctr("run", "--rm", "busybox", "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra")
    if out.code != 0 and "No such file" in out.err:
        pytest.skip("no IPv6 in this kernel")
    assert out.ok().out.strip() == "0", str(out)
