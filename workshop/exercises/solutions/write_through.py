# The reference solution of the write-through exercise: the code that goes between the
# markers of ../write_through.py, where the docstrings say what each function does.
# `flightcache exercise solution write-through` shows it.
# START write-through
def rename_airline(valkey: Any, db: Any, key: str, airline_id: int, name: str, ttl: int) -> None:
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
    # committed: only now may Valkey learn the new name
    valkey.hset(key, mapping=airline_row(db, airline_id))
    valkey.expire(key, ttl)


# END write-through
