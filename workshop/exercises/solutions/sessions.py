# The reference solution of the sessions exercise: the code that goes between the
# markers of ../sessions.py, where the docstrings say what each function does.
# `flightcache exercise solution sessions` shows it.
# START sessions
# KEYS[1] the session's key; ARGV[1] the TTL in seconds, then field, value, ...
# One script is one command: no client sees the hash without its TTL, and a crash of
# the caller cannot fall between the two writes.
LOGIN_SCRIPT = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""


def login(valkey: Any, key: str, user_id: str, fields: dict[str, str], ttl: int) -> None:
    pairs = [part for item in {"user_id": user_id, **fields}.items() for part in item]
    valkey.eval(LOGIN_SCRIPT, 1, key, ttl, *pairs)


def get_session(valkey: Any, key: str, ttl: int) -> dict[str, str] | None:
    session = valkey.hgetall(key)
    if not session:
        return None
    valkey.expire(key, ttl)  # reading is activity
    return dict(session)


def touch(valkey: Any, key: str, ttl: int) -> bool:
    return bool(valkey.expire(key, ttl))


# END sessions
