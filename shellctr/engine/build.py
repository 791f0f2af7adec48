"""`build`: an image from a Dockerfile, as Docker's classic builder makes it.

Each step of the stages the target needs makes one image without a name (its parent's
layers, its config, its history): a RUN is a container confined as `run` makes it
(engine/create.py, engine/start.py) whose changes become one layer as `commit` writes
them (engine/commit.write_layer); COPY and ADD write one layer tar from the context
(engine/build_copy.py); the other instructions change only the config (`empty_layer`
history). Those images are the cache: `build-cache/<key>` names the image a step made,
the key being the parent image, the step's history line (a RUN's build args in use
included) and, for COPY/ADD, a hash of the sources' content, modes and owners. A step
whose key names an image still in the store is not run again (`Using cache`).

The output is the classic builder's (`Step N/M : ...`, ` ---> Running in ID`,
` ---> ID`, `Successfully built ID`, `Successfully tagged NAME`). Under --dry-run the plan
is printed: each step, which come from the cache, and the commands of the first one that
would run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.store import Store, now_iso
from shellctr.engine.build_cache import CACHE_DIR
from shellctr.engine.build_context import ImageView, Tree, image_tree
from shellctr.engine.build_copy import Transfer, transfer_digest, write_dirs, write_transfer
from shellctr.engine.layers import (
    prepare_layer_dirs,
    publish_layer,
    scan_layer,
    sweep_partials,
)
from shellctr.parts import copyrules
from shellctr.parts.dockerfile import (
    SCRATCH,
    AddStep,
    CopyStep,
    Dockerfile,
    DockerfileError,
    Heredoc,
    RunStep,
    Stage,
    Step,
    TransferStep,
    WorkdirStep,
    parse,
)
from shellctr.parts.dockerfile_build import BuildArgs, copy_created_by, step_line
from shellctr.parts.dockerfile_config import StageConfig, begin_stage, onbuild_trigger_line
from shellctr.parts.dockerfile_words import SubstitutionError
from shellctr.parts.reference import find_image_record, normalize_ref


class BuildError(ShellctrError):
    """A build that failed (Docker's exit code 1)."""

    exit_code = 1


@dataclass
class BuildOptions:
    """What `build` was asked for (cli/build.py fills it from the flags)."""

    dockerfile: bytes
    dockerfile_name: str = "Dockerfile"
    context: Tree | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    network: str | None = None
    rm: bool = True
    force_rm: bool = False


@dataclass
class State:
    """An image a step made (or a stage's base): its id ("" before a scratch stage has a
    layer), its config document, the stage's config, its layers and their sizes."""

    id: str
    document: dict[str, Any]
    config: StageConfig
    layers: list[str]
    sizes: list[int]
    cmd_set: bool = False
    run_image: str = ""  # --dry-run: an image with these layers, for a RUN's container

    @property
    def key(self) -> str:
        """What the cache keys of the next step start from."""
        if self.id:
            return self.id
        blob = json.dumps([self.config.to_config(), self.document.get("history")],
                          sort_keys=True)
        return "scratch:" + sha256_hex(blob.encode())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def history_entry(created: str, created_by: str, empty_layer: bool = False) -> dict[str, Any]:
    """One `history` item, as the classic builder writes it."""
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty_layer:
        entry["empty_layer"] = True
    return entry


def cache_key(parent: State, created_by: str) -> str:
    return sha256_hex(json.dumps([parent.key, created_by]).encode())


class Builder:
    """One build: the Dockerfile's needed stages, step by step."""

    def __init__(self, host: Host, store: Store, options: BuildOptions,
                 out: TextIO | None = None) -> None:
        self.host, self.store, self.options = host, store, options
        self.layout = store.layout
        self.out = out or sys.stdout
        self.dockerfile: Dockerfile = parse(options.dockerfile, options.dockerfile_name)
        self.args = BuildArgs(options.build_args)
        self.states: dict[int, State] = {}
        self.number = 0
        self.total = 0
        self.planned = False  # --dry-run: the first step that would run has been shown

    # -- output ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.host.dry_run:
            self.host.note(text)
        elif not self.options.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def step_header(self, text: str) -> None:
        self.number += 1
        self.say(step_line(self.number, self.total, text))

    # -- the build ------------------------------------------------------------------------
    def build(self) -> str:
        """Build the target; its image id ("" under --dry-run when a step would run)."""
        df = self.dockerfile
        for warning in df.warnings:
            self.host.warn(warning)
        needed = df.needed_stages(self.options.target, self.options.build_args)
        self.total = df.step_count(needed)
        for step in df.meta_args:
            self.step_header(step.text)
            self.args.declare_global(step)
        global_args = self.args.global_values()
        target = df.target(self.options.target)
        state: State | None = None
        for index in needed:
            stage = df.stages[index]
            state = self.stage(stage, global_args, index == target)
            self.states[index] = state
            if self.planned:
                break
        unused = self.args.unused_warning()
        if unused and not self.host.dry_run:
            self.say(unused)
        assert state is not None
        if self.planned:
            return ""
        if not state.id:
            raise BuildError("the image has no layers: a FROM scratch stage needs a COPY, "
                             "ADD or RUN", "add the files the image should hold")
        self.say(f"Successfully built {state.id[:SHORT]}")
        for tag in self.options.tags:
            self.tag(state.id, tag)
        return state.id

    def tag(self, image_id: str, tag: str) -> None:
        record = find_image_record(self.store.image_records(), image_id)
        if normalize_ref(tag) not in record["repo_tags"]:  # (a cached rebuild: it is)
            from shellctr.engine.image import tag_image

            tag_image(self.host, self.store, image_id, tag)
        self.say(f"Successfully tagged {normalize_ref(tag).removeprefix('docker.io/library/')}")

    def stage(self, stage: Stage, global_args: dict[str, str], is_target: bool) -> State:
        self.step_header(stage.text)
        base, _platform, _ = stage.expand_base(global_args)
        state, triggers = self.base_state(stage, base)
        self.say(f" ---> {state.id[:SHORT]}")
        args = self.args.for_stage()
        if is_target and self.options.labels:
            state.config.labels.update(self.options.labels)
        if triggers:
            self.say(onbuild_trigger_line(len(triggers)))
            for expression in triggers:
                step = parse(f"FROM scratch\n{expression}\n", stage.path).stages[0].steps[0]
                state = self.run_step(state, step, args, stage)
        for step in stage.steps:
            self.step_header(step.text)
            if self.planned:
                continue
            state = self.run_step(state, step, args, stage)
            if not self.planned and (state.id or not self.host.dry_run):
                self.say(f" ---> {state.id[:SHORT]}")
        self.args.merge_referenced(args)
        return state

    def base_state(self, stage: Stage, base: str) -> tuple[State, list[str]]:
        """The state a stage starts from, and the base image's ONBUILD triggers."""
        if base.lower() == SCRATCH:
            config, _ = begin_stage(None)  # Docker's default PATH, even in scratch
            return State("", {"history": []}, config, [], []), []
        index = self.dockerfile.stage_ref(base, stage.index, allow_index=False)
        if index is not None:
            earlier = self.states[index]
            config = earlier.config.copy()
            triggers, config.on_build = config.on_build, []
            config.cmd_set = False
            return State(earlier.id, dict(earlier.document), config, list(earlier.layers),
                         list(earlier.sizes)), triggers
        try:
            record = find_image_record(self.store.image_records(), base)
        except NotFound:
            raise BuildError(f"FROM {base}: unable to find image {normalize_ref(base)!r} "
                             "locally", "shellctr build cannot pull yet: load, import or "
                             "build it first") from None
        state = self.load_state(record["id"])
        config, triggers = begin_stage(state.document.get("config"))
        state.config = config
        return state, triggers

    def load_state(self, image_id: str, cmd_set: bool = False) -> State:
        document = json.loads(self.layout.blob(image_id).read_bytes())
        record = find_image_record(self.store.image_records(), image_id)
        config, _ = begin_stage(document.get("config"))
        config.env = list((document.get("config") or {}).get("Env") or [])
        config.on_build = list((document.get("config") or {}).get("OnBuild") or [])
        config.author = document.get("author") or ""
        config.cmd_set = cmd_set
        sizes = list(record.get("layer_sizes") or [])
        if len(sizes) != len(record["layers"]):
            sizes = [-1] * len(record["layers"])
        return State(image_id, document, config, list(record["layers"]), sizes, cmd_set)

    # -- one step -------------------------------------------------------------------------
    def run_step(self, state: State, step: Step, args: BuildArgs, stage: Stage) -> State:
        unsupported = getattr(step, "unsupported", None)
        problem = unsupported() if unsupported is not None else None
        if problem:
            raise DockerfileError(stage.path, step.line, problem)
        env = args.expansion_env(state.config.env)
        try:
            expanded, _ = step.expand(env)
        except SubstitutionError as err:
            raise DockerfileError(stage.path, step.line, str(err)) from None
        if isinstance(expanded, RunStep):
            return self.run(state, expanded, args, stage)
        if isinstance(expanded, TransferStep):
            return self.transfer(state, expanded, stage)
        config = state.config.copy()
        try:
            created_by = config.apply(expanded, args)
        except ValueError as err:
            raise DockerfileError(stage.path, step.line, str(err)) from None
        if isinstance(expanded, WorkdirStep):
            return self.workdir(state, config, created_by, step, stage)
        return self.commit_config(state, config, created_by)

    def cached(self, key: str) -> State | None:
        """The image the cache names for `key`, if it is still whole in the store."""
        if self.options.no_cache:
            return None
        path = self.layout.root / CACHE_DIR / key
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        image_id = str(entry.get("id", ""))
        if not self.layout.image_file(image_id).is_file():
            return None
        state = self.load_state(image_id, bool(entry.get("cmd_set")))
        if not all(self.layout.blob(d).is_file() or self.layout.layer_dir(d).is_dir()
                   for d in state.layers):
            return None
        return state

    def use_cache(self, key: str) -> State | None:
        state = self.cached(key)
        if state is not None:
            self.say(" ---> Using cache")
        return state

    def commit_config(self, state: State, config: StageConfig, created_by: str) -> State:
        """A step that changes only the config: a new image with the same layers."""
        key = cache_key(state, created_by)
        hit = self.use_cache(key)
        if hit is not None:
            return hit
        if self.host.dry_run:
            self.say("(would record a new image: the config changes only)")
        entry = history_entry(now_iso(), created_by, empty_layer=True)
        return self.record(state, config, entry, None, key)

    def record(self, state: State, config: StageConfig, entry: dict[str, Any],
               layer: tuple[str, int, int] | None, key: str) -> State:
        """The image of a step: the parent's layers (and `layer`: diff id, file bytes, tar
        bytes), `config`, the parent's history and `entry`; its cache entry."""
        layers = [*state.layers, *([layer[0]] if layer else [])]
        sizes = [*state.sizes, *([layer[1]] if layer else [])]
        history = [*(state.document.get("history") or []), entry]
        document = {k: v for k, v in state.document.items()
                    if k not in ("config", "container_config", "rootfs", "history", "created",
                                 "author", "comment")}
        from shellctr.engine.image import ARCHITECTURES, record_image  # not for a cache hit

        document.setdefault("architecture",
                            ARCHITECTURES.get(os.uname().machine, os.uname().machine))
        document.setdefault("os", "linux")
        if config.author:
            document["author"] = config.author
        document.update({"created": entry["created"], "config": config.to_config(),
                         "rootfs": {"type": "layers",
                                    "diff_ids": [f"sha256:{d}" for d in layers]},
                         "history": history})
        new = State("", document, config, layers, sizes, config.cmd_set)
        if not layers:
            return new  # scratch without a layer yet: nothing to record
        blob = json.dumps(document, separators=(",", ":")).encode()
        if self.host.dry_run:
            new.run_image = "" if layer else state.id or state.run_image
            return new
        cache = self.layout.root / CACHE_DIR
        with self.store.lock(), Rollback(self.host) as rollback:
            image = record_image(self.host, self.store, blob, [], sizes, rollback,
                                 tar_hints={layer[0]: layer[2]} if layer else None)
            self.host.ensure_dir(cache, mode=0o700)
            entry_text = json.dumps({"id": image.id, "parent": state.id,
                                     "cmd_set": config.cmd_set})
            self.host.write_file(cache / key, entry_text + "\n", mode=0o600, rollback=rollback)
        new.id = image.id
        return new

    # -- RUN ------------------------------------------------------------------------------
    def run(self, state: State, step: RunStep, args: BuildArgs, stage: Stage) -> State:
        config = state.config
        command = step.resolve(config.current_shell)
        if not command:
            raise DockerfileError(stage.path, step.line, "RUN needs a command")
        created_by = " ".join(args.run_history(command, config.env))
        script = step.script
        if script is not None:  # the history (and the cache) see the script itself
            created_by += "\n" + script.data
        key = cache_key(state, created_by)
        hit = self.use_cache(key)
        if hit is not None:
            return hit
        if not (state.id or state.run_image):
            raise DockerfileError(stage.path, step.line, "RUN in a stage without files: "
                                  "FROM scratch has no /bin/sh to run it",
                                  "COPY a shell in first, or build FROM an image")
        env = [*args.environment(config.env)]
        if not any(item.startswith("PATH=") for item in config.env):
            env.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        with self.script_file(script) as volumes:
            cid, code = self.run_container(state, command, env, volumes)
        if self.host.dry_run:
            self.planned = True
            return state
        try:
            if code != 0:
                if self.options.force_rm:
                    self.remove_container(cid)
                raise BuildError(f"The command '{' '.join(command)}' returned a non-zero "
                                 f"code: {code}", "the step's output is above"
                                 + ("" if self.options.force_rm else
                                    f"; its container {cid[:SHORT]} is kept for inspection"))
            entry = history_entry(now_iso(), created_by)
            new = self.commit_run(state, cid, entry, key)
        except BaseException:
            if code == 0 and (self.options.rm or self.options.force_rm):
                self.remove_container(cid)
            raise
        if self.options.rm or self.options.force_rm:
            self.remove_container(cid)
            self.say(f"Removing intermediate container {cid[:SHORT]}")
        return new

    @contextmanager
    def script_file(self, script: Heredoc | None) -> Iterator[list[str]]:
        """`RUN <<EOF` with a `#!` line runs the body as a file, /dev/pipes/NAME, as
        BuildKit: a private file bound there read-only (in /dev, so never in the layer)."""
        if script is None:
            yield []
            return
        self.store.prepare()
        path = self.layout.tmp_dir / f"build-script-{os.getpid()}"
        with Rollback(self.host) as rollback:
            self.host.remove_file(path)
            self.host.write_file(path, script.data, mode=0o755, rollback=rollback)
            try:
                yield [f"{os.fspath(path)}:/dev/pipes/{script.name}:ro"]
            finally:
                self.host.remove_file(path)

    def run_container(self, state: State, command: list[str], env: list[str],
                      volumes: list[str]) -> tuple[str, int]:
        """Create and start the step's container, attached; its id and exit code. A signal
        that ends the build (SIGTERM, SIGINT) kills and removes the container first."""
        from shellctr.engine.create import create
        from shellctr.engine.start import start
        from shellctr.parts.request import RunRequest

        config = state.config
        request = RunRequest(image=(state.id or state.run_image)[:SHORT], command=command,
                             entrypoint="", env=env, workdir=config.working_dir or None,
                             user=config.user or None,
                             network=self.options.network or None, volume=volumes)
        container = create(self.host, self.store, request)
        cid = container["id"]
        self.say(f" ---> Running in {cid[:SHORT]}")
        try:
            with self.quiet_stdout():
                code = start(self.host, self.store, cid, attach=True, forward=False)
        except BaseException:
            if not self.host.dry_run:
                with ignoring_signals():
                    self.remove_container(cid, force=True)
            raise
        return cid, code

    @contextmanager
    def quiet_stdout(self) -> Iterator[None]:
        """-q: the step's output goes nowhere (the container writes to our fd 1)."""
        if not self.options.quiet or self.host.dry_run:
            yield
            return
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)

    def remove_container(self, cid: str, force: bool = False) -> None:
        from shellctr.engine.containers import remove

        # volumes: the anonymous ones a VOLUME of the image gave the step (as Docker, what a
        # RUN writes under a VOLUME path is not in the layer)
        remove(self.host, self.store, cid, force=force, volumes=True)

    def commit_run(self, state: State, cid: str, entry: dict[str, Any], key: str) -> State:
        """The container's changes as one layer on the parent's, and the step's image."""
        from shellctr.core.state import ContainerConfig
        from shellctr.engine.commit import runtime_skips, write_layer

        config = ContainerConfig.model_validate(self.store.container_config(cid))
        upper = self.layout.container_upper(cid)
        self.store.prepare()
        with Rollback(self.host) as rollback:
            self.host.step(f"write the changes of container {cid[:SHORT]} as a new layer tar")
            scan, partial = write_layer(self.host, self.layout, upper,
                                        runtime_skips(self.layout, config), rollback)
            self.publish_tar(partial, scan.diff_id, rollback)
            return self.record(state, state.config, entry,
                               (scan.diff_id, scan.size, scan.tar_size), key)

    def publish_tar(self, partial: Path, diff_id: str, rollback: Rollback) -> None:
        with self.store.lock():
            sweep_partials(self.host, self.layout)
            blob = self.layout.blob(diff_id)
            if self.host.exists(blob):
                self.host.remove_file(partial)
            else:
                self.host.rename(partial, blob, rollback=rollback)

    # -- COPY and ADD ---------------------------------------------------------------------
    def image_files(self, state: State, walk: bool = True) -> Tree:
        """The merged files of a state's layers (extracted first if need be): all of them
        (`walk`: a COPY --from's sources), or looked up path by path (what a COPY
        writes into needs only its destination's paths and /etc/passwd)."""
        if not state.layers:
            return Tree({})
        self.store.prepare()
        with Rollback(self.host) as scratch:
            extracted = prepare_layer_dirs(self.host, self.layout, state.layers, scratch)
            if extracted:
                with self.store.lock(), Rollback(self.host) as rollback:
                    for layer in extracted:
                        publish_layer(self.host, self.layout, layer, rollback)
        if not walk:
            return ImageView(self.layout, state.layers)
        return image_tree(self.layout, state.layers)

    def source_tree(self, step: TransferStep, stage: Stage) -> Tree:
        if isinstance(step, CopyStep) and step.from_stage:
            index = self.dockerfile.stage_ref(step.from_stage, stage.index, allow_index=True)
            if index is not None:
                return self.image_files(self.states[index])
            try:
                record = find_image_record(self.store.image_records(), step.from_stage)
            except NotFound:
                raise BuildError(f"COPY --from={step.from_stage}: no such stage or image "
                                 "here", "name an earlier stage, or load the image") from None
            return self.image_files(self.load_state(record["id"]))
        if self.options.context is None:
            raise BuildError(f"{step.keyword} needs a build context: the Dockerfile came "
                             "alone on stdin", "give a context directory, or a tar on stdin")
        return self.options.context

    def transfer(self, state: State, step: TransferStep, stage: Stage) -> State:
        keyword = step.keyword
        source = self.source_tree(step, stage)
        image = self.image_files(state, walk=False)
        owner = None
        try:
            if step.chown:
                passwd = _text(image, "etc/passwd")
                group = _text(image, "etc/group")
                owner = copyrules.resolve_chown(step.chown, passwd, group)
            mode = copyrules.parse_chmod(step.chmod) if step.chmod else None
            workdir = state.config.working_dir or "/"
            ops: list[copyrules.CopyOp] = []
            if step.sources:
                sources = copyrules.match_sources(step.sources, source, keyword,
                                                  allow_urls=isinstance(step, AddStep))
                if any(s.url for s in sources):
                    raise copyrules.CopyError("ADD failed: remote URLs are not supported yet "
                                              "(they need the registry's HTTP client)",
                                              "download the file into the context and COPY it")

                def is_archive(found: copyrules.Source) -> bool:
                    if not isinstance(step, AddStep) or step.unpack is False:
                        return False
                    if found.kind != "file" or source is not self.options.context:
                        return False
                    with source.open(found.path) as head:
                        return copyrules.is_archive(head.read(65536))

                ops = copyrules.plan(sources, step.dest, workdir, lambda p: _is_dir(image, p),
                                     keyword, is_archive)
            inline = []
            for file in step.inline:
                dest = copyrules.normalize_dest(workdir, step.dest)
                if dest.endswith("/") or _is_dir(image, dest):
                    dest = dest.rstrip("/") + "/" + file.name
                inline.append((dest, file.data.encode()))
        except copyrules.CopyError as err:
            raise DockerfileError(stage.path, step.line, err.message, err.hint) from None
        transfer = Transfer(ops, source, inline, owner, mode, keyword)
        digest = transfer_digest(transfer)
        created_by = copy_created_by(keyword, state.config.current_shell, digest, step.dest,
                                     step.chown)
        key = cache_key(state, created_by)
        hit = self.use_cache(key)
        if hit is not None:
            return hit
        return self.layer_step(state, state.config, created_by, key, transfer_argv(source, step),
                               lambda out: write_transfer(out, transfer, image), step, stage)

    def layer_step(self, state: State, config: StageConfig, created_by: str, key: str,
                   argv: list[str], write: Callable[[IO[bytes]], None], step: Step,
                   stage: Stage) -> State:
        """A step whose layer tar Python writes (`write`, shown as `argv`): the tar
        checked as any layer, kept, and the step's image recorded."""
        self.store.prepare()
        with Rollback(self.host) as rollback:
            partial = self.layout.blobs_dir / f".build-{os.getpid()}.partial"
            self.host.remove_file(partial)  # left by a crash

            try:
                self.host.produce(argv, partial, write, rollback)
            except copyrules.CopyError as err:
                raise DockerfileError(stage.path, step.line, err.message, err.hint) from None
            if self.host.dry_run:
                self.planned = True
                return state
            try:
                scan = scan_layer(partial, allow_empty=True)
            except ShellctrError as err:
                raise DockerfileError(stage.path, step.line,
                                      f"{step.keyword} failed: {err.message}", err.hint) from None
            self.publish_tar(partial, scan.diff_id, rollback)
            entry = history_entry(now_iso(), created_by)
            return self.record(state, config, entry, (scan.diff_id, scan.size, scan.tar_size),
                               key)

    # -- WORKDIR --------------------------------------------------------------------------
    def workdir(self, state: State, config: StageConfig, created_by: str, step: Step,
                stage: Stage) -> State:
        """WORKDIR makes its directory when the image lacks it, as Docker's classic builder
        does (a layer with the new directories, root's, 0755); else only the config."""
        path = config.working_dir.strip("/")
        tree = self.image_files(state, walk=False)
        node = tree.node(path)
        if not path or (node is not None and node.kind == "dir"):
            return self.commit_config(state, config, created_by)
        if node is not None:
            raise DockerfileError(stage.path, step.line, f"WORKDIR {config.working_dir}: "
                                  "the image has a file there, not a directory")
        key = cache_key(state, created_by)
        hit = self.use_cache(key)
        if hit is not None:
            return hit
        return self.layer_step(state, config, created_by, key,
                               ["mkdir", "--parents", "--mode=755", config.working_dir],
                               lambda out: write_dirs(out, path, tree), step, stage)


