"""dockerfile_build: build args and their scopes, the args a RUN consumes, Docker's step
line and history strings, and the config values of WORKDIR, EXPOSE and STOPSIGNAL."""

from __future__ import annotations

import pytest

from shellctr.parts import golang
from shellctr.parts.dockerfile import ArgStep, Healthcheck, Step, parse
from shellctr.parts.dockerfile_build import (
    BuildArgs,
    check_signal,
    copy_created_by,
    created_by,
    exposed_ports,
    format_healthcheck,
    global_arg_values,
    platform_args,
    step_line,
    workdir,
)

SHELL = ["/bin/sh", "-c"]


def stage_args(text: str, options: dict[str, str | None] | None = None,
               automatic: dict[str, str] | None = None) -> tuple[BuildArgs, list[BuildArgs]]:
    """Walk a Dockerfile's ARGs as a builder would: globals, then each stage's."""
    df = parse(text)
    build = BuildArgs(options, automatic)
    for meta in df.meta_args:
        build.declare_global(meta)
    stages = []
    for stage in df.stages:
        args = build.for_stage()
        for step in stage.steps:
            if isinstance(step, ArgStep):
                expanded, _ = step.expand(args.expansion_env([]))
                for decl in expanded.args:
                    args.declare(decl.key, decl.default)
        build.merge_referenced(args)
        stages.append(args)
    return build, stages


def test_global_args_reach_from_only_until_redeclared() -> None:
    text = "ARG V=1\nARG W=$V-2\nFROM busybox\nFROM busybox\nARG V\nARG W=own\n"
    build, (first, second) = stage_args(text)
    assert build.global_values() == {"V": "1", "W": "1-2"}
    assert first.expansion_env([]) == {}
    assert second.expansion_env([]) == {"V": "1", "W": "own"}


def test_build_arg_overrides_defaults_and_globals() -> None:
    text = "ARG V=1\nFROM busybox\nARG V\nARG X=dflt\nARG Y\n"
    _, (stage,) = stage_args(text, {"V": "cli", "X": "cli-x", "Y": None})
    assert stage.expansion_env([]) == {"V": "cli", "X": "cli-x"}
    _, (default,) = stage_args(text, {"Y": None})
    assert default.expansion_env([]) == {"V": "1", "X": "dflt"}


def test_env_wins_over_a_build_arg_of_the_same_name() -> None:
    _, (stage,) = stage_args("FROM busybox\nARG A=arg\nARG B=b\n")
    config_env = ["A=env", "PATH=/bin"]
    assert stage.environment(config_env) == ["B=b"]
    assert stage.expansion_env(config_env) == {"A": "env", "PATH": "/bin", "B": "b"}


def test_run_consumes_every_declared_arg_and_records_it() -> None:
    _, (stage,) = stage_args("FROM busybox\nARG B=2\nARG A=1\n", {"http_proxy": "http://p"})
    assert stage.environment([]) == ["A=1", "B=2", "http_proxy=http://p"]
    assert stage.run_args([]) == ["A=1", "B=2"]
    assert stage.run_history([*SHELL, "make"], []) == ["|2", "A=1", "B=2", "/bin/sh", "-c",
                                                         "make"]
    _, (none,) = stage_args("FROM busybox\n")
    assert none.run_history([*SHELL, "make"], []) == [*SHELL, "make"]


def test_proxy_args_need_no_arg_but_stay_out_of_the_history_unless_declared() -> None:
    options: dict[str, str | None] = {"HTTPS_PROXY": "http://p:3128", "no_proxy": "x"}
    _, (plain,) = stage_args("FROM busybox\n", options)
    assert plain.environment([]) == ["HTTPS_PROXY=http://p:3128", "no_proxy=x"]
    assert plain.run_args([]) == []
    _, (declared,) = stage_args("FROM busybox\nARG no_proxy\n", options)
    assert declared.run_args([]) == ["no_proxy=x"]


