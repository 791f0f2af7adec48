"""Ids, short ids, generated names, and finding a thing by id, prefix or name."""

from __future__ import annotations

import os

from shellctr.core.errors import NotFound, ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

SHORT = 12
HEX_DIGITS = frozenset("0123456789abcdef")
# Docker's rules for container names (`re` is imported by the verbs that check one: the
# read verbs skip its ~5 ms)
NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
CONTAINER_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"  # after a leading /

_ADJECTIVES = [
    "admiring", "adoring", "agitated", "amazing", "awesome", "blissful", "bold", "brave",
    "busy", "charming", "clever", "compassionate", "competent", "condescending", "confident",
    "cool", "crazy", "determined", "dreamy", "eager", "ecstatic", "elastic", "elated",
    "elegant", "epic", "exciting", "fervent", "festive", "focused", "friendly", "frosty",
    "funny", "gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic",
    "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly",
    "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing",
    "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic",
    "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical",
    "relaxed", "reverent", "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic",
    "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled",
    "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial",
    "youthful", "zealous", "zen"
]
_NAMES = [
    "albattani", "allen", "archimedes", "ardinghelli", "babbage", "banach", "bardeen", "bartik",
    "bassi", "bell", "benz", "bhabha", "blackwell", "bohr", "booth", "borg", "bose", "boyd",
    "brahmagupta", "brattain", "brown", "carson", "cerf", "chandrasekhar", "curie", "darwin",
    "davinci", "dijkstra", "dirac", "einstein", "elion", "engelbart", "euclid", "euler",
    "faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg",
    "goldwasser", "goodall", "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hopper",
    "hypatia", "jackson", "jennings", "jepsen", "johnson", "kalam", "kepler", "khorana",
    "knuth", "kowalevski", "lalande", "lamport", "leakey", "lovelace", "lumiere", "mayer",
    "mccarthy", "mclean", "meitner", "mendel", "merkle", "mirzakhani", "montalcini", "moore",
    "morse", "newton", "nobel", "noether", "pare", "pascal", "pasteur", "perlman", "pike",
    "poincare", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "rosalind", "sammet",
    "shannon", "shockley", "sinoussi", "snyder", "spence", "stallman", "swartz", "tesla",
    "thompson", "torvalds", "turing", "varahamihira", "villani", "wiles", "williams", "wilson",
    "wing", "wozniak", "wright", "yalow", "yonath"
]


def new_id() -> str:
    """A fresh 64-hex-digit id (from the kernel's CSPRNG, as `secrets` would)."""
    return os.urandom(32).hex()


def _choice(words: Sequence[str]) -> str:
    # os.urandom, not `secrets`/`random`: they import hashlib, ~5 ms on every `run`
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def short_id(full: str) -> str:
    return full[:SHORT]


def generate_name(taken: Iterable[str]) -> str:
    """A Docker-style `adjective_scientist` name not in `taken`."""
    used = set(taken)
    while True:
        name = f"{_choice(_ADJECTIVES)}_{_choice(_NAMES)}"
        if name not in used:
            return name
        name += _choice("0123456789")
        if name not in used:
            return name


def container_name(text: str) -> str:
    """A container's name as Docker takes it: `/web` is `web`; at least two characters."""
    import re

    name = text.removeprefix("/")
    if not re.fullmatch(CONTAINER_NAME, name):
        raise ShellctrError(
            f"invalid container name {text!r}",
            "use two or more of [a-zA-Z0-9_.-], starting with a letter or digit",
        )
    return name


def check_name(name: str) -> None:
    """Refuse names Docker refuses."""
    import re

    if not re.fullmatch(NAME, name):
        raise ShellctrError(
            f"invalid container name {name!r}",
            "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        )


def find(ref: str, candidates: dict[str, str], kind: str) -> str:
    """The id that `ref` names among `candidates` (id -> name): full id, name, or prefix."""
    if ref in candidates:
        return ref
    for cid, name in candidates.items():
        if name == ref:
            return cid
    if ref and HEX_DIGITS.issuperset(ref):
        matches = [cid for cid in candidates if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ShellctrError(
                f"multiple {kind}s match the prefix {ref!r}", "use more characters of the id"
            )
    raise NotFound(f"no such {kind}: {ref}")
