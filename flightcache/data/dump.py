"""Stream the rows of a FlughafenDB MySQL dump, plain ``.sql`` or gzipped.

:func:`read_dump` reads a file written by ``mysqldump`` (gzip is recognised by its
magic bytes, not by the file name) and yields :class:`RowBatch` objects: rows of
one FlughafenDB table at a time, in flightcache's canonical column order
(:data:`flightcache.data.tables.COLUMNS`), ready for a bulk load into MySQL or
PostgreSQL. The file is never read into memory as a whole: it is decoded in
chunks of about 1 MiB and an extended ``INSERT`` is consumed row by row, so a
single statement may be as long as it likes.

Only ``CREATE TABLE`` (to learn each table's column order in the dump) and
``INSERT``/``REPLACE`` matter; every other statement, comment, conditional
comment and ``DELIMITER`` block is skipped without being interpreted.

Standard library only, on purpose: this module must not need a database driver.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

from flightcache.data.tables import COLUMNS, TABLES
from flightcache.errors import DumpFormatError

__all__ = ["RowBatch", "mysql_point_to_lonlat", "read_dump"]

_CHUNK = 1 << 20  # bytes read from the (decompressed) stream at a time
_PROGRESS_STEP = 1 << 20  # on_progress is called about once per MiB of file
_IDENTIFY_LIMIT = 64 << 20  # text read before we give up looking for FlughafenDB
_MAX_PENDING = 256 << 20  # longest statement (other than INSERT) or single row
_PEEK = 64 << 10  # text kept in view when looking at the start of a statement
_MARKER_TABLES = ("airport", "flight", "booking")

_HINT_DUMP = "give the FlughafenDB dump as written by mysqldump, plain .sql or gzipped .sql.gz"


@dataclass(frozen=True)
class RowBatch:
    """Rows of one FlughafenDB table, in flightcache's canonical column order."""

    table: str  # a FlughafenDB table name (a key of COLUMNS)
    columns: tuple[str, ...]  # always COLUMNS[table], canonical order
    rows: list[tuple[object, ...]]  # each tuple reordered into `columns` order


# --------------------------------------------------------------------------- values

_ESCAPES = {
    "0": "\0",
    "'": "'",
    '"': '"',
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "\\": "\\",
    # MySQL keeps the backslash of \% and \_ outside LIKE patterns.
    "%": "\\%",
    "_": "\\_",
}
_ESCAPE_RE = re.compile(r"\\(.)|''", re.S)
_DECIMAL_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_HEX_RE = re.compile(r"0x([0-9A-Fa-f]*)|[xX]'([0-9A-Fa-f]*)'")
_BITS_RE = re.compile(r"0b([01]*)|[bB]'([01]*)'")
_INTRODUCED_RE = re.compile(r"_(\w+)\s*'(.*)'", re.S)


# Columns that hold bytes: a plain '...' string there (older mysqldump versions
# write POINTs that way, raw bytes and all) is given back as bytes too.
_BINARY_COLUMNS = {"airport_geo": ("geolocation",)}


class _BadValue(Exception):
    """A value literal that this reader does not understand."""


class _NotUtf8(Exception):
    """A string value whose bytes in the file are not UTF-8."""


def _unescape_match(m: re.Match[str]) -> str:
    c = m.group(1)
    if c is None:  # a doubled quote
        return "'"
    return _ESCAPES.get(c, c)


def _unescape(body: str) -> str:
    if "\\" in body or "''" in body:
        return _ESCAPE_RE.sub(_unescape_match, body)
    return body


def _convert(tok: str) -> object:
    """One value literal of a VALUES tuple, as Python. The common cases come first."""
    if tok[0] == "'":
        body = tok[1:-1]
        if "\\" in body or "''" in body:
            return _ESCAPE_RE.sub(_unescape_match, body)
        return body
    if tok.isdecimal():
        return int(tok)
    if tok == "NULL":
        return None
    return _convert_rare(tok)


