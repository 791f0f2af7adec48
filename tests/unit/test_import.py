"""`import`: the exact steps that add a layer and record an image, and undo on failure."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.cmd import Cmd
from shellctr.core.errors import HostCommandError, ShellctrError
from shellctr.core.layout import Layout
from shellctr.core.state import Image, ImageConfig, save
from shellctr.core.store import Store
from shellctr.engine.image import history_entry, import_image, oci_config, sha256_hex

from .helpers import (
    ROOTFS,
    T0,
    RecordingHost,
    fake_tar,
    image_model,
    install_image,
    prepared_store,
    q,
    record_of,
    snapshot,
    tar_bytes,
    write_tar,
)

pytestmark = pytest.mark.usefixtures("fixed")

TAR_FLAGS = ["--numeric-owner", "--same-owner", "--preserve-permissions",
             "--xattrs", "--xattrs-include=*", "--xattrs-exclude=trusted.overlay.*"]


@pytest.fixture
def tar(tmp_path: Path) -> Path:
    return write_tar(tmp_path / "rootfs.tar")


def diff_id(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob_partial(layout: Layout, tar: Path) -> Path:
    return layout.blobs_dir / f".{diff_id(tar)}.{os.getpid()}.partial"


def dir_partial(layout: Layout, tar: Path) -> Path:
    return layout.layers_dir / f".{diff_id(tar)}.{os.getpid()}.partial"


def import_steps(layout: Layout, tar: Path, image_id: str) -> list[list[str]]:
    """Outside the lock: the layer's tar copied and its files extracted under temporary
    names; under it: both moved into place, the config blob and record written."""
    digest = diff_id(tar)
    partial, tar_partial = dir_partial(layout, tar), blob_partial(layout, tar)
    blob = layout.blob(digest)
    return [
        ["cat", str(tar), ">", str(tar_partial)],
        ["mkdir", "--mode=755", str(partial)],
        ["tar", "--extract", f"--file={tar_partial}", f"--directory={partial}", *TAR_FLAGS],
        ["mv", "--no-target-directory", str(tar_partial), str(blob)],
        ["mv", "--no-target-directory", str(partial), str(layout.layer_dir(digest))],
        ["cat", ">", str(layout.blob(image_id))],
        ["cat", ">", str(layout.image_file(image_id))],
    ]


def argvs(host: RecordingHost) -> list[list[str]]:
    """Each command's argv, a write shown as `cat > FILE`."""
    return [cmd.argv + ([">", cmd.redirect] if cmd.redirect else []) for cmd in host.cmds]


def expected_id(tar: Path, config: ImageConfig | None = None) -> str:
    """The id import gives: the sha256 of the OCI config it writes."""
    return sha256_hex(oci_config(config or ImageConfig(), [diff_id(tar)], T0,
                                 [history_entry(T0, "shellctr import",
                                                f"Imported from {tar.name}")]))


def test_import_steps_in_order(layout: Layout, tar: Path) -> None:
    prepared_store(layout)
    host = RecordingHost(substitute={"tar": fake_tar})
    image = import_image(host, Store(layout, host), tar, ['CMD ["sh"]'], "base:1")

    config = ImageConfig(Cmd=["sh"])
    assert image.id == expected_id(tar, config)
    assert argvs(host) == import_steps(layout, tar, image.id)
    assert record_of(host.cmds[-1]) == image.model_dump(mode="json")
    assert image.repo_tags == ["base:1"] and image.layers == [diff_id(tar)]
    assert layout.blob(diff_id(tar)).read_bytes() == tar.read_bytes()
    assert sha256_hex(layout.blob(image.id).read_bytes()) == image.id
    layer = layout.layer_dir(diff_id(tar))
    assert (layer / "bin" / "sh").read_bytes() == b"#!fake shell\n"
    assert sorted(p.name for p in layout.layers_dir.iterdir()) == [diff_id(tar)]


