"""Dockerfiles as Docker reads them: `parse` gives a `Dockerfile` (the ARGs before the first
FROM, then stages of typed steps, shellctr.parts.dockerfile_steps), each step keeping its
words as written, its flags, its text (for `Step N/M : ...`) and its lines. Variables are
expanded at build time against the build's state (`step.expand(env)`), since the ENV of one
step is seen by the next.

The first pass (lines, directives, continuations, heredocs) is
shellctr.parts.dockerfile_syntax, the second (each instruction's arguments and flags)
shellctr.parts.dockerfile_instructions; the word lexer is shellctr.parts.dockerfile_words;
the builder's helpers are shellctr.parts.dockerfile_build (build args, history strings) and
shellctr.parts.dockerfile_config (a stage's config through the metadata steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shellctr.core.errors import ShellctrError
from shellctr.parts.dockerfile_build import global_arg_values
from shellctr.parts.dockerfile_instructions import (
    INSTRUCTIONS,
    InstructionError,
    StageStart,
    build_step,
    parse_flags,
    stage_start,
    suggest,
)
from shellctr.parts.dockerfile_line import Heredoc, SyntaxProblem
from shellctr.parts.dockerfile_steps import (
    DEFAULT_SHELL,
    AddStep,
    ArgDecl,
    ArgStep,
    CmdStep,
    CommandStep,
    CopyStep,
    EntrypointStep,
    EnvStep,
    ExposeStep,
    Healthcheck,
    HealthcheckStep,
    InlineFile,
    KeyValue,
    LabelStep,
    MaintainerStep,
    OnbuildStep,
    PairsStep,
    RunStep,
    ShellStep,
    Step,
    StopSignalStep,
    TransferStep,
    UserStep,
    VolumeStep,
    WorkdirStep,
)
from shellctr.parts.dockerfile_syntax import parse_lines
from shellctr.parts.dockerfile_words import Lexer, SubstitutionError

__all__ = [
    "DEFAULT_SHELL", "INSTRUCTIONS", "SCRATCH", "AddStep", "ArgDecl", "ArgStep", "CmdStep",
    "CommandStep", "CopyStep", "Dockerfile", "DockerfileError", "EntrypointStep", "EnvStep",
    "ExposeStep", "Healthcheck", "HealthcheckStep", "Heredoc", "InlineFile", "KeyValue",
    "LabelStep", "MaintainerStep", "OnbuildStep", "PairsStep", "RunStep", "ShellStep", "Stage",
    "Step", "StopSignalStep", "TransferStep", "UserStep", "VolumeStep", "WorkdirStep", "parse",
    "parse_flags", "suggest",
]

SCRATCH = "scratch"


class DockerfileError(ShellctrError):
    """A Dockerfile that cannot be built: `PATH:LINE: what is wrong`. Docker's build exits 1."""

    exit_code = 1

    def __init__(self, path: str, line: int, message: str, hint: str | None = None) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}", hint)
        self.path = path
        self.line = line
        self.problem = message


