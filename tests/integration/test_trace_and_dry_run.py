"""--trace shows every mutating command on stderr; --dry-run prints a runnable bash script
and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .support import Ctr, Worker, assert_script, replay, tree_listing, wait_for


# -- --trace ---------------------------------------------------------------------------------
def test_trace_shows_every_mutating_command_and_stdout_stays_clean(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "echo", "only this")
    assert result.code == 0, str(result)
    assert result.out == "only this\n", str(result)
    lines = result.err.splitlines()
    traced = [line for line in lines if line.startswith("+ ")]

    def has(prefix: str) -> bool:
        return any(line.startswith(prefix) for line in traced)

    assert has("+ mkdir "), str(result)
    # the monitor starts unshare: one traced line, `+ .../shellctr-monitor ... -- unshare ...`
    assert any("/shellctr-monitor --attach " in line and " -- unshare --mount " in line
               for line in traced), str(result)
    assert has("+ mount --types overlay overlay "), str(result)
    assert has("+ mount --types proc proc "), str(result)
    assert any(line.startswith("+ cd ") and "pivot_root . ." in line
               for line in traced), str(result)
    assert has("+ hostname "), str(result)
    assert has("+ setpriv "), str(result)  # the privilege drop and exec, as the shell would
    assert has("+ rm --recursive "), str(result)  # --rm
    # the trace holds nothing else than the commands and their here-documents
    assert not [line for line in lines if line.startswith("shellctr:")], str(result)


def test_trace_of_a_failing_rm_run_shows_the_cleanup(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-u", "no-such-user", "busybox", "true")
    assert result.code == 125, str(result)
    traced = [line for line in result.err.splitlines() if line.startswith("+ ")]
    assert any(line.startswith("+ rm --recursive ") for line in traced), str(result)
    assert result.out == "", str(result)


def test_trace_of_import_and_rmi(ctr: Ctr, rootfs_tar: Callable[..., Path]) -> None:
    result = ctr("import", str(rootfs_tar()), "traced:latest")
    assert result.code == 0, str(result)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", result.out), str(result)
    traced = [line for line in result.err.splitlines() if line.startswith("+ ")]
    assert any(line.startswith("+ tar --extract ") for line in traced), str(result)
    assert any(line.startswith("+ mv --no-target-directory ") for line in traced), str(result)
    result = ctr("rmi", "traced").ok()
    assert result.out.startswith("Untagged: traced:latest\n"), str(result)
    traced = [line for line in result.err.splitlines() if line.startswith("+ ")]
    assert any(line.startswith("+ rm --recursive ") for line in traced), str(result)


# -- --dry-run -------------------------------------------------------------------------------
def test_dry_run_run_prints_a_script_and_changes_nothing(ctr: Ctr, worker: Worker) -> None:
    before = tree_listing(worker.root, worker.runroot)
    script = assert_script(ctr("--dry-run", "run", "--rm", "busybox", "true"))
    assert "unshare --mount" in script
    assert tree_listing(worker.root, worker.runroot) == before
    assert ctr.container_ids() == []


def test_dry_run_run_script_replayed_runs_the_container(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--rm", "busybox", "true").ok()  # the default network, made on first use
    script = assert_script(ctr("--dry-run", "run", "--rm", "busybox", "true"))
    before = tree_listing(worker.root, worker.runroot)
    replay(script)
    assert ctr.container_ids() == []  # --rm: the script removes what it made
    assert set(tree_listing(worker.root, worker.runroot)) == set(before)


def test_dry_run_detached_run_script_replayed_runs_it_in_the_background(ctr: Ctr) -> None:
    script = assert_script(ctr("--dry-run", "run", "-d", "--name", "bg", "busybox", "sh", "-c",
                               "echo from the background; exit 3"))
    assert "\nsetsid --fork " in script and "\nrmdir " not in script  # its hook cleans up
    replay(script)
    # the monitor's hook records the end (after waiting for a `start` that never comes)
    wait_for(lambda: ctr("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "bg")
             .out.strip() == "exited 3", "the monitor's hook to record the end")
    assert ctr("logs", "bg").ok().out == "from the background\n"
    ctr("rm", "bg").ok()


def test_dry_run_script_replayed_after_the_last_container_ended_remakes_the_cgroup_parent(
    ctr: Ctr
) -> None:
    """The script is printed while another container keeps shellctr's parent cgroup; that
    container's end removes the parent (unless another worker's keeps it) before the
    script is run."""
    # --network none: the script would write back the network's endpoints with holder's
    ctr("run", "-d", "--name", "holder", "--network", "none", "busybox", "sleep", "600").ok()
    script = assert_script(ctr("--dry-run", "run", "--rm", "--network", "none", "busybox",
                               "true"))
    assert "\nmkdir --parents /sys/fs/cgroup/" in script
    ctr("rm", "--force", "holder").ok()
    replay(script)
    assert ctr.container_ids() == []


def test_dry_run_rm_prints_a_script_and_changes_nothing(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--name", "dry-rm", "busybox", "true").ok()
    try:
        before = tree_listing(worker.root, worker.runroot)
        script = assert_script(ctr("--dry-run", "rm", "dry-rm"))
        assert "rm --recursive" in script
        assert tree_listing(worker.root, worker.runroot) == before
        assert len(ctr.container_ids()) == 1
        replay(script)
        assert ctr.container_ids() == []
    finally:
        if ctr.container_ids():
            ctr("rm", "dry-rm")


def test_dry_run_import_prints_a_script_and_changes_nothing(
    ctr: Ctr, worker: Worker, rootfs_tar: Callable[..., Path]
) -> None:
    before_ids, before = ctr.image_ids(), tree_listing(worker.root, worker.runroot)
    script = assert_script(ctr("--dry-run", "import", str(rootfs_tar()), "dry:import"))
    assert "tar --extract" in script
    assert tree_listing(worker.root, worker.runroot) == before
    assert ctr.image_ids() == before_ids


def test_dry_run_import_script_replayed_imports_the_image(
    other_root: Ctr, rootfs_tar: Callable[..., Path]
) -> None:
    tar = rootfs_tar()
    script = assert_script(other_root("--dry-run", "import", str(tar), "replayed:1"))
    assert not other_root.root.exists(), "the dry run created the root"
    replay(script)
    layers = list((other_root.root / "layers").iterdir())
    assert len(layers) == 1 and layers[0].is_dir() and not layers[0].name.startswith(".")
    assert (layers[0] / "bin" / "busybox").is_file()
    listing = other_root("images").ok().out
    assert re.search(r"^replayed\s+1\s", listing, re.M), listing
    # --network none: a second root in the worker's netns must not make a second shellctr0
    result = other_root("run", "--rm", "--network", "none", "replayed:1", "cat",
                        "/etc/test-marker").ok()
    assert result.out, str(result)


def test_dry_run_rmi_prints_a_script_and_changes_nothing(ctr: Ctr, worker: Worker) -> None:
    before_ids, before = ctr.image_ids(), tree_listing(worker.root, worker.runroot)
    script = assert_script(ctr("--dry-run", "rmi", "busybox"))
    # the verb's results are comments in the script, never lines the shell would run
    result_lines = [line for line in script.splitlines()
                    if "Untagged:" in line or "Deleted:" in line]
    assert result_lines and all(line.startswith("#   result: ") for line in result_lines), script
    assert tree_listing(worker.root, worker.runroot) == before
    assert ctr.image_ids() == before_ids


def test_dry_run_rmi_script_replayed_removes_image_and_layer(
    other_root: Ctr, rootfs_tar: Callable[..., Path]
) -> None:
    other_root("import", str(rootfs_tar()), "doomed:1").ok()
    script = assert_script(other_root("--dry-run", "rmi", "doomed:1"))
    replay(script)
    assert other_root.image_ids() == []
    assert list((other_root.root / "layers").iterdir()) == [], \
        f"the script leaves the unused layer behind:\n{script}"