def test_unused_build_args_warning_as_the_classic_builder() -> None:
    build, _ = stage_args("ARG G\nFROM busybox\nARG USED\n",
                          {"USED": "1", "G": "2", "ZED": "3", "ALPHA": "4", "HTTP_PROXY": "p"})
    assert build.unused() == ["ALPHA", "ZED"]
    assert build.unused_warning() == \
        "[Warning] One or more build-args [ALPHA ZED] were not consumed"
    quiet, _ = stage_args("FROM busybox\nARG A\n", {"A": "1"})
    assert quiet.unused_warning() is None


def test_an_arg_declared_in_a_skipped_stage_is_not_consumed() -> None:
    build = BuildArgs({"A": "1"})
    build.merge_referenced(build.for_stage())
    assert build.unused() == ["A"]


def test_automatic_platform_args_as_buildkit() -> None:
    auto = platform_args("linux", "arm64", "v8")
    assert auto["TARGETPLATFORM"] == "linux/arm64/v8"
    assert platform_args()["BUILDPLATFORM"] == "linux/amd64"
    text = "ARG IMG=busybox:$TARGETARCH\nFROM $IMG\nFROM busybox\nARG TARGETARCH\n"
    build, (first, second) = stage_args(text, automatic=auto)
    assert build.global_values()["IMG"] == "busybox:arm64"
    assert "TARGETARCH" not in first.expansion_env([])
    assert second.expansion_env([]) == {"TARGETARCH": "arm64"}
    assert build.unused() == []
    assert global_arg_values(parse(text).meta_args, automatic=auto)["IMG"] == "busybox:arm64"


def test_classic_builder_has_no_platform_args() -> None:
    build, (_, second) = stage_args("FROM busybox\nFROM busybox\nARG TARGETARCH\n")
    assert second.expansion_env([]) == {}
    assert "TARGETARCH" not in build.global_values()


# -- lines and history -----------------------------------------------------------------------


def test_step_line() -> None:
    assert step_line(3, 9, "RUN make") == "Step 3/9 : RUN make"


def metadata(body: str, shell: list[str] = SHELL, working_dir: str = "") -> str:
    (step,) = parse("FROM busybox\n" + body + "\n").stages[0].steps
    expanded, _ = step.expand({"V": "v"})
    return created_by(expanded, shell, working_dir)


@pytest.mark.parametrize(("body", "expected"), [
    ('CMD ["sh"]', '/bin/sh -c #(nop)  CMD ["sh"]'),
    ("CMD echo $V", '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo $V"]'),
    ('CMD ["say", "\\"hi\\""]', '/bin/sh -c #(nop)  CMD ["say" "\\"hi\\""]'),
    ("ENTRYPOINT []", "/bin/sh -c #(nop)  ENTRYPOINT []"),
    ('ENTRYPOINT ["/init"]', '/bin/sh -c #(nop)  ENTRYPOINT ["/init"]'),
    ("ENV A=1 B=$V", "/bin/sh -c #(nop)  ENV A=1 B=v"),
    ("ENV OLD form value", "/bin/sh -c #(nop)  ENV OLD=form value"),
    ('LABEL a=1 "b c"="d e"', "/bin/sh -c #(nop)  LABEL a=1 b c=d e"),
    ("MAINTAINER me <me@x>", "/bin/sh -c #(nop)  MAINTAINER me <me@x>"),
    ("EXPOSE 80 443/udp", "/bin/sh -c #(nop)  EXPOSE 443/udp 80"),
    ("USER $V:1", "/bin/sh -c #(nop)  USER v:1"),
    ("VOLUME /a /b", "/bin/sh -c #(nop)  VOLUME [/a /b]"),
    ("STOPSIGNAL SIGUSR1", "/bin/sh -c #(nop)  STOPSIGNAL SIGUSR1"),
    ("ARG A B=$V", "/bin/sh -c #(nop)  ARG A B=v"),
    ("ONBUILD RUN echo $V", "/bin/sh -c #(nop)  ONBUILD RUN echo $V"),
    ("HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD curl -f http://x/",
     '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "curl -f http://x/"] "30s" "3s" "0s" "0s" '
     "'\\x03'}"),
    ("HEALTHCHECK NONE", '/bin/sh -c #(nop)  HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" '
     "'\\x00'}"),
])
def test_metadata_created_by(body: str, expected: str) -> None:
    assert metadata(body) == expected


