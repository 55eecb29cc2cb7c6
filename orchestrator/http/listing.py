"""Pages of the catalog serialised straight from database rows to JSON bytes (`GET /api/v1/apps`).

The listing is the API's busiest read. Loading `MicroApp` objects for it decoded every column (the
`manifest` included, which a listing never shows), then built an `AppRead` per row, then FastAPI
validated the whole `AppPage` again before serialising it: most of a request's time, against a
fraction of a millisecond of SQL (issue 19). Here a page selects only the columns the answer
shows, turns each row into a plain dict, and one pydantic `TypeAdapter` over `TypedDict`s writes
the bytes in Rust, without model instances.

On PostgreSQL, the id-order page (the default listing) skips SQLAlchemy's execution altogether:
its statement is compiled once per shape of filters and run on the pooled psycopg connection
(`server_page_rows`).

The bytes are those FastAPI writes for `AppPage` (it serialises response models with pydantic's
`dump_json` too): the same fields in the same order, the same datetime, number and Unicode
formatting. `tests/http/test_listing.py` holds the two side by side.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import from_json
from sqlalchemy import DateTime, Engine, String, Text, cast, type_coerce
from sqlalchemy import exc as sa_exc
from sqlmodel import col
from typing_extensions import TypedDict

from orchestrator.catalog import service as catalog
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import as_utc


class AppJson(TypedDict):
    """An app as `AppRead` shows it (same fields, same order), as a plain dict."""

    id: str
    name: str
    description: str
    owner: str
    co_owners: list[str]
    team: str
    data_class: str
    stage: str
    previous_stage: str | None
    repo_url: str | None
    connectors: list[str]
    requested_scopes: list[str]
    external_endpoints: list[str]
    llm: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    expires_at: datetime | None
    next_review_at: datetime | None
    last_used_at: datetime | None
    legal_hold: bool
    version: int


class AppPageJson(TypedDict):
    """One page of the catalog, as `AppPage` shows it."""

    items: list[AppJson]
    next_cursor: str | None


_PAGE = TypeAdapter(AppPageJson)

_JSON_FIELDS = ("co_owners", "connectors", "requested_scopes", "external_endpoints", "llm")


def _as_text(column: Any) -> Any:
    # The JSON columns come back as their text and are parsed by pydantic-core's parser, about three
    # times faster than the driver's json.loads for these small values (250 of them a page).
    return cast(column, Text).label(column.key)


# The columns of `AppJson`, in its order and under its names, so that a row's `_asdict()` is the item:
# `manifest`, `registered_by` and `default_branch` stay unread. The StrEnum columns come back as
# members, which pydantic writes as the plain strings they are.
COLUMNS: tuple[Any, ...] = (
    MicroApp.id,
    MicroApp.name,
    MicroApp.description,
    col(MicroApp.owner_email).label("owner"),
    _as_text(MicroApp.co_owners),
    MicroApp.team,
    MicroApp.data_class,
    MicroApp.stage,
    MicroApp.previous_stage,
    MicroApp.repo_url,
    _as_text(MicroApp.connectors),
    _as_text(MicroApp.requested_scopes),
    _as_text(MicroApp.external_endpoints),
    _as_text(MicroApp.llm),
    MicroApp.created_at,
    MicroApp.updated_at,
    MicroApp.approved_at,
    MicroApp.expires_at,
    MicroApp.next_review_at,
    MicroApp.last_used_at,
    MicroApp.legal_hold,
    MicroApp.version,
)


_KEYS = tuple(AppJson.__annotations__)
_JSON_INDEXES = tuple(_KEYS.index(field) for field in _JSON_FIELDS)
_DATETIME_FIELDS = ("created_at", "updated_at", "approved_at", "expires_at", "next_review_at", "last_used_at")
_DATETIME_INDEXES = tuple(_KEYS.index(field) for field in _DATETIME_FIELDS)
_ENUM_FIELDS = ("data_class", "stage", "previous_stage")


def _server_column(key: str) -> Any:
    # The table's own Column, not the ORM attribute: an ORM column is a new annotated copy in each
    # statement, and SQLAlchemy then re-keyed the cached result metadata by comparing copies with
    # SQL `==` (a third of the page's CPU, issue 19). The same objects every time match by identity.
    column = MicroApp.__table__.c["owner_email" if key == "owner" else key]  # type: ignore[attr-defined]
    if key in _JSON_FIELDS:
        return cast(column, Text).label(key)
    # Plain types: no per-value result processing. The driver's timestamps are already aware (in the
    # session's time zone, see `server_rows_page_json`) and the enums are stored as their values.
    if key in _DATETIME_FIELDS:
        return type_coerce(column, DateTime(timezone=True)).label(key)
    if key in _ENUM_FIELDS:
        return type_coerce(column, String()).label(key)
    return column.label(key) if column.key != key else column


# COLUMNS for PostgreSQL: rows of these come back as the driver decoded them, with no SQLAlchemy
# type processing at all (the catalog's UTCDateTime and Enum types convert every value).
SERVER_COLUMNS: tuple[Any, ...] = tuple(_server_column(key) for key in _KEYS)
# Zones that are UTC at every instant: timestamps read in one are written with "Z" as they are.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"})


def is_utc(zone: Any) -> bool:
    """True if timestamps in `zone` (a tzinfo) are in UTC whatever the date."""
    return zone is UTC or getattr(zone, "key", None) in _UTC_ZONES


def app_json(row: Any) -> AppJson:
    """The dict of one `MicroApp`, as `AppRead.of` would build it."""
    previous = row.previous_stage
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "owner": row.owner_email,
        "co_owners": row.co_owners,
        "team": row.team,
        # StrEnum members: str() is the value, exactly as AppRead.of writes it.
        "data_class": str(row.data_class),
        "stage": str(row.stage),
        "previous_stage": str(previous) if previous else None,
        "repo_url": row.repo_url,
        "connectors": row.connectors,
        "requested_scopes": row.requested_scopes,
        "external_endpoints": row.external_endpoints,
        "llm": row.llm,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "approved_at": row.approved_at,
        "expires_at": row.expires_at,
        "next_review_at": row.next_review_at,
        "last_used_at": row.last_used_at,
        "legal_hold": row.legal_hold,
        "version": row.version,
    }


def page_json(apps: list[Any], next_cursor: str | None) -> bytes:
    """The JSON body of one page of `MicroApp`s and the next page's cursor."""
    return _PAGE.dump_json({"items": [app_json(app) for app in apps], "next_cursor": next_cursor})


