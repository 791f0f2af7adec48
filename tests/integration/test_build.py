"""`build`: images from a Dockerfile through the real CLI, as Docker's classic builder
makes them: the output, the layers and configs, the cache, multi-stage builds, hostile
contexts, failing steps (the leak check runs after each test, failures included)."""

from __future__ import annotations

import io
import json
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import Ctr, tar_member, tree_listing, wait_for, write_tar


def context(tmp_path: Path, dockerfile: str, files: dict[str, str | bytes] | None = None,
            ) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return ctx


def image_config(ctr: Ctr, ref: str) -> dict[str, Any]:
    return json.loads(ctr("image", "inspect", ref).ok().out)[0]


def steps(out: str) -> list[str]:
    """Each step's first line and whether it came from the cache."""
    lines = out.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Step "):
            cached = i + 1 < len(lines) and lines[i + 1] == " ---> Using cache"
            found.append(("cached " if cached else "") + line.split(" : ", 1)[1])
    return found


def remove_images(ctr: Ctr, *refs: str) -> None:
    for ref in refs:
        ctr("rmi", ref).ok()
    ctr("builder", "prune", "--force").ok()


DOCKERFILE = """\
FROM busybox
ARG V=1
ENV GREETING=hi
WORKDIR /app
COPY a.txt /app/
COPY d /data
RUN echo "$GREETING $V" > /app/out && cat /app/out
LABEL x=y
CMD ["cat", "/app/out"]
"""


def test_build_prints_the_classic_steps_and_the_image_runs(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, DOCKERFILE, {"a.txt": "a\n", "d/e/f": "f\n"})
    result = ctr("build", "-t", "app", str(ctx), trace=False).ok()
    lines = result.out.splitlines()
    assert lines[0] == "Step 1/9 : FROM busybox"
    assert lines[1].startswith(" ---> ") and len(lines[1]) == 18
    assert "Step 7/9 : RUN echo \"$GREETING $V\" > /app/out && cat /app/out" in lines
    run = lines.index("Step 7/9 : RUN echo \"$GREETING $V\" > /app/out && cat /app/out")
    assert lines[run + 1].startswith(" ---> Running in ")
    cid = lines[run + 1].removeprefix(" ---> Running in ")
    assert lines[run + 2] == "hi 1"  # the step's own output, streamed
    assert lines[run + 3] == f"Removing intermediate container {cid}"
    image = image_config(ctr, "app")
    assert lines[-2] == f"Successfully built {image['Id'].removeprefix('sha256:')[:12]}"
    assert lines[-1] == "Successfully tagged app:latest"
    assert ctr("ps", "-aq").ok().out == ""  # --rm: no intermediate container is left
    assert ctr("run", "--rm", "app").ok().out == "hi 1\n"
    listing = ctr("run", "--rm", "app", "sh", "-c", "cat /app/a.txt /data/e/f; stat -c '%u:%g "
                  "%a' /app/a.txt").ok().out
    assert listing == "a\nf\n0:0 644\n"
    config = image["Config"]
    assert config["Cmd"] == ["cat", "/app/out"]
    assert config["WorkingDir"] == "/app"
    assert config["Labels"] == {"x": "y"}
    assert "GREETING=hi" in config["Env"]
    # four layers on busybox's one: WORKDIR (it makes /app, as the classic builder), COPY,
    # COPY, RUN; the others change only the config
    assert len(image["RootFS"]["Layers"]) == 5
    blob = json.loads((ctr.root / "blobs" / "sha256" / image["Id"].removeprefix("sha256:"))
                      .read_text())
    history = blob["history"][1:]  # after busybox's own
    assert [entry["created_by"].split(" in ")[0] if "COPY" in entry["created_by"]
            else entry["created_by"] for entry in history] == [
        "/bin/sh -c #(nop)  ARG V=1", "/bin/sh -c #(nop)  ENV GREETING=hi",
        "/bin/sh -c #(nop) WORKDIR /app",
        "/bin/sh -c #(nop) COPY file:" + history[3]["created_by"].split("file:")[1][:64],
        "/bin/sh -c #(nop) COPY dir:" + history[4]["created_by"].split("dir:")[1][:64],
        '|1 V=1 /bin/sh -c echo "$GREETING $V" > /app/out && cat /app/out',
        "/bin/sh -c #(nop)  LABEL x=y", '/bin/sh -c #(nop)  CMD ["cat" "/app/out"]']
    assert [bool(entry.get("empty_layer")) for entry in history] == [
        True, True, False, False, False, False, True, True]
    assert history[3]["created_by"].endswith(" in /app/ ")  # Docker's trailing space
    remove_images(ctr, "app")


