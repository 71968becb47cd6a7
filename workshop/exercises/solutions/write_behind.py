# The reference solution of the write-behind exercise: the code that goes between the
# markers of ../write_behind.py, where the docstrings say what each function does.
# `flightcache exercise solution write-behind` shows it.
# START write-behind
def drain(valkey: Any, db: Any, stream: str, group: str, consumer: str, count: int) -> int:
    entries = entries_of(valkey.xreadgroup(group, consumer, {stream: "0"}, count=count))
    if not entries:
        entries = entries_of(valkey.xreadgroup(group, consumer, {stream: ">"}, count=count))
    if not entries:
        return 0
    with db.transaction():
        for _entry_id, fields in entries:
            record_booking(db, stream, fields)
    # durable now; acknowledged any earlier, a failed COMMIT would lose these bookings
    valkey.xack(stream, group, *[entry_id for entry_id, _ in entries])
    return len(entries)


# END write-behind