def transfer_argv(tree: Tree, step: TransferStep) -> list[str]:
    """The GNU tar command that writes (about) the layer a COPY/ADD writes in Python: the
    sources from the context, owned by root (or --chown), under the destination."""
    node = tree.node("")
    owner = [f"--owner={step.chown.partition(':')[0]}",
             f"--group={step.chown.partition(':')[2] or step.chown}"] if step.chown else \
        ["--owner=0", "--group=0"]
    return ["tar", "--create", "--numeric-owner", *owner,
            f"--directory={os.fspath(node.path) if node is not None else '.'}",
            f"--transform=s,^,{step.dest.strip('/')}/,", "--", *step.sources]


def _text(tree: Tree, path: str) -> str | None:
    node = tree.node(path)
    if node is None or node.kind != "file":
        return None
    with tree.open(path) as data:
        return data.read().decode("utf-8", "replace")


def _is_dir(tree: Tree, path: str) -> bool:
    node = tree.node(path.strip("/"))
    return node is not None and node.kind == "dir"


@contextmanager
def ignoring_signals() -> Iterator[None]:
    """While a killed step's container is removed: a second Ctrl-C must not leave it."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def build(host: Host, store: Store, options: BuildOptions, out: TextIO | None = None) -> str:
    """Build; the image id ("" under --dry-run)."""
    return Builder(host, store, options, out).build()


def prune_cache(host: Host, store: Store) -> list[str]:
    """`builder prune`: every cache entry goes, and the images they name that have no tag
    and that no container uses (with the layers only they held). Docker's report lines."""
    from shellctr.core.state import Image
    from shellctr.engine.image import remove_unused_layers

    layout = store.layout
    cache = layout.root / CACHE_DIR
    report: list[str] = []
    with store.lock():
        names = sorted(os.listdir(cache)) if cache.is_dir() else []
        ids: list[str] = []
        for name in names:
            try:
                ids.append(str(json.loads((cache / name).read_text()).get("id", "")))
            except (OSError, ValueError):
                continue
        used = {store.container_config(cid)["image_id"] for cid in store.container_ids()}
        gone: set[str] = set()
        for image_id in dict.fromkeys(ids):
            path = layout.image_file(image_id)
            if not image_id or not path.is_file() or image_id in used:
                continue
            if Image.model_validate_json(path.read_text()).repo_tags:
                continue
            host.step(f"remove build cache image {image_id[:SHORT]}")
            host.remove_file(path)
            host.remove_file(layout.blob(image_id))
            gone.add(image_id)
            report.append(f"deleted: sha256:{image_id}")
        for name in names:
            host.remove_file(cache / name)
        if gone:
            remove_unused_layers(host, store, gone=gone)
    return report


