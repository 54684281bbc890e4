"""The canary sweep's tally: every test of tests/security adds its checks to one
:class:`Sweep`, whose totals the run's terminal summary reports (also under ``make test``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pytest

from carbon_sdk._redact import forms


@dataclass
class Sweep:
    """Checks that no encoded form of any canary appears in an output; counts every check."""

    canaries: dict[str, str]  # id -> secret
    pairs: dict[str, str]  # id -> "user:secret", as a Basic Authorization header encodes it
    checks: int = 0
    outputs: int = 0
    leaks: list[str] = field(default_factory=list)

    def summary(self) -> str:
        leaks = len(self.leaks)
        return f"canary sweep: {self.checks} checks over {self.outputs} outputs, {leaks} leaks"

    def check(self, output: str, text: str) -> list[str]:
        """The leaks of ``text`` (``output`` names it), as ``output: canary id as form``."""
        self.outputs += 1
        found = []
        for ident, secret in (*self.canaries.items(), *self.pairs.items()):
            self.checks += 1
            leaked = [name for name, form in self._forms(secret) if form in text]
            if leaked:
                found.append(f"{output}: canary {ident!r} as {', '.join(leaked)}")
        self.leaks.extend(found)
        return found

    @staticmethod
    def _forms(secret: str) -> Iterator[tuple[str, str]]:
        """Every form :func:`forms` yields (named by position), and, independently of it, the
        encodings a reader could still decode: a check that only repeats redact() finds nothing."""
        for i, form in enumerate(forms(secret)):
            if form == secret or len(form) >= 4:
                yield f"forms()[{i}]", form
        yield "padded base64", base64.b64encode(secret.encode()).decode()
        yield "Python repr", repr(secret)[1:-1]
        for codec in ("utf-8", "latin-1"):
            with suppress(UnicodeEncodeError):
                yield f"{codec} bytes repr", repr(secret.encode(codec))[2:-1]


CANARIES = {
    "at": "pw@host-canary01",
    "slash": "pw/slash/canary02",
    "percent": "pw%41percent-canary03",
    "space": "pw space canary04",
    "single-quote": "pw'single-canary05",
    "double-quote": 'pw"double-canary06',
    "latin1": "pw-ünïcödé-canary07",
    "backslash": "pw\\back\\slash-canary08",
    "colon": "pw:colon:canary09",
    "long": "canary10-" + "x9" * 300,
    "base64-like": base64.b64encode(b"canary11-secret-bytes").decode(),
    "plus-amp": "pw+plus&amp=canary12",
    "hash-query": "pw#hash?query-canary13",
    "brackets": "pw[bracket]canary14",
    "brace-dollar": "pw{brace}$dollar-canary15",
    "semicolon": "pw;semi,comma-canary16",
    "cyrillic": "пароль-canary17",
    "cjk": "密码-canary18",
    "emoji": "pw😀emoji-canary19",
    "tab": "pw\ttab-canary20",
    "equals": "pw=equals==canary21",
    "angle": "pw<angle>&canary22",
    "tilde-tick": "pw~tilde`tick-canary23",
    "padded": "  lead-trail-canary24  ",
    "jwt-like": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkyNSJ9.c2lnbmF0dXJlLWNhbmFyeTI1",
}
USERS = ("carbon", "canary-user")  # the stack's Trino user, the user sent to the echo server


@pytest.fixture(scope="session")
def sweep() -> Sweep:
    """The run's sweep; its totals go to the terminal summary (see ``outputs``)."""
    pairs = {f"{u}:{i}": f"{u}:{s}" for u in USERS for i, s in CANARIES.items()}
    return Sweep(CANARIES, pairs)
