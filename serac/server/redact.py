"""Credentials never reach a log line: the access log's request targets lose the values of
credential-looking query parameters (a client may send ``?api_key=...``; the server refuses it, but
uvicorn would still log the URL)."""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = ("api_key", "api-key", "apikey", "key", "token", "access_token", "auth", "password", "secret")
_SECRET = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)[^&#\s]*")
REDACTED = "[REDACTED]"


def redact_url(target: str) -> str:
    """``target`` with every credential-looking query value replaced by ``[REDACTED]``."""
    return _SECRET.sub(lambda m: m.group(1) + REDACTED, target)


class RedactCredentials(logging.Filter):
    """On uvicorn's access log: its records carry (client, method, target, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def install_access_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Add the filter to the access logger once (idempotent: apps built in one process share it)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())
