"""init.py's pure parts (with rootfs.py's and final.py's): users and groups, finding the
program, the capabilities, the steps' shell lines."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from shellctr.inside import final, init
from shellctr.inside import steps as inside_steps
from shellctr.inside.final import find_program, resolve_user
from shellctr.inside.init import Init
from shellctr.inside.steps import SetupError

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nohome:x:1001:1001:no home::/bin/sh
short:x:7
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
tty:x:5:
wheel:x:10:root,user
audio:x:29:user
staff:x:50:nohome
user:x:1000:
nogroup:x:65534:
"""


@pytest.fixture
def etc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The container's /etc/passwd and /etc/group, as files in a tmp dir."""
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    read = final._read_table
    for module in (final, init):  # resolve_user's lookups and Init.resolve's --group-add
        monkeypatch.setattr(module, "_read_table",
                            lambda path: read(str(tmp_path / Path(path).name)))
    return tmp_path


@pytest.mark.parametrize(("spec", "resolved"), [
    ("", (0, 0, [0, 10], "/root")),  # root, plus the groups that list root
    ("root", (0, 0, [0, 10], "/root")),
    ("0", (0, 0, [0, 10], "/root")),
    ("user", (1000, 1000, [10, 29, 1000], "/home/user")),
    ("1000", (1000, 1000, [10, 29, 1000], "/home/user")),
    ("nohome", (1001, 1001, [50, 1001], "/")),  # empty home field: /
    ("daemon", (1, 1, [1], "/usr/sbin")),
    ("4242", (4242, 0, [0], "/")),  # a uid with no passwd entry: gid 0, home /
    ("nobody:nogroup", (65534, 65534, [65534], "/nonexistent")),
    ("4242:4343", (4242, 4343, [4343], "/")),  # numeric group with no entry
    ("4242:wheel", (4242, 10, [10], "/")),
    ("user:10", (1000, 10, [10], "/home/user")),
])
def test_resolve_user(etc: Path, spec: str, resolved: tuple[int, int, list[int], str]) -> None:
    assert resolve_user(spec) == resolved


@pytest.mark.parametrize(("spec", "resolved"), [
    ("user:wheel", (1000, 10, [10], "/home/user")),
    ("user:user", (1000, 1000, [1000], "/home/user")),
    (":audio", (0, 29, [29], "/root")),
])
def test_explicit_group_means_no_supplementary_groups(
        etc: Path, spec: str, resolved: tuple[int, int, list[int], str]) -> None:
    # runc: "Supplementary group ids only make sense if in the implicit form."
    assert resolve_user(spec) == resolved


@pytest.mark.parametrize(("spec", "message"), [
    ("ghost", "unable to find user ghost: no matching entries in passwd file"),
    ("short", "unable to find user short"),  # an entry with too few fields is no entry
    ("user:ghosts", "unable to find group ghosts: no matching entries in group file"),
])
def test_resolve_user_unknown_names_are_errors(etc: Path, spec: str, message: str) -> None:
    with pytest.raises(SetupError, match=message) as info:
        resolve_user(spec)
    assert info.value.code == 125