def test_import_shell_lines(layout: Layout, tar: Path) -> None:
    prepared_store(layout)
    host = RecordingHost()
    image = import_image(host, Store(layout, host), tar, [], None)
    partial, tar_partial = q(dir_partial(layout, tar)), q(blob_partial(layout, tar))
    blob = q(layout.blob(diff_id(tar)))
    assert host.lines[:5] == [
        f"cat {q(tar)} > {tar_partial}",
        f"mkdir --mode=755 {partial}",
        f"tar --extract --file={tar_partial} --directory={partial} --numeric-owner "
        "--same-owner --preserve-permissions --xattrs '--xattrs-include=*' "
        "'--xattrs-exclude=trusted.overlay.*'",
        f"mv --no-target-directory {tar_partial} {blob}",
        f"mv --no-target-directory {partial} {q(layout.layer_dir(diff_id(tar)))}",
    ]
    assert host.lines[5].startswith("printf %s '{\"architecture\":")
    assert host.lines[5].endswith(f" | cat > {q(layout.blob(image.id))}")
    assert host.lines[6].startswith(f"cat > {q(layout.image_file(image.id))} <<'EOF'\n{{")


def test_import_excludes_device_nodes_under_dev(layout: Layout, tmp_path: Path) -> None:
    prepared_store(layout)
    tar = write_tar(tmp_path / "dev.tar", [*ROOTFS, ("dev", tarfile.DIRTYPE),
                                           ("dev/null", tarfile.CHRTYPE),
                                           ("./dev/sda", tarfile.BLKTYPE)])
    host = RecordingHost()
    import_image(host, Store(layout, host), tar, [], None)
    assert host.cmds[2].argv[-5:] == [
        "--xattrs-exclude=trusted.overlay.*", "--anchored", "--no-wildcards",
        "--exclude=dev/null", "--exclude=./dev/sda"]


def test_import_of_a_layer_already_present_only_records_the_image(layout: Layout,
                                                                   tar: Path) -> None:
    prepared_store(layout)
    layout.layer_dir(diff_id(tar)).mkdir()
    layout.blob(diff_id(tar)).write_bytes(tar.read_bytes())
    host = RecordingHost()
    image = import_image(host, Store(layout, host), tar, [], "again")
    assert argvs(host) == [["cat", ">", str(layout.blob(image.id))],
                           ["cat", ">", str(layout.image_file(image.id))]]


def ended_pid() -> int:
    """The pid of a process that has ended."""
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_import_sweeps_the_partials_of_ended_processes_under_the_lock(
        layout: Layout, tar: Path) -> None:
    prepared_store(layout)
    older = layout.layers_dir / f".{diff_id(tar)}.partial"  # named by an older shellctr
    dead = layout.blobs_dir / f".{'ab' * 32}.{ended_pid()}.partial"
    alive = layout.layers_dir / f".{'cd' * 32}.{os.getppid()}.partial"  # work in progress
    for directory in (older, alive):
        directory.mkdir()
        (directory / "half-written").write_text("x")
    dead.write_bytes(b"half")
    host = RecordingHost()
    image = import_image(host, Store(layout, host), tar, [], None)
    steps = import_steps(layout, tar, image.id)
    assert argvs(host) == [*steps[:3], ["rm", str(dead)], ["rm", "--recursive", str(older)],
                           *steps[3:]]
    assert alive.is_dir()


def test_import_moves_the_tag_from_another_image(layout: Layout, tar: Path) -> None:
    old = install_image(layout, image_model(repo_tags=["busybox:latest", "keep:1"]))
    host = RecordingHost(substitute={"tar": fake_tar})
    image = import_image(host, Store(layout, host), tar, [], "busybox")
    steps = import_steps(layout, tar, image.id)
    assert argvs(host) == [*steps[:5], ["cat", ">", str(layout.image_file(old.id))],
                           *steps[5:]]
    assert record_of(host.cmds[5])["repo_tags"] == ["keep:1"]
    assert image.repo_tags == ["busybox:latest"]


# -- failure at step k undoes steps k-1..1 -----------------------------------------------
BLOB_UNDO = [["rm", "{blob_partial}"]]
SCRATCH = [["rm", "--recursive", "{partial}"], *BLOB_UNDO]  # the temporary names go
MV_BLOB = [["mv", "--no-target-directory", "{blob}", "{blob_partial}"]]
# moved back under the lock (the publishing undos), then removed
LAYER_DONE = [["mv", "--no-target-directory", "{layer}", "{partial}"], *MV_BLOB, *SCRATCH]
UNDOS = [  # when step k fails: the undos of steps k-1..1
    [],  # the copy of the layer's tar failed: its partial file is not there to remove
    BLOB_UNDO,
    SCRATCH,
    SCRATCH,
    [*MV_BLOB, *SCRATCH],
    LAYER_DONE,
]


