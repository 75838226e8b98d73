"""The `ringlb` command (SPEC §6).

    ringlb serve [--port 5000] [--replicas 3] [--backend auto|process|docker] [--hash NAME] ...
    ringlb replica --id 1 --port 0          (the replica server itself)
    ringlb image                            (build the Docker image ringlb/replica)
    ringlb cleanup --cluster NAME           (remove what a crashed launcher left behind)
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Callable

from ringlb.launcher import Launcher, LauncherConfig

_DEFAULTS = LauncherConfig()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _port(text: str) -> int:
    value = _int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port 0..65535, got {value}")
    return value


def _bounded_load(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value == 0 or (math.isfinite(value) and value >= 1.0)):
        raise argparse.ArgumentTypeError(f"must be 0 (off) or at least 1.0, got {text}")
    return value


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"must be yes or no, got {text!r}")


def _raise_fd_limit() -> None:
    """Let the router hold --max-connections sockets: raise the soft limit on open files
    to the hard one (the usual soft default, 1024, is a tenth of the default cap)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _schemes() -> list[str]:
    import ringlb

    return list(ringlb.ring_schemes())


def _add_serve(sub: argparse._SubParsersAction) -> None:
    d = _DEFAULTS
    p = sub.add_parser(
        "serve",
        help="run the load balancer: N replicas, the router and the heartbeat engine",
        description=(
            "Start N replicas (processes or Docker containers), the consistent-hashing router "
            "and the heartbeat engine. Dead replicas are replaced with the same id and "
            "hostname; /add and /rm change the membership at run time. Every membership "
            "change and failure is logged in one line. SIGINT/SIGTERM stop accepting, drain, "
            "and remove the replicas this launcher started."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = p.add_argument_group("router")
    net.add_argument("--host", default=d.host, help="address the router listens on")
    net.add_argument("--port", type=_port, default=d.port,
                     help="port the router listens on (0: any free port, printed at start)")
    net.add_argument("--threads", type=_int_at_least(0), default=d.threads,
                     help="router I/O threads (0: one per core)")
    net.add_argument("--key", default=d.key,
                     help="request id source: random | header:NAME | query:NAME | cookie:NAME | "
                          "path | client-ip")
    net.add_argument("--retries", type=_int_at_least(0), default=d.retries,
                     help="further distinct replicas tried when forwarding fails")
    net.add_argument("--bounded-load", type=_bounded_load, default=d.bounded_load,
                     help="c of consistent hashing with bounded loads (0: off)")
    net.add_argument("--connect-timeout", type=_positive_float, default=d.connect_timeout,
                     help="seconds to connect to a replica before trying the next one")
    net.add_argument("--upstream-timeout", type=_positive_float, default=d.upstream_timeout,
                     help="seconds a replica has to answer a forwarded request")

    lim = p.add_argument_group("client limits")
    lim.add_argument("--header-timeout", type=_positive_float, default=d.header_timeout,
                     help="seconds a client has to send a request header; a new connection "
                          "that sends nothing is closed this long after it was accepted")
    lim.add_argument("--idle-timeout", type=_positive_float, default=d.idle_timeout,
                     help="seconds a keep-alive connection may wait between requests")
    lim.add_argument("--max-connections", type=_int_at_least(1), default=d.max_connections,
                     help="client connections open at once; past it new ones get 503")
    lim.add_argument("--max-header-bytes", type=_int_at_least(64), default=d.max_header_bytes,
                     help="bytes of request line and header fields, CRLFs included; beyond: 431")
    lim.add_argument("--max-body-bytes", type=_int_at_least(0), default=d.max_body_bytes,
                     help="bytes of request body; beyond: 413")
    lim.add_argument("--max-idle-upstream", type=_int_at_least(0), default=d.max_idle_upstream,
                     help="idle keep-alive connections kept open to each replica")

    adm = p.add_argument_group(
        "admin API", "GET /rep is open. POST /add and DELETE /rm change the membership: "
                     "without a token they are served on loopback addresses only (403 "
                     "elsewhere).")
    adm.add_argument("--admin-token", default=None, metavar="TOKEN",
                     help="/add and /rm need 'Authorization: Bearer TOKEN' (else 401); default: "
                          "the environment variable RINGLB_ADMIN_TOKEN, which, unlike a flag, "
                          "other users cannot read with ps")
    adm.add_argument("--admin-listen", default=d.admin_listen, metavar="HOST:PORT",
                     help="a second listener that serves the admin API, e.g. 127.0.0.1:5001 "
                          "([::1]:5001 for IPv6); empty: none")
    adm.add_argument("--admin-on-data-port", type=_yes_no, default=d.admin_on_data_port,
                     metavar="yes|no",
                     help="serve /add and /rm on the data port too; no: they are proxied to the "
                          "replicas like any other path")
    adm.add_argument("--min-replicas", type=_int_at_least(0), default=d.min_replicas,
                     help="/rm may not leave fewer replicas registered")
    adm.add_argument("--max-replicas", type=_int_at_least(0), default=d.max_replicas,
                     help="/add may not make more replicas (one /add adds at most that many); "
                          "0: the ring's capacity, at most 64")

    ring = p.add_argument_group("hash ring")
    ring.add_argument("--hash", dest="scheme", default=d.scheme,
                      help="hash scheme by name (see `ringlb schemes`): assignment, linear, ...")
    ring.add_argument("--slots", type=_int_at_least(1), default=d.slots,
                      help="M: slots on the ring (maglev: table size, a prime); "
                           "None: the scheme's own (512; maglev 65537)")
    ring.add_argument("--virtual-nodes", type=_int_at_least(1), default=d.virtual_nodes,
                      help="K: virtual servers per replica (ketama: points per replica); "
                           "None: the scheme's own (9; ketama 2048)")
    ring.add_argument("--probing", choices=("linear", "quadratic"), default=d.probing,
                      help="where a virtual server goes when its slot is taken")

    reps = p.add_argument_group("replicas")
    reps.add_argument("-n", "--replicas", type=_int_at_least(0), default=d.replicas,
                      help="N: replicas to keep alive")
    reps.add_argument("--backend", choices=("auto", "process", "docker"), default=d.backend,
                      help="where replicas run; auto: docker when its daemon answers")
    reps.add_argument("--cluster", default=None,
                      help="label of this launcher's replicas; a launcher restarted with the same "
                           "cluster adopts the replicas still running (default: lb<PORT>)")
    reps.add_argument("--keep-replicas", action="store_true",
                      help="leave the replicas running at shutdown, for a later launcher to adopt")
    reps.add_argument("--hostname-prefix", default=d.hostname_prefix,
                      help="names of the replicas the launcher creates: <prefix><id>")
    reps.add_argument("--replica-threads", type=_int_at_least(1), default=d.replica_threads,
                      help="I/O threads of each replica")
    reps.add_argument("--start-timeout", type=_positive_float, default=d.start_timeout,
                      help="seconds a new replica has to answer /heartbeat")
    reps.add_argument("--docker-memory", default=d.docker_memory,
                      help="memory limit of each replica container")
    reps.add_argument("--docker-cpus", type=_positive_float, default=d.docker_cpus,
                      help="CPU limit of each replica container")

    hb = p.add_argument_group("health checks")
    hb.add_argument("--heartbeat-interval", type=_positive_float, default=d.heartbeat_interval,
                    help="seconds between two probes of GET /heartbeat on each replica")
    hb.add_argument("--heartbeat-timeout", type=_positive_float, default=d.heartbeat_timeout,
                    help="seconds a probe may take before it counts as a miss")
    hb.add_argument("--fall", type=_int_at_least(1), default=d.fall,
                    help="misses in a row that take a replica off the ring and replace it")
    hb.add_argument("--rise", type=_int_at_least(1), default=d.rise,
                    help="successes in a row that bring a replacement onto the ring")

    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging threshold")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    cfg = LauncherConfig(
        host=args.host, port=args.port, replicas=args.replicas, backend=args.backend,
        scheme=args.scheme, key=args.key, slots=args.slots, virtual_nodes=args.virtual_nodes,
        probing=args.probing, threads=args.threads, cluster=args.cluster,
        heartbeat_interval=args.heartbeat_interval, heartbeat_timeout=args.heartbeat_timeout,
        fall=args.fall, rise=args.rise, retries=args.retries, bounded_load=args.bounded_load,
        connect_timeout=args.connect_timeout, upstream_timeout=args.upstream_timeout,
        keep_replicas=args.keep_replicas, replica_threads=args.replica_threads,
        docker_memory=args.docker_memory, docker_cpus=args.docker_cpus,
        start_timeout=args.start_timeout, hostname_prefix=args.hostname_prefix,
        header_timeout=args.header_timeout, idle_timeout=args.idle_timeout,
        max_connections=args.max_connections, max_header_bytes=args.max_header_bytes,
        max_body_bytes=args.max_body_bytes, max_idle_upstream=args.max_idle_upstream,
        admin_token=(args.admin_token if args.admin_token is not None
                     else os.environ.get("RINGLB_ADMIN_TOKEN", "")),
        admin_listen=args.admin_listen, admin_on_data_port=args.admin_on_data_port,
        min_replicas=args.min_replicas, max_replicas=args.max_replicas)
    _raise_fd_limit()

    def ready(lb: Launcher) -> None:
        admin = f", admin API on {lb.admin_url}" if lb.admin_url else ""
        print(f"ringlb serving on {lb.listen_url} with {lb.target} replicas ({lb.backend_name} "
              f"backend, cluster {lb.cluster}{admin})", flush=True)

    try:
        Launcher(cfg).serve_forever(ready)
    except (ValueError, RuntimeError, OSError) as e:
        logging.getLogger("ringlb").error("cannot start: %s", e)
        return 1
    return 0


def _add_replica(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replica", add_help=False,
        help="run the replica server (ringlb-replica) in the foreground; "
             "its flags: --id ID --host ADDR --port PORT --threads N",
        description="Runs the static ringlb-replica executable with the arguments given.")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=_replica)


def _replica(args: argparse.Namespace) -> int:
    return _exec_replica(args.argv)


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
    p.add_argument("--backend", choices=("auto", "process", "docker"), default="auto",
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


def build_parser() -> argparse.ArgumentParser:
    """The `ringlb` argument parser (exposed for tests and documentation)."""
    import ringlb

    parser = argparse.ArgumentParser(
        prog="ringlb",
        description="ringlb: a consistent-hashing HTTP load balancer with a C++ core. "
                    "Run `ringlb serve --help` for the load balancer's flags.")
    parser.add_argument("--version", action="version", version=f"ringlb {ringlb.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_replica(sub)
    _add_image(sub)
    _add_cleanup(sub)
    _add_schemes(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ringlb` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replica"]:
        # argparse would take the replica's own flags (--id, --port) for ours.
        return _exec_replica(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "INFO")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
