"""Images: listing, import (with -c changes, from stdin, hostile tars refused), rmi."""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import (
    Ctr,
    Worker,
    one_line_error,
    tar_member,
    tree_listing,
    wait_for,
    write_tar,
)

DELETED = re.compile(r"^Deleted: sha256:[0-9a-f]{64}$")


@pytest.fixture
def images(ctr: Ctr) -> Iterator[list[str]]:
    """References a test imports; whatever is still there at the end is removed."""
    refs: list[str] = []
    yield refs
    present = ctr("images").out
    for ref in refs:
        repo, _, tag = ref.partition(":")
        if re.search(rf"^{re.escape(repo)}\s+{re.escape(tag or 'latest')}\s", present, re.M):
            ctr("rmi", "-f", ref)


def import_image(ctr: Ctr, images: list[str], tar: Path, ref: str, *changes: str) -> str:
    """Import `tar` as `ref`; return the image id (64 hex)."""
    images.append(ref)
    flags = [arg for change in changes for arg in ("-c", change)]
    result = ctr("import", *flags, str(tar), ref).ok()
    match = re.fullmatch(r"sha256:([0-9a-f]{64})\n", result.out)
    assert match, str(result)
    return match.group(1)


def layer_dirs(worker: Worker) -> set[str]:
    return set(os.listdir(worker.root / "layers"))


# -- listing --------------------------------------------------------------------------
def test_images_lists_busybox_with_dockers_columns(ctr: Ctr) -> None:
    result = ctr("images").ok()
    header, *rows = result.out.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                                                   "SIZE"], str(result)
    busybox = [row.split() for row in rows if row.split()[:2] == ["busybox", "latest"]]
    assert len(busybox) == 1, str(result)
    assert re.fullmatch(r"[0-9a-f]{12}", busybox[0][2]), str(result)
    assert re.fullmatch(r"[0-9.]+[kMG]?B", busybox[0][-1]), str(result)
    assert busybox[0][-2] == "ago", str(result)
    quiet = ctr("images", "-q").ok().out.split()
    assert busybox[0][2] in quiet
    assert all(re.fullmatch(r"[0-9a-f]{12}", image_id) for image_id in quiet), quiet


