"""How Docker words times, sizes and commands in its tables."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shellctr.engine.stats import Sample


def human_duration(since: datetime, until: datetime | None = None) -> str:
    """Docker's units.HumanDuration: `3 seconds`, `About a minute`, `2 hours`..."""
    from shellctr.core.store import clock

    datetime, utc = clock()
    elapsed = ((until or datetime.now(utc)) - since).total_seconds()
    seconds = int(elapsed)
    minutes = seconds // 60
    hours = int(elapsed / 3600 + 0.5)  # Go rounds to the nearest hour here (d.Round), halves up
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{seconds // 3600 // (24 * 365)} years"  # whole hours, not rounded, as Go does


def human_ago(when: datetime) -> str:
    return human_duration(when) + " ago"


def human_size(size: int) -> str:
    """Docker's units.HumanSize: decimal units, 3 significant digits (`4.26MB`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


def command_column(argv: Sequence[str], truncate: bool) -> str:
    """The COMMAND column: the command line, cut at 20 characters, in double quotes."""
    command = " ".join(argv)
    if truncate and len(command) > 20:
        command = command[:19] + "…"
    # quoted as Go's strconv.Quote does: a newline or tab in the command must not break the row
    from _json import encode_basestring  # json.dumps(ensure_ascii=False) of a str

    quoted: str = encode_basestring(command)
    return quoted


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_line(value: object, sort_keys: bool = True, ensure_ascii: bool = False) -> str:
    """json.dumps(value, separators=(",", ":"), sort_keys=..., ensure_ascii=...), by
    json's C encoder alone: json's Python half imports `re` (~5 ms of a read verb)."""
    from _json import encode_basestring, encode_basestring_ascii, make_encoder

    encode = make_encoder(None, _unserializable,
                          encode_basestring_ascii if ensure_ascii else encode_basestring,
                          None, ":", ",", sort_keys, False, True)
    return "".join(encode(value, 0))


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def json_indented(value: object, indent: int = 4) -> str:
    """json.dumps(value, indent=4): `inspect`'s output, without json's Python half (its
    C encoder does not indent)."""
    from _json import encode_basestring_ascii as quote

    out: list[str] = []

    def key_text(key: object) -> str:
        if isinstance(key, str):
            return key
        if key is True or key is False or key is None:
            return {True: "true", False: "false", None: "null"}[key]
        if isinstance(key, float):
            return _float_text(key)
        if isinstance(key, int):
            return int.__repr__(key)
        raise TypeError(f"keys must be str, int, float, bool or None, not "
                        f"{type(key).__name__}")

    def emit(item: object, level: int) -> None:
        if isinstance(item, str):
            out.append(quote(item))
        elif item is None or item is True or item is False:
            out.append({None: "null", True: "true", False: "false"}[item])
        elif isinstance(item, int):
            out.append(int.__repr__(item))
        elif isinstance(item, float):
            out.append(_float_text(item))
        elif isinstance(item, (list, tuple, dict)):
            if not item:
                out.append("{}" if isinstance(item, dict) else "[]")
                return
            inner = "\n" + " " * (indent * (level + 1))
            out.append("{" if isinstance(item, dict) else "[")
            for number, entry in enumerate(item.items() if isinstance(item, dict) else item):
                out.append(("," if number else "") + inner)
                if isinstance(item, dict):
                    out.append(quote(key_text(entry[0])) + ": ")
                    entry = entry[1]
                emit(entry, level + 1)
            out.append("\n" + " " * (indent * level) + ("}" if isinstance(item, dict) else "]"))
        else:
            _unserializable(item)

    emit(value, 0)
    return "".join(out)


def plain_columns(spec: str) -> list[str] | None:
    """The fields of a `table {{.A}}\t{{.B}}...` format that holds nothing else (every
    default listing's), in order; None for any other format."""
    if not spec.startswith("table "):
        return None
    keys = []
    for cell in spec[len("table "):].split("\t"):
        key = cell.removeprefix("{{.").removesuffix("}}")
        if len(key) + 5 != len(cell) or not key or not all(
                char.isalnum() or char == "_" for char in key):
            return None
        keys.append(key)
    return keys


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain, left-aligned table as Docker prints it: each column as wide as its widest
    cell or its header plus 2, two spaces between columns, no trailing spaces (tabulate's
    "plain" format, which costs a read verb ~30 ms to import; it is used only for cells
    it lays out differently: several lines in a cell, terminal escapes, ragged rows)."""
    if not rows:
        return "   ".join(headers).rstrip()
    cells = [[cell.strip() for cell in row] for row in rows]
    heads = [header.strip() for header in headers]
    if any(len(row) != len(heads) or any("\n" in cell or "\x1b" in cell for cell in row)
           for row in [heads, *cells]):
        return tabulated(headers, rows)
    widths = [max(len(head) + 2, *(len(row[column]) for row in cells))
              for column, head in enumerate(heads)]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [heads, *cells])
    return "\n".join(line.rstrip() for line in lines)


def tabulated(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table laid out by tabulate (cells of several lines, escapes, ragged rows)."""
    from tabulate import tabulate

    text: str = tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True)
    return "\n".join(line.rstrip() for line in text.splitlines())


def tabwriter(rows: Sequence[Sequence[str]], minwidth: int, padding: int) -> str:
    """Go's text/tabwriter (padchar ' ', no flags) of tab-separated cells: each column but
    the last as wide as its widest cell plus `padding`, at least `minwidth`."""
    widths: dict[int, int] = {}
    for row in rows:
        for column, cell in enumerate(row[:-1]):
            widths[column] = max(widths.get(column, 0), len(cell) + padding, minwidth)
    return "\n".join("".join(cell.ljust(widths[column]) for column, cell in
                             enumerate(row[:-1])) + (row[-1] if row else "") for row in rows)


def top_table(ps_output: str) -> str:
    """`top` as the Docker CLI shows ps' output: the header's words are the titles, each
    process's fields under them (the last, the command, whole), in 20-wide columns."""
    lines = ps_output.splitlines()
    if not lines:
        return ""
    titles = lines[0].split()
    rows = [titles] + [line.split(None, len(titles) - 1) for line in lines[1:]]
    return tabwriter(rows, 20, 3)


def ipv4_number(address: str) -> int:
    """int(ipaddress.IPv4Address(address)); a dotted quad without ipaddress's import (with
    functools and collections: ~2 ms of `ps`)."""
    parts = address.split(".")
    if len(parts) == 4 and all(part.isdigit() and part.isascii() and str(int(part)) == part
                               and int(part) < 256 for part in parts):
        return sum(int(part) << shift for part, shift in zip(parts, (24, 16, 8, 0), strict=True))
    from ipaddress import IPv4Address

    return int(IPv4Address(address))


def displayable_ports(ports: Sequence[tuple[str, int, int, str]]) -> str:
    """Docker's PORTS column (its formatter's DisplayablePorts) of (host address, host
    port, port, proto), address "" for a port only exposed. Consecutive exposed ports, and
    ports published on the same port number as inside, are grouped into ranges
    (`7000-7002/tcp`, `0.0.0.0:8000-8002->8000-8002/tcp`); other published ports follow
    them one by one (`0.0.0.0:8000->80/tcp`)."""
    def order(port: tuple[str, int, int, str]) -> tuple[int, int, int, str]:
        address, public, private, proto = port
        return private, ipv4_number(address) + 1 if address else 0, public, proto

    def form(key: str, first: int, last: int) -> str:
        address, _, proto = key.rpartition("/")
        group = str(first) if first == last else f"{first}-{last}"
        return (f"{address}:{group}->{group}" if address else group) + f"/{proto}"

    groups: dict[str, tuple[int, int]] = {}  # in the order their keys first came
    result, mappings = [], []
    for address, public, private, proto in sorted(ports, key=order):
        key = proto
        if address:
            if public != private:
                mappings.append(f"{address}:{public}->{private}/{proto}")
                continue
            key = f"{address}/{proto}"
        if key in groups and private == groups[key][1] + 1:
            groups[key] = (groups[key][0], private)
            continue
        if key in groups:
            result.append(form(key, *groups[key]))
        groups[key] = (private, private)
    result += [form(key, *group) for key, group in groups.items()]
    return ", ".join(result + mappings)


# -- stats ------------------------------------------------------------------------
STATS_DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
                  "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
           "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
           "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def bytes_size(size: float) -> str:
    """Docker's units.BytesSize: binary units, 4 significant digits (`1.148MiB`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.4g}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def stats_row(cid: str, name: str, before: Sample, after: Sample, cpus: int) -> dict[str, str]:
    """One container's line, keyed as Docker's --format names the fields."""
    from shellctr.engine.stats import cpu_percent

    memory_percent = after.memory / after.limit * 100 if after.limit else 0.0
    return {
        "Container": cid[:12], "ID": cid[:12], "Name": name,
        "CPUPerc": f"{cpu_percent(before, after, cpus):.2f}%",
        "MemUsage": f"{bytes_size(after.memory)} / {bytes_size(after.limit)}",
        "MemPerc": f"{memory_percent:.2f}%",
        "NetIO": f"{human_size(after.net_rx)} / {human_size(after.net_tx)}",
        "BlockIO": f"{human_size(after.blk_read)} / {human_size(after.blk_write)}",
        "PIDs": str(after.pids),
    }
