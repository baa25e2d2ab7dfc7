"""What `unitgate doctor` says of one check: ok, warn or FAIL, why, and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.check}: {self.detail}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str, fix: str = "") -> Finding:
    return Finding(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "FAIL", detail, fix)