# -- the context -------------------------------------------------------------------------------
@contextmanager
def prepared_context(host: Host, store: Store, context: str, dockerfile: str | None,
                     stdin: IO[bytes]) -> Iterator[tuple[bytes, str, Tree | None]]:
    """The Dockerfile's bytes, its name and the context's tree, for `build CONTEXT` (a
    directory) or `build -` (a tar on stdin, extracted into a private directory that goes
    when the build ends, or a Dockerfile alone). `dockerfile`: `-f` (`-`: stdin)."""
    if context != "-":
        directory = Path(context)
        if not directory.is_dir():
            raise BuildError(f"unable to prepare context: path {context!r} not found",
                             "give the build context's directory (or - for a tar on stdin)")
        yield read_dir(directory.absolute(), dockerfile, stdin, inside=False)
        return
    data = stdin.read()
    if not copyrules.is_archive(data[:65536]):
        if dockerfile not in (None, "-", "Dockerfile"):
            raise BuildError("-f cannot name a file when the Dockerfile comes alone on stdin",
                             "drop -f")
        yield data, "Dockerfile", None
        return
    store.prepare()
    with host.scratch_file(["cat"], store.layout.tmp_dir / f"build-context-{os.getpid()}.tar",
                           lambda out: out.write(data)) as archive:
        yield from context_from_tar(host, store, archive, data, dockerfile)


