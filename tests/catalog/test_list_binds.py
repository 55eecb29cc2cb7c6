"""`id_page_binds` names exactly the parameters `list_query` binds in id order (no database needed).

The API compiles the id-order page statement once per shape of filters and binds each request's
values by name (`orchestrator.http.listing`): the two must never drift apart.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql

from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import DataClass
from orchestrator.catalog.service import AppFilter, id_cursor, id_page_binds, list_query


def _filters() -> list[tuple[AppFilter, str | None]]:
    out = []
    for stage, data_class, expiring, visible_to, owner, cursor in itertools.product(
        (None, Stage.production),
        (None, DataClass.restricted),
        (None, datetime(2027, 1, 15, tzinfo=UTC)),
        (None, "", "Maker@Example.com"),
        (None, "Owner@Example.com"),
        (None, id_cursor("app-000042")),
    ):
        filters = AppFilter(
            stage=stage, data_class=data_class, expiring_before=expiring, visible_to=visible_to, owner=owner
        )
        out.append((filters, cursor))
    return out


def test_binds_are_the_statements_parameters() -> None:
    """Same names, same values; one shape always compiles to one SQL text."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    sql_of_shape: dict[tuple[Any, ...], str] = {}
    for filters, cursor in _filters():
        binds = id_page_binds(filters, cursor=cursor, limit=51)
        assert binds is not None
        shape, params = binds
        compiled = list_query(filters, cursor=cursor, limit=51).compile(dialect=dialect)
        assert compiled.params == params
        assert sql_of_shape.setdefault(shape, str(compiled)) == str(compiled)


def test_text_search_has_no_shape() -> None:
    """A text search renders its patterns into the statement: no shape to reuse."""
    assert id_page_binds(AppFilter(text="word"), limit=51) is None
    assert id_page_binds(AppFilter(text="  "), limit=51) is not None