def test_resolve_user_without_passwd_and_group_files(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setattr(init, "_read_table", lambda path: [])
    assert resolve_user("") == (0, 0, [0], "/root")
    assert resolve_user("123:456") == (123, 456, [456], "/")
    with pytest.raises(SetupError):
        resolve_user("user")


def test_read_table_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert final._read_table(str(tmp_path / "nope")) == []


# -- find_program ----------------------------------------------------------------------
@pytest.fixture
def bin_dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for path, mode in ((first / "tool", 0o644), (second / "tool", 0o755),
                       (second / "prog", 0o755), (first / "data", 0o644)):
        path.write_text("#!/bin/sh\n")
        path.chmod(mode)
    (first / "adir").mkdir()
    return first, second


def test_find_program_searches_path_in_order_for_an_executable(
        bin_dirs: tuple[Path, Path]) -> None:
    first, second = bin_dirs
    path = f"{first}:{second}"
    assert find_program("prog", path) == f"{second}/prog"
    assert find_program("tool", path) == f"{second}/tool"  # the first one is not executable


def test_find_program_with_a_slash_is_used_as_is(bin_dirs: tuple[Path, Path]) -> None:
    assert find_program(f"{bin_dirs[1]}/prog", "") == f"{bin_dirs[1]}/prog"


@pytest.mark.parametrize(("name", "code", "message"), [
    ("nosuch", 127, 'exec: "nosuch": executable file not found in \\$PATH'),
    ("data", 127, "executable file not found"),  # not executable: skipped on PATH
    ("adir", 127, "executable file not found"),
    ("{first}/nosuch", 127, 'exec: ".*/nosuch": stat .*/nosuch: no such file or directory'),
    ("{first}/data", 126, 'exec: ".*/data": permission denied'),
    ("{first}/adir", 126, 'exec: ".*/adir": is a directory'),
])
def test_find_program_errors_are_dockers_126_and_127(
        bin_dirs: tuple[Path, Path], name: str, code: int, message: str) -> None:
    first, second = bin_dirs
    with pytest.raises(SetupError, match=message) as info:
        find_program(name.format(first=first), f"{first}:{second}")
    assert info.value.code == code


def test_find_program_empty_path_entry_is_the_current_dir(
        bin_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bin_dirs[1])
    assert find_program("prog", "/nonexistent:") == "./prog"


# -- the steps -------------------------------------------------------------------------
SPEC: dict[str, object] = {
    "rootfs": "/r/c/rootfs",
    "lowerdirs": ["/r/layers/top", "/r/layers/bottom"],
    "upperdir": "/r/c/upper",
    "workdir": "/r/c/work",
    "hostname": "0123456789ab",
    "etc_files": [["/r/c/hostname", "/etc/hostname"], ["/r/c/hosts", "/etc/hosts"],
                  ["/r/c/resolv.conf", "/etc/resolv.conf"]],
    "argv": ["sh", "-c", "echo 'hi there'"],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=0123456789ab"],
    "cwd": "/srv",
    "user": "",
    "tty": False,
    "status_fd": None,
    "trace": False,
}
R = "/r/c/rootfs"
CAPS = ("+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,"
        "+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap")


def lines(spec: dict[str, object]) -> list[str]:
    return [step.shell() for step in Init(spec).all_steps()]


def test_steps_mount_the_overlay_first_top_layer_first() -> None:
    assert lines(SPEC)[0] == (
        f"mount --types overlay overlay {R} --options "
        "lowerdir=/r/layers/top:/r/layers/bottom,upperdir=/r/c/upper,workdir=/r/c/work")


def test_steps_mount_the_kernel_filesystems() -> None:
    shown = lines(SPEC)
    for line in (
        f"mkdir --parents {R}/proc",
        f"mount --types proc proc {R}/proc --options nosuid,nodev,noexec",
        f"mount --types sysfs sysfs {R}/sys --options ro,nosuid,nodev,noexec",
        f"mount --types tmpfs tmpfs {R}/dev --options nosuid,strictatime,mode=755,size=65536k",
        f"mknod --mode=666 {R}/dev/null c 1 3",
        f"mknod --mode=666 {R}/dev/tty c 5 0",
        f"ln --symbolic /proc/self/fd {R}/dev/fd",
        f"ln --symbolic pts/ptmx {R}/dev/ptmx",
        f"mount --types devpts devpts {R}/dev/pts --options "
        "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5",
        f"mkdir --mode=1777 {R}/dev/shm",
        f"mount --types tmpfs shm {R}/dev/shm --options nosuid,nodev,noexec,mode=1777,size=65536k",
        f"mount --types mqueue mqueue {R}/dev/mqueue --options nosuid,nodev,noexec",
        f"touch {R}/dev/console",
        f"mount --bind {R}/dev/null {R}/dev/console",  # no -t: the console is /dev/null
        f"mkdir --parents {R}/etc && touch {R}/etc/hosts",
        f"mount --bind /r/c/hosts {R}/etc/hosts",
        "hostname 0123456789ab",
        "ip link set dev lo up",
    ):
        assert line in shown
    # the overlay comes first, the kernel filesystems before the pivot
    assert shown.index(f"mount --types proc proc {R}/proc --options nosuid,nodev,noexec") < (
        shown.index(f"cd {R} && pivot_root . . && umount --lazy . && cd /"))


def test_steps_mask_paths_as_docker_does() -> None:
    shown = lines(SPEC)
    for directory in ("/proc/asound", "/proc/acpi", "/proc/scsi", "/sys/firmware",
                      "/sys/devices/virtual/powercap"):
        assert f"mount --types tmpfs tmpfs {R}{directory} --options ro,nosuid,nodev,noexec" in (
            shown)
    for path in ("/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug"):
        assert f"mount --bind {R}/dev/null {R}{path}" in shown
    for path in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"):
        i = shown.index(f"mount --bind {R}{path} {R}{path}")
        assert shown[i + 1] == f"mount --options remount,bind,ro,nosuid,nodev,noexec {R}{path}"


def test_steps_pivot_then_exec_with_dockers_capabilities() -> None:
    shown = lines(SPEC)
    assert shown[-3:] == [
        f"cd {R} && pivot_root . . && umount --lazy . && cd /",
        "mkdir --parents /srv",
        f"setpriv --bounding-set=-all,{CAPS} --inh-caps=-all --reuid=0 --init-groups "
        "--no-new-privs -- env --ignore-environment --chdir=/srv "
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=0123456789ab "
        "sh -c 'echo '\"'\"'hi there'\"'\"''",
    ]


def test_exec_line_before_resolving_shows_the_user_as_given() -> None:
    last = lines({**SPEC, "user": "user:wheel"})[-1]
    assert " --inh-caps=-all --reuid=user:wheel --init-groups --no-new-privs -- " in last


def test_exec_line_after_resolving_the_user(etc: Path) -> None:
    steps = Init({**SPEC, "user": "user"})
    steps.resolve()
    assert steps.exec_shell() == (
        f"setpriv --bounding-set=-all,{CAPS} --inh-caps=-all --reuid=1000 --regid=1000 "
        "--groups=10,29,1000 --no-new-privs -- env --ignore-environment --chdir=/srv "
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=0123456789ab HOME=/home/user "
        "sh -c 'echo '\"'\"'hi there'\"'\"''")


def test_every_step_line_is_valid_bash() -> None:
    script = "\n".join(lines({**SPEC, "tty": True}))
    import subprocess
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)


