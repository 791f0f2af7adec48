"""Exit statuses of `run`, and engine errors: one line, exit 125, nothing created."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import Ctr, Result, Worker, one_line_error, tar_member, tree_listing, write_tar


def test_run_exit_status_is_the_containers_own(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert result.code == 3, str(result)


def test_run_exit_status_zero_on_success(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "true")
    assert result.code == 0, str(result)


def test_run_command_not_on_path_exits_127(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "no-such-command", trace=False)
    assert result.code == 127, str(result)
    assert len(result.err_lines) == 1, str(result)
    assert result.err_lines[0].startswith("shellctr:"), str(result)
    assert "no-such-command" in result.err_lines[0], str(result)
    assert "Traceback" not in result.err, str(result)


def test_run_non_executable_file_exits_126(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "/etc/passwd", trace=False)
    assert result.code == 126, str(result)
    assert len(result.err_lines) == 1, str(result)
    assert result.err_lines[0].startswith("shellctr:"), str(result)
    assert "/etc/passwd" in result.err_lines[0], str(result)


# -- engine errors ------------------------------------------------------------------
def snapshot(ctr: Ctr, worker: Worker) -> tuple[list[str], list[str], dict[str, object]]:
    return (ctr.container_ids(), ctr.image_ids(),
            tree_listing(worker.root, worker.runroot))


def assert_engine_error_changes_nothing(ctr: Ctr, worker: Worker, *args: str) -> str:
    before = snapshot(ctr, worker)
    line = one_line_error(ctr(*args, trace=False))
    after = snapshot(ctr, worker)
    assert after[0] == before[0], f"a container was created: {after[0]} (was {before[0]})"
    assert after[1] == before[1], f"an image was created: {after[1]} (was {before[1]})"
    created = sorted(set(after[2]) - set(before[2]))
    removed = sorted(set(before[2]) - set(after[2]))
    assert not created and not removed, f"files changed: +{created} -{removed}"
    return line


def test_run_unknown_image_is_an_engine_error(ctr: Ctr, worker: Worker) -> None:
    # --pull never: a pull would go to Docker Hub (tests/integration/test_registry.py pulls
    # from registries on loopback)
    line = assert_engine_error_changes_nothing(ctr, worker, "run", "--rm", "--pull", "never",
                                               "no-such-image", "true")
    assert "no-such-image" in line


def test_run_env_without_name_is_an_engine_error(ctr: Ctr, worker: Worker) -> None:
    assert_engine_error_changes_nothing(ctr, worker, "run", "--rm", "-e", "=x", "busybox", "true")


def test_run_duplicate_name_is_an_engine_error(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--name", "taken", "busybox", "true").ok()
    try:
        line = assert_engine_error_changes_nothing(ctr, worker, "run", "--rm", "--name",
                                                   "taken", "busybox", "true")
        assert "taken" in line
        assert len(ctr.container_ids()) == 1
    finally:
        ctr("rm", "taken").ok()


def test_run_unknown_flag_is_an_engine_error(ctr: Ctr, worker: Worker) -> None:
    line = assert_engine_error_changes_nothing(ctr, worker, "run", "--no-such-flag", "busybox",
                                               "true")
    assert "--no-such-flag" in line


@pytest.mark.parametrize("change", [
    "NOSUCH instruction",
    'CMD ["echo", "unterminated"',
    "CMD",
    "ENV =novalue",
])
def test_import_malformed_change_is_an_engine_error(
    ctr: Ctr, worker: Worker, rootfs_tar: Callable[..., Path], change: str
) -> None:
    tar = rootfs_tar()
    assert_engine_error_changes_nothing(ctr, worker, "import", "-c", change, str(tar), "bad:tag")


def test_import_malformed_tar_is_an_engine_error(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive\n" * 100)
    assert_engine_error_changes_nothing(ctr, worker, "import", str(garbage), "garbage")


def test_import_truncated_tar_is_an_engine_error(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    whole = write_tar(tmp_path / "whole.tar", [tar_member("file", data=b"x" * 5000),
                                               tar_member("dir", tarfile.DIRTYPE, mode=0o755)])
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(whole.read_bytes()[:1024])
    assert_engine_error_changes_nothing(ctr, worker, "import", str(truncated), "truncated")


# -- failures in the middle of `run` -------------------------------------------------
def assert_setup_failure(result: Result) -> None:
    assert result.code == 125, str(result)
    assert any(line.startswith("shellctr:") for line in result.err_lines), str(result)
    assert "Traceback" not in result.err, str(result)


def test_run_workdir_on_a_file_fails_and_leaves_nothing(ctr: Ctr) -> None:
    assert_setup_failure(ctr("run", "--rm", "-w", "/etc/passwd", "busybox", "true"))
    assert ctr.container_ids() == []


def test_run_unknown_user_fails_and_leaves_nothing(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-u", "no-such-user", "busybox", "true")
    assert_setup_failure(result)
    assert "no-such-user" in "\n".join(result.err_lines), str(result)
    assert ctr.container_ids() == []


def test_run_unknown_group_fails_and_leaves_nothing(ctr: Ctr) -> None:
    assert_setup_failure(ctr("run", "--rm", "-u", "0:no-such-group", "busybox", "true"))
    assert ctr.container_ids() == []


def test_run_exec_failure_with_rm_leaves_nothing(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "no-such-command")
    assert result.code == 127, str(result)
    assert ctr.container_ids() == []
