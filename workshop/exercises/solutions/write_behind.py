# The reference solution of the write-behind exercise: the code that goes between the
# markers of ../write_behind.py, where the docstrings say what each function does.
# `flightcache exercise solution write-behind` shows it.
# START write-behind
def drain(
    valkey: Any,
    db: Any,
    stream: str,
    group: str,
    consumer: str,
    count: int,
    dead: str,
    min_idle_ms: int,
) -> int:
    # first what a worker that never came back left pending (this one's own included)
    claimed = valkey.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
    entries = [(entry_id, fields or {}) for entry_id, fields in claimed[1]]
    if not entries:
        entries = entries_of(valkey.xreadgroup(group, consumer, {stream: "0"}, count=count))
    if not entries:
        entries = entries_of(valkey.xreadgroup(group, consumer, {stream: ">"}, count=count))
    if not entries:
        return 0
    good = [(entry_id, fields) for entry_id, fields in entries if readable(fields)]
    for entry_id, fields in entries:
        if not readable(fields):
            # never applicable: retried, it would fail every batch behind it forever.
            # Added to the dead letters before the XACK: a crash between the two
            # leaves a copy twice, never none.
            valkey.xadd(dead, {**fields, "entry": entry_id})
            valkey.xack(stream, group, entry_id)
    with db.transaction():
        for _entry_id, fields in good:
            record_booking(db, stream, fields)
    # durable now; acknowledged any earlier, a failed COMMIT would lose these bookings
    if good:
        valkey.xack(stream, group, *[entry_id for entry_id, _ in good])
    return len(entries)


# END write-behind
