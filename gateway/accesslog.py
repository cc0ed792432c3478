"""The server's access log, masked like every other log line.

gunicorn writes its access log through its own handlers, past the masking filter of `gateway.logs`, and
its default line carries the raw request URI and the Referer. Those hold secrets and personal data: a
ClickSend webhook's token rides in the query string, ``/api/v1/opt-outs/sms/+14155550100`` names a phone
number, and ``/u/<token>`` is a working unsubscribe link. This logger keeps the line's shape but offers
the format only masked values: no query string, no Referer, no request headers or environment, phone
numbers and emails masked, and the link token replaced.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from gateway.logs import scrub

_LINK_TOKEN = re.compile(r"^/u/[^/]+")
#: The atoms a format may use; every other one (request headers, environment) is dropped.
_SAFE = ("h", "l", "u", "t", "s", "m", "H", "b", "B", "a", "T", "D", "M", "L", "p")


def safe_path(path: str) -> str:
    """A request path fit for a log: the link token replaced, numbers and emails masked."""
    return scrub(_LINK_TOKEN.sub("/u/<token>", path))


class AccessLogger(Logger):
    """gunicorn's logger, with the access log's atoms masked (``--logger-class``)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        """The standard atoms, reduced to safe ones; ``r`` and ``U`` rebuilt from the masked path."""
        raw = super().atoms(resp, req, environ, request_time)
        atoms = {key: raw[key] for key in _SAFE if key in raw}
        path = safe_path(str(raw.get("U") or ""))
        atoms.update(U=path, q="", f="-", r=f"{raw.get('m')} {path} {raw.get('H')}")
        return atoms
