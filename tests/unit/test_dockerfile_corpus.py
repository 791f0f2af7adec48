"""The Dockerfile corpus (tests/fixtures/dockerfiles, built by the builder tests with
shellctr and with podman): every file parses, its index is right, and the parts give the
results the cases are there for."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from shellctr.parts.copyrules import Entry, is_archive, match_sources, plan
from shellctr.parts.dockerfile import CopyStep, Dockerfile, RunStep, TransferStep, parse
from shellctr.parts.dockerfile_build import BuildArgs
from shellctr.parts.dockerfile_config import StageConfig, begin_stage
from shellctr.parts.dockerfile_steps import ArgStep
from shellctr.parts.dockerignore import ContextFilter

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "dockerfiles"
INDEX: dict[str, Any] = json.loads((CORPUS / "corpus.json").read_text())["cases"]
NAMES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())
BUSYBOX_CONFIG = {"Cmd": ["sh"]}


def load(name: str) -> Dockerfile:
    return parse((CORPUS / name / "Dockerfile").read_bytes(), path=f"{name}/Dockerfile")


class DirectoryContext:
    """A fixture's context as a listing, after its .dockerignore."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ignore = root / ".dockerignore"
        self.rules = ContextFilter.from_text(ignore.read_text() if ignore.exists() else None)

    def lookup(self, path: str) -> Entry | None:
        full = self.root / path
        if path and not self.rules.visible(path):
            return None
        if full.is_symlink():
            return Entry("symlink", os.readlink(full))
        if full.is_dir():
            return Entry("dir")
        return Entry("file") if full.exists() else None

    def walk(self) -> Iterable[str]:
        out = []
        for parent, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(dirs + files):
                rel = os.path.relpath(os.path.join(parent, name), self.root)
                if self.rules.visible(rel):
                    out.append(rel)
        return sorted(out)


def test_the_corpus_is_big_enough_and_indexed() -> None:
    assert len(NAMES) >= 25
    assert sorted(INDEX) == NAMES
    for name, meta in INDEX.items():
        assert meta.get("about") or meta.get("why"), name
        if meta.get("podman") is False or meta.get("podman_differs"):
            assert meta.get("why"), f"{name}: say why Podman differs"


def walk_config(df: Dockerfile, meta: dict[str, Any]) -> tuple[StageConfig, BuildArgs]:
    """The target stage's config as the metadata steps leave it (RUN/COPY/ADD skipped,
    a stage base's config taken from that stage)."""
    build_args = BuildArgs(meta.get("build_args"))
    for arg in df.meta_args:
        build_args.declare_global(arg)
    configs: dict[int, StageConfig] = {}
    for index in df.needed_stages(meta.get("target"), meta.get("build_args")):
        stage = df.stages[index]
        base, _, _ = stage.expand_base(build_args.global_values())
        parent = df.stage_ref(base, index, allow_index=False)
        if parent is not None:
            config, triggers = begin_stage(configs[parent].to_config())
        else:
            config, triggers = begin_stage(None if base == "scratch" else BUSYBOX_CONFIG)
        trigger_steps = [parse(f"FROM x\n{t}\n").stages[0].steps[0] for t in triggers]
        args = build_args.for_stage()
        for step in [*trigger_steps, *stage.steps]:
            expanded, _ = step.expand(args.expansion_env(config.env))
            if isinstance(expanded, RunStep | TransferStep):
                continue  # the builder's part
            config.apply(expanded, args)
        build_args.merge_referenced(args)
        configs[index] = config
    return configs[df.target(meta.get("target"))], build_args


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_file_parses_and_its_steps_expand(name: str) -> None:
    df = load(name)
    meta = INDEX[name]
    assert df.stages
    walk_config(df, meta)


def config_of(name: str) -> dict[str, Any]:
    return walk_config(load(name), INDEX[name])[0].to_config()


