# The reference solution of the write-through exercise: the code that goes between the
# markers of ../write_through.py, where the docstrings say what each function does.
# `flightcache exercise solution write-through` shows it.
# START write-through
# KEYS[1] the airline's hash; ARGV[1] the TTL in seconds, then field, value, ...
# One script: the row never sits in Valkey without its TTL.
WRITE_ROW = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""


def rename_airline(valkey: Any, db: Any, key: str, airline_id: int, name: str, ttl: int) -> None:
    # Module 1's rule, "The order of database and cache writes":
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        # 1. delete before the COMMIT: should the write below fail, readers miss and
        # load the new name; Valkey unreachable here rolls the rename back
        valkey.delete(key)
    # 2. committed: only now may Valkey learn the new name. Writing the whole row also
    # replaces a copy a reader cached between the DEL and the COMMIT. (3. A reader
    # slower than this write can still put the old row back; only a version check
    # stops it: flightcache/lua/write_through_fill.lua is flightcache's own.)
    pairs = [part for item in airline_row(db, airline_id).items() for part in item]
    valkey.eval(WRITE_ROW, 1, key, ttl, *pairs)


# END write-through
