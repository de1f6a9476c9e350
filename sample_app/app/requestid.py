"""Request ids: keep a sane incoming X-Request-ID, generate one otherwise."""

from __future__ import annotations

import re
import uuid

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(incoming: str | None) -> str:
    if incoming and _VALID.match(incoming.strip()):
        return incoming.strip()
    return uuid.uuid4().hex