def _convert_rare(tok: str) -> object:
    if tok[0] in "+-" and tok[1:].isdecimal():
        return int(tok)
    if _DECIMAL_RE.fullmatch(tok):
        return Decimal(tok)
    if tok.upper() == "NULL":
        return None
    m = _HEX_RE.fullmatch(tok)
    if m:
        digits = m.group(1) if m.group(1) is not None else m.group(2)
        if len(digits) % 2:
            if m.group(1) is None:  # X'...' must have an even number of digits
                raise _BadValue(tok)
            digits = "0" + digits
        return bytes.fromhex(digits)
    m = _BITS_RE.fullmatch(tok)
    if m:
        bits = m.group(1) if m.group(1) is not None else m.group(2)
        return int(bits, 2) if bits else 0
    m = _INTRODUCED_RE.fullmatch(tok)
    if m:
        text = _unescape(m.group(2))
        if m.group(1).lower() == "binary":
            # The file is decoded as UTF-8 with surrogateescape, so this gives
            # back exactly the bytes that were between the quotes.
            return text.encode("utf-8", "surrogateescape")
        return text
    raise _BadValue(tok)


# Whole columns of one batch, joined with NUL (which no token of these shapes holds),
# are checked against these at C speed; a column that fits one is converted with
# a fast path that gives exactly what _convert would give value by value.
_INT_COLUMN_RE = re.compile(r"(?:(?:-?[0-9]++|NULL)\0)*+(?:-?[0-9]++|NULL)")
_DECIMAL_COLUMN_RE = re.compile(r"(?:(?:-?[0-9]++\.[0-9]++|NULL)\0)*+(?:-?[0-9]++\.[0-9]++|NULL)")
_STRING_COLUMN_RE = re.compile(r"(?:(?:'[^'\\\0]*+'|NULL)\0)*+(?:'[^'\\\0]*+'|NULL)")


# The file is decoded with surrogateescape: bytes that are not UTF-8 become these.
_NOT_UTF8_RE = re.compile("[\udc80-\udcff]")


def _convert_column(tokens: tuple[str, ...]) -> list[object]:
    """The values of one column of a batch, as _convert would give them."""
    joined = "\0".join(tokens)
    has_null = "NULL" in tokens
    if _INT_COLUMN_RE.fullmatch(joined):
        if has_null:
            return [None if t == "NULL" else int(t) for t in tokens]
        return list(map(int, tokens))
    if _STRING_COLUMN_RE.fullmatch(joined):
        if _NOT_UTF8_RE.search(joined):
            raise _NotUtf8
        if has_null:
            return [None if t == "NULL" else t[1:-1] for t in tokens]
        return [t[1:-1] for t in tokens]
    if _DECIMAL_COLUMN_RE.fullmatch(joined):
        if has_null:
            return [None if t == "NULL" else Decimal(t) for t in tokens]
        return list(map(Decimal, tokens))
    values = list(map(_convert, tokens))
    if _NOT_UTF8_RE.search(joined):
        for value in values:
            if isinstance(value, str) and _NOT_UTF8_RE.search(value):
                raise _NotUtf8
    return values


def _convert_binary_column(tokens: tuple[str, ...]) -> list[object]:
    """Like _convert_column, but a plain '...' string gives its bytes."""
    return [
        _unescape(t[1:-1]).encode("utf-8", "surrogateescape") if t[0] == "'" else _convert(t)
        for t in tokens
    ]


# A value: quoted string, introduced string (_binary '...'), X'..'/B'..', or a bare
# token (NULL, number, 0x..). Possessive quantifiers keep a failed match linear.
_STRING = r"'(?:[^'\\]++|\\.|'')*+'"
_VALUE = r"\s*(" + _STRING + r"|_\w+\s*" + _STRING + r"|[xXbB]'[^']*'|[^,'()\s]++)\s*"


# What mysqldump writes nearly always: no spaces, strings without escapes. About
# twice as fast as the full pattern, and a subset of it, tried first.
_VALUE_FAST = r"('[^'\\]*+'|[^,'()\s]++)"


@lru_cache(maxsize=64)
def _row_re(n: int) -> re.Pattern[str]:
    """One ``(v1,...,vn)`` tuple and the ``,`` or ``;`` after it; n groups."""
    return re.compile(r"\s*\(" + ",".join([_VALUE] * n) + r"\)\s*[,;]", re.S)


@lru_cache(maxsize=64)
def _row_fast_re(n: int) -> re.Pattern[str]:
    """:func:`_row_re` for the common case only."""
    return re.compile(r"\(" + ",".join([_VALUE_FAST] * n) + r"\)[,;]")


