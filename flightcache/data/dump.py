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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from flightcache.data.tables import COLUMNS, TABLES
from flightcache.errors import DumpFormatError

__all__ = ["RowBatch", "check_parts", "mysql_point_to_lonlat", "read_dump"]

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
#
# The dump is data from the internet, so every pattern below is a single
# character class under one quantifier, or an alternation of such pieces where
# each repetition starts with its own character: a failed match gives back at
# most one token, never explores combinations. No possessive quantifiers and no
# atomic groups: early 3.11 releases (Debian 12's 3.11.2) get those wrong.
# Structure (strings, comments, statements, tuples) is read by the scanner below.

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
_HEX_DIGITS = "0123456789abcdefABCDEF"


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


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_decimal(tok: str) -> bool:
    """``[+-]digits[.digits][e[+-]digits]``, as MySQL writes an exact or float number."""
    body = tok[1:] if tok[:1] in "+-" else tok
    mantissa, e, exponent = body.replace("E", "e").partition("e")
    if e:
        exponent = exponent[1:] if exponent[:1] in "+-" else exponent
        if not _digits(exponent):
            return False
    whole, _, fraction = mantissa.partition(".")
    if not (whole or fraction):
        return False
    return all(part == "" or _digits(part) for part in (whole, fraction))


def _convert(tok: str) -> object:
    """One value literal of a VALUES tuple, as Python. The common cases come first."""
    if tok[0] == "'":
        return _unescape(tok[1:-1])
    if tok.isdecimal():
        return int(tok)
    if tok == "NULL":
        return None
    return _convert_rare(tok)


def _convert_rare(tok: str) -> object:
    if tok[0] in "+-" and _digits(tok[1:]):
        return int(tok)
    if _is_decimal(tok):
        return Decimal(tok)
    if tok.upper() == "NULL":
        return None
    head = tok[:2]
    if head in ("0x", "x'", "X'"):
        quoted = head != "0x"
        digits = tok[2:-1] if quoted else tok[2:]
        if (quoted and tok[-1] != "'") or digits.strip(_HEX_DIGITS):
            raise _BadValue(tok)
        if len(digits) % 2:
            if quoted:  # X'...' must have an even number of digits
                raise _BadValue(tok)
            digits = "0" + digits
        return bytes.fromhex(digits)
    if head in ("0b", "b'", "B'"):
        quoted = head != "0b"
        bits = tok[2:-1] if quoted else tok[2:]
        if (quoted and tok[-1] != "'") or bits.strip("01"):
            raise _BadValue(tok)
        return int(bits, 2) if bits else 0
    if tok[0] == "_" and tok[-1] == "'":
        quote = tok.find("'")
        charset = tok[1:quote].rstrip()
        if quote < len(tok) - 1 and charset and _word_end(charset, 0) == len(charset):
            text = _unescape(tok[quote + 1 : -1])
            if charset.lower() == "binary":
                # The file is decoded as UTF-8 with surrogateescape, so this gives
                # back exactly the bytes that were between the quotes.
                return text.encode("utf-8", "surrogateescape")
            return text
    raise _BadValue(tok)


# Whole columns of one batch, joined with NUL (which no token of these shapes holds),
# are checked against these at C speed; a column that fits one is converted with
# a fast path that gives exactly what _convert would give value by value.
_INT_COLUMN_RE = re.compile(r"(?:-?[0-9]+|NULL)(?:\0(?:-?[0-9]+|NULL))*")
_DECIMAL_COLUMN_RE = re.compile(r"(?:-?[0-9]+\.[0-9]+|NULL)(?:\0(?:-?[0-9]+\.[0-9]+|NULL))*")
_STRING_COLUMN_RE = re.compile(r"(?:'[^'\\\0]*'|NULL)(?:\0(?:'[^'\\\0]*'|NULL))*")


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


# What mysqldump writes nearly always: no spaces, strings without escapes. One
# match per row at C speed; any row it does not fit is read by _scan_row. Each
# value is a quoted run without quote or backslash, or a bare run without
# separators: a failed match gives each value back once, so a row costs its length.
_VALUE_FAST = r"('[^'\\]*'|[^,'()\s]+)"


@lru_cache(maxsize=64)
def _row_fast_re(n: int) -> re.Pattern[str]:
    """One ``(v1,...,vn)`` tuple as mysqldump writes it and the ``,`` or ``;`` after it.

    MariaDB's dump starts each tuple on a line of its own, hence the leading space.
    """
    return re.compile(r"\s*\(" + ",".join([_VALUE_FAST] * n) + r"\)[,;]")


