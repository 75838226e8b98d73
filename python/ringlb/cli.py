"""The `ringlb` command (SPEC §6).

    ringlb serve [--port 5000] [--replicas 3] [--backend auto|process|docker] [--hash NAME] ...
    ringlb replica --id 1 --port 0          (the replica server itself)
    ringlb image                            (build the Docker image ringlb/replica)
    ringlb cleanup --cluster NAME           (remove what a crashed launcher left behind)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from ringlb import log_format, serve_settings
from ringlb.backends import backend_names
from ringlb.fd_limit import raise_fd_limit
from ringlb.launcher import Launcher, LauncherConfig


def _schemes() -> list[str]:
    import ringlb

    return list(ringlb.ring_schemes())


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the load balancer: N replicas, the router and the heartbeat engine",
        description=(
            "Start N replicas (processes or Docker containers), the consistent-hashing router "
            "and the heartbeat engine. Dead replicas are replaced with the same id and "
            "hostname; /add and /rm change the membership at run time. Every membership "
            "change and failure is logged in one line. SIGINT/SIGTERM stop accepting, drain, "
            "and remove the replicas this launcher started; SIGHUP reloads --config."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # a flag in argv is one of ours, exactly (serve_settings)
    )
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file whose keys are the long flag names (replicas = 3, "
                        "header-timeout = 5, ...); flags on the command line win; SIGHUP "
                        "reloads it")
    serve_settings.add_arguments(p)
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging threshold (any case)")
    p.add_argument("--log-format", default="text", choices=log_format.FORMATS,
                   help="text lines, or one JSON object per line (time, level, logger, event, "
                        "id, hostname, detail)")
    p.set_defaults(func=_serve)


def _serve_config(args: argparse.Namespace, argv: Sequence[str]) -> LauncherConfig:
    """The launcher's settings: defaults, then --config's file, then the command line."""
    values = {s.field: getattr(args, s.field) for s in serve_settings.SETTINGS}
    if values["admin_token"] is None:
        values["admin_token"] = os.environ.get("RINGLB_ADMIN_TOKEN", "")
    if args.config:
        explicit = serve_settings.given_on_command_line(argv)
        for field, value in serve_settings.load_file(args.config).items():
            if field not in explicit:
                values[field] = value
    return serve_settings.config_from(values)


def _serve(args: argparse.Namespace) -> int:
    argv = args.argv
    try:
        cfg = _serve_config(args, argv)
    except ValueError as e:
        logging.getLogger("ringlb").error("cannot start: %s", e)
        return 1
    raise_fd_limit()

    def ready(lb: Launcher) -> None:
        admin = f", admin API on {lb.admin_url}" if lb.admin_url else ""
        print(f"ringlb serving on {lb.listen_url} with {lb.target} replicas ({lb.backend_name} "
              f"backend, cluster {lb.cluster}{admin})", flush=True)

    reload = None
    if args.config:
        def reload() -> LauncherConfig:
            return _serve_config(args, argv)

    try:
        Launcher(cfg).serve_forever(ready, reload=reload)
    except (ValueError, RuntimeError, OSError) as e:
        logging.getLogger("ringlb").error("cannot start: %s", e)
        return 1
    return 0


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check a config file for `ringlb serve --config`")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate FILE without starting anything",
                            description="Exit 0 and print the settings FILE changes when it is "
                                        "valid; otherwise print what is wrong and exit 2.")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    try:
        values = serve_settings.load_file(args.file)
        serve_settings.config_from(values)
    except ValueError as e:
        print(f"ringlb: {e}" if str(e).startswith(str(args.file)) else f"ringlb: {args.file}: {e}",
              file=sys.stderr)
        return 2
    print(f"{args.file}: ok ({len(values)} settings)")
    for field, value in values.items():
        s = serve_settings.BY_FIELD[field]
        shown = "<hidden>" if field == "admin_token" else repr(value)
        print(f"  {s.key} = {shown}")
    return 0


def _add_replica(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replica", add_help=False,
        help="run the replica server (ringlb-replica) in the foreground; "
             "its flags: --id ID --host ADDR --port PORT --threads N",
        description="Runs the static ringlb-replica executable with the arguments given.")
    # Listed for --help only: main() execs the replica before argparse sees its flags.
    p.add_argument("argv", nargs=argparse.REMAINDER)


def _exec_replica(argv: Sequence[str]) -> int:
    """Replace this process with ringlb-replica and `argv` (its flags go through untouched)."""
    from ringlb.paths import replica_binary

    binary = str(replica_binary())
    os.execv(binary, [binary, *argv])
    return 1  # not reached


def _add_image(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="build the Docker image ringlb/replica (FROM scratch)",
                       description="Build ringlb/replica from docker/Dockerfile.replica and the "
                                   "package's static binary unless it exists; print its tag.")
    p.set_defaults(func=_image)


def _image(args: argparse.Namespace) -> int:
    import docker

    from ringlb.backends.docker import DOCKER_ERRORS, ensure_image

    try:
        client = docker.from_env(timeout=60)
        print(ensure_image(client))
    except DOCKER_ERRORS as e:
        logging.getLogger("ringlb").error("cannot build the image: %s", e)
        return 1
    return 0


def _add_cleanup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cleanup", help="remove the replicas a crashed launcher left behind",
                       description="Remove every replica of a cluster (containers, their network, "
                                   "processes), e.g. after the launcher was killed.")
    p.add_argument("--cluster", required=True, help="the cluster label (see serve --cluster)")
    p.add_argument("--backend", choices=backend_names(), default="auto",
                   help="where the replicas run")
    p.set_defaults(func=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    from ringlb.launcher import cleanup

    try:
        n = cleanup(args.cluster, args.backend)
    except (ValueError, RuntimeError, OSError) as e:
        logging.getLogger("ringlb").error("cleanup failed: %s", e)
        return 1
    print(f"removed {n} replicas of cluster {args.cluster}")
    return 0


def _add_schemes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schemes", help="list the hash schemes --hash accepts")
    p.set_defaults(func=lambda _args: print("\n".join(_schemes())) or 0)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="a running router's replicas, ring and counters (its "
                                      "admin listener's /status) as a table")
    p.add_argument("--admin", metavar="URL", default=None,
                   help="the router's admin listener (--admin-listen), e.g. "
                        "http://127.0.0.1:5001 (default: $RINGLB_ADMIN_URL, else that)")
    p.add_argument("--json", action="store_true", help="print /status as it came")
    p.add_argument("--events", metavar="N", type=_non_negative, default=5,
                   help="show the router's N most recent events under the table (default: 5; "
                        "0: none)")
    p.set_defaults(func=_status)


def _non_negative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def _status(args: argparse.Namespace) -> int:
    from ringlb import status

    try:
        data = status.fetch(args.admin or status.admin_from_env())
    except status.StatusError as e:
        print(f"ringlb status: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else status.render(data, events=args.events))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `ringlb` argument parser (exposed for tests and documentation)."""
    import ringlb

    parser = argparse.ArgumentParser(
        prog="ringlb",
        description="ringlb: a consistent-hashing HTTP load balancer with a C++ core. "
                    "Run `ringlb serve --help` for the load balancer's flags.")
    parser.add_argument("-V", "--version", action="version",
                        version=f"ringlb {ringlb.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_replica(sub)
    _add_image(sub)
    _add_cleanup(sub)
    _add_schemes(sub)
    _add_config(sub)
    _add_status(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ringlb` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replica"]:
        # argparse would take the replica's own flags (--id, --port) for ours.
        return _exec_replica(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    log_format.configure(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"),
                         sys.stderr)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
