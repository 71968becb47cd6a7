"""Exercise write-through: rename an airline in the database, then in Valkey.

Write-through updates the cache as part of every write, so that readers find the
new value in Valkey at once. The order matters. The database is the source of
truth, so Valkey may learn a value only once the database has committed it: a
cache written first serves a name the database never stored whenever the COMMIT
fails. The full rule is Module 1's "The order of database and cache writes"
(workshop/01-query-caching.md): delete the cached copy before the COMMIT, write
the new row after it, and know the race a slow reader leaves open (flightcache's
own write-through closes it with a version check, which this exercise leaves out).

Complete rename_airline() between the START and END markers, then run:

    flightcache exercise check write-through

What the checker passes to your function:
  valkey      a valkey-py client (decode_responses=True)
  db          the database: db.sql(name) is one of flightcache's named queries for
              this database, db.execute(sql, params) runs a statement, db.fetch(sql,
              params) a query. `with db.transaction():` runs the statements inside it
              as one transaction: COMMIT when the block ends, ROLLBACK (and the error
              raised again) when anything in it fails, the COMMIT included
  key         the Valkey key of the airline's hash, under a prefix of its own
  airline_id  the airline to rename; name, its new name (at most 30 characters)
  ttl         seconds the cached row may live
"""

from __future__ import annotations

from typing import Any


def airline_row(db: Any, airline_id: int) -> dict[str, str]:
    """The airline's row from the database as text: airline_id, iata, airlinename,
    base_airport."""
    result = db.fetch(db.sql("airline_by_id"), {"airline_id": airline_id})
    if not result.rows:
        raise LookupError(f"no airline with id {airline_id}")
    return {col: "" if v is None else str(v) for col, v in zip(result.columns, result.rows[0])}


# START write-through
def rename_airline(valkey: Any, db: Any, key: str, airline_id: int, name: str, ttl: int) -> None:
    """Give airline ``airline_id`` the name ``name``: in the database, then in Valkey.

    1. Inside `with db.transaction():` run the named query airline_rename
       (db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id}))
       and, still before the COMMIT, delete the cached row (DEL key). Should anything
       after the COMMIT fail, readers then miss and read the database, instead of
       being served the old name until the TTL ends.
    2. After the with block, that is once the COMMIT has succeeded, write the new row
       through: every field of airline_row(db, airline_id) in the hash ``key``,
       expiring after ``ttl`` seconds, in one atomic step (a Lua script, or on a
       single server MULTI/EXEC): never a cached row without a TTL.
    When the transaction fails, let its error propagate: Valkey must never hold a
    name the database did not commit.
    """
    raise NotImplementedError("write rename_airline() between # START and # END")


# END write-through