# The longest prefix of a tuple that a tuple of any width could start with.
_ROW_PREFIX_RE = re.compile(r"\s*\((?:[^'()]++|" + _STRING + r")*+", re.S)
_ROW_ANY_RE = re.compile(r"\s*\(((?:[^'()]++|" + _STRING + r")*+)\)\s*[,;]", re.S)
_VALUE_ANY_RE = re.compile(_VALUE + r"(?:,|$)", re.S)


# --------------------------------------------------------------------------- points


def mysql_point_to_lonlat(value: bytes) -> tuple[float, float]:
    """(x, y) of a MySQL POINT: 4-byte little-endian SRID + WKB, or bare WKB.

    In FlughafenDB x is the longitude and y the latitude.
    """
    hint = "airport_geo.geolocation must hold MySQL POINT values (SRID + WKB)"
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise DumpFormatError(f"a POINT must be bytes, got {type(value).__name__}", hint)
    data = bytes(value)
    if len(data) == 25:
        wkb = data[4:]
    elif len(data) == 21:
        wkb = data
    else:
        raise DumpFormatError(
            f"not a MySQL POINT: {len(data)} bytes where 25 (SRID + WKB) or 21 (WKB) were expected",
            hint,
        )
    if wkb[0] == 1:
        fmt = "<Idd"
    elif wkb[0] == 0:
        fmt = ">Idd"
    else:
        raise DumpFormatError(
            f"not a MySQL POINT: WKB byte-order byte is {wkb[0]}, not 0 or 1", hint
        )
    geometry_type, x, y = struct.unpack(fmt, wkb[1:])
    if geometry_type != 1:
        raise DumpFormatError(
            f"not a MySQL POINT: WKB geometry type is {geometry_type}, not 1 (Point)",
            hint,
        )
    return (x, y)


# --------------------------------------------------------------------------- file


