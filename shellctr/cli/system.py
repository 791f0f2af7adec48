"""The verbs about the engine itself: `version`, `info` (`system info`), `system df`."""

from __future__ import annotations

import argparse

from shellctr.cli.common import Context, print_rows
from shellctr.cli.parser import Parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_formatted(record: dict[str, Any], spec: str | None, text: str) -> None:
    """A record as Docker prints one: its text form, `json`, or a template."""
    if spec == "json":
        import json

        print(json.dumps(record, separators=(",", ":")))
    elif spec:
        from shellctr.cli.gotemplate import Template

        print(Template(spec.replace("\\t", "\t").replace("\\n", "\n")).execute(record))
    else:
        print(text)


# -- version -----------------------------------------------------------------------------
def cmd_version(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.info import version_record

    record = version_record(ctx.host)
    client, server = record["Client"], record["Server"]
    engine = server["Components"][0]["Details"]
    text = "\n".join([
        "Client:",
        f" Version:           {client['Version']}",
        f" API version:       {client['ApiVersion']}",
        f" Python version:    {client['GoVersion'].removeprefix('python')}",
        f" OS/Arch:           {client['Os']}/{client['Arch']}",
        f" Context:           {client['Context']}",
        "",
        f"Server: {server['Platform']['Name']}",
        " Engine:",
        f"  Version:          {server['Version']}",
        f"  API version:      {server['ApiVersion']} (minimum version "
        f"{server['MinAPIVersion']})",
        f"  Python version:   {engine['GoVersion'].removeprefix('python')}",
        f"  OS/Arch:          {server['Os']}/{server['Arch']}",
        f"  Kernel version:   {server['KernelVersion']}",
    ])
    print_formatted(record, args.format, text)
    return 0


# -- info --------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import bytes_size
    from shellctr.engine.info import info_record, version_record

    record = info_record(ctx.host, ctx.store)
    client = version_record(ctx.host)["Client"]
    record = {"ClientInfo": {"Debug": False, "Version": client["Version"],
                             "Context": "default", "Plugins": [], "Warnings": None},
              **record}
    driver_status = [f"  {key}: {value}" for key, value in record["DriverStatus"]]
    text = "\n".join([
        "Client:",
        f" Version:    {client['Version']}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {record['Containers']}",
        f"  Running: {record['ContainersRunning']}",
        f"  Paused: {record['ContainersPaused']}",
        f"  Stopped: {record['ContainersStopped']}",
        f" Images: {record['Images']}",
        f" Server Version: {record['ServerVersion']}",
        f" Storage Driver: {record['Driver']}",
        *driver_status,
        f" Logging Driver: {record['LoggingDriver']}",
        f" Cgroup Driver: {record['CgroupDriver']}",
        f" Cgroup Version: {record['CgroupVersion']}",
        " Plugins:",
        f"  Volume: {' '.join(record['Plugins']['Volume'])}",
        f"  Network: {' '.join(record['Plugins']['Network'])}",
        f"  Log: {' '.join(record['Plugins']['Log'])}",
        f" Runtimes: {' '.join(record['Runtimes'])}",
        f" Default Runtime: {record['DefaultRuntime']}",
        " Security Options:",
        *(f"  {option.removeprefix('name=')}" for option in record["SecurityOptions"]),
        f" Kernel Version: {record['KernelVersion']}",
        f" Operating System: {record['OperatingSystem']}",
        f" OSType: {record['OSType']}",
        f" Architecture: {record['Architecture']}",
        f" CPUs: {record['NCPU']}",
        f" Total Memory: {bytes_size(record['MemTotal'])}",
        f" Name: {record['Name']}",
        f" ID: {record['ID']}",
        f" Docker Root Dir: {record['DockerRootDir']}",
        " Debug Mode: false",
        f" Live Restore Enabled: {str(record['LiveRestoreEnabled']).lower()}",
    ])
    print_formatted(record, args.format, text)
    return 0


# -- system df -------------------------------------------------------------------------------
DF_DEFAULT_FORMAT = ("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                     "{{.Reclaimable}}")
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def reclaimable(amount: int, total: int, percent: bool = True) -> str:
    """Docker's RECLAIMABLE: the size, and its share of the total when there is one."""
    from shellctr.cli.textfmt import human_size

    if percent and total > 0:
        return f"{human_size(amount)} ({int(100 * amount / total)}%)"
    return human_size(amount)


def cmd_df(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import human_size
    from shellctr.engine.info import disk_usage

    usage = disk_usage(ctx.host, ctx.store)
    images, containers, volumes = usage["images"], usage["containers"], usage["volumes"]
    image_total = sum(item["size"] for item in images)
    image_active = [item for item in images if item["containers"]]
    container_total = sum(item["size_rw"] for item in containers)
    running = [item for item in containers if item["state"]["status"] == "running"]
    volume_total = sum(item["size"] for item in volumes)
    rows = [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(image_active)),
         "Size": human_size(image_total),
         "Reclaimable": reclaimable(image_total - sum(i["size"] for i in image_active),
                                    image_total)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(len(running)), "Size": human_size(container_total),
         "Reclaimable": reclaimable(container_total - sum(c["size_rw"] for c in running),
                                    container_total)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes if v["links"])), "Size": human_size(volume_total),
         "Reclaimable": reclaimable(sum(v["size"] for v in volumes if not v["links"]),
                                    volume_total)},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
         "Reclaimable": "0B"},
    ]
    if not args.verbose:
        print_rows(rows, args.format, DF_DEFAULT_FORMAT, DF_HEADERS)
        return 0
    print_verbose_df(usage)
    return 0