# --------------------------------------------------------------------------- scanner

_SPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"[\w$]+")
_BARE_RE = re.compile(r"[^,'()\s;]+")


def _space_end(buf: str, i: int) -> int:
    m = _SPACE_RE.match(buf, i)
    return m.end() if m else i


def _word_end(buf: str, i: int) -> int:
    m = _WORD_RE.match(buf, i)
    return m.end() if m else i


def _quoted_end(buf: str, i: int, *, backslash: bool = True) -> int:
    """Just past the quoted string or identifier opening at ``buf[i]``; -1 if it runs off buf.

    The quote closes it unless doubled; with ``backslash`` a backslash escapes the
    next character. Each character is looked at a bounded number of times.
    """
    quote = buf[i]
    j = i + 1
    q = buf.find(quote, j)
    while q >= 0:
        if backslash:
            b = buf.find("\\", j, q)
            if b >= 0:
                j = b + 2
                if q < j:
                    q = buf.find(quote, j)
                continue
        if buf.startswith(quote, q + 1):
            j = q + 2
            q = buf.find(quote, j)
            continue
        return q + 1
    return -1


def _gap_end(buf: str, i: int) -> int:
    """Past white space and /* comments */ at ``i``; -1 if a comment runs off buf."""
    while True:
        i = _space_end(buf, i)
        if not buf.startswith("/*", i):
            return i
        close = buf.find("*/", i + 2)
        if close < 0:
            return -1
        i = close + 2


def _ident_at(buf: str, i: int) -> tuple[str, int] | None:
    """The identifier (unquoted) at ``i`` and its end; None if there is none in view."""
    if i >= len(buf):
        return None
    if buf[i] in '`"':
        end = _quoted_end(buf, i, backslash=False)
        if end < 0:
            return None
        return buf[i + 1 : end - 1].replace(buf[i] * 2, buf[i]), end
    end = _word_end(buf, i)
    if end == i:
        return None
    return buf[i:end], end


def _keyword(buf: str, i: int, *words: str) -> tuple[str, int] | None:
    """The keyword (one of ``words``, any case) at ``i``, upper-cased, and its end."""
    end = _word_end(buf, i)
    word = buf[i:end].upper()
    return (word, end) if end > i and word in words else None


def _table_name(buf: str, i: int) -> tuple[str, int] | None:
    """``name`` or ``schema.name`` at ``i``: the table's name and the end."""
    first = _ident_at(buf, i)
    if first is None:
        return None
    name, end = first
    j = _gap_end(buf, end)
    if j >= 0 and buf.startswith(".", j):
        k = _gap_end(buf, j + 1)
        second = _ident_at(buf, k) if k >= 0 else None
        if second is None:
            return None
        return second
    return name, end


_INSERT_MODIFIERS = ("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE")


def _insert_head(buf: str, i: int) -> tuple[str, int] | None:
    """``INSERT|REPLACE [modifiers] [INTO] table`` at ``i``: the table and the end."""
    verb = _keyword(buf, i, "INSERT", "REPLACE")
    if verb is None:
        return None
    end = verb[1]
    while True:
        j = _gap_end(buf, end)
        if j < 0:
            return None
        word = _keyword(buf, j, *_INSERT_MODIFIERS, "INTO")
        if word is None:
            return _table_name(buf, j)
        end = word[1]
        if word[0] == "INTO":
            j = _gap_end(buf, end)
            return _table_name(buf, j) if j >= 0 else None


def _insert_rest(buf: str, i: int) -> tuple[list[str] | None, int] | None:
    """``[(col, ...)] VALUES`` after an INSERT's table: the columns listed, and the end."""
    j = _gap_end(buf, i)
    if j < 0:
        return None
    columns: list[str] | None = None
    if buf.startswith("(", j):
        columns = []
        while True:
            j = _space_end(buf, j + 1)
            ident = _ident_at(buf, j)
            if ident is None:
                return None
            columns.append(ident[0])
            j = _space_end(buf, ident[1])
            if buf.startswith(")", j):
                break
            if not buf.startswith(",", j):
                return None
        j = _gap_end(buf, j + 1)
        if j < 0:
            return None
    word = _keyword(buf, j, "VALUES", "VALUE")
    return (columns, word[1]) if word else None


