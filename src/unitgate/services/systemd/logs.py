"""Pure parsing of the journal: `journalctl -o json` lines as LogEntry values, and cursor checks."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from unitgate.services.errors import InvalidCursor
from unitgate.services.systemd.log_entry import LogEntry as LogEntry  # its home, for its users

MAX_LINES = 500  # journal lines one request may ask of one service
# What journald's cursors are made of ("s=…;i=…;b=…;m=…;t=…;x=…"); anything else never reaches
# journalctl's command line.
_CURSOR = re.compile(r"[A-Za-z0-9=;_-]{1,512}")


def parse_entry(line: bytes | str) -> LogEntry | None:
    """One line of `journalctl -o json` as a LogEntry, or None for anything that is not one.

    MESSAGE is a string, or with -a a list of byte values when it is not valid UTF-8 (decoded
    here with replacement), or null for a binary field journalctl chose not to print.
    """
    try:
        fields = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(fields, dict):
        return None
    cursor = fields.get("__CURSOR")
    realtime = _int(fields.get("__REALTIME_TIMESTAMP"))
    if not isinstance(cursor, str) or realtime is None:
        return None
    return LogEntry(
        time=datetime.fromtimestamp(realtime / 1_000_000, UTC),
        priority=_int(fields.get("PRIORITY")),
        pid=_int(fields.get("_PID")),
        message=_message(fields.get("MESSAGE")),
        cursor=cursor,
    )


def _message(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return ""


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def check_cursor(cursor: str) -> str:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor()
    return cursor


def entries(lines: Sequence[bytes]) -> list[LogEntry]:
    parsed = (parse_entry(line) for line in lines if line.strip())
    return [entry for entry in parsed if entry is not None]
