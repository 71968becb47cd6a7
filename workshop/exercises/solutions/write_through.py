# The reference solution of the write-through exercise: the code that goes between the
# markers of ../write_through.py, where the docstrings say what each function does.
# `flightcache exercise solution write-through` shows it.
# START write-through
def rename_airline(valkey: Any, db: Any, key: str, airline_id: int, name: str, ttl: int) -> None:
    # Module 1's rule, "The order of database and cache writes":
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        # 1. delete before the COMMIT: should the write below fail, readers miss and
        # load the new name instead of reading the old one until the TTL ends
        valkey.delete(key)
    # 2. committed: only now may Valkey learn the new name; the HSET also overwrites
    # a copy a reader cached between the delete and the COMMIT. (3. A reader slower
    # than this HSET can still write the old row back; only a version check stops it.)
    valkey.hset(key, mapping=airline_row(db, airline_id))
    valkey.expire(key, ttl)


# END write-through
