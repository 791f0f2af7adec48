"""JSON for init.py (the spec it reads, the messages it sends) through the C half of the
standard library's json, without its Python half.

`import json` imports `re` (and with it enum and the regex compiler) for the pure-Python
scanner it keeps as a fallback: ~8 ms of CPU of every container start and every exec here,
a third of what init costs before it does anything. `_json` holds the C scanner and encoder
that json itself uses; they parse and write the same JSON (tests/unit/test_jsonlite.py
holds them to json). Where `_json` is missing (not CPython), json is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WHITESPACE = " \t\n\r"


class _Context:
    """What the C scanner reads off json.JSONDecoder: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))  # NaN, Infinity, -Infinity


def _no_default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # pragma: no cover - not CPython
    import json

    def loads(text: str) -> Any:
        return json.loads(text)

    def dumps(value: object) -> str:
        return json.dumps(value)
else:
    _scan = make_scanner(_Context())  # type: ignore[arg-type]
    # json.dumps' defaults: ASCII output, ", " and ": ", no sorting, NaN allowed
    _encode = make_encoder(None, _no_default, encode_basestring_ascii, None, ": ", ", ",
                           False, False, True)

    def loads(text: str) -> Any:
        """json.loads of a str; ValueError for what is not one JSON document."""
        start = len(text) - len(text.lstrip(WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration as err:
            raise ValueError(f"invalid JSON at character {err.value}") from None
        except SystemError:
            # the scanner words its errors (an unterminated string, a missing comma...)
            # through json.decoder's JSONDecodeError, which it looks up among the modules
            # already imported: none here, so it fails without one. json says what is wrong
            import json

            json.loads(text)  # raises json.JSONDecodeError, a ValueError
            raise ValueError("invalid JSON") from None
        if text[end:].strip(WHITESPACE):
            raise ValueError(f"invalid JSON: extra data at character {end}")
        return value

    def dumps(value: object) -> str:
        """json.dumps(value), as one string."""
        return "".join(_encode(value, 0))
