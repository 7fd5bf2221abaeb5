"""Engine, model base and column types shared by every table."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import DateTime, MetaData, Numeric, String, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from tokenboard.kit import writer_gate
from tokenboard.kit.errors import BadRequest

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _uuid_from_int(value: int) -> uuid.UUID:
    """A UUID from its 128-bit integer, without ``UUID.__init__``'s argument parsing (what it ends with)."""
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN_SAFETY)
    return made


class HashedUUID(uuid.UUID):
    """A UUID that computes its hash and its text once.

    ``uuid.UUID.__hash__`` is Python code run on every dictionary look-up; the gateway looks up an
    organization's and a key's ids in a dozen in-memory tables per request, so the ids it keeps in its key
    cache hash once. Equal to, and hashing like, the plain UUID of the same value.
    """

    __slots__ = ("_hash", "_text")
    _hash: int
    _text: str

    def __init__(self, value: uuid.UUID) -> None:
        super().__init__(int=value.int, is_safe=value.is_safe)
        object.__setattr__(self, "_hash", hash(value.int))
        # Its text too: each metered request's journal line writes four such ids.
        object.__setattr__(self, "_text", str(value))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self._text

    def __reduce__(self) -> tuple[type[HashedUUID], tuple[uuid.UUID]]:
        return (type(self), (uuid.UUID(int=self.int),))


_UUID7_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_A = 0xFFF << 64  # 12 random bits after the version
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant


def _uuid7(ms: int, rand: int) -> uuid.UUID:
    value = ((ms & ((1 << 48) - 1)) << 80) | _UUID7_VERSION_VARIANT
    return _uuid_from_int(value | ((rand << 2) & _RAND_A) | (rand & _RAND_B))


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): ids sort by creation time, which keeps indexes compact."""
    return _uuid7(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7_many(count: int) -> list[uuid.UUID]:
    """``count`` version 7 UUIDs of this millisecond, with one call for the randomness of them all."""
    ms = time.time_ns() // 1_000_000
    random = os.urandom(10 * count)
    return [_uuid7(ms, int.from_bytes(random[i : i + 10], "big")) for i in range(0, 10 * count, 10)]


_IDS = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))


def request_id() -> str:
    """A random 128-bit id in hex, for a request (unique, not a secret).

    From a per-process generator seeded by the system: ``uuid4`` reads ``os.urandom`` for every id, a
    system call that gives up the interpreter lock in the middle of the gateway's hot path, where another
    thread (the database driver's) can then hold it for milliseconds.
    """
    return f"{_IDS.getrandbits(128):032x}"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every engine: stored as UTC, always read back with tzinfo=UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored exactly, up to 24 decimal places (per-token prices such as 0.000000075).

    ``NUMERIC(38, 24)`` on PostgreSQL; decimal text on SQLite, whose NUMERIC would round through a float.
    A value with more decimals is refused rather than silently rounded.
    """

    impl = Numeric(38, 24)
    cache_ok = True
    SCALE = 24

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, self.SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"ExactDecimal needs a finite Decimal, not {value!r}")
        with localcontext() as ctx:
            ctx.prec = 80
            exact = value.quantize(Decimal(1).scaleb(-self.SCALE))
        if exact != value:
            raise ValueError(f"{value} has more than {self.SCALE} decimal places")
        return f"{exact:f}" if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str):
            return Decimal(value)
        raise TypeError(f"ExactDecimal read back {value!r}, which is not exact")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


SQLITE_BUSY_SECONDS = 30  # how long a writer waits for SQLite's lock before "database is locked"
SQLITE_CACHE_KIB = 128 * 1024  # per connection
# Pages the write-ahead log grows to before a commit copies them into the database (SQLite's default is
# 1,000, 4 MB): one usage batch of 5,000 events dirties about that much, so every commit also checkpointed,
# with its fsync. At 16,384 pages (64 MB of log) a page rewritten by several batches is copied once.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 16_384


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    # SQLite's default page cache is 2 MB: far too small once usage_events holds millions of rows, where
    # every insert walks four index B-trees. Pages are only allocated as they are used.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul_characters(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _executemany: bool
) -> None:
    """PostgreSQL text cannot hold U+0000 (SQLite can): refuse it on every engine, as bad input, not a 500."""
    if _has_nul(parameters):
        raise BadRequest("Text cannot contain NUL (U+0000) characters.")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        writer_gate.install(engine, timeout=SQLITE_BUSY_SECONDS)
    else:
        engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul_characters)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
