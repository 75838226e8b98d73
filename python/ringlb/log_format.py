"""`--log-format json`: one JSON object per line for log shippers (issue 14.5).

Each line has time (ISO 8601, UTC), level, logger and event; a launcher event
(started, down, replaced, ...) also carries the replica's id and hostname and
its detail, from the `extra` the launcher logs it with, so a shipper can filter
on `event` without parsing the text. Other records have event "log" and their
message as detail. The standard library's json writes the objects.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
        }
        if hasattr(record, "event"):
            out["id"] = getattr(record, "replica_id", None)
            out["hostname"] = getattr(record, "hostname", None)
            out["detail"] = getattr(record, "detail", "")
        else:
            out["detail"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: str, stream: object) -> None:
    """Set up the root logger for `ringlb` commands: `fmt` is "text" or "json"."""
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
