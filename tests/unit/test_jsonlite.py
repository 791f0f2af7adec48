"""init.py's JSON: the C half of json, held to json itself."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from shellctr.inside import jsonlite

TOP = Path(__file__).resolve().parents[2]
VALUES = [
    {"join": 1234, "argv": ["sh", "-c", "echo \"hi\"\n"], "env": ["A=é", "B=☃", "C=\x01"],
     "tty": False, "status_fd": None, "cgroups": [], "nested": {"a": [1, 2.5, -3e-7, True]}},
    [], {}, "", 0, -1, 10**30, 1.5, None, True, "tab\tand\\backslash", "😀",
]


@pytest.mark.parametrize("value", VALUES)
def test_loads_and_dumps_are_jsons(value: object) -> None:
    text = json.dumps(value)
    assert jsonlite.dumps(value) == text
    assert jsonlite.loads(text) == value
    assert jsonlite.loads(json.dumps(value, indent=1) + "\n") == value


def test_loads_reads_the_constants_as_json_does() -> None:
    assert jsonlite.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    assert math.isnan(jsonlite.loads("NaN"))


@pytest.mark.parametrize("text", ["", "  ", "{", '{"a": 1} x', "[1,]", "{'a': 1}",
                                  '"unterminated', "01", '"\x01"'])
def test_loads_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonlite.loads(text)


def test_dumps_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonlite.dumps({"a": object()})


def test_init_imports_no_re_nor_the_seccomp_compiler() -> None:
    """What init.py costs each start: no json, no re (nor enum, the regex compiler), and
    not the seccomp compiler (shellctr compiles the filter into the run dir once)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import shellctr.inside.init; "
            "print(' '.join(sorted(sys.modules)))")
    modules = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(TOP)], check=True,
                             capture_output=True, text=True).stdout.split()
    assert "shellctr.inside.init" in modules
    assert not {"re", "json", "enum", "socket", "subprocess",
                "shellctr.inside.seccomp"} & set(modules)


@pytest.mark.parametrize("text", ['{"a": "cut', '{"a": 1', "[1,]", '"\x01"', "{", ""])
def test_loads_refuses_what_json_refuses_before_json_is_imported(text: str) -> None:
    """The C scanner words its errors through json.decoder, which it looks up among the
    modules already imported: in a process that never imported json (the read verbs,
    init.py) a truncated record must still be a ValueError, not a SystemError."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from shellctr.inside import jsonlite\n"
            "try:\n    jsonlite.loads(sys.argv[2])\nexcept ValueError:\n    print('ValueError')")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(TOP), text],
                          capture_output=True, text=True)
    assert (done.stdout, done.stderr) == ("ValueError\n", "")
