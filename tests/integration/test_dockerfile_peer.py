"""The Dockerfile parser against a real peer: Debian's buildah builds small metadata-only
Dockerfiles (FROM scratch: no container runs) and the resulting image config must be what
our parser and config steps give.

Where buildah 1.28 and Docker differ, our parser follows Docker, and these cases avoid the
difference (the unit tests pin Docker's behaviour):
- an EXPOSE range stays one key (`8000-8001/tcp`; Docker lists each port), and a protocol
  keeps its case (`53/UDP`; Docker lowercases it);
- a shell-form CMD runs with /bin/sh whatever SHELL says (Docker uses SHELL);
- `${V-x}` and `${V+x}` (no colon) are refused (Docker and BuildKit take them);
- the escape directive changes the line continuation but not the word escapes (Docker's
  lexer uses the directive's character in both);
- buildah adds its own `io.buildah.version` label (dropped before comparing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from shellctr.parts.dockerfile import parse
from shellctr.parts.dockerfile_build import BuildArgs
from shellctr.parts.dockerfile_config import begin_stage

from .support import DEFAULT_TIMEOUT, Worker

FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
          "Labels", "StopSignal", "Healthcheck", "OnBuild")

CASES: dict[str, tuple[str, dict[str, str]]] = {
    "env-substitution": (
        'FROM scratch\nENV A=1 B="two words" C=three\\ words\nENV D=$A E=${A}x F="$B"\n'
        "ENV G='$A' H=\\$A I=${UNSET:-dflt} J=${A:+alt} K=${UNSET:+alt}\n"
        'ENV OLD some "quoted" $A value\nENV A=redefined M=$A\n', {}),
    "args-and-build-args": (
        "ARG GLOBAL=g\nFROM scratch\nARG GLOBAL\nARG V=default\nARG W\nARG X=x\n"
        "ENV V=$V W=${W:-unset} X=$X G=$GLOBAL\n", {"V": "cli", "X": ""}),
    "labels": (
        'FROM scratch\nLABEL "com.example.vendor"="ACME Inc" version=1.0 desc="a \\"b\\""\n'
        "LABEL maintainer Some One <one@example.com>\nLABEL multi=1 \\\n      line=2\n"
        "ENV V=v\nLABEL from.env=$V 'single'='$V'\n", {}),
    "workdir-user-volume-stopsignal": (
        "FROM scratch\nENV BASE=/srv\nWORKDIR $BASE\nWORKDIR app\nWORKDIR ../other/./x\n"
        'USER 1000:1000\nUSER ${BASE}\nVOLUME /data /logs\nVOLUME ["/json vol"]\n'
        "STOPSIGNAL SIGUSR1\n", {}),
    "cmd-entrypoint": (
        'FROM scratch\nCMD ["sh", "-c", "echo $HOME"]\nENTRYPOINT ["/init", "--x"]\n'
        "CMD ['not', 'json']\n", {}),
    "entrypoint-shell-form": ("FROM scratch\nENTRYPOINT exec top -b\n", {}),
    "expose": ("FROM scratch\nENV P=8080\nEXPOSE 80 443/udp $P 53/udp\n", {}),
    "healthcheck": (
        "FROM scratch\nHEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s "
        "--retries=3 \\\n  CMD wget -q -O- http://localhost/ || exit 1\n", {}),
    "healthcheck-exec": ('FROM scratch\nHEALTHCHECK CMD ["/check", "--quiet"]\n', {}),
    "onbuild": ("FROM scratch\nONBUILD RUN echo $HOME\nONBUILD  COPY a b\n", {}),
    "escape-directive": (
        "# escape=`\nFROM scratch\nENV WIN=C:/dir `\n    NEXT=plain\nWORKDIR /x `\n  y\n", {}),
    "continuations-and-comments": (
        "FROM scratch\n# comment\nENV A=1 \\\n# a comment inside\n    B=2 \\\n\n    C=3\n"
        "LABEL trailing=ws \\   \n   k=v\n", {}),
}


def expected_config(text: str, build_args: dict[str, str]) -> dict[str, Any]:
    df = parse(text)
    args = BuildArgs(dict(build_args))
    for meta in df.meta_args:
        args.declare_global(meta)
    config, _ = begin_stage(None)
    stage_args = args.for_stage()
    for step in df.stages[-1].steps:
        expanded, _ = step.expand(stage_args.expansion_env(config.env))
        config.apply(expanded, stage_args)
    return config.to_config()


def buildah_config(worker: Worker, name: str, text: str,
                   build_args: dict[str, str]) -> dict[str, Any]:
    base = worker.scratch / f"buildah-{name}"
    context = base / "context"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(text)
    common = ["buildah", "--root", str(base / "root"), "--runroot", str(base / "run"),
              "--storage-driver", "vfs"]
    try:
        argv = [*common, "build", "--format", "docker", "--quiet", "--tag", name]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        built = subprocess.run([*argv, str(context)], capture_output=True, text=True,
                               timeout=DEFAULT_TIMEOUT)
        assert built.returncode == 0, built.stderr
        inspected = subprocess.run([*common, "inspect", name], capture_output=True, text=True,
                                   timeout=DEFAULT_TIMEOUT, check=True)
        config: dict[str, Any] = json.loads(inspected.stdout)["Docker"]["config"]
        subprocess.run([*common, "rmi", "--all", "--force"], capture_output=True,
                       timeout=DEFAULT_TIMEOUT, check=True)
    finally:
        shutil.rmtree(base)
    labels = config.get("Labels") or {}
    labels.pop("io.buildah.version", None)
    config["Labels"] = labels
    return config


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: config.get(key) or None for key in FIELDS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_matches_buildah(worker: Worker, leak_check: None, name: str) -> None:
    text, build_args = CASES[name]
    assert comparable(expected_config(text, build_args)) == \
        comparable(buildah_config(worker, name, text, build_args))


def test_every_case_parses() -> None:
    for text, _ in CASES.values():
        assert parse(text).stages