def test_tty_allocates_the_containers_own_pty_instead_of_a_null_console() -> None:
    shown = lines({**SPEC, "tty": True})
    assert f"mount --bind {R}/dev/null {R}/dev/console" not in shown
    assert "exec {pty}<>/dev/pts/ptmx  # the container's own pseudo-terminal" in shown
    assert "mount --bind /dev/pts/0 /dev/console" in shown


def test_default_caps_are_dockers_bounding_set() -> None:
    mask = sum(1 << final.CAPABILITIES.index(name) for name in final.DEFAULT_CAPS)
    assert mask == 0xA80425FB
    # kernel numbering (linux/capability.h) of a few
    assert [final.CAPABILITIES.index(c) for c in ("chown", "sys_admin", "setfcap", "bpf",
                                                  "checkpoint_restore")] == [0, 21, 31, 39, 40]


@pytest.mark.parametrize("word", ["", "plain", "a b", "it's", "$x", "a=b,c:d", "é", "-", "*"])
def test_init_quote_agrees_with_shlex(word: str) -> None:
    assert inside_steps.quote(word) == shlex.quote(word)


def test_entry_runs_main_from_the_package_dir() -> None:
    assert init.ENTRY == ("import sys; sys.path.insert(0, sys.argv[1]); "
                          "from shellctr.inside.init import main; main(sys.argv[2])")
    assert os.path.isfile(os.path.join(os.path.dirname(init.__file__), "init.py"))


