"""shellctr's iptables rules: its own chains, every rule tagged as its own.

Chains (created with the first network, removed with the last):

    filter FORWARD     -> SHELLCTR-FORWARD     (inserted first: hosts often DROP by default)
    SHELLCTR-FORWARD   -> SHELLCTR-ISOLATE-1   (first rule: networks never reach each other)
    SHELLCTR-FORWARD   -> SHELLCTR-PORTS       (second: the published ports let in; after
                                                them each bridge DROPs every other way in)
    SHELLCTR-ISOLATE-1 -> SHELLCTR-ISOLATE-2   (per network: leaving its bridge for ...)
    SHELLCTR-ISOLATE-2                         (per network: ... another bridge: DROP)
    nat POSTROUTING    -> SHELLCTR-POSTROUTING (MASQUERADE: outbound NAT, localhost, hairpin)
    nat PREROUTING, OUTPUT -> SHELLCTR-DNAT    (published ports, to local addresses only)
    raw PREROUTING                             (a port published on 127.x: dropped unless
                                                it came in on lo, i.e. from this host)

Every rule carries `--match comment --comment shellctr:OWNER`, OWNER being `base`,
`net=<bridge>` or `ctr=<short id>`; removal lists the table once and deletes exactly
the rules whose tag it owns, so other software's rules are never touched and a half-done
setup is still cleaned up. Rules are added and removed in batches through
`iptables-restore --wait --noflush` (one process, atomic per table). The host's
`iptables` is used as is, for every command alike (on Debian 12 the nft backend; with
the legacy one, `--wait` queues behind other programs for the xtables lock).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from shellctr.core.facts import Facts, long_form
from shellctr.core.host import Host

FORWARD, ISOLATE_1, ISOLATE_2 = "SHELLCTR-FORWARD", "SHELLCTR-ISOLATE-1", "SHELLCTR-ISOLATE-2"
PORTS = "SHELLCTR-PORTS"
POSTROUTING, DNAT = "SHELLCTR-POSTROUTING", "SHELLCTR-DNAT"
CHAINS = (("filter", FORWARD), ("filter", ISOLATE_1), ("filter", ISOLATE_2), ("filter", PORTS),
          ("nat", POSTROUTING), ("nat", DNAT))
TABLES = ("raw", "filter", "nat")
BASE = "base"
LOCAL = ["--match", "addrtype", "--dst-type", "LOCAL"]  # only to this host's addresses

Rule = tuple[str, list[str]]  # (table, the rule's words after `--append`/`--delete`)


def tag(owner: str) -> list[str]:
    return ["--match", "comment", "--comment", f"shellctr:{owner}"]


def base_rules() -> list[tuple[str, str, list[str]]]:
    """(table, how, rule) of the jumps into shellctr's chains; how: insert or append."""
    return [
        # inserted at the top: ahead of other software's DROPs in FORWARD
        ("filter", "--insert", ["FORWARD", *tag(BASE), "--jump", FORWARD]),
        ("filter", "--append", [FORWARD, *tag(BASE), "--jump", ISOLATE_1]),
        # before any network's rules: its closing DROP comes after the ports
        ("filter", "--append", [FORWARD, *tag(BASE), "--jump", PORTS]),
        ("nat", "--append", ["POSTROUTING", *tag(BASE), "--jump", POSTROUTING]),
        ("nat", "--append", ["PREROUTING", *LOCAL, *tag(BASE), "--jump", DNAT]),
        ("nat", "--append", ["OUTPUT", *LOCAL, *tag(BASE), "--jump", DNAT]),
    ]