def rows_page_json(rows: list[Any], next_cursor: str | None, *, to_utc: bool = False) -> bytes:
    """The JSON body of one page of rows of `COLUMNS` (or `SERVER_COLUMNS`) and the next page's cursor.

    `to_utc`: convert the timestamps to UTC first (rows of `SERVER_COLUMNS` read in a session whose
    time zone is not UTC; `AppRead` writes them in UTC).
    """
    items: list[Any] = []
    # Most JSON values repeat within a page (`[]`, `{}`, the same connectors): each distinct text is
    # parsed once. The parsed values are only written out, so rows may share them.
    parsed: dict[str, Any] = {}
    for row in rows:
        values = list(row)
        for index in _JSON_INDEXES:
            text = values[index]
            value = parsed.get(text)
            if value is None:
                value = parsed[text] = from_json(text)
            values[index] = value
        if to_utc:
            for index in _DATETIME_INDEXES:
                if values[index] is not None:
                    values[index] = as_utc(values[index])
        items.append(dict(zip(_KEYS, values, strict=True)))
    return _PAGE.dump_json({"items": items, "next_cursor": next_cursor})


@dataclass(frozen=True)
class _Compiled:
    """One shape of the id-order page statement, compiled once: its SQL and each parameter's conversion."""

    sql: str
    processors: dict[str, Any]

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` converted as SQLAlchemy would (enum members to their stored value, timestamps to UTC)."""
        processors = self.processors
        return {key: processors[key](value) if key in processors else value for key, value in params.items()}


_compiled: dict[tuple[Any, ...], _Compiled] = {}
_compiled_lock = threading.Lock()


def _statement(
    engine: Engine, shape: tuple[Any, ...], filters: catalog.AppFilter, cursor: str | None, limit: int
) -> _Compiled:
    # At most a few dozen shapes (which filters are set); each is compiled by the first request of it.
    key = (engine.dialect.name, engine.dialect.driver, shape)
    found = _compiled.get(key)
    if found is not None:
        return found
    query = catalog.list_query(filters, cursor=cursor, limit=limit).with_only_columns(*SERVER_COLUMNS)
    compiled = query.compile(dialect=engine.dialect)
    processors = {}
    for name, bind in compiled.binds.items():
        processor = bind.type.bind_processor(engine.dialect)
        if processor is not None:
            processors[name] = processor
    found = _Compiled(str(compiled), processors)
    with _compiled_lock:
        return _compiled.setdefault(key, found)


def server_page_rows(
    engine: Engine, filters: catalog.AppFilter, cursor: str | None, limit: int
) -> tuple[list[Any], bool] | None:
    """Up to `limit` rows of `SERVER_COLUMNS` in id order, read through the driver, and whether their
    timestamps need converting to UTC (`rows_page_json`'s `to_utc`); None for a text search.

    The statement of each shape of filters is compiled once (`catalog.id_page_binds`) and executed on
    the pooled connection's psycopg connection, which prepares it on the server after a few runs:
    SQLAlchemy's building, cache keying, execution context and `Row` objects were a third of a page's
    CPU (issue 19). One SELECT needs no transaction: the connection is in autocommit, one round trip.
    A failure is raised as SQLAlchemy's error, the connection invalidated if it was lost, as
    `Connection.execute` does (so an outage is still a 503).
    """
    binds = catalog.id_page_binds(filters, cursor=cursor, limit=limit)
    if binds is None:
        return None
    shape, params = binds
    statement = _statement(engine, shape, filters, cursor, limit)
    values = statement.bind(params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        dbapi_connection: Any = connection.connection.dbapi_connection
        try:
            with dbapi_connection.cursor() as dbapi_cursor:
                dbapi_cursor.execute(statement.sql, values)
                rows = dbapi_cursor.fetchall()
        except engine.dialect.loaded_dbapi.Error as exc:
            lost = engine.dialect.is_disconnect(exc, dbapi_connection, None)
            if lost:
                connection.invalidate(exc)
            raise sa_exc.DBAPIError.instance(
                statement.sql, values, exc, engine.dialect.loaded_dbapi.Error, hide_parameters=True,
                connection_invalidated=lost, dialect=engine.dialect,
            ) from exc  # fmt: skip
        # The driver reads timestamps in the session's time zone; AppRead writes them in UTC.
        return rows, not is_utc(dbapi_connection.info.timezone)