# -- import ---------------------------------------------------------------------------
def test_import_cmd_change_is_the_default_command(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:cmd", 'CMD ["echo","from-cmd"]')
    assert ctr("run", "--rm", "imp:cmd").ok().out == "from-cmd\n"
    assert ctr("run", "--rm", "imp:cmd", "echo", "given").ok().out == "given\n"


def test_import_env_change_sets_the_environment(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:env", "ENV A=1 B=2")
    env = ctr("run", "--rm", "imp:env", "env").ok().out.split()
    assert "A=1" in env and "B=2" in env, env
    env = ctr("run", "--rm", "-e", "B=flag", "imp:env", "env").ok().out.split()
    assert "A=1" in env and "B=flag" in env and "B=2" not in env, env


def test_import_workdir_change_is_the_working_directory(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:workdir", "WORKDIR /w")
    assert ctr("run", "--rm", "imp:workdir", "pwd").ok().out == "/w\n"
    assert ctr("run", "--rm", "-w", "/tmp", "imp:workdir", "pwd").ok().out == "/tmp\n"


def test_import_user_change_is_the_default_user(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:user", "USER nobody")
    assert ctr("run", "--rm", "imp:user", "id", "-u").ok().out == "65534\n"
    assert ctr("run", "--rm", "-u", "0", "imp:user", "id", "-u").ok().out == "0\n"


def test_import_entrypoint_change_prefixes_the_command(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:entrypoint", 'ENTRYPOINT ["/bin/sh","-c"]')
    result = ctr("run", "--rm", "imp:entrypoint", "echo via-entrypoint $0").ok()
    assert result.out == "via-entrypoint /bin/sh\n", str(result)


def test_import_all_changes_together(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "imp:all", 'CMD ["sh","-c","echo $A $B; pwd; id -u"]',
                 "ENV A=1 B=2", "WORKDIR /w", "USER nobody")
    assert ctr("run", "--rm", "imp:all").ok().out.split() == ["1", "2", "/w", "65534"]


def test_import_from_stdin(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path], worker: Worker
) -> None:
    images.append("imp:stdin")
    result = ctr("import", "-", "imp:stdin", input=rootfs_tar().read_bytes()).ok()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", result.out), str(result)
    assert ctr("run", "--rm", "imp:stdin", "cat", "/etc/test-marker").ok().out
    assert list((worker.root / "tmp").iterdir()) == []


def test_import_same_tar_twice_shares_the_layer(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path], worker: Worker
) -> None:
    before = layer_dirs(worker)
    tar = rootfs_tar()
    first = import_image(ctr, images, tar, "twice:a")
    second = import_image(ctr, images, tar, "twice:b")
    assert first != second
    assert len(layer_dirs(worker) - before) == 1


# -- hostile tars -----------------------------------------------------------------------
def assert_refused(ctr: Ctr, worker: Worker, tar: Path) -> str:
    """Importing `tar` fails with one clear line and writes nothing into the store."""
    before_ids, before_files = ctr.image_ids(), tree_listing(worker.root)
    line = one_line_error(ctr("import", str(tar), "hostile", trace=False))
    assert "refusing" in line, line
    assert ctr.image_ids() == before_ids
    after_files = tree_listing(worker.root)
    assert set(after_files) == set(before_files), (
        f"the store changed: +{sorted(set(after_files) - set(before_files))} "
        f"-{sorted(set(before_files) - set(after_files))}")
    return line


def test_import_refuses_absolute_member_names(ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    target = tmp_path / "absolute-pwned"
    tar = write_tar(tmp_path / "absolute.tar", [tar_member("etc", tarfile.DIRTYPE, mode=0o755),
                                                 tar_member(str(target), data=b"pwned")])
    assert str(target) in assert_refused(ctr, worker, tar)
    assert not target.exists()


@pytest.mark.parametrize("depth", [1, 40])
def test_import_refuses_dotdot_members(
    ctr: Ctr, worker: Worker, tmp_path: Path, depth: int
) -> None:
    target = tmp_path / "dotdot-pwned"
    escape = "../" * depth + (str(target).lstrip("/") if depth > 1 else "dotdot-pwned")
    tar = write_tar(tmp_path / "dotdot.tar", [tar_member("etc", tarfile.DIRTYPE, mode=0o755),
                                               tar_member(escape, data=b"pwned")])
    assert_refused(ctr, worker, tar)
    assert not target.exists()
    assert not (worker.root / "layers" / "dotdot-pwned").exists()


def test_import_refuses_dotdot_inside_a_member_name(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    tar = write_tar(tmp_path / "inner.tar", [tar_member("a", tarfile.DIRTYPE, mode=0o755),
                                              tar_member("a/../../inner-pwned", data=b"pwned")])
    assert_refused(ctr, worker, tar)
    assert not (worker.root / "inner-pwned").exists()
    assert not (worker.root / "layers" / "inner-pwned").exists()


def test_import_refuses_a_file_through_a_symlink(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = write_tar(tmp_path / "symlink.tar", [
        tar_member("evil", tarfile.SYMTYPE, mode=0o777, link=str(outside)),
        tar_member("evil/pwned", data=b"pwned"),
    ])
    assert "evil" in assert_refused(ctr, worker, tar)
    assert list(outside.iterdir()) == []


def test_import_refuses_a_file_through_a_relative_symlink(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    tar = write_tar(tmp_path / "relative.tar", [
        tar_member("dir", tarfile.DIRTYPE, mode=0o755),
        tar_member("dir/up", tarfile.SYMTYPE, mode=0o777, link="../../../../../.."),
        tar_member("dir/up/tmp/relative-pwned", data=b"pwned"),
    ])
    assert_refused(ctr, worker, tar)
    assert not Path("/tmp/relative-pwned").exists()


def test_import_refuses_a_hard_link_to_a_host_path(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    links_before = os.stat("/etc/passwd").st_nlink
    tar = write_tar(tmp_path / "hardlink.tar", [
        tar_member("etc", tarfile.DIRTYPE, mode=0o755),
        tar_member("etc/passwd", tarfile.LNKTYPE, link="/etc/passwd"),
    ])
    assert_refused(ctr, worker, tar)
    assert os.stat("/etc/passwd").st_nlink == links_before, "a hard link to the host's file"
    relative = write_tar(tmp_path / "hardlink-relative.tar", [
        tar_member("etc", tarfile.DIRTYPE, mode=0o755),
        tar_member("etc/shadow", tarfile.LNKTYPE, link="../../../../etc/shadow"),
    ])
    assert_refused(ctr, worker, relative)
    unseen = write_tar(tmp_path / "hardlink-unseen.tar", [
        tar_member("etc", tarfile.DIRTYPE, mode=0o755),
        tar_member("etc/shadow", tarfile.LNKTYPE, link="etc/not-in-this-layer"),
    ])
    assert_refused(ctr, worker, unseen)


def test_import_refuses_device_nodes_outside_dev(
    ctr: Ctr, worker: Worker, tmp_path: Path
) -> None:
    node, _ = tar_member("disk", tarfile.BLKTYPE, mode=0o666)
    node.devmajor, node.devminor = 8, 0
    tar = write_tar(tmp_path / "device.tar", [(node, b"")])
    assert_refused(ctr, worker, tar)


# -- rmi ----------------------------------------------------------------------------------
def test_rmi_refuses_while_a_stopped_container_uses_the_image(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path], worker: Worker
) -> None:
    layers_before = layer_dirs(worker)
    image_id = import_image(ctr, images, rootfs_tar(), "used:latest")
    ctr("run", "--name", "user-of-image", "used", "true").ok()
    try:
        refused = ctr("rmi", "used", trace=False)
        line = one_line_error(refused)
        assert "user-of-image" in line or ctr.container_ids()[0] in line, line
        assert image_id[:12] in ctr.image_ids()

        forced = ctr("rmi", "-f", "used").ok()
        lines = forced.out.splitlines()
        assert lines == ["Untagged: used:latest", f"Deleted: sha256:{image_id}"], str(forced)
        assert image_id[:12] not in ctr.image_ids()
        assert len(ctr.container_ids()) == 1, "rmi -f removed the container"
        # the stopped container still holds the layer ...
        assert len(layer_dirs(worker) - layers_before) == 1
    finally:
        ctr("rm", "user-of-image").ok()
    # ... until it goes too
    assert layer_dirs(worker) == layers_before


def test_rmi_refuses_while_a_running_container_uses_the_image(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path]
) -> None:
    import_image(ctr, images, rootfs_tar(), "busy:latest")
    sleeper = ctr.popen("run", "--rm", "--name", "busy-user", "busy", "sleep", "1000")
    try:
        wait_for(lambda: "busy-user" in ctr("ps").out or sleeper.process.poll() is not None,
                 "the container to run")
        one_line_error(ctr("rmi", "busy", trace=False))
        one_line_error(ctr("rmi", "-f", "busy", trace=False))
        ctr("rm", "-f", "busy-user").ok()
        sleeper.wait()
    finally:
        sleeper.kill()
    ctr("rmi", "busy").ok()


def test_rmi_of_one_of_two_images_sharing_a_layer(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path], worker: Worker
) -> None:
    layers_before = layer_dirs(worker)
    tar = rootfs_tar()
    first = import_image(ctr, images, tar, "shared:one")
    second = import_image(ctr, images, tar, "shared:two")
    (layer,) = layer_dirs(worker) - layers_before

    result = ctr("rmi", "shared:one").ok()
    assert result.out.splitlines() == ["Untagged: shared:one", f"Deleted: sha256:{first}"], \
        str(result)
    assert layer in layer_dirs(worker), "a layer still in use was removed"
    assert ctr("run", "--rm", "shared:two", "true").code == 0

    result = ctr("rmi", second[:12]).ok()  # by short id this time
    assert result.out.splitlines() == ["Untagged: shared:two", f"Deleted: sha256:{second}"], \
        str(result)
    assert layer_dirs(worker) == layers_before


def test_rmi_of_an_image_with_two_tags_only_untags(
    ctr: Ctr, images: list[str], rootfs_tar: Callable[..., Path], worker: Worker
) -> None:
    layers_before = layer_dirs(worker)
    image_id = import_image(ctr, images, rootfs_tar(), "tags:one")
    images.append("tags:two")
    # The CLI has no `tag` verb yet: give the image its second tag in its record (§3).
    record_path = worker.root / "images" / f"{image_id}.json"
    record = json.loads(record_path.read_text())
    record["repo_tags"].append("tags:two")
    record_path.write_text(json.dumps(record))

    result = ctr("rmi", "tags:one").ok()
    assert result.out.splitlines() == ["Untagged: tags:one"], str(result)
    assert image_id[:12] in ctr.image_ids()
    assert ctr("run", "--rm", "tags:two", "true").code == 0

    result = ctr("rmi", "tags:two").ok()
    assert result.out.splitlines() == ["Untagged: tags:two", f"Deleted: sha256:{image_id}"], \
        str(result)
    assert layer_dirs(worker) == layers_before


def test_rmi_unknown_image_fails(ctr: Ctr) -> None:
    line = one_line_error(ctr("rmi", "no-such-image", trace=False))
    assert "no-such-image" in line
