"""Every setting of `ringlb serve`, defined once.

Each Setting names its LauncherConfig field, its long flag (which is also its
key in a config file), how a text is parsed and checked, its help group and
what it is for. (Which settings a running launcher applies on SIGHUP is the
launcher's to say: Launcher.LIVE_SETTINGS.) The command-line
flags, the config file (`ringlb serve --config FILE`, `ringlb config check
FILE`) and the reload all come from SETTINGS; defaults come from
LauncherConfig, so `--help` shows the values the launcher really uses.

    # ringlb.toml: keys are the long flag names
    replicas = 3
    header-timeout = 5
    hostname-prefix = "Node"
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ringlb.backends import backend_names
from ringlb.backends.base import (
    REPLICA_ADDRESS_MODES,
    ReplicaCommand,
    parse_env,
    validate_health_path,
)
from ringlb.launcher import LauncherConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key and the file."""


# -- value parsers (argparse `type=` functions, also applied to config values) --------------

def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
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


def port(text: str) -> int:
    value = int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port 0..65535, got {value}")
    return value


def bounded_load(text: str) -> float:
    value = _number(text)
    if not (value == 0 or (math.isfinite(value) and value >= 1.0)):
        raise argparse.ArgumentTypeError(f"must be 0 (off) or at least 1.0, got {text}")
    return value


def yes_no(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"must be yes or no, got {text!r}")


def text(value: str) -> str:
    return str(value)


def on_off(text: str) -> bool:
    """A setting that is on by default: --FLAG and --no-FLAG on the command line, true or
    false in a config file."""
    return yes_no(text)