def network_rules(bridge: str, subnet: str, internal: bool) -> list[Rule]:
    """A network's rules: its own traffic, isolation, and (unless internal) a way out."""
    owner = tag(f"net={bridge}")
    rules: list[Rule] = [
        # between containers of the bridge (seen here only with br_netfilter loaded)
        ("filter", [FORWARD, "--in-interface", bridge, "--out-interface", bridge,
                    *owner, "--jump", "ACCEPT"]),
    ]
    if internal:  # no way in or out: only the bridge itself
        rules += [
            ("filter", [ISOLATE_1, "--in-interface", bridge, "!", "--out-interface", bridge,
                        *owner, "--jump", "DROP"]),
            ("filter", [ISOLATE_1, "!", "--in-interface", bridge, "--out-interface", bridge,
                        *owner, "--jump", "DROP"]),
        ]
        return rules
    rules += [
        # leaving this bridge for another shellctr bridge: dropped in ISOLATE-2
        ("filter", [ISOLATE_1, "--in-interface", bridge, "!", "--out-interface", bridge,
                    *owner, "--jump", ISOLATE_2]),
        ("filter", [ISOLATE_2, "--out-interface", bridge, *owner, "--jump", "DROP"]),
        # replies to the containers' own connections
        ("filter", [FORWARD, "--out-interface", bridge, "--match", "conntrack",
                    "--ctstate", "RELATED,ESTABLISHED", *owner, "--jump", "ACCEPT"]),
        ("filter", [FORWARD, "--in-interface", bridge, "!", "--out-interface", bridge,
                    *owner, "--jump", "ACCEPT"]),
        # every other new connection into the bridge: only published ports (PORTS, and
        # before this) let one in, as Docker 28 (issue 13, defect 6)
        ("filter", [FORWARD, "!", "--in-interface", bridge, "--out-interface", bridge,
                    *owner, "--jump", "DROP"]),
        # outbound NAT: the world sees the host's address
        ("nat", [POSTROUTING, "--source", subnet, "!", "--out-interface", bridge, *owner,
                 "--jump", "MASQUERADE"]),
        # published ports reached from the host's 127.0.0.1 (DNAT in OUTPUT): the
        # container cannot answer 127.0.0.1, so the source becomes the bridge's address
        ("nat", [POSTROUTING, "--source", "127.0.0.0/8", "--out-interface", bridge, *owner,
                 "--jump", "MASQUERADE"]),
    ]
    return rules


def port_rules(owner: str, bridge: str, ip: str, proto: str, host_ip: str, host_port: int,
               port: int) -> list[Rule]:
    """A published port: DNAT to the container, let it through, NAT the hairpin case."""
    tagged = tag(owner)
    dest = ["--destination", host_ip] if host_ip not in ("", "0.0.0.0") else []
    rules: list[Rule] = []
    if host_ip.startswith("127."):
        # published on loopback: from this host only. A neighbour routing 127.0.0.1 via
        # us would otherwise be DNAT'ed before the martian check (moby#45610; defect 7)
        rules.append(("raw", ["PREROUTING", *dest, "!", "--in-interface", "lo",
                              "--protocol", proto, "--destination-port", str(host_port),
                              *tagged, "--jump", "DROP"]))
    return [
        *rules,
        ("nat", [DNAT, *dest, "--protocol", proto, "--destination-port", str(host_port),
                 *tagged, "--jump", "DNAT", "--to-destination", f"{ip}:{port}"]),
        ("filter", [PORTS, "--destination", f"{ip}/32", "!", "--in-interface", bridge,
                    "--out-interface", bridge, "--protocol", proto, "--destination-port",
                    str(port), *tagged, "--jump", "ACCEPT"]),
        # a container reaching its own published port through the host: hairpin NAT
        ("nat", [POSTROUTING, "--source", f"{ip}/32", "--destination", f"{ip}/32",
                 "--protocol", proto, "--destination-port", str(port), *tagged,
                 "--jump", "MASQUERADE"]),
    ]


def line(words: list[str]) -> str:
    """A rule as an iptables-restore line: it splits on blanks and knows only "..."."""
    return " ".join(f'"{w}"' if not w or any(c in w for c in " \t'\"") else w
                    for w in words)


def restore_text(lines: dict[str, list[str]]) -> str:
    """An iptables-restore batch: table -> rule lines."""
    text = ""
    for table in TABLES:
        if lines.get(table):
            text += f"*{table}\n" + "".join(rule + "\n" for rule in lines[table]) + "COMMIT\n"
    return text


def restore(host: Host, lines: dict[str, list[str]]) -> None:
    text = restore_text(lines)
    if text:
        # --noflush: add to the tables, never replace what is there; --wait: legacy
        # iptables fails at once while another program holds the xtables lock
        host.run(["iptables-restore", "--wait", "--noflush"], input=text,
                 effect=restored(lines))


