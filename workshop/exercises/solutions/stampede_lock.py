# The reference solution of the stampede-lock exercise: the code that goes between the
# markers of ../stampede_lock.py, where the docstrings say what each function does.
# `flightcache exercise solution stampede-lock` shows it.
# START stampede-lock
# KEYS[1] the lock's key; ARGV[1] the caller's token.
# Deletes the key only while it holds that token; answers 1 when it did, else 0.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def acquire(valkey: Any, key: str, ttl_ms: int) -> str | None:
    token = secrets.token_hex(16)
    if valkey.set(key, token, nx=True, px=ttl_ms):
        return token
    return None


def release(valkey: Any, key: str, token: str) -> bool:
    return bool(valkey.eval(RELEASE_SCRIPT, 1, key, token))


# END stampede-lock
