"""API keys, roles and a per-key rate limit, shared by the OpenAI and Triton front doors.

Keys live in a YAML list of {name, role, sha256}: only the SHA-256 of each key is stored, so
the file (a Kubernetes Secret) never holds a usable credential. A bearer token is hashed and
looked up by digest; comparing digests leaks nothing useful about the key itself.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml


class Role(StrEnum):
    INFERENCE = "inference"  # call models
    AUDITOR = "auditor"  # read the audit log and metrics, never call models
    ADMIN = "admin"  # everything


class Permission(StrEnum):
    INFERENCE = "inference"
    AUDIT = "audit"
    METRICS = "metrics"
    MODELS = "models"  # list models: any valid key may


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INFERENCE: frozenset({Permission.INFERENCE, Permission.MODELS}),
    Role.AUDITOR: frozenset({Permission.AUDIT, Permission.METRICS, Permission.MODELS}),
    Role.ADMIN: frozenset(Permission),
}

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(Exception):
    """The --api-keys file is unreadable or malformed; the server must not start."""


class AuthError(Exception):
    """A request the front door must refuse: 401, 403 or 429."""

    def __init__(
        self, status: int, message: str, code: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: a key's name and role, or `anonymous` when no keys are configured."""

    name: str
    role: Role


ANONYMOUS = Principal("anonymous", Role.ADMIN)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_api_keys(path: Path) -> dict[str, Principal]:
    """Returns who holds each key, by the key's digest. Refuses duplicates, unknown roles and
    anything not hex."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KeyFileError(f"cannot read API keys file {path}: {exc}") from exc
    if not isinstance(doc, list) or not doc:
        raise KeyFileError(f"{path}: expected a non-empty YAML list of {{name, role, sha256}}")
    keys: dict[str, Principal] = {}
    names: set[str] = set()
    for i, item in enumerate(doc):
        where = f"{path}: entry {i}"
        if not isinstance(item, dict) or set(item) != {"name", "role", "sha256"}:
            raise KeyFileError(f"{where}: needs exactly the fields name, role, sha256")
        name, role, digest = str(item["name"]), str(item["role"]), str(item["sha256"]).lower()
        if role not in {r.value for r in Role}:
            raise KeyFileError(f"{where}: role must be one of {', '.join(Role)}, not {role!r}")
        if not _HEX64.match(digest):
            raise KeyFileError(f"{where}: sha256 must be 64 hex digits (the key's SHA-256)")
        if name in names or digest in keys:
            raise KeyFileError(f"{where}: duplicate name or key ({name})")
        names.add(name)
        keys[digest] = Principal(name, Role(role))
    return keys


class TokenBucket:
    """`rate` tokens per second up to `burst`; take() returns 0 or the seconds to wait."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key name. Thread-safe: Triton's callable runs on another thread."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, name: str, now: float | None = None) -> float:
        if self.rate <= 0:  # 0 disables the limit
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, now)
            return bucket.take(now)


class Guard:
    """Authenticates a bearer token, authorizes a permission, applies the rate limit."""

    def __init__(self, keys: dict[str, Principal] | None, limiter: RateLimiter | None) -> None:
        self.keys = keys or None
        self.limiter = limiter

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def authenticate(self, authorization: str | None) -> Principal:
        if self.keys is None:
            return ANONYMOUS
        if not authorization:
            raise AuthError(401, "missing API key: send 'Authorization: Bearer KEY'", "missing_key")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "malformed Authorization header: use 'Bearer KEY'", "invalid_key")
        principal = self.keys.get(hash_key(token.strip()))
        if principal is None:
            raise AuthError(401, "invalid API key", "invalid_key")
        return principal

    def authorize(self, principal: Principal, permission: Permission) -> None:
        if permission not in ROLE_PERMISSIONS[principal.role]:
            raise AuthError(
                403,
                f"key '{principal.name}' has role '{principal.role}', "
                f"which does not allow {permission}",
                "permission_denied",
            )

    def rate_limit(self, principal: Principal) -> None:
        if self.keys is None or self.limiter is None:
            return
        wait = self.limiter.check(principal.name)
        if wait > 0:
            raise AuthError(
                429, f"rate limit exceeded for key '{principal.name}'", "rate_limited", wait
            )

    def check(self, authorization: str | None, permission: Permission) -> Principal:
        principal = self.authenticate(authorization)
        self.authorize(principal, permission)
        self.rate_limit(principal)
        return principal