def health_path(value: str) -> str:
    try:
        return validate_health_path(str(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def env_pair(value: str) -> str:
    try:
        parse_env([str(value)])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return str(value)


def replica_weight(text: str) -> int:
    from ringlb import MAX_WEIGHT

    value = int_at_least(1)(text)
    if value > MAX_WEIGHT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WEIGHT}, got {value}")
    return value


def upstream(value: str) -> str:
    from ringlb.backends.static import Upstream

    try:
        Upstream.parse(str(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return str(value)


def replica_command(value: str) -> str:
    try:
        ReplicaCommand(str(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return str(value)


@dataclass(frozen=True)
class Setting:
    field: str                   # LauncherConfig field
    flag: str                    # long flag; its name without "--" is the config-file key
    group: str                   # help group
    help: str
    # argparse type, also applied to config values; None: an on/off switch (store_true)
    parse: Callable[[str], Any] | None = text
    short: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    show_default: bool = True    # False: secrets
    repeat: bool = False         # given any number of times (a list in a config file)

    @property
    def key(self) -> str:
        return self.flag[2:]


ROUTER, LIMITS, ADMIN, RING, REPLICAS, HEALTH = (
    "router", "client limits", "admin API", "hash ring", "replicas", "health checks")

SETTINGS: tuple[Setting, ...] = (
    Setting("host", "--host", ROUTER, "address the router listens on"),
    Setting("port", "--port", ROUTER,
            "port the router listens on (0: any free port, printed at start)", port),
    Setting("threads", "--threads", ROUTER,
            "router I/O threads (0: one per CPU the process may use, by its affinity mask "
            "and cgroup CPU quota)", int_at_least(0)),
    Setting("replica_header", "--replica-header", ROUTER,
            "name the replica that answered in an X-Ringlb-Replica response field "
            "(--no-replica-header: do not)", on_off),
    Setting("access_log", "--access-log", ROUTER,
            "append a line per request (time, client, method, path, key, replica, status, "
            "duration, retries) to this file, written off the I/O threads; -: standard output",
            metavar="PATH|-", show_default=False),
    Setting("key", "--key", ROUTER,
            "request id source: random | header:NAME | query:NAME | cookie:NAME | path | "
            "client-ip"),
    Setting("retries", "--retries", ROUTER,
            "further distinct replicas tried when forwarding fails", int_at_least(0)),
    Setting("bounded_load", "--bounded-load", ROUTER,
            "c of consistent hashing with bounded loads (0: off)", bounded_load),
    Setting("connect_timeout", "--connect-timeout", ROUTER,
            "seconds to connect to a replica before trying the next one", positive_float),
    Setting("upstream_timeout", "--upstream-timeout", ROUTER,
            "seconds a replica has to answer a forwarded request", positive_float),

    Setting("header_timeout", "--header-timeout", LIMITS,
            "seconds a client has to send a request header; a new connection that sends "
            "nothing is closed this long after it was accepted", positive_float),
    Setting("idle_timeout", "--idle-timeout", LIMITS,
            "seconds a keep-alive connection may wait between requests", positive_float),
    Setting("max_connections", "--max-connections", LIMITS,
            "client connections open at once; past it new ones get 503", int_at_least(1)),
    Setting("max_header_bytes", "--max-header-bytes", LIMITS,
            "bytes of request line and header fields, CRLFs included; beyond: 431",
            int_at_least(64)),
    Setting("max_body_bytes", "--max-body-bytes", LIMITS,
            "bytes of a request body; beyond: 413; 0: no limit (admin bodies keep 64 KiB). "
            "Bodies over 64 KiB are streamed both ways, not held",
            int_at_least(0)),
    Setting("max_idle_upstream", "--max-idle-upstream", LIMITS,
            "idle keep-alive connections kept open to each replica", int_at_least(0)),

    Setting("admin_token", "--admin-token", ADMIN,
            "/add and /rm need 'Authorization: Bearer TOKEN' (else 401); default: the "
            "environment variable RINGLB_ADMIN_TOKEN, which, unlike a flag, other users cannot "
            "read with ps", metavar="TOKEN", show_default=False),
    Setting("admin_listen", "--admin-listen", ADMIN,
            "a second listener that serves the admin API, e.g. 127.0.0.1:5001 ([::1]:5001 for "
            "IPv6); empty: none", metavar="HOST:PORT"),
    Setting("admin_on_data_port", "--admin-on-data-port", ADMIN,
            "serve /add and /rm on the data port too; no: they are proxied to the replicas "
            "like any other path", yes_no, metavar="yes|no"),
    Setting("min_replicas", "--min-replicas", ADMIN,
            "/rm may not leave fewer replicas registered", int_at_least(0)),
    Setting("max_replicas", "--max-replicas", ADMIN,
            "/add may not make more replicas (one /add adds at most that many); 0: the ring's "
            "capacity, at most 64", int_at_least(0)),

    Setting("scheme", "--hash", RING,
            "hash scheme by name (see `ringlb schemes`): assignment, linear, ..."),
    Setting("slots", "--slots", RING,
            "M: slots on the ring (maglev: table size, a prime); None: the scheme's own "
            "(512; maglev 65537)", int_at_least(1)),
    Setting("virtual_nodes", "--virtual-nodes", RING,
            "K: virtual servers per replica (ketama: points per replica); None: the scheme's "
            "own (9; ketama 2048)", int_at_least(1)),
    Setting("probing", "--probing", RING,
            "where a virtual server goes when its slot is taken", choices=("linear", "quadratic")),
    Setting("canonical_ring", "--canonical-ring", RING,
            "make the ring a function of the replica set alone, whatever order replicas "
            "joined and left in, so that several routers of one cluster agree (slot schemes: "
            "a fresh build in ascending id order on every change, which may move a few keys "
            "between replicas that stay; ketama and maglev always are; always on with "
            "--backend swarm)", None),

    Setting("replicas", "--replicas", REPLICAS, "N: replicas to keep alive", int_at_least(0),
            short="-n"),
    Setting("backend", "--backend", REPLICAS,
            "where replicas run; auto: docker when its daemon answers; swarm: a Swarm service "
            "per replica, which outlives the router (--cluster names it for every router)",
            choices=backend_names()),
    Setting("cluster", "--cluster", REPLICAS,
            "label of this launcher's replicas; a launcher restarted with the same cluster "
            "adopts the replicas still running (default: lb<PORT>)", show_default=False),
    Setting("keep_replicas", "--keep-replicas", REPLICAS,
            "leave the replicas running at shutdown, for a later launcher to adopt", None),
    Setting("hostname_prefix", "--hostname-prefix", REPLICAS,
            "names of the replicas the launcher creates: <prefix><id>"),
    Setting("replica_threads", "--replica-threads", REPLICAS, "I/O threads of each replica",
            int_at_least(1)),
    Setting("replica_weight", "--replica-weight", REPLICAS,
            "ring weight of each replica: its share is weight / the sum of weights (ketama, "
            "ketama-xxh3, maglev; slot schemes take 1 only); /add's \"weights\" and an "
            "upstream's ,weight=N override it", replica_weight, metavar="N"),
    Setting("replica_command", "--replica-command", REPLICAS,
            "run your own service as the replicas instead of ringlb-replica: a command with "
            "{port}, {id} and {hostname} (also in the environment as PORT, SERVER_ID, "
            "HOSTNAME); process backend: it listens on 127.0.0.1:{port}, docker: the "
            "container's command, {port} the --replica-port; e.g. "
            "'python3 -m http.server {port} --bind 127.0.0.1'", replica_command,
            metavar="COMMAND", show_default=False),
    Setting("replica_image", "--replica-image", REPLICAS,
            "run your own service as the replicas (docker, swarm): a local image, which "
            "ringlb never pulls (swarm: on every node)", metavar="IMAGE", show_default=False),
    Setting("replica_port", "--replica-port", REPLICAS,
            "the port your service listens on inside its container (docker, swarm)", port),
    Setting("replica_env", "--replica-env", REPLICAS,
            "KEY=VALUE in each replica's environment (docker, swarm; repeatable)", env_pair,
            metavar="KEY=VALUE", repeat=True),
    Setting("replica_read_only", "--replica-read-only", REPLICAS,
            "run each replica container with a read-only root filesystem "
            "(--no-replica-read-only: writable, for services that write)", on_off),
    Setting("replica_user", "--replica-user", REPLICAS,
            "the user each replica container runs as (docker, swarm; default: the image's)",
            metavar="USER", show_default=False),
    Setting("upstreams", "--upstream", REPLICAS,
            "a server to front with --backend static, which ringlb does not start: "
            "NAME=HOST:PORT (repeatable; HOST a name or an address, [v6] in brackets); "
            "NAME=HOST:PORT,weight=N gives it ring weight N (ketama, maglev)",
            upstream, metavar="NAME=HOST:PORT[,weight=N]", repeat=True),
    Setting("resolve_interval", "--resolve-interval", REPLICAS,
            "seconds between two resolutions of a replica's DNS name (a static upstream's "
            "HOST) by the router, which also resolves it again when the replica goes down "
            "(swarm: between two looks at the services besides watching Swarm's events)",
            positive_float),
    Setting("start_timeout", "--start-timeout", REPLICAS,
            "seconds a new replica has to answer the health path", positive_float),
    Setting("docker_memory", "--docker-memory", REPLICAS,
            "memory limit of each replica container"),
    Setting("docker_cpus", "--docker-cpus", REPLICAS, "CPU limit of each replica container",
            positive_float),
    Setting("docker_network", "--docker-network", REPLICAS,
            "an existing Docker network to attach the replicas to (swarm: an overlay "
            "network), which ringlb neither creates nor removes (empty: ringlb makes "
            "ringlb-<cluster>)", metavar="NETWORK"),
    Setting("docker_address", "--docker-address", REPLICAS,
            "how the router reaches a replica container: published (a port Docker publishes "
            "on 127.0.0.1; swarm: in host mode on the task's node) or network (its IP on the "
            "replicas' network, nothing published: for a router that itself runs in a "
            "container on that network, docker/compose.yaml, docker/stack.yaml)",
            choices=REPLICA_ADDRESS_MODES),

    Setting("health_path", "--health-path", HEALTH,
            "the path probed with GET on each replica; any 2xx or 3xx answer is healthy",
            health_path, metavar="PATH"),
    Setting("heartbeat_interval", "--heartbeat-interval", HEALTH,
            "seconds between two probes of the health path on each replica", positive_float),
    Setting("heartbeat_timeout", "--heartbeat-timeout", HEALTH,
            "seconds a probe may take before it counts as a miss", positive_float),
    Setting("fall", "--fall", HEALTH,
            "misses in a row that take a replica off the ring and replace it", int_at_least(1)),
    Setting("rise", "--rise", HEALTH,
            "successes in a row that bring a replacement onto the ring", int_at_least(1)),
)

BY_KEY: Mapping[str, Setting] = {s.key: s for s in SETTINGS}
BY_FIELD: Mapping[str, Setting] = {s.field: s for s in SETTINGS}
GROUPS = (ROUTER, LIMITS, ADMIN, RING, REPLICAS, HEALTH)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, grouped as in SETTINGS, defaults from LauncherConfig."""
    defaults = LauncherConfig()
    groups = {g: parser.add_argument_group(g) for g in GROUPS}
    for s in SETTINGS:
        names = [s.short, s.flag] if s.short else [s.flag]
        kwargs: dict[str, Any] = {"dest": s.field, "help": s.help}
        if s.parse is None:
            kwargs["action"] = "store_true"
        elif s.repeat:
            kwargs.update(action="append", default=[], type=s.parse, metavar=s.metavar)
        elif s.parse is on_off:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["default"] = getattr(defaults, s.field)
        else:
            default = getattr(defaults, s.field)
            kwargs["default"] = default if s.show_default else None
            if s.choices:
                kwargs["choices"] = s.choices
            elif s.parse is not text:
                kwargs["type"] = s.parse
            if s.metavar:
                kwargs["metavar"] = s.metavar
        groups[s.group].add_argument(*names, **kwargs)


def given_on_command_line(argv: Sequence[str]) -> set[str]:
    """Fields whose flag appears in argv (the serve parser takes no abbreviations)."""
    out = set()
    for s in SETTINGS:
        for a in argv:
            if (a in (s.flag, s.short) or a.startswith(s.flag + "=")
                    or (s.parse is on_off and a == "--no-" + s.key)):
                out.add(s.field)
    return out


def _convert(s: Setting, value: Any, where: str) -> Any:
    if s.repeat:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: '{s.key}' must be a list of strings, got {value!r}")
        return tuple(_convert(dataclasses.replace(s, repeat=False), v, where) for v in value)
    if s.parse is None or s.parse is yes_no or s.parse is on_off:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{s.key}' must be true or false, got {value!r}")
        return value
    if isinstance(value, (bool, list, dict)):
        raise ConfigError(f"{where}: '{s.key}' must be a "
                          f"{'string' if s.parse is text else 'number'}, got {value!r}")
    if s.choices and value not in s.choices:
        raise ConfigError(f"{where}: '{s.key}' must be one of {', '.join(s.choices)}, "
                          f"got {value!r}")
    try:
        return s.parse(str(value))
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"{where}: '{s.key}' {e}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """The settings a TOML file gives, as {LauncherConfig field: value}.

    Raises ConfigError naming the file (and the key) for a file that cannot be
    read, is not TOML, has an unknown key or a value out of range.
    """
    where = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        s = BY_KEY.get(key)
        if s is None:
            hint = f" (did you mean '{key.replace('_', '-')}'?)" if key.replace(
                "_", "-") in BY_KEY else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        out[s.field] = _convert(s, value, where)
    return out


def config_from(values: Mapping[str, Any]) -> LauncherConfig:
    """A validated LauncherConfig from {field: value} (missing fields: defaults)."""
    # None: a flag whose --help shows no default (show_default=False) was not
    # given; the field keeps LauncherConfig's default.
    values = {f: tuple(v) if BY_FIELD[f].repeat else v
              for f, v in values.items() if v is not None}
    cfg = dataclasses.replace(LauncherConfig(), **values)
    cfg.validate()
    return cfg


__all__ = ["BY_FIELD", "BY_KEY", "SETTINGS", "ConfigError", "Setting", "add_arguments",
           "config_from", "given_on_command_line", "load_file"]