def test_the_container_joins_its_cgroups_before_anything_else() -> None:
    cgroups = ["/sys/fs/cgroup/freezer/shellctr/c1", "/sys/fs/cgroup/pids/shellctr/c1"]
    shown = lines({**SPEC, "cgroups": cgroups})
    assert shown[:3] == [
        "echo 0 > /sys/fs/cgroup/freezer/shellctr/c1/cgroup.procs",
        "echo 0 > /sys/fs/cgroup/pids/shellctr/c1/cgroup.procs",
        f"mount --types overlay overlay {R} --options "
        "lowerdir=/r/layers/top:/r/layers/bottom,upperdir=/r/c/upper,workdir=/r/c/work"]
    assert lines(SPEC)[0].startswith("mount --types overlay ")  # no cgroups: no joins


def test_join_cgroup_writes_0_to_cgroup_procs(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    step = inside_steps.join_cgroup(str(procs))
    assert step.shell() == f"echo 0 > {procs}"
    step.action()
    assert procs.read_text() == "0"


def test_trace_lines_go_over_the_status_socket() -> None:
    import json
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    done: list[str] = []
    steps = [inside_steps.Step(lambda: "mkdir /x", lambda: done.append("x")),
             inside_steps.Step(lambda: "skipped", lambda: done.append("no"), when=lambda: False),
             inside_steps.Step(lambda: "hostname 'a b'", lambda: done.append("h"))]
    try:
        Init({**SPEC, "trace": True, "status_fd": child.fileno()}).run(steps)
        Init({**SPEC, "trace": False, "status_fd": child.fileno()}).run(steps[:1])
        parent.setblocking(False)
        received = []
        while True:
            try:
                received.append(json.loads(parent.recv(4096)))
            except BlockingIOError:
                break
    finally:
        parent.close()
        child.close()
    assert received == [{"trace": "+ mkdir /x"}, {"trace": "+ hostname 'a b'"}]
    assert done == ["x", "h", "x"]


def test_trace_lines_without_a_status_socket_go_to_stderr(
        capfd: pytest.CaptureFixture[str]) -> None:
    Init({**SPEC, "trace": True}).run([inside_steps.Step(lambda: "mkdir /x", lambda: None)])
    assert capfd.readouterr() == ("", "+ mkdir /x\n")


def test_etc_files_are_made_private_in_a_slave_namespace() -> None:
    shown = lines({**SPEC, "slave_namespace": True})
    for target in ("hostname", "hosts", "resolv.conf"):
        bind = shown.index(f"mount --bind /r/c/{target} {R}/etc/{target}")
        assert shown[bind + 1] == f"mount --make-private {R}/etc/{target}"
    assert not any("--make-" in line for line in lines(SPEC))


def test_the_bounding_set_is_dropped_by_the_specs_numbers_never_reading_proc(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13, defect 2: the drop read cap_last_cap from the container's /proc, which a
    volume could fake (`1` there left every capability above 1)."""
    calls: list[tuple[int, int]] = []

    def prctl(option: int, arg: int, *rest: int) -> int:
        calls.append((option, arg))
        return 0

    def no_open(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"the drop read a file: {args}")

    monkeypatch.setattr(final._libc, "prctl", prctl)
    monkeypatch.setattr("builtins.open", no_open)
    spec = {"caps": [[0, "chown"], [21, "sys_admin"]], "last_cap": 40}
    assert final.drop_bounding_set(spec) == {0, 21}
    dropped = [arg for option, arg in calls if option == inside_steps.PR_CAPBSET_DROP]
    assert dropped == [n for n in range(41) if n not in (0, 21)]


def test_privileged_mounts_sys_writable_and_masks_nothing() -> None:
    spec = {**SPEC, "privileged": True}
    lines = [step.shell() for step in Init(spec).rootfs_steps()]
    assert any(line.startswith("mount --types sysfs sysfs") and ",ro" not in line
               and " ro" not in line for line in lines), lines
    assert not any("/proc/keys" in line or "/proc/sys" in line for line in lines), lines


def test_device_nodes_of_the_spec_are_made_in_dev() -> None:
    spec = {**SPEC, "devices": [["/dev/fuse", "c", 10, 229], ["/dev/sda", "b", 8, 0]]}
    lines = [step.shell() for step in Init(spec).rootfs_steps()]
    assert "mknod --mode=666 /r/c/rootfs/dev/fuse c 10 229" in lines
    assert "mknod --mode=666 /r/c/rootfs/dev/sda b 8 0" in lines
