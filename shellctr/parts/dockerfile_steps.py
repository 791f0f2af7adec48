"""The typed steps of a Dockerfile stage (what shellctr.parts.dockerfile.parse produces):
one class per instruction, keeping the words as written; `expand(env)` substitutes the
variables of the instructions Docker expands, at build time."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from shellctr.parts.dockerfile_line import Heredoc
from shellctr.parts.dockerfile_syntax import parse_heredoc
from shellctr.parts.dockerfile_words import Lexer, SubstitutionError

DEFAULT_SHELL = ("/bin/sh", "-c")


class _Expander:
    """Expands words against one environment and remembers which variables were read."""

    def __init__(self, env: Mapping[str, str], escape: str) -> None:
        self.env = env
        self.lexer = Lexer(escape)
        self.used: set[str] = set()

    def word(self, word: str) -> str:
        result = self.lexer.process_word(word, self.env)
        self.used |= result.used | result.unset
        return result.text

    def words(self, word: str) -> list[str]:
        result = self.lexer.process_word(word, self.env)
        self.used |= result.used | result.unset
        return list(result.words)

    def raw(self, data: str) -> str:
        """A heredoc body: `$V` and `\\` escapes, quotes left alone (as BuildKit)."""
        result = Lexer("\\", skip_quotes=True).process_word(data, self.env)
        self.used |= result.used | result.unset
        return result.text


@dataclass(frozen=True, kw_only=True)
class Step:
    """One instruction of a stage. `text` is the instruction as written (continuations
    joined, comments dropped; Docker's `Step N/M : <text>`), `line`..`end_line` where it is
    (heredoc bodies included), `flags` the `--flags` as written, `escape` the file's escape
    character (for expansion)."""

    keyword: ClassVar[str] = ""
    expands: ClassVar[bool] = False  # whether Docker substitutes variables in it
    text: str
    line: int
    end_line: int
    escape: str = "\\"
    flags: tuple[str, ...] = ()

    def expand(self, env: Mapping[str, str]) -> tuple[Self, frozenset[str]]:
        """This step with its variables substituted from `env` (the config's Env, then the
        build args in scope), and the names it read. SubstitutionError if malformed."""
        expander = _Expander(env, self.escape)
        return self._expand(expander), frozenset(expander.used)

    def _expand(self, expander: _Expander) -> Self:
        return self


@dataclass(frozen=True)
class KeyValue:
    """`key=value` of ENV/LABEL (`legacy`: written `ENV key value`)."""

    key: str
    value: str
    legacy: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class ArgDecl:
    """`ARG name` (default None) or `ARG name=default`."""

    key: str
    default: str | None = None

    def __str__(self) -> str:
        return self.key if self.default is None else f"{self.key}={self.default}"


@dataclass(frozen=True)
class InlineFile:
    """A COPY/ADD heredoc source: a file `name` with `data`; `expand`: variables in it are
    substituted (the terminator was not quoted)."""

    name: str
    data: str
    expand: bool = True


@dataclass(frozen=True)
class Healthcheck:
    """The image config's Healthcheck (durations in nanoseconds, 0 = Docker's default)."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def config(self) -> dict[str, object]:
        """As the image config writes it (Go's `json:",omitempty"` fields)."""
        out: dict[str, object] = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period),
                           ("StartInterval", self.start_interval), ("Retries", self.retries)):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True, kw_only=True)
class CommandStep(Step):
    """RUN, CMD, ENTRYPOINT: `command` is the JSON array (exec form) or the one string of the
    shell form (`shell_form`), run by the stage's SHELL."""

    command: tuple[str, ...]
    shell_form: bool
    empty_as_none: ClassVar[bool] = False

    def resolve(self, shell: Sequence[str] = DEFAULT_SHELL) -> list[str] | None:
        """The argv Docker stores (`["/bin/sh", "-c", "make"]` for the shell form)."""
        if self.empty_as_none and not self.command:
            return None
        if self.shell_form:
            return [*shell, *self.command]
        return list(self.command)


@dataclass(frozen=True, kw_only=True)
class RunStep(CommandStep):
    keyword: ClassVar[str] = "RUN"
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    devices: tuple[str, ...] = ()

    @property
    def script(self) -> Heredoc | None:
        """`RUN <<EOF` whose body starts with `#!`: BuildKit runs the body as an executable
        file at /dev/pipes/<name> (the builder must provide it)."""
        alone = len(self.heredocs) == 1 and self.command and parse_heredoc(self.command[0])
        if alone and self.heredocs[0].data.startswith("#!"):
            return self.heredocs[0]
        return None

    def resolve(self, shell: Sequence[str] = DEFAULT_SHELL) -> list[str]:
        """The command's argv, heredocs included as BuildKit does: `RUN <<EOF` alone runs the
        body with the shell (or as a script with a `#!`), `RUN cmd <<EOF` hands the shell the
        line followed by the bodies."""
        args = list(self.command)
        if self.heredocs:
            first = parse_heredoc(args[0]) if args else None
            if first is not None:
                script = self.script
                if script is not None:
                    return ["/dev/pipes/" + script.name]
                args = [self.heredocs[0].data]
            else:
                pieces = [args[0] if args else ""]
                for heredoc in self.heredocs:
                    pieces.append("\n" + heredoc.content + heredoc.name)
                args = ["".join(pieces)]
        if self.shell_form:
            return [*shell, *args]
        return args

    def unsupported(self) -> str | None:
        """Why the builder cannot run this step as asked, or None."""
        if self.mounts:
            return "RUN --mount is not supported by shellctr build (it needs BuildKit)"
        if self.security != "sandbox":
            return "RUN --security=insecure is not supported by shellctr build"
        if self.devices:
            return "RUN --device is not supported by shellctr build"
        return None