def test_second_build_is_all_cache_and_starts_no_container(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, DOCKERFILE, {"a.txt": "a\n", "d/e/f": "f\n"})
    first = ctr("build", "-q", "-t", "app", str(ctx), trace=False).ok().out.strip()
    again = ctr("build", "-t", "app", str(ctx)).ok()
    assert all(s.startswith("cached ") for s in steps(again.out)[1:]), again
    assert "Running in" not in again.out
    assert "unshare" not in again.err  # the trace: no container was started
    assert again.out.splitlines()[-2] == f"Successfully built {first[7:19]}"
    # the intermediate images are hidden, as Docker's: only busybox and app, unless -a
    assert len(ctr("images", "-q").ok().out.split()) == 2
    assert len(ctr("images", "-aq").ok().out.split()) == 9  # busybox, one per step after FROM
    remove_images(ctr, "app")


def test_changing_a_copied_file_rebuilds_from_its_step_on(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, DOCKERFILE, {"a.txt": "a\n", "d/e/f": "f\n"})
    ctr("build", "-q", "-t", "app", str(ctx)).ok()
    (ctx / "d/e/f").write_text("changed\n")
    again = ctr("build", "-t", "app", str(ctx), trace=False).ok()
    assert steps(again.out) == [
        "FROM busybox", "cached ARG V=1", "cached ENV GREETING=hi", "cached WORKDIR /app",
        "cached COPY a.txt /app/", "COPY d /data",
        'RUN echo "$GREETING $V" > /app/out && cat /app/out', "LABEL x=y",
        'CMD ["cat", "/app/out"]'], again
    assert ctr("run", "--rm", "app", "cat", "/data/e/f").ok().out == "changed\n"
    # a mode change alone invalidates too
    (ctx / "a.txt").chmod(0o600)
    third = ctr("build", "-t", "app", str(ctx), trace=False).ok()
    assert steps(third.out)[4] == "COPY a.txt /app/", third
    remove_images(ctr, "app")


def test_build_args_in_use_invalidate_unused_ones_do_not(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, DOCKERFILE, {"a.txt": "a\n", "d/e/f": "f\n"})
    ctr("build", "-q", "-t", "app", str(ctx)).ok()
    unused = ctr("build", "--build-arg", "OTHER=1", "-t", "app", str(ctx), trace=False).ok()
    assert all(s.startswith("cached ") for s in steps(unused.out)[1:]), unused
    assert "[Warning] One or more build-args [OTHER] were not consumed" in unused.out
    used = ctr("build", "--build-arg", "V=2", "-t", "app", str(ctx), trace=False).ok()
    assert steps(used.out)[6] == 'RUN echo "$GREETING $V" > /app/out && cat /app/out', used
    assert "hi 2" in used.out.splitlines()
    assert all(s.startswith("cached ") for s in steps(used.out)[1:6]), used
    remove_images(ctr, "app")