def context_from_tar(host: Host, store: Store, archive: Path, data: bytes,
                     dockerfile: str | None) -> Iterator[tuple[bytes, str, Tree | None]]:
    """A context tar (spooled at `archive`), checked member by member as a layer is (no
    absolute names, no `..`, nothing through a symlink, no hard link out, no device),
    then extracted by tar into a private directory that goes when the build ends."""
    try:
        scan_layer(host.facts.readable(archive), allow_empty=True)
    except ShellctrError as err:
        raise BuildError(f"the context tar on stdin is refused: {err.message}",
                         "send a tar of the context's files, with relative names") from None
    directory = store.layout.tmp_dir / f"build-context-{os.getpid()}"
    host.remove_tree(directory)  # left by a crashed build that had our pid
    with Rollback(host) as scratch:
        host.mkdir(directory, mode=0o700, rollback=scratch)
        try:
            host.run(["tar", "--extract", f"--file={os.fspath(archive)}",
                      f"--directory={os.fspath(directory)}",
                      "--preserve-permissions",  # COPY keeps the modes the tar gives
                      "--no-same-owner", "--no-overwrite-dir"])
            if host.dry_run:  # nothing is extracted: the Dockerfile from the tar itself
                yield dockerfile_in_tar(data, dockerfile), dockerfile or "Dockerfile", None
            else:
                yield read_dir(directory, dockerfile, io.BytesIO(), inside=True)
        finally:
            host.remove_tree(directory)


