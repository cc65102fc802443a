"""The ledger: build and decision records, in a database through SQLAlchemy.

What was built, when, from which source, by which run, with what outcome; and
what was decided (locked, refused, yanked, published) and why. SQLite in the
state directory by default; any SQLAlchemy URL (e.g. PostgreSQL) in production; with
``[server] database = "postgresql"`` the ``ledger`` database of the factory's private
cluster (flows.postgres), unless ``[ledger] url`` names another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from factory._internal.cluster import read_address
from factory.config import Settings
from factory.errors import FactoryError, one_line


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class BuildEntry(Base):
    __tablename__ = "builds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))  # built | failed | skipped
    sdist_sha256: Mapped[str] = mapped_column(String(64))
    wheel_filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    wheel_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    invocation_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Decision(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    component: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # locked | refused | published | yanked | alarm | alarm-accepted ...
    action: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(String(100), nullable=True)


class RequestEntry(Base):
    """A request for a component (factory.intake): who asked, why, and where it stands."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    component: Mapped[str] = mapped_column(String(200), index=True)
    asked: Mapped[str] = mapped_column(String(1000))
    requester: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(100), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    # pending | approved | building | installable | denied | failed
    state: Mapped[str] = mapped_column(String(20), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    votes: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                              onupdate=_now)


@cache
def _engine(url: str) -> Engine:
    sqlite = url.startswith("sqlite")
    # A server's connections outlive restarts of the server: check one before use.
    engine = create_engine(url, future=True, pool_pre_ping=not sqlite)
    if sqlite:
        # Several processes (CLI, flows, server) share the file: wait, don't fail.
        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    _create_tables(engine)
    return engine


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create the tables that do not exist yet. Two processes making a new ledger at once
    both see a table missing and both create it; the one that loses sees it there when
    it checks again."""
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            # SQLite: "table ... already exists"; PostgreSQL: that, or a unique violation
            # on its catalogue when both CREATE TABLEs commit at once.
            if not _lost_create_race(str(exc.orig)) or attempt == attempts - 1:
                raise


def _lost_create_race(message: str) -> bool:
    return "already exists" in message or "pg_type_typname_nsp_index" in message


class LedgerError(FactoryError):
    default_hint = ("move the damaged ledger aside (a new one is made), or fix `ledger` in "
                    "factory.toml; check that the state directory is writable")


def ledger_url(settings: Settings) -> str:
    """[ledger] url; else the private cluster's ``ledger`` database when the server runs
    on PostgreSQL; else SQLite in the state directory."""
    if settings.ledger_url or settings.server_database != "postgresql":
        return settings.ledger
    address = read_address(settings.cluster_dir)
    if address is None:
        raise LedgerError(
            f"the ledger's PostgreSQL cluster in {settings.cluster_dir} is not running",
            "a command that runs a flow (e.g. `factory rebuild`) starts it; or set [ledger] "
            "url in factory.toml")
    return address.url("ledger")


@contextmanager
def session(settings: Settings) -> Iterator[Session]:
    url = ledger_url(settings)
    if url.startswith("sqlite:///"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        with Session(_engine(url)) as db, db.begin():
            yield db
    except DatabaseError as exc:  # not a database, read-only, locked, disk I/O ...
        where = make_url(url).render_as_string(hide_password=True)
        cause = one_line(str(getattr(exc, "orig", None) or type(exc).__name__))
        raise LedgerError(f"the ledger {where} cannot be used: {cause}") from None


def record_build(settings: Settings, **fields: Any) -> None:
    with session(settings) as db:
        db.add(BuildEntry(**fields))


def record_decision(settings: Settings, component: str, action: str, reason: str = "",
                    version: str | None = None, run_id: str | None = None) -> None:
    with session(settings) as db:
        db.add(Decision(component=component, version=version, action=action, reason=reason,
                        run_id=run_id))


# Upstream alarms: a pinned file whose bytes or host changed upstream. An alarm stays
# open until an operator accepts it (`factory lock --accept-change NAME`).
ALARM = "alarm"
ALARM_ACCEPTED = "alarm-accepted"


def open_alarms(settings: Settings) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(component, version) -> the newest alarm about it that no later acceptance
    of that component closed."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    with session(settings) as db:
        query = (select(Decision).where(Decision.action.in_((ALARM, ALARM_ACCEPTED)))
                 .order_by(Decision.id))
        for row in db.scalars(query):
            if row.action == ALARM:
                found[(row.component, row.version)] = _row(row)
            else:
                found = {k: v for k, v in found.items() if k[0] != row.component}
    return found


# Release decisions: a wheel the admission gate (or signing, or the index) refused
# stays refused until the same component and version is published.
REFUSED = "refused"
PUBLISHED = "published"


def open_refusals(settings: Settings,
                  component: str | None = None) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(component, version) -> the newest refusal that no later publication closed.

    A version may have several files (a native wheel per interpreter): publishing one
    closes only a refusal of that same file (a refusal's reason starts with its file
    name, a publication's is the file name)."""
    # each refused file stays open on its own (a later refusal of another file of the
    # version, then that file's publication, must not take this one's with it)
    open_: dict[tuple[str, str | None, str], tuple[int, dict[str, Any]]] = {}
    with session(settings) as db:
        query = (select(Decision).where(Decision.action.in_((REFUSED, PUBLISHED)))
                 .order_by(Decision.id))
        if component:
            query = query.where(Decision.component == component)
        for row in db.scalars(query):
            if row.action == REFUSED:
                open_[(row.component, row.version, _refused_file(row.reason))] = (
                    row.id, _row(row))
                continue
            for key in [k for k, (_, refusal) in open_.items()
                        if k[:2] == (row.component, row.version)
                        and closes(row.reason, refusal["reason"])]:
                del open_[key]
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for (name, version, _), (_, refusal) in sorted(open_.items(), key=lambda i: i[1][0]):
        found[(name, version)] = refusal  # the newest open one per version
    return found


