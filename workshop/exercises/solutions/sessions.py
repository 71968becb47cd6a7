# The reference solution of the sessions exercise: the code that goes between the
# markers of ../sessions.py, where the docstrings say what each function does.
# `flightcache exercise solution sessions` shows it.
# START sessions
def login(valkey: Any, key: str, user_id: str, fields: dict[str, str], ttl: int) -> None:
    valkey.hset(key, mapping={"user_id": user_id, **fields})
    valkey.expire(key, ttl)


def get_session(valkey: Any, key: str, ttl: int) -> dict[str, str] | None:
    session = valkey.hgetall(key)
    if not session:
        return None
    valkey.expire(key, ttl)  # reading is activity
    return dict(session)


def touch(valkey: Any, key: str, ttl: int) -> bool:
    return bool(valkey.expire(key, ttl))


# END sessions