def dockerfile_in_tar(data: bytes, dockerfile: str | None) -> bytes:
    import tarfile

    wanted = copyrules.context_path(dockerfile or "Dockerfile")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if member.isreg() and member.name.removeprefix("./") == wanted:
                found = tar.extractfile(member)
                if found is not None:
                    return found.read()
    raise BuildError(f"the context tar has no {wanted}", "add it, or name it with -f")


def read_dir(directory: Path, dockerfile: str | None, stdin: IO[bytes],
             inside: bool) -> tuple[bytes, str, Tree]:
    """The Dockerfile (`-f`: a path, relative to the context for a tar's; `-`: stdin) and
    the context directory's tree."""
    from shellctr.engine.build_context import read_context
    from shellctr.parts.dockerignore import DOCKERIGNORE

    name = "Dockerfile"
    try:
        if dockerfile == "-":
            data = stdin.read()
        else:
            if dockerfile is None:
                path = directory / "Dockerfile"
                if not path.is_file() and (directory / "dockerfile").is_file():
                    path = directory / "dockerfile"
            elif inside:  # -f names a file in the tar
                path = directory / copyrules.context_path(dockerfile)
            else:
                path = Path(dockerfile)
            try:
                data = path.read_bytes()
            except OSError:
                raise BuildError(f"unable to prepare context: cannot read the Dockerfile "
                                 f"{os.fspath(path)!r}", "give its path with -f") from None
            relative = os.path.relpath(path.absolute(), directory)
            name = relative if not relative.startswith("..") else os.fspath(path)
        ignore = directory / DOCKERIGNORE
        text = ignore.read_text(errors="replace") if ignore.is_file() else None
        return data, name, read_context(directory, name, text)
    except OSError as err:
        raise BuildError(f"cannot read the build context: {err.strerror}: "
                         f"{err.filename}") from None
