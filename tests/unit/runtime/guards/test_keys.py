"""API keys, roles, and the per-key token bucket."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.guards.keys import (
    ANONYMOUS,
    AuthError,
    Guard,
    KeyFileError,
    Permission,
    RateLimiter,
    Role,
    TokenBucket,
    hash_key,
    load_api_keys,
)


def write_keys(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    lines = [
        f"- {{name: {name}, role: {role}, sha256: {hash_key(key)}}}"
        for name, role, key in [
            ("app", "inference", "sk-app"),
            ("audit", "auditor", "sk-audit"),
            ("root", "admin", "sk-root"),
        ]
    ]
    keys = load_api_keys(write_keys(tmp_path, "\n".join(lines)))
    return Guard(keys, RateLimiter(rate=1.0, burst=2))


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_key_file_holds_only_digests(guard: Guard) -> None:
    assert guard.keys is not None
    assert all(len(digest) == 64 for digest in guard.keys)
    assert "sk-app" not in repr(guard.keys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty YAML list"),
        ("{a: 1}", "non-empty YAML list"),
        ("- {name: a, role: inference}", "exactly the fields"),
        (f"- {{name: a, role: wizard, sha256: {'0' * 64}}}", "role must be one of"),
        ("- {name: a, role: admin, sha256: xyz}", "64 hex digits"),
        (
            f"- {{name: a, role: admin, sha256: {'a' * 64}}}\n"
            f"- {{name: a, role: admin, sha256: {'b' * 64}}}",
            "duplicate",
        ),
        ("- [unclosed", "cannot read"),
    ],
)
def test_bad_key_files_are_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        load_api_keys(write_keys(tmp_path, text))


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_api_keys(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "missing_key"), ("", "missing_key"), ("Basic abc", "invalid_key"),
     ("Bearer", "invalid_key"), ("Bearer wrong", "invalid_key"), ("sk-app", "invalid_key")],
)  # fmt: skip
def test_401_for_missing_or_wrong_keys(guard: Guard, header: str | None, code: str) -> None:
    with pytest.raises(AuthError) as err:
        guard.check(header, Permission.INFERENCE)
    assert (err.value.status, err.value.code) == (401, code)


@pytest.mark.parametrize(
    ("key", "permission", "allowed"),
    [
        ("sk-app", Permission.INFERENCE, True),
        ("sk-app", Permission.AUDIT, False),
        ("sk-app", Permission.METRICS, False),
        ("sk-audit", Permission.INFERENCE, False),
        ("sk-audit", Permission.AUDIT, True),
        ("sk-audit", Permission.METRICS, True),
        ("sk-root", Permission.INFERENCE, True),
        ("sk-root", Permission.AUDIT, True),
        ("sk-root", Permission.MODELS, True),
    ],
)
def test_roles(guard: Guard, key: str, permission: Permission, allowed: bool) -> None:
    if allowed:
        assert guard.check(f"Bearer {key}", permission).name
    else:
        with pytest.raises(AuthError) as err:
            guard.check(f"Bearer {key}", permission)
        assert err.value.status == 403


def test_scheme_is_case_insensitive(guard: Guard) -> None:
    assert guard.check("bearer sk-root", Permission.AUDIT).role is Role.ADMIN


def test_rate_limit_is_per_key_with_retry_after(guard: Guard) -> None:
    for _ in range(2):  # the burst
        guard.check("Bearer sk-app", Permission.INFERENCE)
    with pytest.raises(AuthError) as err:
        guard.check("Bearer sk-app", Permission.INFERENCE)
    assert err.value.status == 429
    assert err.value.retry_after_s is not None and 0 < err.value.retry_after_s <= 1.0
    guard.check("Bearer sk-root", Permission.INFERENCE)  # another key has its own bucket


def test_no_keys_means_anonymous_admin_and_no_limit() -> None:
    guard = Guard(None, RateLimiter(rate=1.0, burst=1))
    for _ in range(5):
        assert guard.check(None, Permission.AUDIT) == ANONYMOUS
    assert not guard.enabled


def test_zero_rate_disables_the_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.check("k", now=0.0) == 0.0 for _ in range(100))


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_token_bucket_never_grants_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        if wait == 0:
            granted += 1
        else:
            assert wait > 0
            # Waiting the advertised time is enough for the next take to succeed.
            probe = TokenBucket(rate, burst, now=0.0)
            probe.tokens, probe.stamp = bucket.tokens, bucket.stamp
            assert probe.take(now + wait + 1e-9) == 0
    assert granted <= burst + rate * now + 1e-6