def restored(lines: dict[str, list[str]]) -> Callable[[Facts], None]:
    """What a batch changes in the tables, for the plan (iptables lists every rule as
    `-A CHAIN ...`, inserted ones too)."""
    def planned(facts: Facts) -> None:
        for table, rules in lines.items():
            words = [shlex.split(rule) for rule in rules]
            facts.plan_rules(
                table, [["-A", *w[1:]] for w in words if w[0] in ("--append", "--insert")],
                [["-A", *w[1:]] for w in words if w[0] == "--delete"])

    return planned


def chain_command(host: Host, table: str, action: str, chain: str) -> None:
    """`iptables --new-chain`, `--flush` or `--delete-chain` of one of shellctr's chains."""
    def planned(facts: Facts) -> None:
        if action == "--new-chain":
            facts.plan_rules(table, [["-N", chain]], [])
        elif action == "--delete-chain":
            facts.plan_rules(table, [], [["-N", chain]])
        else:  # --flush: every rule of the chain
            facts.plan_rules(table, [], [w for w in facts.iptables_rules(table)
                                         if w[:2] == ["-A", chain]])

    host.run(["iptables", "--wait", "--table", table, action, chain], effect=planned)


def add(host: Host, rules: list[Rule]) -> None:
    """Append `rules`, in one batch."""
    lines: dict[str, list[str]] = {}
    for table, rule in rules:
        lines.setdefault(table, []).append(line(["--append", *rule]))
    restore(host, lines)


def owned(words: list[str], owners: tuple[str, ...]) -> bool:
    """Whether the listed rule `words` carries one of the tags `shellctr:OWNER`."""
    return any(words[i] == "--comment" and words[i + 1] in {f"shellctr:{o}" for o in owners}
               for i in range(len(words) - 1))


def remove_owned(host: Host, owners: tuple[str, ...],
                 listing: dict[str, list[list[str]]] | None = None,
                 tables: tuple[str, ...] = TABLES) -> None:
    """Delete every rule tagged with one of `owners` (probe first: idempotent)."""
    lines: dict[str, list[str]] = {}
    for table in tables:
        if listing is not None and table not in listing:
            continue  # the base: never in raw
        rules = listing[table] if listing is not None else host.facts.iptables_rules(table)
        for words in rules:
            if words[:1] == ["-A"] and owned(words, owners):
                lines.setdefault(table, []).append(line(["--delete", *long_form(words[1:])]))
    restore(host, lines)


def chains_present(listing: dict[str, list[list[str]]]) -> set[tuple[str, str]]:
    return {(table, words[1]) for table, rules in listing.items() for words in rules
            if words[:1] == ["-N"] and (table, words[1]) in CHAINS}


def ensure_base(host: Host) -> None:
    """shellctr's chains and the jumps into them, whatever part of them is missing."""
    listing = {table: host.facts.iptables_rules(table) for table in ("filter", "nat")}
    present = chains_present(listing)
    for table, chain in CHAINS:
        if (table, chain) not in present:
            chain_command(host, table, "--new-chain", chain)
    lines: dict[str, list[str]] = {}
    jumps = {(words[1], words[-1]) for table in listing for words in listing[table]
             if words[:1] == ["-A"] and owned(words, (BASE,))}
    for table, how, rule in base_rules():
        if (rule[0], rule[-1]) not in jumps:  # (chain, target) of each jump
            lines.setdefault(table, []).append(line([how, *rule]))
    restore(host, lines)


def remove_base(host: Host) -> None:
    """The jumps and shellctr's chains (when no network needs them any more)."""
    listing = {table: host.facts.iptables_rules(table) for table in ("filter", "nat")}
    remove_owned(host, (BASE,), listing)
    present = chains_present(listing)
    for table, chain in CHAINS:
        if (table, chain) in present:
            # only shellctr's own chain is flushed (its rules are all shellctr's)
            chain_command(host, table, "--flush", chain)
    for table, chain in CHAINS:
        if (table, chain) in present:
            chain_command(host, table, "--delete-chain", chain)