def _create_table_head(buf: str, i: int) -> tuple[str, int] | None:
    """``CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name`` at ``i``: the name and the end."""
    if _keyword(buf, i, "CREATE") is None:
        return None
    j = _gap_end(buf, i + 6)
    if j >= 0 and (word := _keyword(buf, j, "TEMPORARY")):
        j = _gap_end(buf, word[1])
    if j < 0 or (word := _keyword(buf, j, "TABLE")) is None:
        return None
    j = _gap_end(buf, word[1])
    if j >= 0 and (word := _keyword(buf, j, "IF")):
        for expected in ("NOT", "EXISTS"):
            j = _space_end(buf, word[1])
            if (word := _keyword(buf, j, expected)) is None:
                return None
        j = _gap_end(buf, word[1])
    return _table_name(buf, j) if j >= 0 else None


_SQL_WORDS = frozenset(
    [
        "SET",
        "DROP",
        "CREATE",
        "ALTER",
        "LOCK",
        "UNLOCK",
        "USE",
        "START",
        "COMMIT",
        "BEGIN",
        "INSERT",
        "REPLACE",
    ]
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


def _table_columns(statement: str, start: int) -> list[str] | None:
    """Column names of a CREATE TABLE whose name ends at ``start``; None if unreadable."""
    i = _gap_end(statement, start)
    if i < 0 or not statement.startswith("(", i):
        return None  # CREATE TABLE ... LIKE / AS SELECT
    columns: list[str] = []
    depth = 0
    item_start = True  # the next word starts a column definition
    n = len(statement)
    while i < n:
        c = statement[i]
        if c in "'\"`":
            if item_start and depth == 1 and c != "'":
                ident = _ident_at(statement, i)
                if ident is None:
                    return None
                columns.append(ident[0])
                item_start = False
                i = ident[1]
                continue
            end = _quoted_end(statement, i, backslash=c != "`")
            if end < 0:
                return None
            i = end
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            if end < 0:
                return None
            i = end + 2
        elif c == "#" or (statement.startswith("--", i) and statement[i + 2 : i + 3].isspace()):
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "(":
            depth += 1
            item_start = depth == 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
            if depth == 0:
                return columns
        elif c == "," and depth == 1:
            item_start = True
            i += 1
        elif c.isspace():
            i = _space_end(statement, i)
        elif item_start and depth == 1:
            end = _word_end(statement, i)
            if end == i:
                return None
            word = statement[i:end]
            if word.upper() not in _NOT_A_COLUMN:
                columns.append(word)
            item_start = False
            i = end
        else:
            end = _word_end(statement, i)
            i = end if end > i else i + 1
    return None


def _scan_row(buf: str, pos: int) -> tuple[list[str], int] | int:
    """Read one ``( value, ... )`` and the ``,`` or ``;`` after it, at ``pos``.

    Returns the value literals and the end, or an int: -1 when the tuple runs off
    the end of buf (more text may complete it), or the index where it stops making
    sense. Every value is consumed by one scan, so a row costs its length.
    """
    n = len(buf)
    i = _space_end(buf, pos)
    if i >= n:
        return -1
    if buf[i] != "(":
        return i
    values: list[str] = []
    while True:
        i = _space_end(buf, i + 1)
        if i >= n:
            return -1
        c = buf[i]
        start = i
        if c == "'":
            i = _quoted_end(buf, i)
        elif c in "xXbB" and buf.startswith("'", i + 1):
            i = _quoted_end(buf, i + 1, backslash=False)
        elif c == "_" and (j := _space_end(buf, _word_end(buf, i))) < n and buf[j] == "'":
            i = _quoted_end(buf, j)
        else:
            m = _BARE_RE.match(buf, i)
            if m is None:
                return i
            i = m.end()
        if i < 0:
            return -1
        values.append(buf[start:i])
        i = _space_end(buf, i)
        if i >= n:
            return -1
        if buf[i] == ",":
            continue
        if buf[i] != ")":
            return i
        i = _space_end(buf, i + 1)
        if i >= n:
            return -1
        if buf[i] not in ",;":
            return i
        return values, i + 1


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


def _open_part(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")  # closed by _DumpFile.close()
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


_PART_MARK = ".part"
_HINT_PARTS = (
    "give one dump file, or every part of a split one in order,"
    " e.g. flughafendb_large.sql.gz.part-* (the shell sorts them)"
)


def _split_part(path: Path) -> tuple[str, str] | None:
    """(the whole file's name, the part's suffix) of ``x.sql.gz.part-ab``; None if no part."""
    base, mark, suffix = path.name.rpartition(_PART_MARK)
    suffix = suffix.lstrip("-_.")
    if not (mark and base and suffix.isascii() and suffix.isalnum()):
        return None
    return str(path.parent / base), suffix


def _suffix_number(suffix: str) -> int | None:
    """The part's place for split's suffixes (aa, ab, ... or 00, 01, ...); None otherwise."""
    if suffix.isdigit():
        return int(suffix)
    if suffix.isalpha() and suffix.islower():
        number = 0
        for c in suffix:
            number = number * 26 + ord(c) - ord("a")
        return number
    return None


def check_parts(paths: Sequence[Path]) -> str:
    """Check that ``paths`` are one dump, or the parts of one split dump in order.

    Returns the name to show for them. Parts have the names ``split`` gives
    (``<file>.part-aa``, ``-ab``, ... or ``-00``, ``-01``, ...): one whole file's,
    with no part missing, none twice, in order.
    """
    if not paths:
        raise DumpFormatError("no dump file given", _HINT_PARTS)
    if len(paths) == 1:
        return str(paths[0])
    parts: list[tuple[str, str]] = []
    for path in paths:
        part = _split_part(path)
        if part is None:
            raise DumpFormatError(
                f"{len(paths)} files given, but {path} is not a part of a split dump"
                f" (its name does not end in {_PART_MARK}-<suffix>)",
                _HINT_PARTS,
            )
        parts.append(part)
    bases = {base for base, _ in parts}
    if len(bases) > 1:
        raise DumpFormatError(
            f"the files given are parts of different dumps: {', '.join(sorted(bases))}",
            _HINT_PARTS,
        )
    suffixes = [suffix for _, suffix in parts]
    numbers = [_suffix_number(s) for s in suffixes]
    for i in range(1, len(paths)):
        before, after = suffixes[i - 1], suffixes[i]
        if before == after:
            raise DumpFormatError(f"{paths[i]} is given twice", _HINT_PARTS)
        if (len(before), before) > (len(after), after):
            raise DumpFormatError(
                f"the parts are not in order: {paths[i - 1].name} is given before {paths[i].name}",
                _HINT_PARTS,
            )
        a, b = numbers[i - 1], numbers[i]
        if a is not None and b is not None and len(before) == len(after) and b != a + 1:
            raise DumpFormatError(
                f"a part is missing between {paths[i - 1].name} and {paths[i].name}", _HINT_PARTS
            )
    first = numbers[0]
    if first is not None and first > (1 if suffixes[0].isdigit() else 0):
        raise DumpFormatError(
            f"{paths[0].name} is not the first part of the dump; the first part is missing",
            _HINT_PARTS,
        )
    return f"{paths[0]} ... {paths[-1].name}"


class _Parts(io.RawIOBase):
    """Several files read as one stream, one after the other."""

    def __init__(self, files: list[io.BufferedReader]) -> None:
        super().__init__()
        self._files = files
        self._index = 0
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._index < len(self._files):
            n = self._files[self._index].readinto(buffer)
            if n:
                self.consumed += n
                return n
            self._index += 1
        return 0


class _DumpFile:
    """The bytes of the dump (gunzipped if need be) as UTF-8 text, with progress.

    Several paths are the parts of one split dump, read as one stream.
    """

    def __init__(
        self, paths: Sequence[Path], on_progress: Callable[[int, int], None] | None
    ) -> None:
        self.path = check_parts(paths)
        self._on_progress = on_progress
        files: list[io.BufferedReader] = []
        try:
            for path in paths:
                files.append(_open_part(path))
            self.total = sum(os.fstat(f.fileno()).st_size for f in files)
            self.gzipped = files[0].read(2) == b"\x1f\x8b"
            files[0].seek(0)
        except OSError as exc:
            for f in files:
                f.close()
            raise DumpFormatError(
                f"cannot read {self.path}: {exc.strerror or exc}",
                "check that the file is readable",
            ) from None
        except BaseException:
            for f in files:
                f.close()
            raise
        self._files = files
        self._parts = _Parts(files) if len(files) > 1 else None
        raw: io.BufferedIOBase = files[0] if self._parts is None else io.BufferedReader(self._parts)
        self._raw = raw
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
        for f in self._files:
            f.close()

    def progress(self, *, final: bool = False) -> None:
        if self._on_progress is None:
            return
        at = self._raw.tell() if self._parts is None else self._parts.consumed
        done = self.total if final else min(at, self.total)
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


@lru_cache(maxsize=16)
def _special_re(delimiter: str) -> re.Pattern[str]:
    """What matters when looking for the end of a statement: literals only."""
    return re.compile(re.escape(delimiter) + r"|['\"`#]|--|/\*")


def _snippet(text: str, limit: int = 60) -> str:
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_DUMP_HEADERS = ("-- MySQL dump", "-- MariaDB dump")
_DUMP_TRAILER = "-- Dump completed"


@dataclass
class _Target:
    """How the tuples of one INSERT map onto a FlughafenDB table."""

    table: str
    columns: tuple[str, ...]
    width: int
    reorder: Callable[[tuple[str, ...]], tuple[str, ...]] | None
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
        self.from_mysqldump = False  # the file starts with mysqldump's header
        self.completed = False  # mysqldump's last line was the last thing read
        self.with_rows: set[str] = set()
        self.pending: list[RowBatch] = []  # batches held back until identified
        self.targets: dict[tuple[str, tuple[str, ...] | None], _Target] = {}
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
        src.ensure(_PEEK)
        # mysqldump's first line, or second after MariaDB's /*M!999999\- sandbox */ line
        first_lines = src.buf[src.pos : src.pos + _PEEK].splitlines()[:3]
        self.from_mysqldump = any(line.startswith(_DUMP_HEADERS) for line in first_lines)
        while self._skip_blank():
            self.completed = False
            src.ensure(_PEEK)
            buf, pos = src.buf, src.pos
            if self._delimiter(buf, pos):
                continue
            head = _insert_head(buf, pos)
            if head is not None:
                self.saw_sql = True
                yield from self._insert(*head)
                continue
            if _create_table_head(buf, pos) is not None:
                self.saw_sql = True
                self._create_table(self._statement(keep=True))
                if self.identified and self.pending:
                    yield from self.pending
                    self.pending.clear()
                continue
            if _keyword(buf, pos, *_SQL_WORDS):
                self.saw_sql = True
            self._statement(keep=False)
        last = self._take()
        if not self.identified:
            raise self._not_flughafendb()
        if self.from_mysqldump and not self.completed:
            raise DumpFormatError(
                f"{self.path} ends before mysqldump's last line ({_DUMP_TRAILER} ...);"
                " the file looks truncated",
                "download or copy the dump again; a dump cut short is never loaded",
            )
        if not self.with_rows:
            raise DumpFormatError(
                f"{self.path} holds the schema but no rows: no INSERT for any FlughafenDB table",
                "dump the database with its data (mysqldump without --no-data)",
            )
        yield from self._release(last)
        self.file.progress(final=True)

    def _delimiter(self, buf: str, pos: int) -> bool:
        """Consume a ``DELIMITER x`` line at ``pos``, if that is what is there."""
        word = _keyword(buf, pos, "DELIMITER")
        if word is None or not buf.startswith((" ", "\t"), word[1]):
            return False
        i = word[1]
        while buf.startswith((" ", "\t"), i):
            i += 1
        end = i
        while end < len(buf) and not buf[end].isspace():
            end += 1
        if end == i:
            return False
        self.saw_sql = True
        self.delimiter = buf[i:end]
        line_end = buf.find("\n", end)
        self.src.pos = len(buf) if line_end < 0 else line_end
        return True

    def _skip_blank(self) -> bool:
        """Skip white space and comments; False at the end of the file."""
        src = self.src
        while True:
            src.ensure(len(_DUMP_TRAILER))
            buf, pos = src.buf, src.pos
            if pos >= len(buf):
                return False
            end = _space_end(buf, pos)
            if end > pos:
                src.pos = end
                continue
            if buf.startswith("/*", pos):
                self._skip_past("*/", pos + 2)
            elif buf[pos] == "#" or (
                buf.startswith("--", pos) and (pos + 2 == len(buf) or buf[pos + 2].isspace())
            ):
                self.completed = buf.startswith(_DUMP_TRAILER, pos)
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
        if tok in "'\"`":
            # A doubled quote cut in two by the end of buf reads as the end of one
            # string and the start of the next: the statement ends in the same place.
            end = _quoted_end(buf, start, backslash=tok != "`")
            if end >= 0:
                return end
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
        head = _create_table_head(statement, 0)
        if head is None:  # pragma: no cover - matched before the statement was read
            return
        table = head[0].lower()
        if table not in TABLES:
            return
        columns = _table_columns(statement, head[1])
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

    def _target(self, table: str, listed: list[str] | None) -> _Target:
        key = (table, None if listed is None else tuple(listed))
        target = self.targets.get(key)
        if target is None:
            target = self.targets[key] = self._new_target(table, listed)
        return target

    def _new_target(self, table: str, listed: list[str] | None) -> _Target:
        if listed is not None:
            self._check_columns(table, listed, "the column list of an INSERT")
            order = tuple(c.lower() for c in listed)
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
        return _Target(table, canonical, len(order), reorder, _row_fast_re(len(order)))

    def _insert(self, name: str, end: int) -> Iterator[RowBatch]:
        src = self.src
        table = name.lower()
        if table not in TABLES:
            self._statement(keep=False)
            return
        rest = _insert_rest(src.buf, end)
        if rest is None:
            raise DumpFormatError(
                f"{self.path}: cannot read an INSERT for table `{table}`:"
                f" {_snippet(src.buf[src.pos : src.pos + 200])}",
                "only INSERT ... VALUES statements as mysqldump writes them are read",
            )
        listed, end = rest
        target = self._target(table, listed)
        if self.delimiter == ";":
            src.pos = end
            yield from self._rows(src, target)
        else:  # inside a DELIMITER block: read the statement, then its tuples
            offset = end - src.pos
            text = self._statement(keep=True)
            yield from self._rows(_Source(None, text[offset:] + ";"), target)

    def _rows(self, src: _Source, target: _Target) -> Iterator[RowBatch]:
        if self.table != target.table:
            yield from self._release(self._take())
            self.table = target.table
        self.with_rows.add(target.table)
        # The hot loop: one match per row; values are converted a column at a
        # time when the batch is taken (see _convert_column).
        rows = self.raw_rows
        limit = self.batch_rows
        reorder = target.reorder
        fast = target.fast_re.match
        width = target.width
        while True:
            buf = src.buf
            pos = src.pos
            while True:
                m = fast(buf, pos)
                if m is not None:
                    values: tuple[str, ...] = m.groups()
                    pos = m.end()
                else:
                    scanned = _scan_row(buf, pos)
                    if isinstance(scanned, int):
                        break
                    if len(scanned[0]) != width:
                        raise DumpFormatError(
                            f"{self.path}: a row of an INSERT for table `{target.table}` has"
                            f" {len(scanned[0])} value(s) where {width} were expected:"
                            f" {_snippet(buf[pos : scanned[1]].strip())}",
                            _HINT_DUMP,
                        )
                    values, pos = tuple(scanned[0]), scanned[1]
                rows.append(values if reorder is None else reorder(values))
                if len(rows) >= limit:
                    src.pos = pos
                    yield from self._release(self._take())
                    rows = self.raw_rows
                if buf[pos - 1] == ";":
                    src.pos = pos
                    return
            src.pos = pos
            self._more_rows(src, target, scanned)

    def _more_rows(self, src: _Source, target: _Target, stop: int) -> None:
        """The next tuple is not complete in view: read more text, or say what is wrong."""
        buf, pos = src.buf, src.pos
        if stop >= 0:
            raise DumpFormatError(
                f"{self.path}: cannot read an INSERT for table `{target.table}` near:"
                f" {_snippet(buf[max(pos, stop - 40) : stop + 160])}",
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
    path: Path | Sequence[Path],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    batch_rows: int = 5000,
) -> Generator[RowBatch, None, None]:
    """Stream the rows of the FlughafenDB dump at ``path`` as :class:`RowBatch` es.

    A generator: the file is opened on the first ``next()``, and every problem with
    it raises :class:`DumpFormatError` from the iteration, possibly after batches
    have been yielded. Batches hold at most ``batch_rows`` rows of one table; no
    batch is yielded before the file has been identified as FlughafenDB.
    ``on_progress(done, total)`` gets the bytes of the file consumed so far
    (compressed bytes for gzip) and its size, about once per MiB, and a last
    ``(total, total)`` when the whole file has been read.

    Several paths are the parts of one split dump (``x.sql.gz.part-aa``, ``-ab``,
    ...), read in the order given as one file: see :func:`check_parts`. A file that
    starts with mysqldump's header and lacks its last line is refused as truncated.
    Reading takes time linear in the file's size, whatever the file holds.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    file = _DumpFile(paths, on_progress)
    try:
        yield from _Parser(file, batch_rows).run()
    finally:
        file.close()