def test_corpus_env_substitution() -> None:
    env = config_of("02-env-substitution")["Env"]
    assert env[1:] == [
        "BASE=/srv", "NAME=the app", "EMPTY=", "DATA=/opt/app/data", "LOGS=/opt/app/logs",
        "GREETING=hello, the app", "LITERAL=$BASE", "ESCAPED=$BASE", "DEFAULTED=fallback",
        "ALT=set", "NOALT=", "DROP=dropped", "SEEN=/opt/app", "LEGACY=the old form, with the app"]
    assert config_of("02-env-substitution")["WorkingDir"] == "/opt/app/data"
    modifiers = config_of("03-env-modifiers")["Env"]
    assert modifiers[4:] == ["KEEP=", "ALT=alt", "REQUIRED=release.tar.gz", "STEM=release",
                             "BASE=release.tar", "EXT=gz", "REST=tar.gz", "FIRST=/a;/b:/c",
                             "ALL=/a;/b;/c"]


def test_corpus_args() -> None:
    config, args = walk_config(load("04-arg-scoping"), INDEX["04-arg-scoping"])
    assert config.to_config()["Labels"] == {"version": "2", "flavor": "plain"}
    assert args.unused_warning() == "[Warning] One or more build-args [UNUSED] were not consumed"
    df = load("34-run-build-args")
    run_args = BuildArgs(INDEX["34-run-build-args"]["build_args"]).for_stage()
    for step in df.stages[0].steps[:2]:
        assert isinstance(step, ArgStep)
        for decl in step.args:
            run_args.declare(decl.key, decl.default)
    assert run_args.run_history(["/bin/sh", "-c", "x"], ["PATH=/bin"]) == [
        "|2", "OTHER=given", "TOKEN=default", "/bin/sh", "-c", "x"]
    assert run_args.run_args(["TOKEN=from-env"]) == ["OTHER=given"]


def test_corpus_stages() -> None:
    assert load("06-target").needed_stages("middle") == (0, 1)
    assert config_of("06-target")["Env"][-1] == "STAGE=middle"
    assert load("07-unused-stage").needed_stages() == (1, 2)
    assert load("08-from-stage").needed_stages() == (0, 2)  # FROM base (stage 1) is unused
    assert "WorkingDir" not in config_of("08-from-stage")
    assert load("31-scratch").needed_stages() == (0, 1)


