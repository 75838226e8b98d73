"""The backend registry: the one place that names where replicas can run (SPEC §5).

Each backend is registered once with `register_backend(name, cls, options)`:
its class (or "module:Class", imported on first use so that `import
ringlb.backends` stays light when Docker is not wanted), the keyword options
its constructor takes, each mapped to the LauncherConfig field that supplies
it (None: only code passes it), and optionally a probe that tells `auto`
whether it can run here. The CLI choices, LauncherConfig validation,
make_backend and the launcher's options all come from here, so a new backend
is one `register_backend` call.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union

from ringlb.backends.base import Backend, validate_cluster

log = logging.getLogger("ringlb.backends")

#: The name that picks the first registered backend whose probe answers, else the
#: first one registered without a probe (one that runs anywhere).
AUTO = "auto"

#: A class or function, or where to import it from ("package.module:name").
Target = Union[Callable[..., Any], str]


def _load(target: Target) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend; see register_backend."""

    name: str
    cls: Target
    #: Constructor keyword -> LauncherConfig field that supplies it, or None.
    options: Mapping[str, str | None]
    #: None: always available. Otherwise a probe; `auto` skips it when False.
    available: Target | None = None
    #: What the probe checks, for the log line of `auto`.
    requires: str = ""

    def backend_class(self) -> type[Backend]:
        """The class, imported on first use (later calls hit the module cache)."""
        return _load(self.cls)  # type: ignore[no-any-return]

    def is_available(self) -> bool:
        return self.available is None or bool(_load(self.available)())

    def config_options(self, config: object) -> dict[str, Any]:
        """The options that `config` (a LauncherConfig) supplies to this backend."""
        return {opt: getattr(config, f) for opt, f in self.options.items() if f is not None}


_entries: dict[str, BackendEntry] = {}


def register_backend(name: str, cls: Target, options: Mapping[str, str | None], *,
                     available: Target | None = None, requires: str = "") -> BackendEntry:
    """Register the backend `name`: `cls(cluster, **options)` builds it.

    `options` names every keyword option the constructor takes, each mapped to
    the LauncherConfig field that supplies it (None: not from the config).
    `available` is a probe (a function or "module:function"): `auto` tries the
    probed backends in registration order and falls back on the first one
    without a probe; `requires` says what the probe checks, for the log.
    Raises ValueError when `name` is taken or is "auto".
    """
    if name == AUTO or name in _entries:
        raise ValueError(f"backend name {name!r} is already taken")
    entry = BackendEntry(name, cls, dict(options), available, requires)
    _entries[name] = entry
    return entry


def backend_names() -> tuple[str, ...]:
    """Every name --backend accepts: "auto", then the registered backends in order."""
    return (AUTO, *_entries)


def backend_entry(name: str) -> BackendEntry:
    """The entry registered as `name` (not "auto"); ValueError for an unknown name."""
    try:
        return _entries[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}: choose one of {', '.join(backend_names())}") from None


def resolve_backend_name(name: str) -> str:
    """The registered backend `name` stands for; for `auto`, the first probed backend
    whose probe answers, else the first one without a probe.

    Raises ValueError for an unknown name (or when no backend is available).
    """
    if name != AUTO:
        return backend_entry(name).name
    skipped = []
    entries = list(_entries.values())
    for entry in [e for e in entries if e.available] + [e for e in entries if not e.available]:
        if entry.is_available():
            if skipped:
                log.info("backend auto: %s, using %s", "; ".join(skipped), entry.name)
            else:
                log.info("backend auto: using %s", entry.name)
            return entry.name
        skipped.append(f"{entry.name} needs {entry.requires or 'what it probes'}, "
                       f"which does not answer")
    raise ValueError(f"backend auto: no backend is available ({'; '.join(skipped)})")


def _check_options(name: str, options: Mapping[str, Any]) -> None:
    # auto checks against every backend it may pick, so that whether a call
    # is valid does not depend on which daemon happens to answer here.
    names = list(_entries) if name == AUTO else [backend_entry(name).name]
    known = {opt for n in names for opt in _entries[n].options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"backend {name!r} takes no option {unknown[0]!r} "
                         f"(its options: {', '.join(sorted(known)) or 'none'})")


def make_backend(name: str, cluster: str, **options: Any) -> Backend:
    """A backend called `name` (a registered one or "auto") for `cluster`.

    Raises ValueError for an unknown name, a bad cluster or an option the
    backend does not take (naming both); with "auto", an option of any
    backend it may pick is accepted and the chosen one gets those it takes.
    BackendError when the backend cannot reach what it runs on.
    """
    validate_cluster(cluster)
    _check_options(name, options)
    entry = _entries[resolve_backend_name(name)]
    mine = {k: v for k, v in options.items() if k in entry.options}
    return entry.backend_class()(cluster, **mine)


def backend_from_config(name: str, cluster: str, config: object,
                        shared: frozenset[str] = frozenset()) -> Backend:
    """make_backend with the options that `config` (a LauncherConfig) supplies to the
    backend `name` resolves to; the launcher knows no backend's options by name.
    `shared`: config fields the caller uses itself, never "ignored"."""
    validate_cluster(cluster)
    entry = _entries[resolve_backend_name(name)]
    _warn_unused(entry, config, shared)
    return entry.backend_class()(cluster, **entry.config_options(config))


def _warn_unused(entry: BackendEntry, config: Any, shared: frozenset[str]) -> None:
    """Log each setting given a value that only other backends use (--replica-image with
    the process backend, say): not an error, since `auto` may have fallen back."""
    default = type(config)()
    mine = set(entry.options.values()) | shared
    for other in _entries.values():
        for field in other.options.values():
            if (field and field not in mine and hasattr(config, field)
                    and getattr(config, field) != getattr(default, field)):
                log.warning("%s is ignored: only the %s backend uses it, and this one is %s",
                            field, other.name, entry.name)

