"""The process and confinement flags of `run`/`create` (issue 16): -e NAME, --env-file,
--label-file, --cidfile, --stop-timeout, stop -s/--timeout, --init, --ulimit, --shm-size,
--sysctl, --group-add, --ipc, --pid, --uts, and `update` taking run's limits."""

from __future__ import annotations

from pathlib import Path

from .support import Ctr, inspect, one_line_error, remove_all, run_detached, wait_for

NONE = ("--network", "none")


def test_e_name_passes_the_callers_value_only_when_set(ctr: Ctr) -> None:
    result = ctr("run", "--rm", *NONE, "-e", "GIVEN", "-e", "UNSET_HERE", "busybox", "env",
                 env={"GIVEN": "from host"}, trace=False).ok()
    assert "GIVEN=from host\n" in result.out, str(result)
    assert "UNSET_HERE" not in result.out, str(result)


def test_env_file_is_read_as_docker_reads_it(ctr: Ctr, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_bytes("\ufeffFIRST=1\n# a comment\n\n  INDENTED=two words  \nPASSED\n"
                         "MISSING\nEMPTY=\n".encode())
    result = ctr("run", "--rm", *NONE, "--env-file", str(env_file), "busybox", "env",
                 env={"PASSED": "yes"}, trace=False).ok()
    lines = result.out.splitlines()
    for expected in ("FIRST=1", "INDENTED=two words  ", "PASSED=yes", "EMPTY="):
        assert expected in lines, str(result)
    assert not any(line.startswith("MISSING") for line in lines), str(result)


def test_env_file_with_a_blank_in_a_name_is_refused(ctr: Ctr, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("BAD NAME=1\n")
    one_line_error(ctr("run", "--rm", *NONE, "--env-file", str(env_file), "busybox", "true"))
    assert ctr.container_ids() == []


def test_label_file_and_cidfile(ctr: Ctr, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# labels\ntier=web\nflag\nowner=file\n")
    cidfile = tmp_path / "cid"
    try:
        cid = ctr("create", *NONE, "--label-file", str(labels), "-l", "owner=flag",
                  "--cidfile", str(cidfile), "busybox", "true").ok().out.strip()
        assert cidfile.read_text() == cid
        got = inspect(ctr, cid)["Config"]["Labels"]
        assert {k: got[k] for k in ("tier", "flag", "owner")} == \
            {"tier": "web", "flag": "", "owner": "flag"}
        # a cidfile that exists is refused, and nothing is created
        result = ctr("create", *NONE, "--cidfile", str(cidfile), "busybox", "true")
        assert "container ID file found" in one_line_error(result)
        assert ctr.container_ids(full=True) == [cid]
    finally:
        remove_all(ctr)


def test_stop_timeout_of_the_container_and_stop_signal_and_timeout_flags(ctr: Ctr) -> None:
    try:
        # sleep as PID 1 ignores SIGTERM: the stop ends with SIGKILL after the grace
        run_detached(ctr, "--name", "grace", "--stop-timeout", "0", *NONE, "busybox",
                     "sleep", "1000")
        ctr("stop", "grace").ok()
        assert inspect(ctr, "grace")["State"]["ExitCode"] == 137
        # --signal: sh's trap sees the signal stop was told to send
        run_detached(ctr, "--name", "trap", *NONE, "busybox", "sh", "-c",
                     "trap 'exit 10' USR1; trap 'exit 20' TERM; while :; do sleep 0.1; done")
        ctr("stop", "--signal", "USR1", "--timeout", "30", "trap").ok()
        assert inspect(ctr, "trap")["State"]["ExitCode"] == 10
        ctr("restart", "-s", "TERM", "-t", "30", "trap").ok()
        ctr("stop", "-t", "30", "trap").ok()
        assert inspect(ctr, "trap")["State"]["ExitCode"] == 20
        result = ctr("stop", "--signal", "NOPE", "trap")
        assert "invalid signal" in one_line_error(result)
    finally:
        remove_all(ctr)


def test_init_reaps_a_hundred_orphans(ctr: Ctr) -> None:
    """Each inner sh leaves a `sleep` orphan; PID 1 (the init, or sleep without --init)
    inherits them; only the init reaps them."""
    orphans = ("i=0; while [ $i -lt 100 ]; do sh -c 'sleep 2 &'; i=$((i+1)); done; "
               "exec sleep 1000")

    def zombies(name: str) -> int:
        out = ctr("exec", name, "ps", "-o", "stat,comm", trace=False).ok().out
        return sum(1 for line in out.splitlines()[1:] if line.split()[0].startswith("Z"))

    def sleepers(name: str) -> int:
        out = ctr("exec", name, "ps", "-o", "args", trace=False).ok().out
        return sum(1 for line in out.splitlines() if line.startswith("sleep 2"))

    try:
        run_detached(ctr, "--name", "with-init", "--init", *NONE, "busybox", "sh", "-c", orphans)
        run_detached(ctr, "--name", "without", *NONE, "busybox", "sh", "-c", orphans)
        for name in ("with-init", "without"):
            wait_for(lambda name=name: ctr("exec", name, "cat", "/proc/1/comm",  # type: ignore[misc]
                                           trace=False).out in ("shellctr-init\n", "sleep\n")
                     and sleepers(name) == 0, f"the orphans of {name} to end")
        # the control: nothing reaps them there (a few may end before sh execs sleep,
        # while sh still reaps, on a loaded machine)
        assert zombies("without") > 50
        assert zombies("with-init") == 0
        one = ctr("exec", "with-init", "cat", "/proc/1/cmdline", trace=False).ok().out
        assert one.split("\0")[:3] == ["shellctr-init", "--init", "/bin/sh"]
        # run from a sealed memfd copy: no host file is PID 1's executable (issue 13)
        exe = ctr("exec", "with-init", "readlink", "/proc/1/exe", trace=False).ok().out
        assert exe.startswith("/memfd:shellctr-init"), exe
        assert ctr("exec", "with-init", "ls", "/sbin/shellctr-init").code != 0  # no mount
    finally:
        remove_all(ctr)


def test_init_forwards_sigterm_to_the_command(ctr: Ctr) -> None:
    """sleep ignores SIGTERM as a namespace's PID 1 (no handler); as the init's child it
    dies of it: the stop ends in 143, not in the SIGKILL's 137."""
    try:
        run_detached(ctr, "--name", "fwd", "--init", *NONE, "busybox", "sleep", "1000")
        ctr("stop", "-t", "60", "fwd").ok()
        assert inspect(ctr, "fwd")["State"]["ExitCode"] == 143
        assert ctr("run", "--rm", "--init", *NONE, "busybox", "sh", "-c", "exit 7").code == 7
    finally:
        remove_all(ctr)


def test_ulimit_shm_size_sysctl_group_add(ctr: Ctr) -> None:
    script = ("ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/sys/kernel/shmmax; "
              "cat /proc/sys/net/ipv4/ip_forward; id -G")
    result = ctr("run", "--rm", "--ulimit", "nofile=512:1024", "--shm-size", "8m",
                 "--sysctl", "kernel.shmmax=123456", "--sysctl", "net.ipv4.ip_forward=1",
                 "--group-add", "wheel", "--group-add", "4242", *NONE, "busybox", "sh", "-c",
                 script, trace=False).ok()
    lines = result.out.splitlines()
    assert lines[:2] == ["512", "1024"], str(result)
    assert lines[2].split()[1] == "8192", str(result)
    assert lines[3:5] == ["123456", "1"], str(result)
    assert set(lines[5].split()) == {"0", "10", "4242"}, str(result)


def test_refused_confinement_flags_create_nothing(ctr: Ctr) -> None:
    for flags, words in ((["--sysctl", "kernel.hostname=x"], "not allowed"),
                         (["--sysctl", "vm.swappiness=1"], "not allowed"),
                         (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
                          "not allowed"),
                         (["--ulimit", "nofile=10:5"], "soft limit"),
                         (["--ulimit", "bogus=1"], "invalid ulimit"),
                         (["--ipc", "nope"], "invalid --ipc"),
                         (["--pid", "container:no-such"], "no-such"),
                         (["--uts", "host", "-h", "name"], "conflicting"),
                         (["--shm-size", "0"], "--shm-size"),
                         (["--log-driver", "syslog"], "unknown log driver"),
                         (["--log-opt", "max-file=3"], "max-size")):
        result = ctr("create", *NONE, *flags, "busybox", "true")
        assert words in one_line_error(result), str(result)
    assert ctr.container_ids() == []


def test_ulimit_above_the_hosts_hard_limit_is_a_clear_error(ctr: Ctr) -> None:
    hard = Path("/proc/self/limits").read_text().split("Max open files")[1].split()[1]
    if hard == "unlimited":
        return
    result = ctr("run", "--rm", *NONE, "--ulimit", f"nofile=64:{int(hard) + 1}", "busybox",
                 "true", trace=False)
    assert "cannot set ulimit nofile" in one_line_error(result)


def test_ipc_pid_and_uts_namespaces_shared(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "owner", "--ipc", "shareable", *NONE, "busybox", "sleep",
                     "1000")
        own = ctr("exec", "owner", "readlink", "/proc/self/ns/ipc", trace=False).ok().out
        joined = ctr("run", "--rm", "--ipc", "container:owner", "--pid", "container:owner",
                     *NONE, "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; ps -o args",
                     trace=False).ok()
        assert joined.out.splitlines()[0] == own.strip(), str(joined)
        processes = joined.out.splitlines()[2:]
        assert "sleep 1000" in processes, str(joined)
        assert not any("shellctr" in line for line in processes), str(joined)  # no host paths
        run_detached(ctr, "--name", "private", *NONE, "busybox", "sleep", "1000")
        refused = ctr("run", "--rm", "--ipc", "container:private", *NONE, "busybox", "true",
                      trace=False)
        assert "not shareable" in one_line_error(refused)
        host_ipc = Path("/proc/self/ns/ipc").readlink()
        host_uts = Path("/proc/self/ns/uts").readlink()
        result = ctr("run", "--rm", "--ipc", "host", "--uts", "host", "--pid", "host", *NONE,
                     "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; "
                     "readlink /proc/self/ns/uts; hostname; cat /proc/1/comm", trace=False).ok()
        ipc, uts, name, first = result.out.splitlines()
        assert (ipc, uts) == (str(host_ipc), str(host_uts)), str(result)
        assert name == Path("/proc/sys/kernel/hostname").read_text().strip()
        assert first == Path("/proc/1/comm").read_text().strip()  # the host's init
    finally:
        remove_all(ctr)


def test_ipc_container_shares_the_owners_dev_shm(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "shmowner", "--ipc", "shareable", *NONE, "busybox",
                     "sh", "-c", "echo from-owner > /dev/shm/owner; exec sleep 1000")
        wait_for(lambda: ctr("exec", "shmowner", "test", "-e", "/dev/shm/owner",
                             trace=False).code == 0, "the owner's /dev/shm file")
        joined = ctr("run", "--rm", "--ipc", "container:shmowner", *NONE, "busybox", "sh",
                     "-c", "cat /dev/shm/owner; echo from-joiner > /dev/shm/joiner",
                     trace=False).ok()
        assert joined.out.strip() == "from-owner", str(joined)
        seen = ctr("exec", "shmowner", "cat", "/dev/shm/joiner", trace=False).ok()
        assert seen.out.strip() == "from-joiner", str(seen)
    finally:
        remove_all(ctr)


def test_update_takes_runs_limits(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "upd", *NONE, "busybox", "sleep", "1000")
        ctr("update", "--memory-reservation", "64m", "--cpuset-mems", "0", "--cpu-period",
            "50000", "--cpu-quota", "25000", "upd").ok()
        host = inspect(ctr, "upd")["HostConfig"]
        assert (host["MemoryReservation"], host["CpusetMems"], host["CpuPeriod"],
                host["CpuQuota"]) == (64 * 1024 * 1024, "0", 50000, 25000)
    finally:
        remove_all(ctr)


def test_publish_with_the_host_network_warns_and_runs(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-p", "8080", "--network", "host", "busybox", "echo", "ran",
                 trace=False)
    assert (result.code, result.out) == (0, "ran\n"), str(result)
    assert result.err == "WARNING: Published ports are discarded when using host network mode\n"


def test_rename_of_a_running_container_updates_its_dns_name(ctr: Ctr) -> None:
    try:
        ctr("network", "create", "--subnet", "10.231.0.0/24", "renet").ok()
        run_detached(ctr, "--name", "before", "--network", "renet", "busybox", "sleep", "1000")
        ctr("rename", "before", "after").ok()
        lookup = ctr("run", "--rm", "--network", "renet", "busybox", "sh", "-c",
                     "nslookup after; echo ---; nslookup before", trace=False)
        found, _, gone = lookup.out.partition("---")
        assert "10.231.0.2" in found, str(lookup)
        assert "10.231.0.2" not in gone, str(lookup)
    finally:
        remove_all(ctr)
        ctr("network", "rm", "renet")


def test_the_pty_has_the_callers_size_before_the_command_starts(ctr: Ctr) -> None:
    from .test_io import Terminal

    term = Terminal(ctr.argv(["run", "-it", "--rm", *NONE, "busybox", "stty", "size"],
                             trace=False), ctr.env(), 33, 111)
    try:
        term.read_until(r"\d+ \d+\r\n")
        assert term.process.wait(timeout=30) == 0
        assert term.seen.decode().replace("\r", "") == "33 111\n"  # no error, no 0 0 first
    finally:
        term.close()


def test_attach_only_the_streams_asked_for(ctr: Ctr) -> None:
    script = "echo out; echo err >&2"
    only_out = ctr("run", "--rm", *NONE, "-a", "stdout", "busybox", "sh", "-c", script,
                   trace=False).ok()
    assert (only_out.out, only_out.err) == ("out\n", "")
    only_err = ctr("run", "--rm", *NONE, "-a", "STDERR", "busybox", "sh", "-c", script,
                   trace=False).ok()
    assert (only_err.out, only_err.err) == ("", "err\n")
    no_stdin = ctr("run", "--rm", *NONE, "-i", "-a", "stdout", "busybox", "sh", "-c",
                   "cat; echo done", input="typed\n", trace=False).ok()
    assert no_stdin.out == "done\n"
    with_stdin = ctr("run", "--rm", *NONE, "-i", "-a", "stdin", "-a", "stdout", "busybox",
                     "cat", input="typed\n", trace=False).ok()
    assert with_stdin.out == "typed\n"
    for flags in (["-a", "stdout", "-d"], ["-a", "nope"]):
        one_line_error(ctr("run", "--rm", *NONE, *flags, "busybox", "true", trace=False))
    assert ctr.container_ids() == []


def test_ctrl_p_ctrl_q_detaches_from_run_it_and_the_container_runs_on(ctr: Ctr) -> None:
    from .test_io import PROMPT, Terminal

    term = Terminal(ctr.argv(["run", "-it", "--name", "stay", *NONE, "busybox", "sh"],
                             trace=False), ctr.env(), 24, 80)
    try:
        term.read_until(PROMPT)
        assert term.command("echo $$", "a").strip() == "1"
        term.send("\x10\x11")  # ctrl-p ctrl-q
        assert term.process.wait(timeout=30) == 0
        assert inspect(ctr, "stay")["State"]["Running"] is True
        # the monitor holds its terminal now: it runs, and logs, and attach reaches it
        result = ctr("exec", "stay", "sh", "-c", "echo from-exec > /proc/1/fd/1",
                     trace=False).ok()
        assert result.code == 0
        wait_for(lambda: "from-exec" in ctr("logs", "stay", trace=False).out, "the log")
        ctr("stop", "-t", "1", "stay").ok()
        assert inspect(ctr, "stay")["State"]["Running"] is False
    finally:
        term.close()
        remove_all(ctr)


def test_detach_keys_of_run_and_the_end_of_an_attached_tty_run(ctr: Ctr) -> None:
    from .test_io import PROMPT, Terminal

    term = Terminal(ctr.argv(["run", "-it", "--rm", "--name", "keys", "--detach-keys",
                              "ctrl-x,x", *NONE, "busybox", "sh"], trace=False),
                    ctr.env(), 24, 80)
    try:
        term.read_until(PROMPT)
        term.send("\x10\x11")  # not the keys now: typed into the shell
        assert term.command("echo still", "b").strip() == "still"
        term.send("\x18x")
        assert term.process.wait(timeout=30) == 0
        assert inspect(ctr, "keys")["State"]["Running"] is True
        ctr("stop", "-t", "1", "keys").ok()
        wait_for(lambda: ctr.container_ids() == [], "--rm to remove it")
    finally:
        term.close()
        remove_all(ctr)
    result = ctr("run", "-i", "--detach-keys", "ctrl-", *NONE, "busybox", "true",
                 trace=False)
    assert "invalid detach keys" in result.err and ctr.container_ids() == []


def test_exec_it_detaches_on_the_detach_keys_and_the_process_runs_on(ctr: Ctr) -> None:
    from .test_io import PROMPT, Terminal

    try:
        run_detached(ctr, "--name", "host-of-exec", *NONE, "busybox", "sleep", "1000")
        term = Terminal(ctr.argv(["exec", "-it", "host-of-exec", "sh"], trace=False),
                        ctr.env(), 24, 80)
        try:
            term.read_until(PROMPT)
            term.send("\x10\x11")
            assert term.process.wait(timeout=30) == 0
        finally:
            term.close()
        shells = ctr("exec", "host-of-exec", "ps", "-o", "args", trace=False).ok().out
        assert [line for line in shells.splitlines() if line == "sh"] == ["sh"], shells
    finally:
        remove_all(ctr)