def test_no_cache_rebuilds_every_step(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo one\nENV A=1\n")
    ctr("build", "-q", "-t", "app", str(ctx)).ok()
    again = ctr("build", "--no-cache", "-t", "app", str(ctx), trace=False).ok()
    assert not any(s.startswith("cached ") for s in steps(again.out)), again
    assert "one" in again.out.splitlines()
    remove_images(ctr, "app")


def test_failing_run_exits_1_and_keeps_its_container(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo about to fail; exit 3\n")
    result = ctr("build", "-t", "app", str(ctx), trace=False)
    assert result.code == 1, result
    assert "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3" \
        in result.err, result
    assert "about to fail" in result.out
    kept = ctr("ps", "-a", "--format", "{{.Status}}").ok().out
    assert kept.startswith("Exited (3)"), kept
    assert ctr("images", "-q", "app").ok().out == ""
    for cid in ctr.container_ids():
        ctr("rm", cid).ok()
    ctr("builder", "prune", "--force").ok()


def test_force_rm_removes_the_failed_steps_container(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN exit 2\n")
    result = ctr("build", "--force-rm", str(ctx))
    assert result.code == 1, result
    assert ctr.container_ids() == []


def test_rm_false_keeps_the_intermediate_containers(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN true\nRUN true\n")
    ctr("build", "--rm=false", "-t", "app", str(ctx)).ok()
    kept = ctr.container_ids()
    assert len(kept) == 2
    for cid in kept:
        ctr("rm", cid).ok()
    remove_images(ctr, "app")


def test_multi_stage_builds_only_what_the_target_needs(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, """\
FROM busybox AS build
RUN echo artefact > /artefact
FROM busybox AS unused
RUN echo NEVER-BUILT
FROM busybox AS middle
RUN echo middle > /middle
FROM busybox
COPY --from=build /artefact /app/
COPY --from=0 /artefact /app/again
CMD ["cat", "/app/artefact"]
""")
    result = ctr("build", "-t", "app", str(ctx), trace=False).ok()
    assert "NEVER-BUILT" not in result.out
    assert "middle" not in result.out
    assert result.out.splitlines()[0] == "Step 1/6 : FROM busybox AS build"
    assert ctr("run", "--rm", "app").ok().out == "artefact\n"
    assert ctr("run", "--rm", "app", "ls", "/").ok().out.split().count("artefact") == 0
    target = ctr("build", "--target", "middle", "-t", "mid", str(ctx), trace=False).ok()
    assert steps(target.out) == ["FROM busybox AS middle", "RUN echo middle > /middle"]
    assert ctr("run", "--rm", "mid", "cat", "/middle").ok().out == "middle\n"
    bad = ctr("build", "--target", "nope", str(ctx))
    assert bad.code != 0 and "target stage 'nope' could not be found" in bad.err
    remove_images(ctr, "app", "mid")


def test_add_extracts_a_local_tar_and_copies_a_non_tar(ctr: Ctr, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in (tar_member("app/bin/run", data=b"#!/bin/sh\n", mode=0o755),
                           tar_member("app/etc/conf", data=b"k=v\n")):
            tar.addfile(info, io.BytesIO(data))
    ctx = context(tmp_path, "FROM busybox\nADD app.tgz /opt/\nADD notatar.tar.gz /opt/\n",
                  {"app.tgz": buffer.getvalue(), "notatar.tar.gz": "plain text\n"})
    ctr("build", "-t", "app", str(ctx)).ok()
    out = ctr("run", "--rm", "app", "sh", "-c", "stat -c '%a %n' /opt/app/bin/run; "
              "cat /opt/app/etc/conf /opt/notatar.tar.gz").ok().out
    assert out == "755 /opt/app/bin/run\nk=v\nplain text\n"
    remove_images(ctr, "app")


@pytest.mark.parametrize("member", [
    tar_member("../../escape", data=b"x"),
    tar_member("link", kind=tarfile.SYMTYPE, link="/etc"),
    tar_member("hard", kind=tarfile.LNKTYPE, link="../../etc/passwd"),
    tar_member("dev", kind=tarfile.CHRTYPE),
], ids=["dotdot", "through-symlink", "hardlink-out", "device"])
def test_add_refuses_a_hostile_tar(ctr: Ctr, tmp_path: Path,
                                   member: tuple[tarfile.TarInfo, bytes]) -> None:
    members = [member]
    if member[0].issym():
        members.append(tar_member("link/passwd", data=b"owned\n"))
    ctx = context(tmp_path, "FROM busybox\nADD evil.tar /x/\n")
    write_tar(ctx / "evil.tar", members)
    result = ctr("build", "-t", "evil", str(ctx))
    assert result.code == 1, result
    assert "ADD failed: archive evil.tar" in result.err, result
    assert len(result.err_lines) == 1, result
    assert ctr("images", "-q", "evil").ok().out == ""
    ctr("builder", "prune", "--force").ok()


def test_nothing_outside_the_context_is_reachable(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY ../outside /x\n")
    (tmp_path / "outside").write_text("host file\n")
    result = ctr("build", str(ctx))
    assert result.code == 1
    assert "forbidden path outside the build context: ../outside" in result.err, result
    # a symlink pointing out of the context resolves inside it: the host file is not there
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /x\n")
    (ctx / "link").symlink_to(tmp_path / "outside")
    result = ctr("build", str(ctx))
    assert result.code == 1, result
    assert "file not found in build context" in result.err
    # a symlink inside a copied directory is copied as a symlink, never followed
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY dir /dir\n")
    (ctx / "dir").mkdir()
    (ctx / "dir" / "shadow").symlink_to("/etc/shadow")
    ctr("build", "-t", "links", str(ctx)).ok()
    out = ctr("run", "--rm", "links", "readlink", "/dir/shadow").ok().out
    assert out == "/etc/shadow\n"
    remove_images(ctr, "links")


def test_dockerignore_hides_files_from_copy(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY . /ctx\n",
                  {".dockerignore": "secret*\n**/*.log\n!keep.log\n", "secret.txt": "no",
                   "a/b/x.log": "no", "keep.log": "yes", "src/main": "yes"})
    ctr("build", "-t", "ign", str(ctx)).ok()
    found = ctr("run", "--rm", "ign", "find", "/ctx", "-type", "f").ok().out.split()
    assert sorted(found) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/keep.log",
                             "/ctx/src/main"]
    remove_images(ctr, "ign")


def test_context_and_dockerfile_from_stdin(ctr: Ctr, tmp_path: Path) -> None:
    alone = ctr("image", "build", "-q", "-", input="FROM busybox\nENV FROM_STDIN=1\n").ok()
    image_id = alone.out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert "FROM_STDIN=1" in image_config(ctr, image_id)["Config"]["Env"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello /\n"), ("hello", b"hi\n")):
            tar.addfile(tar_member(name, data=data)[0], io.BytesIO(data))
    ctr("build", "-t", "fromtar", "-", input=buffer.getvalue()).ok()
    assert ctr("run", "--rm", "fromtar", "cat", "/hello").ok().out == "hi\n"
    ctx = context(tmp_path, "", {"f": "from dir\n"})
    ctr("build", "-t", "dash-f", "-f", "-", str(ctx), input="FROM busybox\nCOPY f /\n").ok()
    assert ctr("run", "--rm", "dash-f", "cat", "/f").ok().out == "from dir\n"
    ctr("rmi", image_id).ok()
    remove_images(ctr, "fromtar", "dash-f")


def test_quiet_iidfile_labels(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo noisy\n")
    iid = tmp_path / "iid"
    result = ctr("build", "-q", "--iidfile", str(iid), "--label", "a=b", "-t", "q",
                 str(ctx), trace=False).ok()
    assert result.out == iid.read_text() + "\n"
    assert "noisy" not in result.out
    assert image_config(ctr, "q")["Config"]["Labels"] == {"a": "b"}
    # a cached build with other labels gets them (they are a step of their own)
    other = ctr("build", "--label", "c=$HOME", "-t", "q", str(ctx), trace=False).ok()
    assert steps(other.out) == ["FROM busybox", "cached RUN echo noisy", "LABEL c=$HOME"]
    assert image_config(ctr, "q")["Config"]["Labels"] == {"c": "$HOME"}
    remove_images(ctr, "q")


def test_from_platform_other_than_the_hosts_is_refused(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM --platform=linux/s390x busybox\nRUN true\n")
    result = ctr("build", str(ctx))
    assert result.code == 1 and "Dockerfile:1: FROM --platform=linux/s390x" in result.err
    (ctx / "Dockerfile").write_text("ARG P=linux/amd64\nFROM --platform=$P busybox\n"
                                    "ENV OK=1\n")
    ctr("build", "-t", "plat", str(ctx)).ok()
    remove_images(ctr, "plat")


def test_syntax_error_names_file_and_line(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN true\nFOO bar\n")
    result = ctr("build", str(ctx))
    assert result.code == 1
    assert result.err_lines[0].startswith("shellctr: Dockerfile:3: "), result
    assert ctr("images", "-aq").ok().out.split() == ctr("images", "-q").ok().out.split()


def test_dry_run_plans_and_changes_nothing(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nENV A=1\nRUN echo planned\nCMD [\"sh\"]\n")
    ctr("build", "-q", str(ctx)).ok()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN echo changed\nCMD [\"sh\"]\n")
    before = ctr("images", "-aq").ok().out
    files = tree_listing(ctr.root, ctr.runroot)
    script = ctr("--dry-run", "build", str(ctx), trace=False).ok().out
    assert tree_listing(ctr.root, ctr.runroot) == files
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "#   Step 2/4 : ENV A=1\n#    ---> Using cache\n" in script
    assert "#   Step 3/4 : RUN echo changed\n" in script
    assert "unshare" in script  # the commands of the first step that would run
    assert "#   Step 4/4 : CMD [\"sh\"]\n" in script
    assert ctr("images", "-aq").ok().out == before
    assert ctr.container_ids() == []
    ctr("builder", "prune", "--force").ok()


def test_trace_shows_a_run_steps_commands_as_runs(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN true\n")
    result = ctr("build", "-t", "tr", str(ctx)).ok()
    traced = [line for line in result.err.splitlines() if line.startswith("+ ")]
    assert any("unshare" in line for line in traced), result
    assert any("shellctr.engine.pack pack" in line for line in traced), result
    remove_images(ctr, "tr")


def test_sigterm_mid_build_leaves_nothing(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo started; sleep 1000\n")
    running = ctr.popen("build", "-t", "killed", str(ctx))
    wait_for(lambda: "started" in running.output_so_far(), "the RUN step to start")
    running.process.send_signal(signal.SIGTERM)
    result = running.wait()
    assert result.code == 143, result
    assert ctr.container_ids() == []
    assert ctr("images", "-q", "killed").ok().out == ""
    ctr("builder", "prune", "--force").ok()


def test_a_hostile_context_tar_is_refused_before_anything_is_written(ctr: Ctr,
                                                                     tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in (tar_member("Dockerfile", data=b"FROM busybox\nCOPY . /\n"),
                           tar_member("../../escaped", data=b"x")):
            tar.addfile(info, io.BytesIO(data))
    result = ctr("build", "-", input=buffer.getvalue())
    assert result.code == 1, result
    assert "the context tar on stdin is refused" in result.err
    assert len(result.err_lines) == 1, result
    assert not (tmp_path.parent / "escaped").exists()


def test_run_after_volume_keeps_nothing_under_it_and_no_volume(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nVOLUME /data\nRUN echo lost > /data/f && "
                  "echo kept > /kept\n")
    ctr("build", "-t", "vol", str(ctx)).ok()
    out = ctr("run", "--rm", "vol", "sh", "-c", "cat /kept; ls /data").ok().out
    assert out == "kept\n"  # as Docker: a RUN's writes under a VOLUME are not in the layer
    assert ctr("volume", "ls", "-q").ok().out == ""
    remove_images(ctr, "vol")


def test_image_prune_takes_the_cache_with_it(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo once\n")
    ctr("build", "-q", str(ctx)).ok()
    ctr("image", "prune", "--force").ok()
    again = ctr("build", "-q", "-t", "pruned", str(ctx), trace=False).ok()
    assert again.out.startswith("sha256:")
    assert "Running in" not in again.out  # -q
    plain = ctr("build", str(ctx), trace=False).ok()
    assert " ---> Using cache" in plain.out.splitlines()
    remove_images(ctr, "pruned")


def test_run_steps_use_the_network_asked_for(ctr: Ctr, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN ls /sys/class/net > /links\n")
    ctr("build", "--network", "none", "-t", "nonet", str(ctx)).ok()
    assert ctr("run", "--rm", "nonet", "cat", "/links").ok().out.split() == ["lo"]
    remove_images(ctr, "nonet")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A web server on 127.0.0.1 (this worker's own network namespace) serving `www/`."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    (root / "remote.txt").write_text("from the web\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_downloads_a_url_and_checks_its_checksum(ctr: Ctr, tmp_path: Path,
                                                     web: str) -> None:
    import hashlib

    good = hashlib.sha256(b"from the web\n").hexdigest()
    ctx = context(tmp_path, f"FROM busybox\nADD --checksum=sha256:{good} {web}/remote.txt "
                  "/srv/\n")
    result = ctr("build", "-t", "web", str(ctx)).ok()
    assert any(line.startswith("+ curl --fail") and "/remote.txt" in line
               for line in result.err.splitlines()), result
    out = ctr("run", "--rm", "web", "stat", "-c", "%a %u:%g %s", "/srv/remote.txt").ok().out
    assert out == "600 0:0 13\n"  # Docker's mode for a download
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} "
                                    f"{web}/remote.txt /srv/\n")
    bad = ctr("build", str(ctx))
    assert bad.code == 1 and "digest mismatch" in bad.err, bad
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {web}/missing /srv/\n")
    missing = ctr("build", str(ctx))
    assert missing.code == 1 and "cannot download" in missing.err, missing
    remove_images(ctr, "web")