def test_corpus_metadata_configs() -> None:
    assert config_of("13-volume")["Volumes"] == {"/data": {}, "/logs": {}, "/json/volume": {}}
    # Docker sorts each EXPOSE's words as written: "$PORT" comes before "53/udp"
    assert list(config_of("14-expose")["ExposedPorts"]) == ["443/tcp", "80/tcp", "8080/tcp",
                                                            "53/udp"]
    assert list(config_of("15-expose-range")["ExposedPorts"]) == [
        "9000/tcp", "9001/udp", "7000/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
    assert config_of("16-labels")["Labels"] == {
        "com.example.vendor": "ACME Inc", "version": "1.0",
        "description": 'a "quoted" description', "old": "form value with spaces",
        "single": "$VENDOR", "empty": ""}
    assert walk_config(load("16-labels"), {})[0].author == \
        "Corpus Maintainer <corpus@example.com>"
    assert config_of("17-healthcheck")["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
        "Interval": 30_000_000_000, "Timeout": 3_000_000_000, "StartPeriod": 90_000_000_000,
        "StartInterval": 2_000_000_000, "Retries": 3}
    assert config_of("18-healthcheck-none")["Healthcheck"] == {"Test": ["NONE"]}
    onbuild = config_of("19-onbuild")
    assert "OnBuild" not in onbuild and "TRIGGERED=yes" in onbuild["Env"]
    shell = config_of("20-shell")
    assert (shell["Cmd"], shell["Entrypoint"]) == (
        ["/bin/ash", "-c", 'echo "shell-form CMD"'],
        ["/bin/ash", "-c", 'echo "shell-form ENTRYPOINT"'])
    assert config_of("21-escape-directive")["WorkingDir"] == "/work     dir"
    assert config_of("27-cmd-entrypoint")["Cmd"] == ["ls"]
    assert config_of("28-stopsignal")["StopSignal"] == "SIGUSR1"
    json_forms = config_of("30-json-forms")
    assert json_forms["Cmd"] == ["/bin/sh", "-c", "['not', 'json']"]
    assert "Entrypoint" not in json_forms
    assert config_of("31-scratch")["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_corpus_escape_directive_splits_env_pairs() -> None:
    env = config_of("21-escape-directive")["Env"]
    assert env[1:] == ["WINPATH=C:\\Program\\App", "NEXT=value"]


def sources(name: str, step_index: int) -> list[str]:
    step = load(name).stages[-1].steps[step_index]
    assert isinstance(step, TransferStep)
    matched = match_sources(step.sources, DirectoryContext(CORPUS / name), step.keyword)
    return [source.name for source in matched]


def test_corpus_dockerignore() -> None:
    context = DirectoryContext(CORPUS / "22-dockerignore")
    # `docs` itself is excluded, `!docs/README.md` brings the file back (its directory
    # comes with it when the context is unpacked)
    assert list(context.walk()) == ["a.txt", "docs/README.md", "keep.log", "sub", "sub/d.txt",
                                    "sub/rooted.txt"]
    assert context.rules.sent("Dockerfile") and context.rules.sent(".dockerignore")


def test_corpus_wildcards() -> None:
    assert sources("23-wildcards", 0) == ["one.txt", "two.txt"]
    assert sources("23-wildcards", 1) == ["conf/a.conf", "conf/b.conf"]
    assert sources("23-wildcards", 2) == ["a1.dat", "b2.dat"]
    assert sources("23-wildcards", 3) == ["sub1", "sub2"]


def test_corpus_add_archives() -> None:
    root = CORPUS / "24-add-local-tar"
    found = {name: is_archive((root / name).read_bytes()[:65536])
             for name in ("app.tar.gz", "plain.tar", "notatar.tar.gz", "readme.txt")}
    assert found == {"app.tar.gz": True, "plain.tar": True, "notatar.tar.gz": False,
                     "readme.txt": False}


def test_corpus_copy_destinations() -> None:
    name = "32-copy-dir-semantics"
    context = DirectoryContext(CORPUS / name)
    targets = []
    for step in load(name).stages[0].steps:
        if not isinstance(step, CopyStep):
            continue
        matched = match_sources(step.sources, context)
        for op in plan(matched, step.dest, "/", lambda p: p == "/existing"):
            targets.append((op.source.path, op.target, op.contents))
    assert targets == [
        ("dir", "/contents", True), ("dir", "/contents-slash", True),
        ("top.txt", "/existing/top.txt", False), ("top.txt", "/multi/top.txt", False),
        ("other.txt", "/multi/other.txt", False), ("top.txt", "/renamed.txt", False),
        ("top.txt", "/cleaned.txt", False), ("top.txt", "/followed.txt", False)]


def test_corpus_heredocs() -> None:
    steps = load("09-heredoc-run").stages[0].steps
    argv = [step.resolve() for step in steps if isinstance(step, RunStep)]
    assert argv[0] == ["/bin/sh", "-c", 'echo "hello $WHO" > /hello\necho second line >> /hello\n']
    assert argv[1] == ["/bin/sh", "-c", 'echo "tabs stripped" > /tabs\n']
    assert argv[4] == ["/dev/pipes/SCRIPT"]
    copy = load("10-heredoc-copy").stages[0].steps[1]
    assert isinstance(copy, CopyStep)
    expanded, _ = copy.expand({"NAME": "corpus"})
    assert [(f.name, f.data) for f in expanded.inline] == [("EOF", "welcome to corpus\n")]


def test_corpus_warnings_and_directives() -> None:
    assert load("29-continuations-comments").warnings == (
        "Empty continuation line found in: RUN echo one     two     three > /continued",)
    assert load("33-directives").directives == {"syntax": "docker/dockerfile:1",
                                                "check": "skip=all"}
