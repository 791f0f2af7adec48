"""Every flag of `create` fed arbitrary text (hypothesis): a value is either taken (the
container is made) or refused as Docker refuses bad input: one line, exit 125, no
traceback, nothing created on disk (issue 15, item 8)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shellctr.core.host
from shellctr.cli.main import main
from shellctr.core.layout import Layout

from .helpers import FakeInit, RecordingHost, install_image, snapshot

FLAGS = ["--name", "-v", "-m", "--memory-swap", "--memory-reservation", "--cpus", "-c",
         "--cpuset-cpus", "--pids-limit", "-p", "--expose", "--mac-address", "--dns",
         "--add-host", "--restart", "-e", "-l", "-w", "-u", "--tmpfs", "--mount",
         "--entrypoint", "-h", "--cgroup-parent", "--cpu-period", "--cpu-quota",
         "--env-file", "--volumes-from", "--ip", "--network"]
# text a user may type, with what breaks parsers: separators, units, newlines, NULs
VALUES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789:/.,-=kmgbKMG \n", max_size=25),
    st.from_regex(r"\A[0-9]{1,25}[kmgtpb]?\Z"),
    st.sampled_from(["", ":", ":/x", "/", "/proc", "/proc/sys", "x", "/lead", "a" * 300,
                     "0.0.0.0/0", "99999999999999999999g", "-1", "1e9", "nan", "\n",
                     "x\ny", "\x00"]),
)


@pytest.fixture
def fuzz_cli(layout: Layout, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> Any:
    install_image(layout)
    monkeypatch.setattr(shellctr.core.host, "Host", lambda **kwargs: RecordingHost(
        **kwargs, err=sys.stderr, substitute={"shellctr-monitor": FakeInit()}))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--root", str(layout.root), "--runroot", str(layout.runroot), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize("flag", FLAGS)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
def test_a_flag_takes_its_value_or_refuses_it_in_one_line_creating_nothing(
        fuzz_cli: Any, layout: Layout, flag: str, value: str) -> None:
    before = snapshot(layout.root), runroot_listing(layout)
    code, out, err = fuzz_cli("create", flag, value, "busybox", "true")
    if code == 0:  # taken: the container exists; remove it for the next example
        cid = out.strip()
        assert fuzz_cli("rm", "-f", cid)[0] == 0, err
        return
    assert code == 125, (flag, value, code, err)
    lines = [line for line in err.splitlines() if not line.startswith("WARNING: ")]  # Docker's
    assert len(lines) == 1 and lines[0].startswith("shellctr: "), (flag, value, err)
    assert "unexpected error" not in err and "Traceback" not in err, (flag, value, err)
    assert (snapshot(layout.root), runroot_listing(layout)) == before, (flag, value, err)


def runroot_listing(layout: Layout) -> list[str]:
    """What the run root holds (an events journal may grow; no container dir may)."""
    containers = Path(layout.runroot) / "containers"
    return sorted(os.listdir(containers)) if containers.is_dir() else []


@pytest.mark.parametrize(("flag", "value", "wanted"), [
    ("--name", "x", "invalid container name 'x'"),
    ("-v", ":/x", "invalid volume specification"),
    ("-v", "/srv/new-dir:/proc", "/proc and /sys are the kernel's"),
    ("-v", "/srv/new-dir:/proc/sys", "/proc and /sys are the kernel's"),
    ("-m", "99999999999999999999g", "is too large"),
    ("--name", "a\nb", "invalid container name 'a\\nb'"),
])
def test_bad_values_docker_refuses_are_refused(fuzz_cli: Any, layout: Layout, flag: str,
                                               value: str, wanted: str) -> None:
    before = snapshot(layout.root)
    code, _, err = fuzz_cli("create", flag, value, "busybox", "true")
    assert (code, err.count("\n")) == (125, 1) and wanted in err, err
    assert snapshot(layout.root) == before
    assert not Path("/srv/new-dir").exists()


def test_a_leading_slash_of_a_name_is_dropped_as_docker_does(fuzz_cli: Any) -> None:
    code, _, err = fuzz_cli("create", "--name", "/lead", "busybox", "true")
    assert code == 0, err
    assert fuzz_cli("ps", "-a", "--format", "{{.Names}}")[1] == "lead\n"