def undo_paths(layout: Layout, tar: Path) -> dict[str, str]:
    return {"partial": str(dir_partial(layout, tar)),
            "layer": str(layout.layer_dir(diff_id(tar))),
            "blob": str(layout.blob(diff_id(tar))),
            "blob_partial": str(blob_partial(layout, tar))}


@pytest.mark.parametrize("k", range(1, 8))
def test_import_failure_at_step_k_undoes_the_steps_before_it(
        layout: Layout, tar: Path, k: int) -> None:
    prepared_store(layout)
    before = snapshot(layout.root)
    host = RecordingHost(fail_at=k, substitute={"tar": fake_tar})

    with pytest.raises(HostCommandError, match="injected failure"):
        import_image(host, Store(layout, host), tar, [], "base")

    paths = undo_paths(layout, tar)
    image_id = expected_id(tar)
    steps = import_steps(layout, tar, image_id)
    undo = [*UNDOS, [["rm", str(layout.blob(image_id))], *LAYER_DONE]][k - 1]
    assert argvs(host) == steps[:k] + [[arg.format(**paths) for arg in cmd] for cmd in undo]
    assert snapshot(layout.root) == before


@pytest.mark.parametrize("k", range(1, 9))
def test_import_failure_restores_a_moved_tag(layout: Layout, tar: Path, k: int) -> None:
    old = install_image(layout, image_model(repo_tags=["base:latest"]))
    before = snapshot(layout.root)
    host = RecordingHost(fail_at=k, substitute={"tar": fake_tar})

    with pytest.raises(HostCommandError):
        import_image(host, Store(layout, host), tar, [], "base")

    old_file = str(layout.image_file(old.id))
    image_id = expected_id(tar)
    steps = import_steps(layout, tar, image_id)
    steps = [*steps[:5], ["cat", ">", old_file], *steps[5:]]
    paths = undo_paths(layout, tar)
    untag = [["cat", ">", old_file]]
    undos = [*UNDOS, [*untag, *LAYER_DONE],
             [["rm", str(layout.blob(image_id))], *untag, *LAYER_DONE]]
    assert argvs(host) == steps[:k] + [[a.format(**paths) for a in cmd] for cmd in undos[k - 1]]
    assert snapshot(layout.root) == before
    assert Image.model_validate_json(Path(old_file).read_text()) == old


def test_an_undo_that_fails_is_reported_and_the_rest_still_run(layout: Layout,
                                                                tar: Path) -> None:
    install_image(layout, image_model(repo_tags=["base:latest"]))

    class FailingUndo(RecordingHost):
        def apply(self, cmd: Cmd, action: Callable[[], Any], effect: Any = None) -> Any:
            if len(self.cmds) == 7:  # the first undo: the old image's record written back
                self.cmds.append(cmd)
                raise OSError(28, "No space left on device")
            return super().apply(cmd, action, effect)

    host = FailingUndo(fail_at=7, substitute={"tar": fake_tar})
    with pytest.raises(HostCommandError, match="injected failure"):
        import_image(host, Store(layout, host), tar, [], "base")
    assert [cmd.argv[0] for cmd in host.cmds] == ["cat", "mkdir", "tar", "mv", "mv", "cat",
                                                  "cat", "cat", "mv", "mv", "rm", "rm"]
    assert host.err.getvalue() == ("shellctr: warning: could not undo untag base:latest: "
                                   "[Errno 28] No space left on device\n")
    assert not layout.layer_dir(diff_id(tar)).exists()


def test_invalid_tar_or_reference_changes_nothing(layout: Layout, tmp_path: Path) -> None:
    prepared_store(layout)
    before = snapshot(layout.root)
    host = RecordingHost()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(tar_bytes([("/etc/passwd", tarfile.REGTYPE, b"x")]))
    with pytest.raises(ShellctrError, match="absolute path"):
        import_image(host, Store(layout, host), bad, [], None)
    with pytest.raises(ShellctrError, match="invalid reference format"):
        import_image(host, Store(layout, host), write_tar(tmp_path / "ok.tar"), [], "UPPER")
    with pytest.raises(ShellctrError, match="RUN is not supported"):
        import_image(host, Store(layout, host), tmp_path / "ok.tar", ["RUN x"], None)
    assert host.cmds == []
    assert snapshot(layout.root) == before


def test_saved_image_round_trips(layout: Layout) -> None:
    store = prepared_store(layout)
    image = image_model()
    save(store, layout.image_file(image.id), image)
    assert Image.model_validate_json(layout.image_file(image.id).read_text()) == image