def test_shell_and_workdir_created_by() -> None:
    bash = ["/bin/bash", "-c"]
    assert metadata('SHELL ["/bin/bash", "-c"]', bash) == \
        "/bin/bash -c #(nop)  SHELL [/bin/bash -c]"
    assert metadata("WORKDIR app", working_dir="/srv/app") == "/bin/sh -c #(nop) WORKDIR /srv/app"


def test_run_is_not_a_metadata_step() -> None:
    (step,) = parse("FROM busybox\nRUN make\n").stages[0].steps
    with pytest.raises(TypeError):
        created_by(step, SHELL)


def test_copy_created_by_keeps_dockers_trailing_space() -> None:
    assert copy_created_by("COPY", SHELL, "file:ab12", "/app/") == \
        "/bin/sh -c #(nop) COPY file:ab12 in /app/ "
    assert copy_created_by("ADD", SHELL, "dir:cd34", "/", chown="1:2") == \
        "/bin/sh -c #(nop) ADD --chown=1:2 dir:cd34 in / "


def test_format_healthcheck_durations() -> None:
    health = Healthcheck(("CMD", "x"), 90 * golang.SECOND, 1500 * golang.MILLISECOND,
                         golang.HOUR, 5 * golang.MILLISECOND, 65)
    assert format_healthcheck(health) == \
        '&{["CMD" "x"] "1m30s" "1.5s" "1h0m0s" "5ms" \'A\'}'


# -- config values ---------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "requested", "expected"), [
    ("", "/app", "/app"),
    ("/app", "src", "/app/src"),
    ("/app", "../x/./y/", "/x/y"),
    ("", "rel", "/rel"),
    ("/a", "/b//c/..", "/b"),
    ("/a", "..", "/"),
])
def test_workdir(current: str, requested: str, expected: str) -> None:
    assert workdir(current, requested) == expected


@pytest.mark.parametrize(("specs", "ports"), [
    (["80"], ["80/tcp"]),
    (["53/udp", "53/UDP", "80/tcp"], ["53/udp", "80/tcp"]),
    (["8000-8002"], ["8000/tcp", "8001/tcp", "8002/tcp"]),
    (["132/sctp"], ["132/sctp"]),
    (["127.0.0.1:8080:80"], ["80/tcp"]),
    (["9000:90"], ["90/tcp"]),
    (["0"], ["0/tcp"]),
])
def test_exposed_ports(specs: list[str], ports: list[str]) -> None:
    assert exposed_ports(specs) == ports


@pytest.mark.parametrize(("spec", "message"), [
    ("/tcp", "no port specified: /tcp<empty>"),
    ("80/icmp", "invalid proto: icmp"),
    ("http", "invalid containerPort: http"),
    ("70000", "invalid containerPort: 70000"),
    ("90-80", "invalid containerPort: 90-80"),
    ("1-3:80-81", "invalid ranges specified"),
])
def test_exposed_ports_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exposed_ports([spec])


@pytest.mark.parametrize("name", ["SIGTERM", "term", "sigkill", "9", "SIGRTMIN+3", "RTMAX-1",
                                  "SIGIO", "CLD"])
def test_check_signal_accepts(name: str) -> None:
    check_signal(name)


@pytest.mark.parametrize("name", ["SIGNOPE", "0", "", "RTMIN+16", "TERM9"])
def test_check_signal_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid signal"):
        check_signal(name)


def test_expansion_env_feeds_steps() -> None:
    _, (stage,) = stage_args("FROM busybox\nARG DIR=/srv\n")
    step: Step = parse("FROM busybox\nWORKDIR $DIR/$APP\n").stages[0].steps[0]
    expanded, used = step.expand(stage.expansion_env(["APP=web"]))
    assert expanded.path == "/srv/web"  # type: ignore[attr-defined]
    assert used == {"DIR", "APP"}
