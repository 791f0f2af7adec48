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

import json
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, Any, BinaryIO, TextIO

from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.store import Store, now_iso
from shellctr.engine.build_context import (
    URL_PREFIX,
    BuildError,
    BuildOptions,
    ImageView,
    Node,
    Tree,
    image_tree,
)
from shellctr.engine.build_copy import Transfer, transfer_digest, write_dirs, write_transfer
from shellctr.engine.build_run import RunSteps
from shellctr.engine.build_state import State, cache_key, history_entry
from shellctr.engine.layers import Kept, kept_blobs, scan_layer
from shellctr.parts import copyrules
from shellctr.parts.dockerfile import (
    SCRATCH,
    AddStep,
    CopyStep,
    Dockerfile,
    DockerfileError,
    KeyValue,
    LabelStep,
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

HOST_PLATFORM = "linux/" + {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                                       os.uname().machine)


class Builder(RunSteps):
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
        self.total = df.step_count(needed) + (1 if self.options.labels else 0)
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
        base, platform, _ = stage.expand_base(global_args)
        if platform and platform.removesuffix("/") not in ("linux", HOST_PLATFORM):
            raise DockerfileError(stage.path, stage.line, f"FROM --platform={platform}: "
                                  f"shellctr builds {HOST_PLATFORM} images only",
                                  "drop --platform, or build on a host of that platform")
        state, triggers = self.base_state(stage, base)
        self.say(f" ---> {state.id[:SHORT]}")
        args = self.args.for_stage()
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
        if is_target and self.options.labels and not self.planned:
            state = self.labels(state)
        self.args.merge_referenced(args)
        return state

    def labels(self, state: State) -> State:
        """`--label`s, as the classic builder adds them: one more LABEL step at the end of
        the target stage (not expanded: the values are as given)."""
        pairs = tuple(KeyValue(key, value) for key, value in self.options.labels.items())
        text = "LABEL " + " ".join(str(pair) for pair in pairs)
        self.step_header(text)
        config = state.config.copy()
        created_by = config.apply(LabelStep(text=text, line=0, end_line=0, pairs=pairs))
        state = self.commit_config(state, config, created_by)
        if state.id or not self.host.dry_run:
            self.say(f" ---> {state.id[:SHORT]}")
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
        record = None if self.options.pull else self.local_image(base)
        if record is None:
            record = self.pull(base)
            if record is None:  # --dry-run: the pull is planned, the steps listed
                self.planned = True
                return State("", {"history": []}, begin_stage(None)[0], [], []), []
        state = self.load_state(record["id"])
        # a pulled image's layers, kept compressed, are extracted on this first use: the
        # images the build records list them, and never keep their compressed blobs
        self.extract(state.layers, kept_blobs(state.layers, list(record.get("layer_blobs") or [])))
        config, triggers = begin_stage(state.document.get("config"))
        state.config = config
        return state, triggers

    def extract(self, layers: list[str], kept: Kept | None) -> None:
        """Extract the layers not extracted yet (a committed layer's tar, a pulled
        one's compressed blob: `kept`, else those of every pulled image)."""
        if all(self.layout.layer_dir(d).is_dir() for d in layers):
            return
        from shellctr.engine.image_record import all_kept_blobs, extract_layers

        extract_layers(self.host, self.store, layers,
                       kept if kept is not None else all_kept_blobs(self.store))

    def local_image(self, ref: str) -> dict[str, Any] | None:
        try:
            return find_image_record(self.store.image_records(), ref)
        except NotFound:
            return None

    def pull(self, ref: str) -> dict[str, Any] | None:
        """FROM of an image not in the store (or any, with --pull): pulled, as the
        classic builder does, its lines in the build's output."""
        from shellctr.engine.pull import pull
        from shellctr.parts.reference import is_id

        if is_id(ref):
            raise BuildError(f"FROM {ref}: no such image here", "an image id cannot be "
                             "pulled: give the image's name")
        image = pull(self.host, self.store, ref, quiet=self.options.quiet, out=self.out)
        if self.host.dry_run:
            return None
        return find_image_record(self.store.image_records(), image["id"])

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
        path = self.layout.build_cache_dir / key
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
        cache = self.layout.build_cache_dir
        with self.store.lock(), Rollback(self.host) as rollback:
            image = record_image(self.host, self.store, blob, [], sizes, rollback,
                                 tar_hints={layer[0]: layer[2]} if layer else None)
            self.host.ensure_dir(cache, mode=0o700)
            entry_text = json.dumps({"id": image.id, "parent": state.id,
                                     "cmd_set": config.cmd_set})
            self.host.write_file(cache / key, entry_text + "\n", mode=0o600, rollback=rollback)
        new.id = image.id
        return new

    # -- COPY and ADD ---------------------------------------------------------------------
    def image_files(self, state: State, walk: bool = True) -> Tree:
        """The merged files of a state's layers (extracted first if need be): all of them
        (`walk`: a COPY --from's sources), or looked up path by path (what a COPY
        writes into needs only its destination's paths and /etc/passwd)."""
        if not state.layers:
            return Tree({})
        self.extract(state.layers, None)
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
        with ExitStack() as downloads:  # an ADD's downloads go when its layer is written
            return self.transfer_with(state, step, stage, downloads)

    def transfer_with(self, state: State, step: TransferStep, stage: Stage,
                      downloads: ExitStack) -> State:
        keyword = step.keyword
        source = self.source_tree(step, stage)
        from_context = not (isinstance(step, CopyStep) and step.from_stage)
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
                    if self.host.dry_run:
                        self.say("(would download " + " ".join(s.url for s in sources if s.url)
                                 + ", then write the layer)")
                        self.planned = True
                        return state
                    source = Tree(dict(source.nodes))  # the context and the downloads
                    sources = [self.download(found, step, source, downloads) if found.url
                               else found for found in sources]

                def is_archive(found: copyrules.Source) -> bool:
                    if not isinstance(step, AddStep) or step.unpack is False:
                        return False  # a download is never extracted, as Docker's ADD
                    if found.kind != "file" or not from_context or found.url:
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

    def download(self, found: copyrules.Source, step: TransferStep, tree: Tree,
                 downloads: ExitStack) -> copyrules.Source:
        """ADD of a URL: its body in a scratch file (shown as the `curl` that fetches it,
        checked against --checksum), entered in `tree` under a name no context path has."""
        index = sum(1 for path in tree.nodes if path.startswith(URL_PREFIX))
        self.store.prepare()
        path = self.layout.tmp_dir / f"build-download-{os.getpid()}-{index}"
        digests: list[str] = []
        argv = ["curl", "--fail", "--silent", "--show-error", "--location", "--", found.url]
        downloads.enter_context(self.host.scratch_file(
            argv, path, lambda out: digests.append(fetch(found.url, out))))
        checksum = step.checksum if isinstance(step, AddStep) else ""
        if checksum:
            algorithm, _, wanted = checksum.partition(":")
            if algorithm != "sha256" or not wanted:
                raise copyrules.CopyError(f"ADD failed: unsupported checksum {checksum!r}",
                                          "give --checksum=sha256:HEX")
            if digests[0] != wanted:
                raise copyrules.CopyError(f"ADD failed: {found.url}: digest mismatch: "
                                          f"sha256:{digests[0]} (expected {checksum})")
        key = f"{URL_PREFIX}{index}"
        tree.nodes[key] = Node(path, os.lstat(path))
        return copyrules.Source(found.name, key, "file", url=found.url)

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


def fetch(url: str, out: BinaryIO) -> str:
    """`url`'s body into `out` (redirects followed); its sha256. CopyError if it fails."""
    import hashlib
    import urllib.error
    import urllib.request

    sha = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "shellctr-build"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            while chunk := response.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise copyrules.CopyError(f"ADD failed: cannot download {url}: {reason}",
                                  "check the URL (and that the build can reach it)") from None
    return sha.hexdigest()


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


def build(host: Host, store: Store, options: BuildOptions, out: TextIO | None = None) -> str:
    """Build; the image id ("" under --dry-run)."""
    return Builder(host, store, options, out).build()


