"""dockerfile: every instruction's forms and errors, stages and their dependencies, and the
expansion of steps against a build's environment."""

from __future__ import annotations

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.parts import golang
from shellctr.parts.dockerfile import (
    AddStep,
    ArgDecl,
    ArgStep,
    CmdStep,
    CopyStep,
    DockerfileError,
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
    parse,
    parse_flags,
    suggest,
)
from shellctr.parts.dockerfile_words import SubstitutionError


def steps(body: str) -> tuple[Step, ...]:
    return parse("FROM busybox\n" + body).stages[0].steps


def step(body: str) -> Step:
    (only,) = steps(body + "\n")
    return only


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    return caught.value


# -- FROM and stages -----------------------------------------------------------------------------


def test_from_forms() -> None:
    df = parse("FROM busybox\nFROM --platform=linux/amd64 busybox:1.36 AS Build\n"
               "from scratch as final\n")
    assert [(s.index, s.name, s.base, s.platform) for s in df.stages] == [
        (0, "", "busybox", ""), (1, "build", "busybox:1.36", "linux/amd64"),
        (2, "final", "scratch", "")]
    assert df.stages[1].text == "FROM --platform=linux/amd64 busybox:1.36 AS Build"
    assert df.stages[2].line == 3


@pytest.mark.parametrize(("text", "message"), [
    ("FROM", "FROM requires either one or three arguments"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a AS", "FROM requires either one or three arguments"),
    ("FROM a FOR b", "FROM requires either one or three arguments"),
    ("FROM a AS 1st", "invalid name for build stage: '1st'"),
    ("FROM a AS my/stage", "invalid name for build stage"),
    ("FROM --pltform=x a", "unknown flag: --pltform (did you mean platform?)"),
    ("FROM a AS x\nFROM b AS X", "duplicate stage name 'x' (also on line 1)"),
])
def test_from_errors(text: str, message: str) -> None:
    assert message in str(error(text + "\n"))


def test_only_arg_may_come_before_from() -> None:
    failure = error("ARG V=1\n# comment\nRUN true\nFROM x\n")
    assert str(failure).startswith("Dockerfile:3: RUN before the first FROM")
    df = parse("ARG A\nARG B=2 C\nFROM x\n")
    assert [step.args for step in df.meta_args] == [
        (ArgDecl("A"),), (ArgDecl("B", "2"), ArgDecl("C"))]


@pytest.mark.parametrize(("text", "message"), [
    ("", "Dockerfile: the Dockerfile cannot be empty"),
    ("# only a comment\n\n", "Dockerfile: file with no instructions"),
    ("ARG A\n", "Dockerfile:1: no FROM instruction"),
])
def test_empty_dockerfiles(text: str, message: str) -> None:
    assert str(error(text)).startswith(message)


def test_errors_name_file_line_and_problem_in_one_line() -> None:
    failure = error("FROM x\n\n# c\nRUN ok\n  RUNN make\n")
    assert str(failure) == "Dockerfile:5: unknown instruction: RUNN (did you mean RUN?)"
    assert failure.exit_code == 1
    with pytest.raises(DockerfileError, match=r"^app/Containerfile:2: unknown instruction: "
                                              r"frobnicate$"):
        parse("FROM x\nfrobnicate it\n", path="app/Containerfile")
    assert "did you mean copy?" in str(error("FROM x\ncopi a b\n"))


def test_a_syntax_error_of_a_continued_instruction_is_on_its_first_line() -> None:
    assert str(error("FROM x\nENV a=1 \\\n  b\n")).startswith("Dockerfile:2: Syntax error")


# -- RUN, CMD, ENTRYPOINT, SHELL -------------------------------------------------------------


def test_run_shell_and_exec_forms() -> None:
    shell = step("RUN echo $HOME  &&  make")
    assert isinstance(shell, RunStep)
    assert (shell.command, shell.shell_form) == (("echo $HOME  &&  make",), True)
    assert shell.resolve() == ["/bin/sh", "-c", "echo $HOME  &&  make"]
    assert shell.resolve(["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "echo $HOME  &&  make"]
    exec_form = step('RUN ["echo", "$HOME"]')
    assert isinstance(exec_form, RunStep)
    assert exec_form.resolve() == ["echo", "$HOME"]
    assert step("RUN echo $HOME").expand({"HOME": "/x"})[0] == step("RUN echo $HOME")


def test_run_flags_parse_and_unsupported_ones_are_reported() -> None:
    run = step("RUN --network=none --mount=type=cache,target=/c --security=sandbox make")
    assert isinstance(run, RunStep)
    assert (run.network, run.mounts, run.command) == ("none", ("type=cache,target=/c",),
                                                       ("make",))
    assert run.unsupported() == "RUN --mount is not supported by shellctr build (it needs BuildKit)"
    plain = step("RUN --network=host make")
    assert isinstance(plain, RunStep) and plain.unsupported() is None
    assert "invalid network mode 'bridge'" in str(error("FROM x\nRUN --network=bridge x\n"))
    assert "security 'x' is not valid" in str(error("FROM x\nRUN --security=x y\n"))
    assert "unknown flag: --netwrk (did you mean network?)" in str(
        error("FROM x\nRUN --netwrk=none y\n"))


def test_run_heredocs_resolve_as_buildkit_runs_them() -> None:
    alone = step("RUN <<EOF\necho one\necho two\nEOF")
    assert isinstance(alone, RunStep)
    assert alone.resolve() == ["/bin/sh", "-c", "echo one\necho two\n"]
    chomped = step("RUN <<-EOF\n\techo tab\n\tEOF")
    assert isinstance(chomped, RunStep)
    assert chomped.resolve() == ["/bin/sh", "-c", "echo tab\n"]
    script = step("RUN <<EOF\n#!/bin/sh\necho x\nEOF")
    assert isinstance(script, RunStep)
    assert script.resolve() == ["/dev/pipes/EOF"]
    assert script.script is not None and script.script.data == "#!/bin/sh\necho x\n"
    piped = step("RUN cat <<A >/a && cat <<B >/b\none\nA\ntwo\nB")
    assert isinstance(piped, RunStep)
    assert piped.resolve() == ["/bin/sh", "-c", "cat <<A >/a && cat <<B >/b\none\nA\ntwo\nB"]
    assert (piped.line, piped.end_line) == (2, 6)
    assert piped.text == "RUN cat <<A >/a && cat <<B >/b"


def test_cmd_and_entrypoint_forms() -> None:
    cmd = step('CMD ["sh", "-c", "echo hi"]')
    assert isinstance(cmd, CmdStep) and cmd.resolve() == ["sh", "-c", "echo hi"]
    assert step("CMD echo hi").resolve() == ["/bin/sh", "-c", "echo hi"]  # type: ignore[attr-defined]
    assert step("CMD []").resolve() == []  # type: ignore[attr-defined]
    assert step("CMD").resolve() == ["/bin/sh", "-c"]  # type: ignore[attr-defined]
    entrypoint = step("ENTRYPOINT []")
    assert isinstance(entrypoint, EntrypointStep) and entrypoint.resolve() is None
    assert step("ENTRYPOINT").resolve() is None  # type: ignore[attr-defined]
    assert step('ENTRYPOINT ["/init"]').resolve() == ["/init"]  # type: ignore[attr-defined]
    assert step("ENTRYPOINT exec top -b").resolve(["/bin/ash", "-c"]) == [  # type: ignore[attr-defined]
        "/bin/ash", "-c", "exec top -b"]
    assert step("CMD ['sh']").resolve() == ["/bin/sh", "-c", "['sh']"]  # type: ignore[attr-defined]


def test_shell_takes_json_only() -> None:
    shell = step('SHELL ["/bin/ash", "-eo", "pipefail", "-c"]')
    assert isinstance(shell, ShellStep) and shell.shell == ("/bin/ash", "-eo", "pipefail", "-c")
    assert "SHELL requires the arguments to be in JSON form" in str(
        error("FROM x\nSHELL /bin/sh -c\n"))
    assert "SHELL requires at least one argument" in str(error("FROM x\nSHELL []\n"))


# -- ENV, LABEL, ARG, MAINTAINER -------------------------------------------------------------


def test_env_forms_and_expansion() -> None:
    env = step('ENV A=1 B="two words" C=three\\ words D=$A E=\'$A\'')
    assert isinstance(env, EnvStep)
    expanded, used = env.expand({"A": "old"})
    assert [str(p) for p in expanded.pairs] == ["A=1", "B=two words", "C=three words", "D=old",
                                              "E=$A"]
    assert used == {"A"}
    legacy = step('ENV NAME some "quoted" value')
    assert isinstance(legacy, EnvStep)
    assert legacy.expand({})[0].pairs == (KeyValue("NAME", "some quoted value", legacy=True),)


@pytest.mark.parametrize(("text", "message"), [
    ("ENV", "ENV requires at least one argument"),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("LABEL =x", "LABEL names can not be blank"),
    ("ENV --x=1 A=b", "unknown flag: --x"),
    ("ARG", "ARG requires at least one argument"),
    ("ARG =x", "ARG names can not be blank"),
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
])
def test_name_value_instruction_errors(text: str, message: str) -> None:
    assert message in str(error("FROM x\n" + text + "\n"))


def test_label_forms() -> None:
    label = step('LABEL "com.example.vendor"="ACME Inc" version=1.0 desc="a \\"b\\""')
    assert isinstance(label, LabelStep)
    assert [str(p) for p in label.expand({})[0].pairs] == [
        "com.example.vendor=ACME Inc", "version=1.0", 'desc=a "b"']
    old = step("LABEL maintainer Some One <one@example.com>")
    assert isinstance(old, LabelStep)
    assert [str(p) for p in old.expand({})[0].pairs] == ["maintainer=Some One <one@example.com>"]


def test_arg_forms_and_expansion() -> None:
    arg = step('ARG A B=2 C="x y" D=$B')
    assert isinstance(arg, ArgStep)
    assert [str(a) for a in arg.expand({"B": "env"})[0].args] == ["A", "B=2", "C=x y", "D=env"]


def test_maintainer_is_kept_as_written() -> None:
    maintainer = step("MAINTAINER  Some One <one@example.com>  ")
    assert isinstance(maintainer, MaintainerStep)
    assert maintainer.maintainer == "Some One <one@example.com>"


# -- COPY and ADD ----------------------------------------------------------------------------


def test_copy_forms_and_flags() -> None:
    copy = step("COPY --from=build --chown=app:app --chmod=0755 --link a b* /dst/")
    assert isinstance(copy, CopyStep) and not isinstance(copy, AddStep)
    assert (copy.sources, copy.dest, copy.from_stage, copy.chown, copy.chmod, copy.link) == (
        ("a", "b*"), "/dst/", "build", "app:app", "0755", True)
    json_form = step('COPY ["with space", "/d d/"]')
    assert isinstance(json_form, CopyStep)
    assert (json_form.sources, json_form.dest) == (("with space",), "/d d/")
    expanded, used = step("COPY --chown=$U $SRC ${DST:-/x}/").expand(  # type: ignore[attr-defined]
        {"U": "1:2", "SRC": "a.txt"})
    assert (expanded.chown, expanded.sources, expanded.dest) == ("1:2", ("a.txt",), "/x/")
    assert used == {"U", "SRC", "DST"}


def test_copy_heredoc_sources() -> None:
    copy = step("COPY <<one <<-'two' /etc/\nhello $NAME\none\n\tbye $NAME\n\ttwo")
    assert isinstance(copy, CopyStep)
    assert copy.sources == ()
    assert copy.inline == (InlineFile("one", "hello $NAME\n"),
                           InlineFile("two", "bye $NAME\n", expand=False))
    expanded, _ = copy.expand({"NAME": "world"})
    assert [f.data for f in expanded.inline] == ["hello world\n", "bye $NAME\n"]


def test_copy_heredoc_body_keeps_quotes() -> None:
    copy = step("COPY <<EOF /f\nsay \"$X\" '$X' \\$X\nEOF")
    assert copy.expand({"X": "y"})[0].inline[0].data == "say \"y\" 'y' $X\n"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "message"), [
    ("COPY only", "COPY requires at least two arguments, but only one was provided"),
    ("ADD only", "ADD requires at least two arguments"),
    ("COPY a <<EOF\nx\nEOF", "COPY cannot accept a heredoc as a destination"),
    ("COPY --from=$STAGE a b", "variable expansion is not supported for --from"),
    ("COPY --chown a b", "missing a value on flag: --chown"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe"),
    ("COPY --link= a b", "missing a value on flag: --link"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("COPY --checksum=sha256:x a b", "unknown flag: --checksum"),
])
def test_copy_errors(text: str, message: str) -> None:
    assert message in str(error("FROM x\n" + text + "\n"))


def test_a_single_dash_word_is_a_source_not_a_flag() -> None:
    copy = step("COPY -from=a x y")
    assert isinstance(copy, CopyStep) and copy.sources == ("-from=a", "x")


def test_add_flags() -> None:
    add = step("ADD --checksum=sha256:abc --chown=1 --unpack=false https://x/a.tgz /opt/")
    assert isinstance(add, AddStep)
    assert (add.checksum, add.chown, add.unpack, add.keep_git_dir) == ("sha256:abc", "1", False,
                                                                       None)
    assert add.unsupported() is None
    git = step("ADD --keep-git-dir https://example.com/r.git /src")
    assert isinstance(git, AddStep)
    assert "--keep-git-dir is not supported" in (git.unsupported() or "")
    parents = step("COPY --parents --exclude=*.md a/ b/")
    assert isinstance(parents, CopyStep)
    assert parents.excludes == ("*.md",)
    assert "--parents is not supported" in (parents.unsupported() or "")


# -- WORKDIR USER STOPSIGNAL VOLUME EXPOSE ----------------------------------------------------


@pytest.mark.parametrize(("text", "cls", "attribute", "value"), [
    ("WORKDIR $BASE/app", WorkdirStep, "path", "/srv/app"),
    ('WORKDIR "/with space"', WorkdirStep, "path", "/with space"),
    ("USER ${NAME:-nobody}:$GID", UserStep, "user", "nobody:42"),
    ("STOPSIGNAL SIG$SIG", StopSignalStep, "signal", "SIGUSR1"),
])
def test_single_argument_instructions_expand(text: str, cls: type[Step], attribute: str,
                                             value: str) -> None:
    found = step(text)
    assert isinstance(found, cls)
    expanded, _ = found.expand({"BASE": "/srv", "GID": "42", "SIG": "USR1"})
    assert getattr(expanded, attribute) == value


@pytest.mark.parametrize("keyword", ["WORKDIR", "USER", "STOPSIGNAL"])
def test_single_argument_instructions_need_one(keyword: str) -> None:
    assert f"{keyword} requires exactly one argument" in str(error(f"FROM x\n{keyword}\n"))


def test_volume_forms() -> None:
    assert step("VOLUME /a $B").expand({"B": "/b"})[0].paths == ("/a", "/b")  # type: ignore[attr-defined]
    assert step('VOLUME ["/c", "/d"]').paths == ("/c", "/d")  # type: ignore[attr-defined]
    assert "VOLUME specified can not be an empty string" in str(error('FROM x\nVOLUME [""]\n'))
    assert "VOLUME requires at least one argument" in str(error("FROM x\nVOLUME\n"))
    volume = step("VOLUME $EMPTY")
    with pytest.raises(SubstitutionError, match="can not be an empty string"):
        volume.expand({"EMPTY": ""})


def test_expose_words_are_sorted_as_written_and_variables_split() -> None:
    expose = step("EXPOSE 80/udp 443 $MORE")
    assert isinstance(expose, ExposeStep)
    assert expose.ports == ("$MORE", "443", "80/udp")
    assert expose.expand({"MORE": "8080 9090"})[0].ports == ("8080", "9090", "443", "80/udp")
    assert "EXPOSE requires at least one argument" in str(error("FROM x\nEXPOSE\n"))


# -- HEALTHCHECK -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "health"), [
    ("HEALTHCHECK NONE", Healthcheck(("NONE",))),
    ("HEALTHCHECK none", Healthcheck(("NONE",))),
    ("HEALTHCHECK CMD wget -q -O- http://localhost/ || exit 1",
     Healthcheck(("CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"))),
    ('HEALTHCHECK CMD ["/check", "--quiet"]', Healthcheck(("CMD", "/check", "--quiet"))),
    ("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --start-interval=500ms "
     "--retries=3 cmd true",
     Healthcheck(("CMD-SHELL", "true"), 5 * golang.SECOND, 3 * golang.SECOND,
                 90 * golang.SECOND, 500 * golang.MILLISECOND, 3)),
    ("HEALTHCHECK --interval=0s --retries=0 CMD true", Healthcheck(("CMD-SHELL", "true"))),
    ("HEALTHCHECK --retries=+2 CMD true", Healthcheck(("CMD-SHELL", "true"), retries=2)),
])
def test_healthcheck_forms(text: str, health: Healthcheck) -> None:
    found = step(text)
    assert isinstance(found, HealthcheckStep) and found.health == health


@pytest.mark.parametrize(("text", "message"), [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
    ("HEALTHCHECK --interval=5x CMD x", 'time: unknown unit "x" in duration "5x"'),
    ("HEALTHCHECK --timeout=10us CMD x", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=x CMD x", 'parsing "x": invalid syntax'),
    ("HEALTHCHECK --retries=99999999999 CMD x", "value out of range"),
    ("HEALTHCHECK --interval=5s NONE", "unknown flag: --interval"),
    ("HEALTHCHECK --intervl=5s CMD x", "unknown flag: --intervl (did you mean interval?)"),
])
def test_healthcheck_errors(text: str, message: str) -> None:
    assert message in str(error("FROM x\n" + text + "\n"))


def test_healthcheck_config_leaves_zero_values_out() -> None:
    assert Healthcheck(("CMD-SHELL", "x"), interval=5, retries=2).config() == {
        "Test": ["CMD-SHELL", "x"], "Interval": 5, "Retries": 2}


# -- ONBUILD ---------------------------------------------------------------------------------


def test_onbuild_keeps_the_expression_and_checks_it() -> None:
    onbuild = step("onbuild  RUN echo $X")
    assert isinstance(onbuild, OnbuildStep)
    assert onbuild.expression == "RUN echo $X"
    assert isinstance(onbuild.trigger, RunStep)
    assert onbuild.expand({"X": "1"})[0] == onbuild  # not expanded: the later build does it
    heredoc = step("ONBUILD COPY <<EOF /f\nbody\nEOF")
    assert isinstance(heredoc, OnbuildStep)
    assert heredoc.expression == "COPY <<EOF /f\nbody\nEOF"
    assert isinstance(heredoc.trigger, CopyStep)
    assert heredoc.trigger.inline == (InlineFile("EOF", "body\n"),)


@pytest.mark.parametrize(("text", "message"), [
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD RUNN x", "unknown instruction: RUNN"),
    ("ONBUILD COPY a", "COPY requires at least two arguments"),
])
def test_onbuild_errors(text: str, message: str) -> None:
    assert message in str(error("FROM x\n" + text + "\n"))


# -- flags helpers ---------------------------------------------------------------------------


def test_parse_flags_types() -> None:
    values = parse_flags(["--a=1", "--b", "--c=x", "--c=y", "--", "--ignored"],
                         {"a": "", "b": False, "c": (), "d": "dflt"})
    assert (values["a"], values["b"], values["c"], values["d"]) == ("1", True, ("x", "y"),
                                                                    "dflt")
    assert parse_flags(["--b=FALSE"], {"b": True})["b"] is False


@pytest.mark.parametrize(("value", "options", "case_sensitive", "expected"), [
    ("RUNN", ["RUN", "CMD"], False, "RUN"),
    ("runn", ["RUN", "CMD"], False, "run"),
    ("Runn", ["RUN", "CMD"], False, "RUN"),
    ("frobnicate", ["RUN", "CMD"], False, None),
    ("run", ["RUN"], False, None),
    ("chwn", ["chown", "chmod"], True, "chown"),
])
def test_suggest(value: str, options: list[str], case_sensitive: bool,
                 expected: str | None) -> None:
    assert suggest(value, options, case_sensitive) == expected


# -- stages ----------------------------------------------------------------------------------

MULTI = """\
ARG BASE=busybox
FROM $BASE AS deps
RUN make deps
FROM busybox AS unused
RUN sleep 100
FROM deps AS build
RUN make
FROM busybox AS tools
FROM busybox
COPY --from=build /out /out
COPY --from=3 /t /t
COPY --from=docker.io/library/alpine /etc/os-release /x
"""


def test_needed_stages_follow_from_and_copy_from() -> None:
    df = parse(MULTI)
    assert df.needed_stages() == (0, 2, 3, 4)
    assert df.needed_stages("BUILD") == (0, 2)
    assert df.needed_stages("unused") == (1,)
    assert df.needed_stages("deps") == (0,)
    assert df.step_count() == 1 + 5 + 6
    assert df.step_count(df.needed_stages("build")) == 1 + 2 + 2


def test_target_must_exist() -> None:
    with pytest.raises(ShellctrError, match="target stage 'nope' could not be found"):
        parse(MULTI).needed_stages("nope")


def test_from_argument_picks_the_base_with_build_args() -> None:
    df = parse("ARG BASE=busybox\nFROM $BASE AS one\nFROM ${BASE} AS two\n")
    assert df.stages[0].expand_base(df.global_args())[0] == "busybox"
    with pytest.raises(DockerfileError, match="stage 'one' is this stage"):
        df.needed_stages("one", {"BASE": "one"})
    df = parse("ARG BASE=busybox\nFROM busybox AS one\nFROM ${BASE} AS two\n")
    assert df.global_args({"BASE": "one"})["BASE"] == "one"
    assert df.needed_stages("two", {"BASE": "one"}) == (0, 1)
    unset = parse("ARG BASE\nFROM $BASE\n")
    with pytest.raises(DockerfileError, match="base name \\(\\$BASE\\) should not be blank"):
        unset.needed_stages()


def test_stages_can_only_use_earlier_stages() -> None:
    df = parse("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n")
    with pytest.raises(DockerfileError, match="stage 'b' comes later"):
        df.needed_stages("a")
    itself = parse("FROM busybox AS a\nCOPY --from=0 /x /x\n")
    with pytest.raises(DockerfileError, match="--from=0: stage 0 is this stage"):
        itself.needed_stages()
    assert parse("FROM busybox AS a\nFROM a\n").needed_stages() == (0, 1)


def test_steps_know_their_text_and_lines() -> None:
    df = parse("FROM busybox\n# note\nENV A=1 \\\n    B=2\n\nRUN   echo   hi  \n")
    assert [(s.keyword, s.text, s.line, s.end_line) for s in df.stages[0].steps] == [
        ("ENV", "ENV A=1     B=2", 3, 4), ("RUN", "RUN   echo   hi", 6, 6)]


def test_escape_directive_reaches_expansion() -> None:
    df = parse("# escape=`\nFROM busybox\nENV P=C:\\dir`$HOME\nWORKDIR c:\\$D\n")
    env, workdir = df.stages[0].steps
    assert env.expand({"HOME": "/h"})[0].pairs == (KeyValue("P", "C:\\dir$HOME"),)  # type: ignore[attr-defined]
    assert workdir.expand({"D": "x"})[0].path == "c:\\x"  # type: ignore[attr-defined]


def test_parse_accepts_bytes_with_bad_utf8() -> None:
    df = parse(b"FROM busybox\nLABEL x=\xff\n")
    label = df.stages[0].steps[0]
    assert isinstance(label, LabelStep) and label.pairs[0].value == "\ufffd"


def test_user_step_is_not_confused_with_others() -> None:
    kinds = [type(s) for s in steps("USER a\nVOLUME /v\nSTOPSIGNAL 9\n")]
    assert kinds == [UserStep, VolumeStep, StopSignalStep]
