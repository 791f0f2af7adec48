"""Instructions into typed steps: each instruction's arguments and flags checked as Docker
checks them (its wording for the errors), for shellctr.parts.dockerfile.parse."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from shellctr.parts import golang
from shellctr.parts.dockerfile_line import Node
from shellctr.parts.dockerfile_steps import (
    AddStep,
    ArgDecl,
    ArgStep,
    CmdStep,
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
    RunStep,
    ShellStep,
    Step,
    StopSignalStep,
    UserStep,
    VolumeStep,
    WorkdirStep,
)
from shellctr.parts.dockerfile_syntax import parse_heredoc
from shellctr.parts.dockerfile_words import Lexer

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL",
                "USER", "VOLUME", "WORKDIR")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*\Z")
_ONBUILD_PREFIX = re.compile(r"(?i)^[\t\n\v\f\r ]*ONBUILD[\t\n\v\f\r ]*")


class InstructionError(ValueError):
    """An error found in one instruction; parse() adds the file and the line."""


# -- flags -----------------------------------------------------------------------------------

FlagValue = str | bool | tuple[str, ...]


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest(value: str, options: Sequence[str], case_sensitive: bool) -> str | None:
    """The closest option within 2 edits (Docker's `did you mean` rule), in the value's case."""
    wanted = value if case_sensitive else value.lower()
    best, best_distance = None, 3
    for option in options:
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return None
        distance = _levenshtein(wanted, candidate)
        if distance < best_distance:
            best, best_distance = option, distance
    if best is None or case_sensitive:
        return best
    if value == value.lower():
        return best.lower()
    if value == value.upper():
        return best.upper()
    return best


def parse_flags(raw: Sequence[str], spec: Mapping[str, FlagValue]) -> dict[str, FlagValue]:
    """Builder flags (`--from=build`, `--link`) against `spec` (name -> default; its type says
    bool, string or repeatable strings), as Docker's BFlags."""
    values: dict[str, FlagValue] = dict(spec)
    used: set[str] = set()
    for word in raw:
        if word == "--":
            break
        if not word.startswith("--"):
            raise InstructionError(f"arg should start with -- : {word}")
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        if name not in spec:
            message = f"unknown flag: {flag}"
            close = suggest(name, list(spec), case_sensitive=True)
            raise InstructionError(f"{message} (did you mean {close}?)" if close else message)
        kind = spec[name]
        if name in used and not isinstance(kind, tuple):
            raise InstructionError(f"duplicate flag specified: {flag}")
        used.add(name)
        if isinstance(kind, bool):
            if has_value and value == "":
                raise InstructionError(f"missing a value on flag: {flag}")
            if value.lower() in ("true", ""):
                values[name] = True
            elif value.lower() == "false":
                values[name] = False
            else:
                raise InstructionError(f"expecting boolean value for flag {flag}, not: {value}")
        elif not has_value:
            raise InstructionError(f"missing a value on flag: {flag}")
        elif isinstance(kind, tuple):
            current = values[name]
            assert isinstance(current, tuple)
            values[name] = (*current, value)
        else:
            values[name] = value
    values["__used__"] = tuple(sorted(used))
    return values


def _str(flags: Mapping[str, FlagValue], name: str) -> str:
    value = flags[name]
    assert isinstance(value, str)
    return value


def _bool(flags: Mapping[str, FlagValue], name: str) -> bool:
    value = flags[name]
    assert isinstance(value, bool)
    return value


def _strs(flags: Mapping[str, FlagValue], name: str) -> tuple[str, ...]:
    value = flags[name]
    assert isinstance(value, tuple)
    return value


# -- instructions ----------------------------------------------------------------------------


class _Base(TypedDict):
    text: str
    line: int
    end_line: int
    escape: str
    flags: tuple[str, ...]


@dataclass(frozen=True)
class _Req:
    """One node being turned into a step."""

    node: Node
    escape: str

    @property
    def args(self) -> tuple[str, ...]:
        return self.node.args

    def base(self) -> _Base:
        return {"text": golang.trim_space(self.node.original), "line": self.node.line,
                "end_line": self.node.end_line, "escape": self.escape,
                "flags": self.node.flags}

    def flags(self, **spec: FlagValue) -> dict[str, FlagValue]:
        return parse_flags(self.node.flags, spec)


def _at_least_one(keyword: str) -> InstructionError:
    return InstructionError(f"{keyword} requires at least one argument")


def _exactly_one(keyword: str) -> InstructionError:
    return InstructionError(f"{keyword} requires exactly one argument")


def _pairs(req: _Req, keyword: str) -> tuple[KeyValue, ...]:
    args = req.args
    if not args:
        raise _at_least_one(keyword)
    pairs = []
    for i in range(0, len(args), 3):
        key, value, delim = args[i:i + 3]
        if not key:
            raise InstructionError(f"{keyword} names can not be blank")
        pairs.append(KeyValue(key, value, legacy=delim == ""))
    return tuple(pairs)


def _env(req: _Req) -> Step:
    req.flags()
    return EnvStep(**req.base(), pairs=_pairs(req, "ENV"))


def _label(req: _Req) -> Step:
    req.flags()
    return LabelStep(**req.base(), pairs=_pairs(req, "LABEL"))


def _maintainer(req: _Req) -> Step:
    if len(req.args) != 1:
        raise _exactly_one("MAINTAINER")
    req.flags()
    return MaintainerStep(**req.base(), maintainer=req.args[0])


def _command(req: _Req) -> tuple[tuple[str, ...], bool]:
    """CMD/RUN/ENTRYPOINT/SHELL arguments: the JSON array, or the shell form's one string."""
    if req.node.json:
        return req.args, False
    return ((" ".join(req.args),) if req.args else ()), True


def _run(req: _Req) -> Step:
    flags = req.flags(mount=(), network="default", security="sandbox", device=())
    network, security = _str(flags, "network"), _str(flags, "security")
    if network not in ("default", "none", "host"):
        raise InstructionError(f"invalid network mode {network!r} (use default, none or host)")
    if security not in ("sandbox", "insecure"):
        raise InstructionError(f"security {security!r} is not valid (use sandbox or insecure)")
    command, shell_form = _command(req)
    return RunStep(**req.base(), command=command, shell_form=shell_form,
                   heredocs=req.node.heredocs, mounts=_strs(flags, "mount"), network=network,
                   security=security, devices=_strs(flags, "device"))


def _cmd(req: _Req) -> Step:
    req.flags()
    command, shell_form = _command(req)
    return CmdStep(**req.base(), command=command, shell_form=shell_form)


def _entrypoint(req: _Req) -> Step:
    req.flags()
    command, shell_form = _command(req)
    return EntrypointStep(**req.base(), command=command,
                          shell_form=shell_form)


def _shell(req: _Req) -> Step:
    req.flags()
    if not req.args:
        raise _at_least_one("SHELL")
    if not req.node.json:
        raise InstructionError('SHELL requires the arguments to be in JSON form, e.g. '
                               'SHELL ["/bin/sh", "-c"]')
    return ShellStep(**req.base(), shell=req.args)


def _sources(req: _Req, keyword: str) -> tuple[tuple[str, ...], tuple[InlineFile, ...], str]:
    if len(req.args) < 2:
        raise InstructionError(f"{keyword} requires at least two arguments, but only one was "
                               "provided. Destination could not be determined")
    *sources, dest = req.args
    if parse_heredoc(dest) is not None:
        raise InstructionError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {heredoc.name: heredoc for heredoc in req.node.heredocs}
    paths, inline = [], []
    for source in sources:
        heredoc = parse_heredoc(source)
        if heredoc is None:
            paths.append(source)
            continue
        body = bodies.get(heredoc.name)
        inline.append(InlineFile(heredoc.name, body.data if body else "", heredoc.expand))
    return tuple(paths), tuple(inline), dest


def _copy(req: _Req) -> Step:
    flags = req.flags(chown="", chmod="", link=False, parents=False, exclude=(), **{"from": ""})
    sources, inline, dest = _sources(req, "COPY")
    from_stage = _str(flags, "from")
    if from_stage and Lexer(req.escape).process_word(from_stage, {}).text != from_stage:
        raise InstructionError("variable expansion is not supported for --from, define a new stage "
                               "with FROM using ARG from global scope as a workaround")
    return CopyStep(**req.base(), sources=sources, inline=inline,
                    dest=dest, from_stage=from_stage, chown=_str(flags, "chown"),
                    chmod=_str(flags, "chmod"), link=_bool(flags, "link"),
                    parents=_bool(flags, "parents"), excludes=_strs(flags, "exclude"))


def _add(req: _Req) -> Step:
    flags = req.flags(chown="", chmod="", link=False, checksum="", exclude=(),
                      **{"keep-git-dir": False, "unpack": False})
    used = flags["__used__"]
    assert isinstance(used, tuple)
    sources, inline, dest = _sources(req, "ADD")
    return AddStep(**req.base(), sources=sources, inline=inline,
                   dest=dest, chown=_str(flags, "chown"), chmod=_str(flags, "chmod"),
                   link=_bool(flags, "link"), checksum=_str(flags, "checksum"),
                   excludes=_strs(flags, "exclude"),
                   keep_git_dir=_bool(flags, "keep-git-dir") if "keep-git-dir" in used else None,
                   unpack=_bool(flags, "unpack") if "unpack" in used else None)


def _single(keyword: str, cls: type[Step], attribute: str) -> Callable[[_Req], Step]:
    def build(req: _Req) -> Step:
        if len(req.args) != 1:
            raise _exactly_one(keyword)
        req.flags()
        return cls(**req.base(), **{attribute: req.args[0]})

    return build


def _volume(req: _Req) -> Step:
    if not req.args:
        raise _at_least_one("VOLUME")
    req.flags()
    paths = tuple(golang.trim_space(path) for path in req.args)
    if any(not path for path in paths):
        raise InstructionError("VOLUME specified can not be an empty string")
    return VolumeStep(**req.base(), paths=paths)


def _expose(req: _Req) -> Step:
    if not req.args:
        raise _at_least_one("EXPOSE")
    req.flags()
    # Docker sorts the words as written (its history says `EXPOSE 443 80` for `EXPOSE 80 443`)
    return ExposeStep(**req.base(), ports=tuple(sorted(req.args)))


def _interval(flags: Mapping[str, FlagValue], name: str) -> int:
    text = _str(flags, name)
    if not text:
        return 0
    try:
        value = golang.parse_duration(text)
    except golang.DurationError as error:
        raise InstructionError(f"--{name}: {error}") from None
    if value == 0:
        return 0
    if value < golang.MILLISECOND:
        raise InstructionError(f'Interval "{name}" cannot be less than 1ms')
    return value


def _healthcheck(req: _Req) -> Step:
    if not req.args:
        raise _at_least_one("HEALTHCHECK")
    kind, *args = req.args
    kind = kind.upper()
    if kind == "NONE":
        req.flags()
        if args:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        health = Healthcheck(("NONE",))
        return HealthcheckStep(**req.base(), health=health)
    flags = req.flags(**{"interval": "", "timeout": "", "start-period": "",
                         "start-interval": "", "retries": ""})
    if kind != "CMD":
        raise InstructionError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if req.node.json:
        test = ["CMD", *args]
    else:
        test = ["CMD-SHELL", " ".join(args)] if args else []
    if len(test) < 2:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    retries_text = _str(flags, "retries")
    retries = 0
    if retries_text:
        if not re.fullmatch(r"[+-]?[0-9]+", retries_text):
            raise InstructionError(f'--retries: strconv.ParseInt: parsing "{retries_text}": '
                                   "invalid syntax")
        retries = int(retries_text)
        if not -(1 << 31) <= retries < 1 << 31:
            raise InstructionError(f'--retries: strconv.ParseInt: parsing "{retries_text}": '
                                   "value out of range")
        if retries < 0:
            raise InstructionError(f"--retries cannot be negative ({retries})")
    health = Healthcheck(tuple(test), _interval(flags, "interval"), _interval(flags, "timeout"),
                         _interval(flags, "start-period"), _interval(flags, "start-interval"),
                         retries)
    return HealthcheckStep(**req.base(), health=health)


def _arg(req: _Req) -> Step:
    if not req.args:
        raise _at_least_one("ARG")
    req.flags()
    decls = []
    for word in req.args:
        key, sep, value = word.partition("=")
        if sep and not key:
            raise InstructionError("ARG names can not be blank")
        decls.append(ArgDecl(key, value if sep else None))
    return ArgStep(**req.base(), args=tuple(decls))


def _onbuild(req: _Req) -> Step:
    child = req.node.child
    if child is None:
        raise _at_least_one("ONBUILD")
    req.flags()
    trigger_name = golang.trim_space(child.keyword).upper()
    if trigger_name == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_name in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger_name} isn't allowed as an ONBUILD trigger")
    trigger = _step(_Req(child, req.escape))
    expression = _ONBUILD_PREFIX.sub("", req.node.original, count=1)
    for heredoc in child.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return OnbuildStep(**req.base(), expression=expression,
                       trigger=trigger)