class _DumpFile:
    """The bytes of the dump (gunzipped if need be) as UTF-8 text, with progress."""

    def __init__(self, path: Path, on_progress: Callable[[int, int], None] | None) -> None:
        self.path = path
        self._on_progress = on_progress
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise DumpFormatError(
                f"dump file not found: {path}", "check the path of the dump file"
            ) from None
        except IsADirectoryError:
            raise DumpFormatError(
                f"{path} is a directory, not a dump file", "give the path of the file"
            ) from None
        except OSError as exc:
            raise DumpFormatError(
                f"cannot open {path}: {exc.strerror or exc}",
                "check that the file exists and is readable",
            ) from None
        self._raw = raw
        try:
            self.total = os.fstat(raw.fileno()).st_size
            self.gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
        except OSError as exc:
            raw.close()
            raise DumpFormatError(
                f"cannot read {path}: {exc.strerror or exc}",
                "check that the file is readable",
            ) from None
        self._stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=raw, mode="rb") if self.gzipped else raw
        )
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text_bytes = 0  # (decompressed) bytes read so far
        self._reported = 0
        self._first = True
        self._done = False

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def progress(self, *, final: bool = False) -> None:
        if self._on_progress is None:
            return
        done = self.total if final else min(self._raw.tell(), self.total)
        if done - self._reported >= _PROGRESS_STEP or (final and done != self._reported):
            self._reported = done
            self._on_progress(done, self.total)

    def read_text(self, size: int) -> str | None:
        """At least one character of text, or None at the end of the file."""
        while not self._done:
            data = self._read(size)
            self.progress()
            if self._first:
                self._check_start(data)
                self._first = False
            if not data:
                self._done = True
                return self._decoder.decode(b"", final=True) or None
            self.text_bytes += len(data)
            text = self._decoder.decode(data)
            if self.text_bytes == len(data) and text.startswith("\ufeff"):
                text = text[1:]  # a byte order mark
            if text:
                return text
        return None

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except EOFError:
            raise DumpFormatError(
                f"{self.path} is a truncated gzip file: the compressed data ends early",
                "download or copy the dump again; `gzip -t` checks a .gz file",
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DumpFormatError(
                f"{self.path} starts like a gzip file but cannot be decompressed: {exc}",
                "download or copy the dump again; `gzip -t` checks a .gz file",
            ) from None
        except OSError as exc:
            if self.gzipped:
                raise DumpFormatError(
                    f"{self.path} starts like a gzip file but cannot be decompressed: {exc}",
                    "download or copy the dump again; `gzip -t` checks a .gz file",
                ) from None
            raise DumpFormatError(
                f"cannot read {self.path}: {exc.strerror or exc}",
                "check that the file is readable",
            ) from None

    def _check_start(self, data: bytes) -> None:
        if not data:
            what = "holds no data once decompressed" if self.gzipped else "is empty"
            raise DumpFormatError(
                f"{self.path} {what}, it is not a FlughafenDB MySQL dump", _HINT_DUMP
            )
        # mysqldump writes NUL as \0, and everything before the first row data
        # (which may hold raw binary bytes) is UTF-8 text: a strict decode of that
        # tells a binary file apart.
        cuts = [i for i in map(data.find, (b"INSERT", b"REPLACE", b"_binary")) if i >= 0]
        head = data[: min(cuts)] if cuts else data
        try:
            codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
            text = True
        except UnicodeDecodeError:
            text = False
        if not text or b"\0" in data:
            raise DumpFormatError(
                f"{self.path} is a binary file, not a SQL dump (it is not UTF-8 text)",
                _HINT_DUMP,
            )


class _Source:
    """A window of text over the dump; ``pos`` marks what has been consumed."""

    def __init__(
        self,
        file: _DumpFile | None,
        text: str = "",
        before_read: Callable[[], None] | None = None,
    ) -> None:
        self.buf = text
        self.pos = 0
        self.eof = file is None
        self._file = file
        self._before_read = before_read

    def more(self, at_least: int = 0) -> bool:
        """Drop ``buf[:pos]`` and append more text; False at the end of the file."""
        if self.eof or self._file is None:
            return False
        if self._before_read is not None:
            self._before_read()
        text = self._file.read_text(max(_CHUNK, at_least))
        if text is None:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def ensure(self, n: int) -> None:
        """Have at least n characters after ``pos`` in view, or all that is left."""
        while len(self.buf) - self.pos < n and self.more():
            pass


# --------------------------------------------------------------------------- SQL

_IDENT = r"(?:`(?:[^`]|``)*`|\"(?:[^\"]|\"\")*\"|[\w$]+)"
# White space and /* comments */ (mysqldump writes CREATE TABLE /*!32312 IF NOT EXISTS*/).
_GAP = r"(?:\s++|/\*(?:[^*]++|\*(?!/))*+\*/)*+"
_TABLE_NAME = r"(?:" + _IDENT + _GAP + r"\." + _GAP + r")?(" + _IDENT + r")"
_INSERT_START_RE = re.compile(
    r"(?:INSERT|REPLACE)\b(?:" + _GAP + r"(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\b)*"
    r"(?:" + _GAP + r"INTO\b)?" + _GAP + _TABLE_NAME,
    re.I,
)
_INSERT_REST_RE = re.compile(
    _GAP + r"(?:\(\s*((?:" + _IDENT + r"\s*,\s*)*" + _IDENT + r")\s*\))?" + _GAP + r"VALUES?\b",
    re.I,
)
_CREATE_TABLE_RE = re.compile(
    r"CREATE"
    + _GAP
    + r"(?:TEMPORARY"
    + _GAP
    + r")?TABLE\b"
    + _GAP
    + r"(?:IF\s+NOT\s+EXISTS\b"
    + _GAP
    + r")?"
    + _TABLE_NAME,
    re.I,
)
_DELIMITER_RE = re.compile(r"DELIMITER[ \t]+(\S+)[^\n]*", re.I)
_SQL_WORD_RE = re.compile(
    r"(?:SET|DROP|CREATE|ALTER|LOCK|UNLOCK|USE|START|COMMIT|BEGIN|INSERT|REPLACE)\b",
    re.I,
)
_SPACE_RE = re.compile(r"\s+")
_TAIL_SPACE_RE = re.compile(r"\s*\Z")
_IDENT_RE = re.compile(_IDENT)
_QUOTED_RE = {
    "'": re.compile(_STRING, re.S),
    '"': re.compile(r'"(?:[^"\\]++|\\.|"")*+"', re.S),
    "`": re.compile(r"`(?:[^`]++|``)*+`"),
}
_DEF_TOKEN_RE = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`]|``)*`"""
    r"|/\*.*?\*/|--[ \t][^\n]*|\#[^\n]*|[(),]|[^'\"`(),/#-]+|[/#-]",
    re.S,
)
_NOT_A_COLUMN = frozenset(
    {
        "PRIMARY",
        "KEY",
        "INDEX",
        "UNIQUE",
        "CONSTRAINT",
        "FOREIGN",
        "FULLTEXT",
        "SPATIAL",
        "CHECK",
        "PERIOD",
    }
)


@lru_cache(maxsize=16)
def _special_re(delimiter: str) -> re.Pattern[str]:
    """What matters when looking for the end of a statement."""
    return re.compile(re.escape(delimiter) + r"|['\"`#]|--|/\*")


def _unquote_ident(ident: str) -> str:
    if ident[:1] == "`":
        return ident[1:-1].replace("``", "`")
    if ident[:1] == '"':
        return ident[1:-1].replace('""', '"')
    return ident


def _table_columns(statement: str, start: int) -> list[str] | None:
    """Column names of a CREATE TABLE whose name ends at ``start``; None if unreadable."""
    columns: list[str] = []
    item: list[str] = []
    depth = 0
    for m in _DEF_TOKEN_RE.finditer(statement, start):
        tok = m.group()
        if tok.startswith(("/*", "--", "#")):
            continue
        if depth == 0:
            if tok == "(":
                depth = 1
            elif tok.strip():
                return None  # CREATE TABLE ... LIKE / AS SELECT
            continue
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        if depth == 0 or (depth == 1 and tok == ","):
            words = "".join(item).strip()
            item = []
            if words:
                first = _IDENT_RE.match(words)
                if first is None:
                    return None
                name = first.group()
                if name[0] in '`"' or name.upper() not in _NOT_A_COLUMN:
                    columns.append(_unquote_ident(name))
            if depth == 0:
                return columns
            continue
        item.append(tok)
    return None


def _snippet(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Target:
    """How the tuples of one INSERT map onto a FlughafenDB table."""

    table: str
    columns: tuple[str, ...]
    width: int
    reorder: Callable[[tuple[str, ...]], tuple[str, ...]] | None
    row_re: re.Pattern[str]
    fast_re: re.Pattern[str]


class _Parser:
    def __init__(self, file: _DumpFile, batch_rows: int) -> None:
        self.file = file
        self.path = file.path
        self.src = _Source(file, before_read=self._check_identified)
        self.batch_rows = batch_rows
        self.delimiter = ";"
        self.order: dict[str, tuple[str, ...]] = {}  # table -> its columns in the dump
        self.identified = False
        self.saw_sql = False
        self.with_rows: set[str] = set()
        self.pending: list[RowBatch] = []  # batches held back until identified
        self.targets: dict[tuple[str, str | None], _Target] = {}
        self.table: str | None = None  # table of self.raw_rows
        self.raw_rows: list[tuple[str, ...]] = []  # value literals, canonical order

    # ---- checks

    def _not_flughafendb(self) -> DumpFormatError:
        why = "" if self.saw_sql else " (it does not look like SQL at all)"
        return DumpFormatError(
            f"{self.path} is not a FlughafenDB MySQL dump: no airport, flight or"
            f" booking table found{why}",
            _HINT_DUMP,
        )

    def _check_identified(self) -> None:
        if not self.identified and self.file.text_bytes >= _IDENTIFY_LIMIT:
            raise self._not_flughafendb()

    def _check_columns(self, table: str, columns: list[str], where: str) -> None:
        canonical = COLUMNS[table]
        lowered = [c.lower() for c in columns]
        missing = [c for c in canonical if c not in lowered]
        extra = [c for c, low in zip(columns, lowered, strict=True) if low not in canonical]
        doubled = sorted({c for c in lowered if lowered.count(c) > 1})
        if not (missing or extra or doubled):
            return
        problems = []
        if missing:
            problems.append("missing column(s) " + ", ".join(missing))
        if extra:
            problems.append("unexpected column(s) " + ", ".join(extra))
        if doubled:
            problems.append("repeated column(s) " + ", ".join(doubled))
        head = (
            f"{self.path}: {where} for table `{table}`"
            if self.identified
            else f"{self.path} is not a FlughafenDB MySQL dump: {where} for table `{table}`"
        )
        raise DumpFormatError(
            f"{head} does not match FlughafenDB: {'; '.join(problems)}",
            f"FlughafenDB's `{table}` has the columns {', '.join(canonical)};"
            " use an unmodified FlughafenDB dump",
        )

    # ---- batches

    def _take(self) -> RowBatch | None:
        """The rows gathered so far, converted, as a batch."""
        if self.table is None or not self.raw_rows:
            return None
        raw, self.raw_rows = self.raw_rows, []
        binary = _BINARY_COLUMNS.get(self.table, ())
        try:
            columns = [
                (_convert_binary_column if name in binary else _convert_column)(column)
                for name, column in zip(COLUMNS[self.table], zip(*raw, strict=False), strict=True)
            ]
        except _BadValue as exc:
            raise DumpFormatError(
                f"{self.path}: cannot read the value {_snippet(str(exc))} in an INSERT"
                f" for table `{self.table}`",
                _HINT_DUMP,
            ) from None
        except _NotUtf8:
            raise DumpFormatError(
                f"{self.path}: table `{self.table}` holds text that is not UTF-8",
                "dump with mysqldump --default-character-set=utf8mb4",
            ) from None
        return RowBatch(self.table, COLUMNS[self.table], list(zip(*columns, strict=False)))

    def _release(self, batch: RowBatch | None) -> Iterator[RowBatch]:
        if batch is None:
            return
        if self.identified:
            yield from self.pending
            self.pending.clear()
            yield batch
        else:
            self.pending.append(batch)

    # ---- main loop

    def run(self) -> Iterator[RowBatch]:
        src = self.src
        while self._skip_blank():
            src.ensure(_PEEK)
            buf, pos = src.buf, src.pos
            m = _DELIMITER_RE.match(buf, pos)
            if m:
                self.saw_sql = True
                self.delimiter = m.group(1)
                src.pos = m.end()
                continue
            m = _INSERT_START_RE.match(buf, pos)
            if m:
                self.saw_sql = True
                yield from self._insert(m)
                continue
            m = _CREATE_TABLE_RE.match(buf, pos)
            if m:
                self.saw_sql = True
                self._create_table(self._statement(keep=True))
                if self.identified and self.pending:
                    yield from self.pending
                    self.pending.clear()
                continue
            if _SQL_WORD_RE.match(buf, pos):
                self.saw_sql = True
            self._statement(keep=False)
        yield from self._release(self._take())
        if not self.identified:
            raise self._not_flughafendb()
        if not self.with_rows:
            raise DumpFormatError(
                f"{self.path} holds the schema but no rows: no INSERT for any FlughafenDB table",
                "dump the database with its data (mysqldump without --no-data)",
            )
        self.file.progress(final=True)

    def _skip_blank(self) -> bool:
        """Skip white space and comments; False at the end of the file."""
        src = self.src
        while True:
            src.ensure(3)
            buf, pos = src.buf, src.pos
            if pos >= len(buf):
                return False
            m = _SPACE_RE.match(buf, pos)
            if m:
                src.pos = m.end()
                continue
            if buf.startswith("/*", pos):
                self._skip_past("*/", pos + 2)
            elif buf[pos] == "#" or (
                buf.startswith("--", pos) and (pos + 2 == len(buf) or buf[pos + 2].isspace())
            ):
                self._skip_past("\n", pos + 1)
            else:
                return True

    def _skip_past(self, end: str, start: int) -> None:
        """Consume up to and including the next ``end`` at or after ``start``."""
        src = self.src
        while True:
            i = src.buf.find(end, start)
            if i >= 0:
                src.pos = i + len(end)
                return
            src.pos = max(start, len(src.buf) - len(end) + 1)
            if not src.more():
                src.pos = len(src.buf)
                return
            start = src.pos

    def _statement(self, *, keep: bool) -> str:
        """Consume one statement up to its delimiter; its text if ``keep``."""
        src = self.src
        delimiter = self.delimiter
        special = _special_re(delimiter)
        tail = max(len(delimiter), 2) - 1  # a token may straddle the end of buf
        i = src.pos
        while True:
            buf = src.buf
            m = special.search(buf, i)
            if m is not None:
                tok = m.group()
                if tok == delimiter:
                    text = buf[src.pos : m.start()] if keep else ""
                    src.pos = m.end()
                    return text
                end = self._token_end(buf, m.start(), tok)
                if end >= 0:
                    i = end
                    continue
                i = m.start()
            else:
                i = max(i, len(buf) - tail)
            if not keep:
                src.pos = i
            if len(buf) - src.pos > _MAX_PENDING:
                raise DumpFormatError(
                    f"{self.path}: a statement is longer than"
                    f" {_MAX_PENDING >> 20} MiB: {_snippet(buf[src.pos :])}",
                    _HINT_DUMP,
                )
            offset = i - src.pos
            if not src.more(len(buf) - src.pos):
                text = src.buf[src.pos :] if keep else ""
                src.pos = len(src.buf)
                return text
            i = src.pos + offset

    def _token_end(self, buf: str, start: int, tok: str) -> int:
        """End of the quoted string or comment at ``start``; -1 if it runs off buf."""
        eof = self.src.eof
        if tok in _QUOTED_RE:
            # A doubled quote cut in two by the end of buf reads as the end of one
            # string and the start of the next: the statement ends in the same place.
            m = _QUOTED_RE[tok].match(buf, start)
            if m is not None:
                return m.end()
        elif tok == "--":
            if start + 2 < len(buf) and not buf[start + 2].isspace():
                return start + 1  # not a comment
            if start + 2 < len(buf) or eof:
                i = buf.find("\n", start)
                if i >= 0:
                    return i + 1
        elif tok == "#":
            i = buf.find("\n", start)
            if i >= 0:
                return i + 1
        else:  # /*
            i = buf.find("*/", start + 2)
            if i >= 0:
                return i + 2
        return len(buf) if eof else -1

    # ---- CREATE TABLE

    def _create_table(self, statement: str) -> None:
        m = _CREATE_TABLE_RE.match(statement)
        if m is None:  # pragma: no cover - matched before the statement was read
            return
        table = _unquote_ident(m.group(1)).lower()
        if table not in TABLES:
            return
        columns = _table_columns(statement, m.end())
        if columns is None:
            raise DumpFormatError(
                f"{self.path}: cannot read the columns of CREATE TABLE `{table}`:"
                f" {_snippet(statement)}",
                _HINT_DUMP,
            )
        self._check_columns(table, columns, "CREATE TABLE")
        self.order[table] = tuple(c.lower() for c in columns)
        self.targets.clear()
        if table in _MARKER_TABLES:
            self.identified = True

    # ---- INSERT

    def _target(self, table: str, listed: str | None) -> _Target:
        target = self.targets.get((table, listed))
        if target is None:
            target = self.targets[table, listed] = self._new_target(table, listed)
        return target

    def _new_target(self, table: str, listed: str | None) -> _Target:
        if listed is not None:
            columns = [_unquote_ident(c) for c in _IDENT_RE.findall(listed)]
            self._check_columns(table, columns, "the column list of an INSERT")
            order = tuple(c.lower() for c in columns)
        elif table in self.order:
            order = self.order[table]
        else:
            raise DumpFormatError(
                f"{self.path}: an INSERT for table `{table}` comes before its CREATE"
                " TABLE, so its column order is unknown",
                "dump with the table definitions (no --no-create-info), or with --complete-insert",
            )
        canonical = COLUMNS[table]
        positions = tuple(order.index(c) for c in canonical)
        reorder = None if positions == tuple(range(len(order))) else itemgetter(*positions)
        return _Target(
            table, canonical, len(order), reorder, _row_re(len(order)), _row_fast_re(len(order))
        )

    def _insert(self, start: re.Match[str]) -> Iterator[RowBatch]:
        src = self.src
        table = _unquote_ident(start.group(1)).lower()
        if table not in TABLES:
            self._statement(keep=False)
            return
        rest = _INSERT_REST_RE.match(src.buf, start.end())
        if rest is None:
            raise DumpFormatError(
                f"{self.path}: cannot read an INSERT for table `{table}`:"
                f" {_snippet(src.buf[src.pos : src.pos + 200])}",
                "only INSERT ... VALUES statements as mysqldump writes them are read",
            )
        target = self._target(table, rest.group(1))
        if self.delimiter == ";":
            src.pos = rest.end()
            yield from self._rows(src, target)
        else:  # inside a DELIMITER block: read the statement, then its tuples
            offset = rest.end() - src.pos
            text = self._statement(keep=True)
            yield from self._rows(_Source(None, text[offset:] + ";"), target)

    def _rows(self, src: _Source, target: _Target) -> Iterator[RowBatch]:
        if self.table != target.table:
            yield from self._release(self._take())
            self.table = target.table
        self.with_rows.add(target.table)
        # The hot loop: only the regex runs per row; values are converted a
        # column at a time when the batch is taken (see _convert_column).
        rows = self.raw_rows
        limit = self.batch_rows
        reorder = target.reorder
        fast = target.fast_re.match
        full = target.row_re.match
        while True:
            buf = src.buf
            pos = src.pos
            while True:
                m = fast(buf, pos) or full(buf, pos)
                if m is None:
                    break
                values = m.groups()
                rows.append(values if reorder is None else reorder(values))
                pos = m.end()
                if len(rows) >= limit:
                    src.pos = pos
                    yield from self._release(self._take())
                    rows = self.raw_rows
                if buf[pos - 1] == ";":
                    src.pos = pos
                    return
            src.pos = pos
            self._more_rows(src, target)

    def _more_rows(self, src: _Source, target: _Target) -> None:
        """The next tuple did not match: read more text, or say what is wrong."""
        buf, pos = src.buf, src.pos
        whole = _ROW_ANY_RE.match(buf, pos)
        if whole is not None:
            found = len(_VALUE_ANY_RE.findall(whole.group(1)))
            why = (
                f"has {found} value(s) where {target.width} were expected"
                if found != target.width
                else "holds a value that cannot be read"
            )
            raise DumpFormatError(
                f"{self.path}: a row of an INSERT for table `{target.table}` {why}:"
                f" {_snippet(whole.group().strip())}",
                _HINT_DUMP,
            )
        prefix = _ROW_PREFIX_RE.match(buf, pos)
        if prefix is None:  # not even the "(" of a tuple: only space may follow
            incomplete = _TAIL_SPACE_RE.match(buf, pos) is not None
        else:
            end = prefix.end()
            incomplete = (
                end == len(buf)
                or buf[end] == "'"  # a string that runs off the end of buf
                or (buf[end] == ")" and _TAIL_SPACE_RE.match(buf, end + 1) is not None)
            )
        if not incomplete:
            raise DumpFormatError(
                f"{self.path}: cannot read an INSERT for table `{target.table}` near:"
                f" {_snippet(buf[pos : pos + 200])}",
                _HINT_DUMP,
            )
        if len(buf) - pos > _MAX_PENDING:
            raise DumpFormatError(
                f"{self.path}: a row of table `{target.table}` is longer than"
                f" {_MAX_PENDING >> 20} MiB",
                _HINT_DUMP,
            )
        if not src.more(len(buf) - pos):
            raise DumpFormatError(
                f"{self.path} ends in the middle of an INSERT for table"
                f" `{target.table}`; the file looks truncated",
                "download or copy the dump again",
            )


# --------------------------------------------------------------------------- API


def read_dump(
    path: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    batch_rows: int = 5000,
) -> Iterator[RowBatch]:
    """Stream the rows of the FlughafenDB dump at ``path`` as :class:`RowBatch` es.

    A generator: the file is opened on the first ``next()``, and every problem with
    it raises :class:`DumpFormatError` from the iteration, possibly after batches
    have been yielded. Batches hold at most ``batch_rows`` rows of one table; no
    batch is yielded before the file has been identified as FlughafenDB.
    ``on_progress(done, total)`` gets the bytes of the file consumed so far
    (compressed bytes for gzip) and its size, about once per MiB, and a last
    ``(total, total)`` when the whole file has been read.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    file = _DumpFile(Path(path), on_progress)
    try:
        yield from _Parser(file, batch_rows).run()
    finally:
        file.close()