@dataclass(frozen=True, kw_only=True)
class CmdStep(CommandStep):
    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True, kw_only=True)
class EntrypointStep(CommandStep):
    keyword: ClassVar[str] = "ENTRYPOINT"
    empty_as_none: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class ShellStep(Step):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PairsStep(Step):
    """ENV and LABEL: `key=value` pairs, in order."""

    expands: ClassVar[bool] = True
    pairs: tuple[KeyValue, ...]

    def _expand(self, expander: _Expander) -> Self:
        pairs = tuple(KeyValue(expander.word(p.key), expander.word(p.value), p.legacy)
                      for p in self.pairs)
        return dataclasses.replace(self, pairs=pairs)


@dataclass(frozen=True, kw_only=True)
class EnvStep(PairsStep):
    keyword: ClassVar[str] = "ENV"


@dataclass(frozen=True, kw_only=True)
class LabelStep(PairsStep):
    keyword: ClassVar[str] = "LABEL"


@dataclass(frozen=True, kw_only=True)
class MaintainerStep(Step):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class ArgStep(Step):
    keyword: ClassVar[str] = "ARG"
    expands: ClassVar[bool] = True
    args: tuple[ArgDecl, ...]

    def _expand(self, expander: _Expander) -> Self:
        args = tuple(ArgDecl(expander.word(a.key),
                             None if a.default is None else expander.word(a.default))
                     for a in self.args)
        return dataclasses.replace(self, args=args)


@dataclass(frozen=True, kw_only=True)
class TransferStep(Step):
    """COPY and ADD: `sources` (paths, wildcards; URLs for ADD), `inline` (heredoc files),
    `dest`, and the flags they share."""

    expands: ClassVar[bool] = True
    sources: tuple[str, ...]
    dest: str
    inline: tuple[InlineFile, ...] = ()
    chown: str = ""
    chmod: str = ""
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()

    def _expand(self, expander: _Expander) -> Self:
        inline = tuple(InlineFile(f.name, expander.raw(f.data) if f.expand else f.data,
                                  f.expand) for f in self.inline)
        return dataclasses.replace(
            self, sources=tuple(expander.word(s) for s in self.sources),
            dest=expander.word(self.dest), inline=inline, chown=expander.word(self.chown),
            chmod=expander.word(self.chmod))

    def unsupported(self) -> str | None:
        if self.parents:
            return f"{self.keyword} --parents is not supported by shellctr build"
        if self.excludes:
            return f"{self.keyword} --exclude is not supported by shellctr build"
        return None


@dataclass(frozen=True, kw_only=True)
class CopyStep(TransferStep):
    """COPY; `from_stage` is `--from` (a stage name or index, or an image)."""

    keyword: ClassVar[str] = "COPY"
    from_stage: str = ""


@dataclass(frozen=True, kw_only=True)
class AddStep(TransferStep):
    """ADD: as COPY, plus URLs and local tar archives (extracted), `--checksum` for URLs."""

    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None

    def _expand(self, expander: _Expander) -> Self:
        step = super()._expand(expander)
        return dataclasses.replace(step, checksum=expander.word(self.checksum))

    def unsupported(self) -> str | None:
        if self.keep_git_dir is not None:
            return "ADD --keep-git-dir is not supported: shellctr build cannot ADD git sources"
        return super().unsupported()


@dataclass(frozen=True, kw_only=True)
class WorkdirStep(Step):
    keyword: ClassVar[str] = "WORKDIR"
    expands: ClassVar[bool] = True
    path: str

    def _expand(self, expander: _Expander) -> Self:
        return dataclasses.replace(self, path=expander.word(self.path))


@dataclass(frozen=True, kw_only=True)
class UserStep(Step):
    keyword: ClassVar[str] = "USER"
    expands: ClassVar[bool] = True
    user: str

    def _expand(self, expander: _Expander) -> Self:
        return dataclasses.replace(self, user=expander.word(self.user))


@dataclass(frozen=True, kw_only=True)
class StopSignalStep(Step):
    keyword: ClassVar[str] = "STOPSIGNAL"
    expands: ClassVar[bool] = True
    signal: str

    def _expand(self, expander: _Expander) -> Self:
        return dataclasses.replace(self, signal=expander.word(self.signal))


@dataclass(frozen=True, kw_only=True)
class VolumeStep(Step):
    keyword: ClassVar[str] = "VOLUME"
    expands: ClassVar[bool] = True
    paths: tuple[str, ...]

    def _expand(self, expander: _Expander) -> Self:
        paths = tuple(expander.word(p) for p in self.paths)
        if any(not path for path in paths):
            raise SubstitutionError("VOLUME specified can not be an empty string")
        return dataclasses.replace(self, paths=paths)


@dataclass(frozen=True, kw_only=True)
class ExposeStep(Step):
    """EXPOSE: the only instruction where one word may expand to several (`$PORTS`)."""

    keyword: ClassVar[str] = "EXPOSE"
    expands: ClassVar[bool] = True
    ports: tuple[str, ...]

    def _expand(self, expander: _Expander) -> Self:
        ports = tuple(port for word in self.ports for port in expander.words(word))
        return dataclasses.replace(self, ports=ports)


@dataclass(frozen=True, kw_only=True)
class HealthcheckStep(Step):
    keyword: ClassVar[str] = "HEALTHCHECK"
    health: Healthcheck


@dataclass(frozen=True, kw_only=True)
class OnbuildStep(Step):
    """ONBUILD: `expression` is what the image keeps (and a later FROM runs); `trigger` is
    the same instruction parsed now, to refuse a bad one early."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Step
