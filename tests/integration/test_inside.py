"""What a command sees inside the container: PID 1, identity, env, files, devices, net."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .support import SHORT_ID, Ctr

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_CAPS = "00000000a80425fb"


def run_sh(ctr: Ctr, script: str, *flags: str, image: str = "busybox") -> str:
    """Run `sh -c SCRIPT` in a fresh --rm container; assert success; return stdout."""
    return ctr("run", "--rm", *flags, image, "sh", "-c", script).ok().out


def status_fields(text: str) -> dict[str, str]:
    return {key: value for key, _, value in
            (line.partition(":\t") for line in text.splitlines()) if key}


def env_of(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


# -- the process ------------------------------------------------------------------------
def test_pid1_is_the_command(ctr: Ctr) -> None:
    assert run_sh(ctr, "echo $$").strip() == "1"
    result = ctr("run", "--rm", "busybox", "cat", "/proc/1/cmdline").ok()
    assert result.out == "cat\0/proc/1/cmdline\0", str(result)


def test_hostname_defaults_to_the_short_id(ctr: Ctr) -> None:
    result = ctr("run", "--name", "named-host", "busybox", "sh", "-c",
                 'hostname; echo "$HOSTNAME"; cat /etc/hostname').ok()
    try:
        hostname, env_hostname, etc_hostname = result.out.split()
        assert SHORT_ID.match(hostname), str(result)
        assert env_hostname == etc_hostname == hostname, str(result)
        assert ctr.container_ids() == [hostname]
    finally:
        ctr("rm", "named-host").ok()


def test_hostname_flag_sets_the_hostname(ctr: Ctr) -> None:
    out = run_sh(ctr, 'hostname; echo "$HOSTNAME"; cat /etc/hostname', "-h", "box-one")
    assert out.split() == ["box-one"] * 3


def test_root_has_dockers_default_capabilities_and_no_new_privs(ctr: Ctr) -> None:
    fields = status_fields(ctr("run", "--rm", "busybox", "cat", "/proc/self/status").ok().out)
    assert fields["CapBnd"] == DOCKER_CAPS
    assert fields["CapEff"] == DOCKER_CAPS
    assert fields["CapPrm"] == DOCKER_CAPS
    assert fields["CapInh"] == "0000000000000000"
    assert fields["CapAmb"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"


def test_user_nobody_has_no_effective_capabilities(ctr: Ctr) -> None:
    out = run_sh(ctr, "id -u; id -g; cat /proc/self/status", "-u", "nobody")
    uid, gid, status = out.split("\n", 2)
    assert (uid, gid) == ("65534", "65534")
    fields = status_fields(status)
    assert fields["CapEff"] == "0000000000000000"
    assert fields["CapBnd"] == DOCKER_CAPS
    assert fields["NoNewPrivs"] == "1"
    assert "uid=65534" in run_sh(ctr, "id", "-u", "nobody")


def test_user_by_name_gets_its_uid_and_home(ctr: Ctr) -> None:
    out = run_sh(ctr, 'id -u; id -g; echo "$HOME"', "-u", "user")
    assert out.split() == ["1000", "1000", "/home/user"]


@pytest.mark.parametrize(("user", "expected"), [
    ("1000:0", ["1000", "0"]),
    ("1000", ["1000", "1000"]),  # a uid in passwd: its primary group
    ("4242", ["4242", "0"]),  # a uid in no passwd entry: group 0, as Docker
    ("4242:4343", ["4242", "4343"]),
    ("nobody:0", ["65534", "0"]),
])
def test_user_numeric_forms(ctr: Ctr, user: str, expected: list[str]) -> None:
    assert run_sh(ctr, "id -u; id -g", "-u", user).split() == expected


# -- the environment ------------------------------------------------------------------
def test_env_is_only_path_hostname_home(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "env", env={"SHELLCTR_LEAK_CHECK": "1"}).ok()
    env = env_of(result.out)
    assert set(env) == {"PATH", "HOSTNAME", "HOME"}, str(result)
    assert env["PATH"] == DEFAULT_PATH
    assert env["HOME"] == "/root"
    assert SHORT_ID.match(env["HOSTNAME"])


def test_env_with_tty_adds_term_xterm(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-t", "busybox", "env", env={"SHELLCTR_LEAK_CHECK": "1"}).ok()
    env = env_of(result.out.replace("\r", ""))
    assert set(env) == {"PATH", "HOSTNAME", "HOME", "TERM"}, str(result)
    assert env["TERM"] == "xterm"


def test_env_flags_and_env_file(ctr: Ctr, tmp_path: Path) -> None:
    env_file = tmp_path / "vars.env"
    env_file.write_text("# a comment\nFROM_FILE=file value\n\nOVERRIDDEN=from-file\n")
    result = ctr(
        "run", "--rm", "-e", "A=1", "-e", "EMPTY=", "-e", "FROM_CALLER", "-e", "NOT_SET_ANYWHERE",
        "--env-file", str(env_file), "-e", "OVERRIDDEN=from-flag", "busybox", "env",
        env={"SHELLCTR_LEAK_CHECK": "1", "FROM_CALLER": "caller's value"},
    ).ok()
    env = env_of(result.out)
    assert env.pop("A") == "1"
    assert env.pop("EMPTY") == ""
    assert env.pop("FROM_CALLER") == "caller's value"
    assert env.pop("FROM_FILE") == "file value"
    assert env.pop("OVERRIDDEN") == "from-flag"
    assert set(env) == {"PATH", "HOSTNAME", "HOME"}, str(result)


def test_workdir_is_created_and_used(ctr: Ctr) -> None:
    assert run_sh(ctr, "pwd; test -d /some/new/dir && echo dir", "-w", "/some/new/dir").split() \
        == ["/some/new/dir", "dir"]


def test_entrypoint_flag_overrides(ctr: Ctr) -> None:
    assert ctr("run", "--rm", "--entrypoint", "echo", "busybox", "hi").ok().out == "hi\n"


# -- the filesystem -------------------------------------------------------------------
def test_masked_paths_read_as_empty(ctr: Ctr) -> None:
    files = [path for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list")
             if os.path.exists(path)]
    assert files, "the host has none of the masked /proc files"
    for path in files:
        result = ctr("run", "--rm", "busybox", "sh", "-c", f"wc -c < {path}").ok()
        assert result.out.strip() == "0", f"{path} is not masked: {result}"
    assert run_sh(ctr, "test -d /sys/firmware && ls -A /sys/firmware; echo end") == "end\n"


@pytest.mark.parametrize("path", ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger"])
def test_proc_paths_are_read_only(ctr: Ctr, path: str) -> None:
    result = ctr("run", "--rm", "busybox", "sh", "-c", f"echo x > {path}")
    assert result.code != 0, str(result)
    if os.path.exists(path):
        assert "Read-only file system" in result.err, str(result)


def test_sys_is_read_only(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "touch", "/sys/x")
    assert result.code != 0, str(result)
    assert "Read-only file system" in result.err, str(result)


def test_dev_has_the_minimal_nodes(ctr: Ctr) -> None:
    names = set(ctr("run", "--rm", "busybox", "ls", "/dev").ok().out.split())
    assert names >= {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx",
                     "pts", "shm"}
    assert run_sh(ctr, "echo x > /dev/null && echo written") == "written\n"
    assert run_sh(ctr, "head -c 4 /dev/urandom | wc -c").strip() == "4"
    assert run_sh(ctr, "head -c 3 /dev/zero | od -An -tx1").split() == ["00", "00", "00"]
    assert ctr("run", "--rm", "busybox", "sh", "-c", "echo x > /dev/full").code != 0


def test_no_host_files_are_visible(ctr: Ctr, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host data\n")
    result = ctr("run", "--rm", "busybox", "sh", "-c",
                 f"cat {secret}; ls {tmp_path}; cat /etc/os-release; echo end")
    assert result.code == 0, str(result)
    assert "host data" not in result.out, str(result)
    assert result.out == "end\n", str(result)
    assert "os-release" in result.err, str(result)


def test_root_is_the_busybox_tree(ctr: Ctr) -> None:
    assert set(ctr("run", "--rm", "busybox", "ls", "/").ok().out.split()) == {
        "bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr", "var"}
    same = run_sh(ctr, 'test "$(ls -ia /proc/1/root/)" = "$(ls -ia /)" && readlink /proc/1/root')
    assert same == "/\n"


def test_network_none_has_only_loopback_and_it_is_up(ctr: Ctr) -> None:
    none = ("run", "--rm", "--network", "none", "busybox")
    assert ctr(*none, "ls", "/sys/class/net").ok().out.split() == ["lo"]
    flags = int(ctr(*none, "cat", "/sys/class/net/lo/flags").ok().out, 16)
    assert flags & 0x1, "IFF_UP is not set on lo"
    link = ctr(*none, "ip", "link").ok().out
    devices = [line.split(":")[1].strip() for line in link.splitlines() if line[:1].isdigit()]
    assert devices == ["lo"], str(link)
    assert "UP" in link.splitlines()[0].split("<")[1], str(link)


ALLOWED_MOUNT_POINTS = ("/", "/proc", "/sys", "/dev", "/etc/hostname", "/etc/hosts",
                        "/etc/resolv.conf")


def test_mount_table_shows_only_the_containers_mounts(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "cat", "/proc/mounts").ok()
    lines = result.out.splitlines()
    source, point, fstype, options = lines[0].split()[:4]
    assert (source, point, fstype) == ("overlay", "/", "overlay"), str(result)
    assert "lowerdir=" in options and "upperdir=" in options
    host_paths = [str(ctr.root), str(ctr.runroot), "/tmp", "/work", "/home"]
    for line in lines[1:]:
        point = line.split()[1]
        assert point == "/" or any(point == allowed or point.startswith(allowed + "/")
                                   for allowed in ALLOWED_MOUNT_POINTS[1:]), line
        assert not any(path in line for path in host_paths), f"host path in {line!r}"
    # only the root is the overlay: nothing of the host is mounted besides it
    assert sum(line.split()[1] == "/" for line in lines) == 1, str(result)
