"""A build's RUN step: a container of the current image, confined as `run` makes one
(engine/create.py, engine/start.py: create, then start attached, its output streamed),
with the stage's ENV, USER, WORKDIR, SHELL and build args; its changes written as one
layer by commit's packer (engine/commit.write_layer). A failed step's container is kept
for inspection (unless --force-rm); SIGTERM or Ctrl-C kills and removes it first."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.layout import Layout
from shellctr.core.store import Store, now_iso
from shellctr.engine.build_context import BuildError, BuildOptions
from shellctr.engine.build_state import State, cache_key, history_entry
from shellctr.engine.layers import sweep_partials
from shellctr.parts.dockerfile import DockerfileError, Heredoc, RunStep, Stage
from shellctr.parts.dockerfile_build import BuildArgs
from shellctr.parts.dockerfile_config import DEFAULT_PATH, StageConfig

TYPE_CHECKING = False


class RunSteps:
    """The RUN half of the Builder (engine/build.py), which provides what is declared here."""

    host: Host
    store: Store
    layout: Layout
    options: BuildOptions
    planned: bool
    out: TextIO  # where the build's lines go (the API's stream, or our stdout)

    if TYPE_CHECKING:
        def say(self, text: str) -> None: ...
        def use_cache(self, key: str) -> State | None: ...
        def record(self, state: State, config: StageConfig, entry: dict[str, Any],
                   layer: tuple[str, int, int] | None, key: str) -> State: ...

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
            env.append(f"PATH={DEFAULT_PATH}")
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
            if self.out is sys.stdout:
                with self.quiet_stdout():
                    code = start(self.host, self.store, cid, attach=True, forward=False)
            else:
                code = self.start_relayed(cid)
        except BaseException:
            if not self.host.dry_run:
                with ignoring_signals():
                    self.remove_container(cid, force=True)
            raise
        return cid, code

    def start_relayed(self, cid: str) -> int:
        """Start the step's container attached, its output only logged (the container
        writes to no fd of ours), and copy the log to `out` as it grows: the build's
        lines go to a writer of their own (the API's stream), not to our stdout, which
        the service's other requests share."""
        import threading

        from shellctr.engine import logs
        from shellctr.engine.start import start

        ended = threading.Event()

        def follow() -> None:
            stream, offset, writing = None, 0, not self.options.quiet
            try:
                while True:
                    last = ended.is_set()  # then one more read: the log to its end
                    if stream is None:
                        try:
                            stream = open(self.layout.container_log(cid), "rb")  # noqa: SIM115
                        except FileNotFoundError:
                            if last:
                                return
                            ended.wait(logs.POLL_SECONDS)
                            continue
                    records, offset = logs.read_from(stream, offset)
                    if writing and records:
                        try:
                            self.out.write("".join(record.text for record in records))
                            self.out.flush()
                        except OSError:  # the reader went: the build goes on unheard
                            writing = False
                    if last:
                        return
                    ended.wait(logs.POLL_SECONDS)
            finally:
                if stream is not None:
                    stream.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            return start(self.host, self.store, cid, attach=True, forward=False,
                         streams=["stdin"])
        finally:
            ended.set()
            follower.join()

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