_BUILDERS: dict[str, Callable[[_Req], Step]] = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _single("STOPSIGNAL", StopSignalStep, "signal"),
    "user": _single("USER", UserStep, "user"),
    "volume": _volume,
    "workdir": _single("WORKDIR", WorkdirStep, "path"),
}


def _unknown(keyword: str) -> InstructionError:
    message = f"unknown instruction: {keyword}"
    close = suggest(keyword, INSTRUCTIONS, case_sensitive=False)
    return InstructionError(f"{message} (did you mean {close}?)" if close else message)


def _step(req: _Req) -> Step:
    builder = _BUILDERS.get(req.node.name)
    if builder is None:
        raise _unknown(req.node.keyword)
    return builder(req)


@dataclass
class StageStart:
    name: str
    base: str
    platform: str
    text: str
    line: int


def _from(req: _Req) -> StageStart:
    args = req.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise InstructionError(f"invalid name for build stage: {args[2]!r}, name can't "
                                   "start with a number or contain symbols")
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments (FROM image [AS name])")
    flags = req.flags(platform="")
    return StageStart(name, args[0], _str(flags, "platform"),
                       golang.trim_space(req.node.original), req.node.line)



def build_step(node: Node, escape: str) -> Step:
    """The typed step of an instruction node (not FROM); InstructionError if it is wrong."""
    return _step(_Req(node, escape))


def stage_start(node: Node, escape: str) -> StageStart:
    """What a FROM node says; InstructionError if it is wrong."""
    return _from(_Req(node, escape))
