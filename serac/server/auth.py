"""API keys with two roles: ``read`` (inference, listing) and ``write`` (edit changes; implies read).

Keys come from ``SERAC_API_KEYS`` (``"read:key1,write:key2"``) and/or a keys file (the same
``role:key`` pairs, one per line, ``#`` comments; or JSON ``{"read": [...], "write": [...]}``).
A presented key is compared against every configured key with ``hmac.compare_digest`` on SHA-256
digests, so neither the match position nor the key length leaks through timing. Keys are never
logged or echoed: error messages name the role, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterable

from serac.errors import ConfigError

ENV_VAR = "SERAC_API_KEYS"
MIN_KEY_CHARS = 8
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_COMMENT = re.compile(r"(?:^|\s)#")  # a comment starts a line or follows whitespace; keys may hold '#'


def is_loopback(host: str) -> bool:
    """Whether a host name or address (IPv6 optionally in brackets) is this machine's loopback."""
    host = host.strip().lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Role(str, Enum):
    READ = "read"
    WRITE = "write"

    def allows(self, needed: "Role") -> bool:
        return self is Role.WRITE or needed is Role.READ


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, held only as digests. Empty means auth is off."""

    _entries: tuple[tuple[bytes, Role], ...] = field(default_factory=tuple, repr=False)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], source: str = "keys") -> "KeyRing":
        entries = []
        for role_name, key in pairs:
            role_name, key = role_name.strip().lower(), key.strip()
            try:
                role = Role(role_name)
            except ValueError:
                raise ConfigError(
                    f"{source}: unknown role {role_name!r}; valid roles: 'read' (inference, listing) "
                    "and 'write' (edit changes, implies read)"
                ) from None
            if len(key) < MIN_KEY_CHARS:
                raise ConfigError(
                    f"{source}: a {role.value} key is shorter than {MIN_KEY_CHARS} characters; use a long "
                    "random key (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                )
            entries.append((_digest(key), role))
        return cls(tuple(entries))

    @classmethod
    def parse(cls, text: str, source: str = ENV_VAR) -> "KeyRing":
        """``"read:key1,write:key2"`` (commas or newlines between pairs). ``#`` at the start of an
        item or after whitespace starts a comment; a ``#`` inside a key is part of the key."""
        pairs = []
        for raw in text.replace(",", "\n").splitlines():
            item = _COMMENT.split(raw, maxsplit=1)[0].strip()
            if not item:
                continue
            role, sep, key = item.partition(":")
            if not sep:
                raise ConfigError(
                    f"{source}: expected ROLE:KEY pairs such as 'read:KEY' or 'write:KEY', got an item "
                    f"without ':' ({len(item)} characters, not shown)"
                )
            pairs.append((role, key))
        return cls.from_pairs(pairs, source)

    @classmethod
    def from_file(cls, path: str | Path) -> "KeyRing":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read API keys file {path}: {exc.strerror or exc}") from None
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"API keys file {path} is not valid JSON: {exc.msg} (line {exc.lineno})"
                ) from None
            pairs = []
            for role, keys in data.items():
                if isinstance(keys, str):
                    keys = [keys]
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise ConfigError(f"API keys file {path}: {role!r} must map to a list of key strings")
                pairs.extend((role, k) for k in keys)
            return cls.from_pairs(pairs, str(path))
        return cls.parse(text, str(path))

    @classmethod
    def from_sources(cls, env: str | None = None, file: str | Path | None = None) -> "KeyRing":
        """Keys from the environment variable (``env``, default ``os.environ[SERAC_API_KEYS]``)
        plus those in ``file``."""
        env = os.environ.get(ENV_VAR, "") if env is None else env
        ring = cls.parse(env, ENV_VAR) if env.strip() else cls()
        if file is not None:
            ring = cls(ring._entries + cls.from_file(file)._entries)
        return ring

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def role_of(self, presented: str) -> Role | None:
        """The strongest role of a presented key, or None. Checks every entry, whatever matches."""
        digest = _digest(presented)
        found: Role | None = None
        for stored, role in self._entries:
            if hmac.compare_digest(stored, digest) and (found is None or role is Role.WRITE):
                found = role
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token in an ``Authorization: Bearer TOKEN`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
