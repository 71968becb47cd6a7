"""The write-through demo: warm, rename, read fresh, a slow reader refused, both faults,
then the timings.

The pattern itself is :class:`flightcache.patterns.write_through.WriteThrough`; this
module narrates it, one function per step. It imports the pattern inside the
functions, so that the command can read :class:`Options` without loading the drivers.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightcache.errors import FlightcacheError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Table
    from flightcache.patterns.write_through import WriteReport, WriteThrough


@dataclass(frozen=True)
class Options:
    """What `flightcache write-through` takes."""

    airline: str | None = None  # IATA code or id; None: the first of the route analysis
    name: str | None = None  # the new name; None: the old one + " (new)"


class InjectedFault(FlightcacheError):
    """A failure the demo or a test causes on purpose."""


@dataclass(frozen=True)
class Renames:
    """The airline the demo renames, and the names it gives it along the way."""

    airline_id: int
    code: str
    original: str
    new: str  # the write that works
    slow: str  # the write a slow reader races
    lost: str  # fault (a): rolled back
    late: str  # fault (b): committed, the cache write fails


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.patterns.write_through import WriteThrough
    from flightcache.patterns.write_through_airline import check_name, renamed

    options: Options = ctx.options
    pattern = WriteThrough(ctx.db, ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    if options.name is not None:
        check_name(options.name)
    wanted = find_airline(pattern, options.airline) if options.airline is not None else None
    airline = yield from _warm_routes(ctx, pattern, wanted)
    original = airline["airlinename"]
    names = Renames(
        airline_id=int(airline["airline_id"]),
        code=airline["iata"],
        original=original,
        new=options.name or renamed(original, "new"),
        slow=renamed(original, "newer"),
        lost=renamed(original, "rolled back"),
        late=renamed(original, "cache down"),
    )
    ctx.put_back(
        "airline_rename",
        {"name": original, "airline_id": names.airline_id},
        how=lambda: _restore(pattern, names.airline_id, original),
    )
    yield from _warm_airline(ctx, pattern, names)
    tagged = yield from _read_cached(ctx, pattern, names)
    yield from _write(ctx, pattern, names)
    yield from _read_after_write(ctx, pattern, names)
    yield from _slow_reader(ctx, pattern, names)
    yield from _database_fails(ctx, pattern, names, tagged)
    yield from _read_after_database_fault(ctx, pattern, names)
    yield from _cache_fails(ctx, pattern, names, tagged)
    yield from _read_after_cache_fault(ctx, pattern, names)
    yield from _timings(ctx, pattern, names)
    yield _names_table(names)


def _warm_routes(
    ctx: DemoContext, pattern: WriteThrough, airline: dict[str, str] | None
) -> Generator[Record, None, dict[str, str]]:
    with ctx.step(
        "Warm the cache: the airline route analysis",
        "001's expensive query, cached as JSON for an hour; every airline it lists"
        " gets the key in its tag set (SADD), before the value is SET",
    ) as step:
        routes, step.hit = pattern.results.route_analysis()
        if airline is None:
            airline = find_airline(pattern, str(routes[0]["airline_code"]) if routes else "1")
        step.rows = len(routes)
        step.outcome = f"miss: {len(routes)} rows from the database, cached and tagged"
    yield step
    return airline


def _warm_airline(ctx: DemoContext, pattern: WriteThrough, names: Renames) -> Iterator[Record]:
    with ctx.step(
        f"Warm the cache: airline {names.code} and its detail query",
        "the row as a hash (HSET, EXPIRE); the detail query as JSON, tagged with the airline",
    ) as step:
        row, hit_row = pattern.airline(names.airline_id)
        _, hit_detail = pattern.results.airline_detail(names.airline_id)
        step.hit = hit_row and hit_detail
        step.outcome = f"miss, now cached: {names.code} is {row['airlinename']!r}"
    yield step


def _read_cached(
    ctx: DemoContext, pattern: WriteThrough, names: Renames
) -> Generator[Record, None, list[str]]:
    code = names.code
    with ctx.step(
        "Read from the cache: the old name, and the tag set",
        f"SMEMBERS shows what a change of {code} must invalidate",
    ) as step:
        row, hit_row = pattern.airline(names.airline_id)
        routes, hit_routes = pattern.results.route_analysis()
        tagged = pattern.results.tagged(names.airline_id)
        step.hit = hit_row and hit_routes
        step.data = {"name": row["airlinename"], "tagged": tagged}
        step.outcome = (
            f"hit: {code} is {row['airlinename']!r}; route analysis: {_rank(routes, code)};"
            f" tag set lists {len(tagged)} keys"
        )
    yield step
    return tagged


def _write(ctx: DemoContext, pattern: WriteThrough, names: Renames) -> Iterator[Record]:
    with ctx.step(
        f"Write through: rename {names.code} to {names.new!r}",
        "order: BEGIN, UPDATE, SELECT the row, then (still in the transaction) INCR the"
        " version, DEL the hash and every tagged key (SPOP), COMMIT, then INCR the epoch, drop"
        " the tag again and, if the version is still the one INCRed, INCR it and HSET the new"
        " row (one script)",
    ) as step:
        report = pattern.update_name(names.airline_id, names.new)
        step.data = _report(report)
        now = pattern.valkey.get(pattern.keys.airline_version(names.airline_id))
        step.outcome = (
            f"committed; version {report.version} before COMMIT, {now} after;"
            f" {len(report.invalidated)} keys deleted before COMMIT;"
            f" the hash now holds {names.new!r}"
        )
    yield step


def _read_after_write(ctx: DemoContext, pattern: WriteThrough, names: Renames) -> Iterator[Record]:
    with ctx.step(
        "Read after the write: fresh everywhere",
        "the hash was written through (hit); the tagged results were deleted and are rebuilt",
    ) as step:
        row, hit_row = pattern.airline(names.airline_id)
        detail, hit_detail = pattern.results.airline_detail(names.airline_id)
        routes, hit_routes = pattern.results.route_analysis()
        step.data = {
            "name": row["airlinename"],
            "detail_name": detail[0]["airlinename"] if detail else None,
            "hits": {"airline": hit_row, "detail": hit_detail, "route_analysis": hit_routes},
        }
        step.outcome = (
            f"airline hash {'hit' if hit_row else 'miss'}: {row['airlinename']!r};"
            f" detail {'hit' if hit_detail else 'rebuilt'}; route analysis"
            f" {'hit' if hit_routes else 'rebuilt'}: {_rank(routes, names.code)}"
        )
    yield step


def _slow_reader(ctx: DemoContext, pattern: WriteThrough, names: Renames) -> Iterator[Record]:
    from flightcache.patterns.write_through_airline import read_airline

    with ctx.step(
        f"A slow reader: it read {names.new!r}, then a rename to {names.slow!r} committed",
        "the reader notes the version (SET NX, GET) and SELECTs the row; before its fill"
        " runs, a write renames the airline; the fill script finds the version moved",
    ) as step:
        noted = pattern.version(names.airline_id)
        row = read_airline(pattern.db, names.airline_id)
        pattern.update_name(names.airline_id, names.slow)
        filled = pattern.fill(pattern.valkey, row, noted)
        pipe = pattern.pipeline(pattern.valkey)
        pipe.get(pattern.keys.airline_version(names.airline_id))
        pipe.hget(pattern.keys.airline(names.airline_id), "airlinename")
        now, cached = pipe.execute()
        step.data = {
            "noted": noted,
            "read": row["airlinename"],
            "version": now,
            "filled": filled,
            "cached": cached,
        }
        step.outcome = (
            f"fill {'WRITTEN: STALE' if filled else 'refused'} (noted version {noted},"
            f" now {now}); the hash holds {cached!r}"
        )
        step.ok = not filled and cached == names.slow
    yield step


def _database_fails(
    ctx: DemoContext, pattern: WriteThrough, names: Renames, tagged: list[str]
) -> Iterator[Record]:
    from flightcache.patterns.write_through_airline import read_airline

    def fail() -> None:
        raise InjectedFault("injected: the database write fails just before COMMIT")

    with ctx.step(
        f"Fault (a): the database write fails (rename to {names.lost!r})",
        "an error injected inside the transaction, after the invalidation: ROLLBACK",
    ) as step:
        step.ok = False
        try:
            pattern.update_name(names.airline_id, names.lost, inside_transaction=fail)
        except InjectedFault as exc:
            step.fails_on_purpose()
            step.data["error"] = exc.message
        stored = read_airline(pattern.db, names.airline_id)["airlinename"]
        copies = cached_names(pattern, names.airline_id, tagged)
        step.data.update(database_name=stored, cached_names=copies)
        step.outcome = f"rolled back: the database keeps {stored!r}; " + _verdict(
            pattern, copies, stored
        )
    yield step


def _read_after_database_fault(
    ctx: DemoContext, pattern: WriteThrough, names: Renames
) -> Iterator[Record]:
    with ctx.step(
        "Read after fault (a)",
        "the copies were deleted before the failed COMMIT: misses load the committed name",
    ) as step:
        row, step.hit = pattern.airline(names.airline_id)
        routes, _ = pattern.results.route_analysis()
        step.data = {"name": row["airlinename"]}
        step.outcome = (
            f"{'hit' if step.hit else 'miss'}: {row['airlinename']!r};"
            f" route analysis rebuilt: {_rank(routes, names.code)}"
        )
    yield step


def _cache_fails(
    ctx: DemoContext, pattern: WriteThrough, names: Renames, tagged: list[str]
) -> Iterator[Record]:
    from flightcache.patterns.write_through_airline import read_airline

    broken, address = unreachable_client()
    ctx.tracer.instrument(broken)
    ctx.on_exit(broken.close)
    with ctx.step(
        f"Fault (b): the cache write fails after COMMIT (rename to {names.late!r})",
        f"the INCR, SPOP and fill script after COMMIT go to {address}, where nothing listens;"
        f" {pattern.attempts} tries, then the airline is recorded for repair",
    ) as step:
        step.ok = False
        report = pattern.update_name(names.airline_id, names.late, cache=broken)
        if report.error:
            step.fails_on_purpose()
        stored = read_airline(pattern.db, names.airline_id)["airlinename"]
        copies = cached_names(pattern, names.airline_id, tagged)
        step.data = {
            **_report(report),
            "database_name": stored,
            "cached_names": copies,
            "repairs": dict(pattern.repairs),
        }
        step.outcome = (
            f"committed {stored!r}; the cache write failed {report.attempts} times"
            f" ({report.error}); " + _verdict(pattern, copies, stored)
        )
    yield step


def _read_after_cache_fault(
    ctx: DemoContext, pattern: WriteThrough, names: Renames
) -> Iterator[Record]:
    with ctx.step(
        "Read after fault (b): fresh, and repaired",
        "the airline is recorded for repair: the read skips Valkey and writes the row through",
    ) as step:
        row, step.hit = pattern.airline(names.airline_id)
        routes, _ = pattern.results.route_analysis()
        again, hit_again = pattern.airline(names.airline_id)
        step.data = {"name": row["airlinename"], "repairs": dict(pattern.repairs)}
        step.outcome = (
            f"{row['airlinename']!r} from the database, route analysis:"
            f" {_rank(routes, names.code)};"
            f" next read {'hit' if hit_again else 'miss'}: {again['airlinename']!r}"
        )
    yield step


def _timings(ctx: DemoContext, pattern: WriteThrough, names: Renames) -> Iterator[Record]:
    from flightcache.patterns.write_through_airline import read_airline, rename_in_database

    airline_id = names.airline_id
    yield ctx.compare(
        "write: database only vs write-through",
        {
            "database only": lambda: rename_in_database(pattern.db, airline_id, names.new),
            "write-through": lambda: pattern.update_name(airline_id, names.new),
        },
        note="write-through = the same transaction + INCR/DEL/SPOP before COMMIT"
        " + INCR/SPOP and the version-checked HSET/EXPIRE script after it",
    )
    yield ctx.compare(
        "read after the write: database vs cache hit",
        {
            "database": lambda: read_airline(pattern.db, airline_id),
            "cache hit": lambda: pattern.airline(airline_id),
        },
        note="database = SELECT the airline row; cache hit = HGETALL of the written-through hash",
    )


def _names_table(names: Renames) -> Table:
    from flightcache.demos.base import Table

    return Table(
        "names along the way",
        ["when", "name"],
        [
            ["before", names.original],
            ["after the write", names.new],
            ["after the slow reader's SELECT", names.slow],
            ["fault (a), rolled back", names.lost],
            ["fault (b), committed", names.late],
            ["restored when the demo ends", names.original],
        ],
    )


def find_airline(pattern: WriteThrough, code_or_id: str) -> dict[str, str]:
    """The airline a person named by IATA code or id; DataError when none matches."""
    from flightcache.errors import DataError
    from flightcache.patterns.write_through_airline import row_dict
    from flightcache.sqlfiles import query

    dialect = pattern.db.dialect
    text = code_or_id.strip()
    if text.isdecimal():
        found = pattern.db.fetch(query(dialect, "airline_by_id"), {"airline_id": int(text)})
        what = f"id {text}"
    else:
        found = pattern.db.fetch(query(dialect, "airline_by_iata"), {"iata": text.upper()})
        what = f"IATA code {text!r}"
    if not found.rows:
        codes = [str(r[0]) for r in pattern.db.fetch(query(dialect, "airline_some_codes")).rows]
        raise DataError(
            f"no airline with {what}",
            hint=f"pass an IATA code such as {', '.join(codes) or 'LH'}, or an airline id",
        )
    return row_dict(found.columns, found.rows[0])


def cached_names(pattern: WriteThrough, airline_id: int, keys: list[str]) -> dict[str, str | None]:
    """The name each cached copy shows for the airline; None where there is no copy.

    ``keys`` are query keys (e.g. those its tag set listed); the airline hash
    comes first.
    """
    import json

    from flightcache.patterns.write_through_airline import read_airline

    hash_key = pattern.keys.airline(airline_id)
    code = read_airline(pattern.db, airline_id)["iata"]
    pipe = pattern.pipeline(pattern.valkey)
    pipe.hget(hash_key, "airlinename")
    for key in keys:
        pipe.get(key)
    hashed, *texts = pipe.execute()
    names: dict[str, str | None] = {hash_key: hashed}
    for key, text in zip(keys, texts, strict=True):
        rows = json.loads(text) if text is not None else []
        shown = [
            r.get("airlinename", r.get("airline_name"))
            for r in rows
            if code in (r.get("iata"), r.get("airline_code"))
        ]
        names[key] = str(shown[0]) if shown else None
    return names


def _rank(rows: list[dict[str, Any]], code: str) -> str:
    """Where the airline stands in the route analysis, with the name shown there."""
    for rank, row in enumerate(rows, 1):
        if row.get("airline_code") == code:
            return f"#{rank} {row['airline_name']!r}"
    return f"{code} is not in the top {len(rows)}"


def _report(report: WriteReport) -> dict[str, Any]:
    return {
        "airline_id": report.airline_id,
        "committed": report.committed,
        "cache_written": report.cache_written,
        "attempts": report.attempts,
        "invalidated": report.invalidated,
        "version": report.version,
        "superseded": report.superseded,
        "error": report.error,
    }


def _verdict(pattern: WriteThrough, copies: dict[str, str | None], stored: str) -> str:
    """What Valkey holds for the airline, compared with the database."""
    shown = ", ".join(
        f"{key.removeprefix(pattern.keys.prefix)} {'no copy' if name is None else repr(name)}"
        for key, name in copies.items()
    )
    stale = [k for k, name in copies.items() if name is not None and name != stored]
    return f"Valkey: {shown}; " + (
        f"STALE: {len(stale)} copies differ from the database" if stale else "nothing stale"
    )


def unreachable_client() -> tuple[Any, str]:
    """A Valkey client for a port nobody listens on, and that address."""
    import socket

    from flightcache.config import ValkeyUrl
    from flightcache.valkey_client import unchecked

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    return unchecked(ValkeyUrl.parse(f"valkey://{address}"), timeout=0.25), address


def _restore(pattern: WriteThrough, airline_id: int, name: str) -> None:
    """Put the original name back, through the cache when Valkey lets us."""
    import valkey.exceptions

    from flightcache.patterns.write_through_airline import rename_in_database

    try:
        pattern.update_name(airline_id, name)
    except (valkey.exceptions.ValkeyError, FlightcacheError):
        rename_in_database(pattern.db, airline_id, name)
