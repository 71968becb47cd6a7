# The reference solution of the cache-aside exercise: the code that goes between the
# markers of ../cache_aside.py, where the docstrings say what each function does.
# `flightcache exercise solution cache-aside` shows it.
# START cache-aside
def cached_query(
    valkey: Any,
    db: Any,
    key: str,
    sql: str,
    params: dict[str, Any],
    ttl: int,
    empty_ttl: int,
) -> list[list[Any]]:
    cached = valkey.get(key)
    if cached is not None:
        return json.loads(cached)
    rows = db.fetch(sql, params).rows
    value = to_json(rows)
    # an empty answer is cached briefly: it absorbs a burst of identical misses,
    # and a flight added meanwhile shows up within empty_ttl
    valkey.set(key, value, ex=ttl if rows else empty_ttl)
    return json.loads(value)


# END cache-aside