def _refused_file(reason: str) -> str:
    """The wheel file a refusal names ("" when it names none)."""
    named = reason.partition(": ")[0]
    return named if named.endswith(".whl") else ""


def closes(published: str, refused: str) -> bool:
    """True when publishing the file ``published`` closes the refusal ``refused`` (its
    reason): the same file, or either names no wheel file (rows made before)."""
    refused_file = refused.partition(": ")[0]
    return (not published.endswith(".whl") or not refused_file.endswith(".whl")
            or refused_file == published)


# Upstream equivalence (factory.verify.equivalence): each verdict on a published pure
# wheel, and an alarm when a release equivalent before diverges now. An alarm stays
# open until the release is equivalent again.
EQUIVALENCE = "equivalence"
EQUIVALENCE_ALARM = "equivalence-alarm"


def last_equivalence(settings: Settings, component: str, version: str) -> str | None:
    """The newest equivalence verdict recorded for ``component`` ``version`` (its line)."""
    with session(settings) as db:
        query = (select(Decision.reason).where(Decision.action == EQUIVALENCE)
                 .where(Decision.component == component).where(Decision.version == version)
                 .order_by(Decision.id.desc()).limit(1))
        return db.scalars(query).first()


def open_equivalence_alarms(settings: Settings) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(component, version) -> the newest equivalence alarm not followed by an
    equivalent verdict for that release."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    with session(settings) as db:
        query = (select(Decision).where(Decision.action.in_((EQUIVALENCE, EQUIVALENCE_ALARM)))
                 .order_by(Decision.id))
        for row in db.scalars(query):
            if row.action == EQUIVALENCE_ALARM:
                found[(row.component, row.version)] = _row(row)
            elif row.reason.startswith("equivalent:"):
                found.pop((row.component, row.version), None)
    return found


def builds(settings: Settings, component: str | None = None,
           limit: int = 100) -> list[dict[str, Any]]:
    return _recent(settings, BuildEntry, component, limit)


def decisions(settings: Settings, component: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    return _recent(settings, Decision, component, limit)


def _recent(settings: Settings, model: type[BuildEntry] | type[Decision],
            component: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest rows of ``model`` first, optionally of one component."""
    with session(settings) as db:
        query = select(model).order_by(model.id.desc()).limit(limit)
        if component:
            query = query.where(model.component == component)
        return [_row(row) for row in db.scalars(query)]


def _row(obj: Base) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}