def parse(data: str | bytes, path: str = "Dockerfile") -> Dockerfile:
    """A Dockerfile's text parsed, or DockerfileError naming the file and line of the first
    problem."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not text:
        raise DockerfileError(path, 0, "the Dockerfile cannot be empty")
    try:
        result = parse_lines(text)
    except SyntaxProblem as problem:
        raise DockerfileError(path, problem.line, problem.message) from None
    if not result.nodes:
        raise DockerfileError(path, 0, "file with no instructions",
                              "a Dockerfile needs at least a FROM line")
    escape = result.escape
    meta_args: list[ArgStep] = []
    starts: list[StageStart] = []
    steps: list[list[Step]] = []
    names: dict[str, int] = {}
    for node in result.nodes:
        try:
            if node.name == "from":
                start = stage_start(node, escape)
                if start.name in names:
                    raise InstructionError(f"duplicate stage name {start.name!r} (also on line "
                                   f"{names[start.name]})")
                if start.name:
                    names[start.name] = node.line
                starts.append(start)
                steps.append([])
                continue
            step = build_step(node, escape)
        except (InstructionError, SyntaxProblem) as problem:
            raise DockerfileError(path, node.line, str(problem)) from None
        if not starts:
            if isinstance(step, ArgStep):
                meta_args.append(step)
                continue
            raise DockerfileError(path, node.line,
                                  f"{node.keyword.upper()} before the first FROM: only ARG may "
                                  "come before FROM", "start the build stage with FROM IMAGE")
        steps[-1].append(step)
    stages = tuple(Stage(i, s.name, s.base, s.platform, s.text, s.line, tuple(steps[i]), escape,
                         path) for i, s in enumerate(starts))
    if not stages:
        raise DockerfileError(path, result.nodes[-1].line, "no FROM instruction",
                              "a Dockerfile needs at least a FROM line")
    return Dockerfile(path, tuple(meta_args), stages, escape, result.directives,
                      tuple(result.warnings))


@dataclass(frozen=True)
class Stage:
    """`FROM [--platform=P] base [AS name]` and its steps. `name` is lower-case ("" if none);
    `base` and `platform` are as written (expanded with the global ARGs at build time)."""

    index: int
    name: str
    base: str
    platform: str
    text: str
    line: int
    steps: tuple[Step, ...]
    escape: str = "\\"
    path: str = "Dockerfile"

    def expand_base(self, args: Mapping[str, str]) -> tuple[str, str, frozenset[str]]:
        """The base (image or earlier stage) and the platform with the global ARGs
        substituted, and the ARG names they read."""
        lexer = Lexer(self.escape)
        try:
            base = lexer.process_word(self.base, args)
            platform = lexer.process_word(self.platform, args)
        except SubstitutionError as error:
            raise DockerfileError(self.path, self.line, str(error)) from None
        if not base.text:
            raise DockerfileError(self.path, self.line,
                                  f"base name ({self.base}) should not be blank",
                                  "give the ARG it uses a value (--build-arg or a default)")
        return base.text, platform.text, base.used | base.unset | platform.used | platform.unset


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the ARGs before the first FROM (`meta_args`), the stages, the
    escape character, the parser directives found (`syntax`, `escape`, `check`), and the
    parser's warnings (Docker prints them as `[WARNING]: ...`)."""

    path: str
    meta_args: tuple[ArgStep, ...]
    stages: tuple[Stage, ...]
    escape: str = "\\"
    directives: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def stage_ref(self, ref: str, current: int, *, allow_index: bool) -> int | None:
        """The earlier stage `ref` names in stage `current` (FROM NAME, COPY --from=NAME or
        --from=INDEX), or None when it names an image. Names are case-insensitive."""
        wanted = ref.lower()
        for stage in self.stages:
            if stage.name and stage.name == wanted:
                if stage.index >= current:
                    where = "is this stage" if stage.index == current else "comes later"
                    raise DockerfileError(self.path, self.stages[current].line,
                                          f"stage {ref!r} {where}: a stage can only use the "
                                          "stages before it")
                return stage.index
        if allow_index and wanted.isdecimal() and wanted.isascii():
            index = int(wanted)
            if index >= current:
                raise DockerfileError(self.path, self.stages[current].line,
                                      f"--from={ref}: stage {index} "
                                      + ("is this stage" if index == current else
                                         "does not come before this one"))
            return index
        return None

    def target(self, name: str | None) -> int:
        """The index of `--target NAME`, or of the last stage."""
        if not name:
            return len(self.stages) - 1
        wanted = name.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage.index
        named = ", ".join(s.name for s in self.stages if s.name) or "none"
        raise ShellctrError(f"target stage {name!r} could not be found",
                            f"the stages named in {self.path}: {named}")

    def global_args(self, build_args: Mapping[str, str | None] | None = None,
                    automatic: Mapping[str, str] | None = None) -> dict[str, str]:
        """The values FROM lines see: the global ARGs with the `--build-arg` overrides."""
        return global_arg_values(self.meta_args, build_args, automatic)

    def needed_stages(self, target: str | None = None,
                      build_args: Mapping[str, str | None] | None = None,
                      automatic: Mapping[str, str] | None = None) -> tuple[int, ...]:
        """The stages the target needs, in order: itself, the stages its FROM and its
        COPY --from name (ONBUILD COPY --from too), transitively; `FROM $BASE` is expanded
        with the global ARGs. The other stages need not be built (BuildKit skips them;
        Docker's classic builder builds every stage up to the target)."""
        args = self.global_args(build_args, automatic)
        wanted = {self.target(target)}
        pending = list(wanted)
        while pending:
            stage = self.stages[pending.pop()]
            refs = [(stage.expand_base(args)[0], False)]
            for step in stage.steps:
                if isinstance(step, OnbuildStep):
                    step = step.trigger
                if isinstance(step, CopyStep) and step.from_stage:
                    refs.append((step.from_stage, True))
            for ref, allow_index in refs:
                index = self.stage_ref(ref, stage.index, allow_index=allow_index)
                if index is not None and index not in wanted:
                    wanted.add(index)
                    pending.append(index)
        return tuple(sorted(wanted))

    def step_count(self, stages: Sequence[int] | None = None) -> int:
        """M of Docker's `Step N/M`: the global ARGs, each FROM and each step."""
        chosen = self.stages if stages is None else [self.stages[i] for i in stages]
        return len(self.meta_args) + len(chosen) + sum(len(s.steps) for s in chosen)
