"""`completion bash|zsh|fish`: a script that completes shellctr's verbs, their flags, and
container and image names (asked of `shellctr ps`/`images` as you type), made from the
command line's own parsers, so it never lags behind them."""

from __future__ import annotations

import argparse

from shellctr.cli.common import Context
from shellctr.cli.parser import Parser

SHELLS = ("bash", "zsh", "fish")
# the verbs whose operands are containers, and those whose operands are images
CONTAINER_OPERANDS = ("attach", "commit", "cp", "diff", "exec", "export", "inspect", "kill",
                      "logs", "pause", "port", "rename", "restart", "rm", "start", "stats",
                      "stop", "top", "unpause", "update", "wait")
IMAGE_OPERANDS = ("create", "history", "rmi", "run", "save", "tag")


def verb_flags() -> dict[str, list[str]]:
    """Each verb (groups as `image ls`) with its long and short flags."""
    from shellctr.cli.parser import build_parser

    found: dict[str, list[str]] = {}

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if not name.startswith("_"):
                        walk(sub, [*words, name])
        if words:
            found[" ".join(words)] = sorted(o for a in parser._actions
                                            for o in a.option_strings)

    walk(build_parser(), [])
    return found


def bash_script(flags: dict[str, list[str]]) -> str:
    top = sorted({verb.split()[0] for verb in flags})
    cases = "\n".join(f'        "{verb}") words="{" ".join(options)}" ;;'
                      for verb, options in sorted(flags.items()))
    groups = sorted({verb.split()[0] for verb in flags if " " in verb})
    subs = "\n".join(
        f'        {group}) words="{" ".join(v.split()[1] for v in flags if v.startswith(group + " "))}" ;;'  # noqa: E501
        for group in groups)
    return f"""# shellctr completion for bash: source <(shellctr completion bash)
_shellctr() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} verb="" sub="" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --root|--runroot) ((i++)) ;;
            -*) ;;
            *) if [[ -z $verb ]]; then verb=${{COMP_WORDS[i]}}
               elif [[ -z $sub ]]; then sub=${{COMP_WORDS[i]}}; fi ;;
        esac
    done
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "{" ".join(top)} --root --runroot --trace --dry-run --debug --version" -- "$cur"))
        return
    fi
    case $verb in
{subs}
    esac
    if [[ -n $words && -z $sub ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    local key=$verb
    [[ -n $sub && " {" ".join(groups)} " == *" $verb "* ]] && key="$verb $sub"
    words=""
    case $key in
{cases}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    elif [[ " {" ".join(CONTAINER_OPERANDS)} " == *" $verb "* ]]; then
        COMPREPLY=($(compgen -W "$(shellctr ps -a --format '{{{{.Names}}}}' 2>/dev/null)" -- "$cur"))
    elif [[ " {" ".join(IMAGE_OPERANDS)} " == *" $verb "* ]]; then
        COMPREPLY=($(compgen -W "$(shellctr images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' 2>/dev/null)" -- "$cur"))
    fi
}}
complete -F _shellctr shellctr
"""  # noqa: E501


def zsh_script(flags: dict[str, list[str]]) -> str:
    return ("#compdef shellctr\n# shellctr completion for zsh: source <(shellctr completion "
            "zsh)\nautoload -U +X bashcompinit && bashcompinit\n" + bash_script(flags))


def fish_script(flags: dict[str, list[str]]) -> str:
    lines = ["# shellctr completion for fish: shellctr completion fish | source",
             "complete -c shellctr -f"]
    top = sorted({verb.split()[0] for verb in flags})
    lines.append(f"complete -c shellctr -n '__fish_use_subcommand' -a '{' '.join(top)}'")
    for verb, options in sorted(flags.items()):
        if " " in verb:
            group, sub = verb.split(" ", 1)
            lines.append(f"complete -c shellctr -n '__fish_seen_subcommand_from {group}' "
                         f"-a '{sub}'")
        head = verb.split()[-1]
        for option in options:
            if option.startswith("--"):
                lines.append(f"complete -c shellctr -n '__fish_seen_subcommand_from {head}' "
                             f"-l {option[2:]}")
            else:
                lines.append(f"complete -c shellctr -n '__fish_seen_subcommand_from {head}' "
                             f"-s {option[1:]}")
    names = " ".join(CONTAINER_OPERANDS)
    lines.append(f"complete -c shellctr -n '__fish_seen_subcommand_from {names}' "
                 "-a '(shellctr ps -a --format \"{{.Names}}\" 2>/dev/null)'")
    images = " ".join(IMAGE_OPERANDS)
    lines.append(f"complete -c shellctr -n '__fish_seen_subcommand_from {images}' "
                 "-a '(shellctr images --format \"{{.Repository}}:{{.Tag}}\" 2>/dev/null)'")
    return "\n".join(lines) + "\n"


def cmd_completion(args: argparse.Namespace, ctx: Context) -> int:
    flags = verb_flags()
    script = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell](flags)
    print(script, end="")
    return 0


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    completion = verbs.add_parser("completion", help="a shell completion script for shellctr")
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(func=cmd_completion)