def print_verbose_df(usage: dict[str, Any]) -> None:
    """`system df -v`: each image, container and volume, as Docker's sections."""
    from datetime import datetime

    from shellctr.cli.textfmt import command_column, human_ago, human_size, table

    image_rows = []
    for item in usage["images"]:
        image = item["image"]
        tags = image.get("repo_tags") or ["<none>:<none>"]
        for tag in tags:
            repository, _, name = tag.rpartition(":")
            image_rows.append([repository, name, image["id"][:12],
                               human_ago(datetime.fromisoformat(image["created"])),
                               human_size(item["size"]), human_size(item["shared"]),
                               human_size(item["size"] - item["shared"]),
                               str(item["containers"])])
    print("Images space usage:\n")
    print(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
                 "UNIQUE SIZE", "CONTAINERS"], image_rows))
    container_rows = []
    for item in usage["containers"]:
        container, state = item["container"], item["state"]
        volumes = sum(1 for mount in container["mounts"] if mount["type"] == "volume")
        container_rows.append([container["id"][:12], container["image"],
                               command_column([container["path"], *container["args"]], True),
                               str(volumes), human_size(item["size_rw"]),
                               human_ago(datetime.fromisoformat(container["created"])),
                               state["status"], container["name"]])
    print("\nContainers space usage:\n")
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED",
                 "STATUS", "NAMES"], container_rows))
    print("\nLocal Volumes space usage:\n")
    print(table(["VOLUME NAME", "LINKS", "SIZE"],
                [[v["name"], str(v["links"]), human_size(v["size"])] for v in usage["volumes"]]))
    print("\nBuild cache usage: 0B\n")
    print(table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
                []))


# -- the command line --------------------------------------------------------------------
FORMAT_HELP = "'json', or a Go template"


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `version` and `info` to the command line (`system info`/`df`: register_system)."""
    version = verbs.add_parser("version", help="shellctr's version, client and engine")
    version.add_argument("-f", "--format", metavar="FORMAT", help=FORMAT_HELP)
    version.set_defaults(func=cmd_version)
    info = verbs.add_parser("info", help="the engine's state: containers, images, host")
    info.add_argument("-f", "--format", metavar="FORMAT", help=FORMAT_HELP)
    info.set_defaults(func=cmd_info)


def register_system(system: argparse._SubParsersAction[Parser]) -> None:
    """`system info` and `system df` (the `system` group is network.py's)."""
    info = system.add_parser("info", help="the engine's state: containers, images, host")
    info.add_argument("-f", "--format", metavar="FORMAT", help=FORMAT_HELP)
    info.set_defaults(func=cmd_info)
    df = system.add_parser("df", help="disk space used by images, containers, volumes")
    df.add_argument("-v", "--verbose", action="store_true", help="each object's usage")
    df.add_argument("--format", metavar="FORMAT", help="'table', 'json', or a Go template")
    df.set_defaults(func=cmd_df)
