"""Group commit: one writer thread turns concurrent requests' small writes into shared transactions.

A webhook delivery needs one short transaction (look the app up, insert the event). Run from the
request handler, each costs a thread hand-off and a commit of its own; under load most of the CPU
goes to that ceremony rather than to the two statements. A `GroupCommitter` takes the work items
of concurrent requests off an in-process queue and runs as many as are waiting (up to
`max_batch`) in one transaction, then wakes each request with its own result. One waiting
request is a batch of one, so an idle server answers as fast as before.

Items are independent: if the shared transaction fails (a bug in one item, a lost connection, a
statement error an item swallowed, which `orchestrator.db` refuses to commit), the batch is rolled
back and every item runs again in a transaction of its own, so one bad item gets its own error and
the others their results. Results reach the requests only after commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from orchestrator.db import session_scope
from orchestrator.logs import get_logger

log = get_logger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Item]):
    item: Item
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupCommitter(Generic[Item, Result]):
    """Runs `work(session, item)` for queued items, many to a transaction, on one daemon thread.

    `work_batch(session, items)`, when given, does a whole batch's items at once instead (one result
    per item, in order): it can share statements between them. A failed batch still runs each item
    again alone, as a batch of one.
    """

    def __init__(
        self,
        work: Callable[[Session, Item], Result],
        *,
        name: str,
        max_batch: int = 100,
        work_batch: Callable[[Session, list[Item]], list[Result]] | None = None,
    ) -> None:
        self._work = work
        self._work_batch = work_batch
        self._name = name
        self._max_batch = max_batch
        self._queue: SimpleQueue[_Waiting[Item]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, item: Item) -> Result:
        """Queue `item` and wait for its result (or its exception) after its transaction commits."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._ensure_thread()
        self._queue.put(_Waiting(item, future, loop))
        return await future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run_forever, name=self._name, daemon=True)
                self._thread.start()

    def _run_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except Empty:
                    break
            try:
                self._run_batch(batch)
            except BaseException as exc:  # never leave a request waiting forever
                log.error("group commit writer failed", items=len(batch), error=repr(exc)[:300])
                self._resolve(batch, [(False, exc)] * len(batch))

    def _run_batch(self, batch: list[_Waiting[Item]]) -> None:
        try:
            results: list[tuple[bool, Any]] = [(True, r) for r in self._commit([w.item for w in batch])]
        except Exception as exc:
            if len(batch) == 1:
                results = [(False, exc)]
            else:
                log.warning("group commit failed; its items run one by one", items=len(batch), error=repr(exc)[:300])
                results = [self._run_alone(w.item) for w in batch]
        self._resolve(batch, results)

    def _run_alone(self, item: Item) -> tuple[bool, Any]:
        try:
            return True, self._commit([item])[0]
        except Exception as exc:
            return False, exc

    def _commit(self, items: list[Item]) -> list[Result]:
        """Run every item in one transaction; their results once it has committed."""
        with session_scope() as session:
            if self._work_batch is not None:
                results = self._work_batch(session, items)
            else:
                results = [self._work(session, item) for item in items]
        return results

    @staticmethod
    def _resolve(batch: list[_Waiting[Item]], results: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for waiting, (ok, value) in zip(batch, results, strict=True):
            by_loop.setdefault(waiting.loop, []).append((waiting.future, ok, value))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)  # one wake-up of each event loop per batch
            except RuntimeError:  # that loop is closed: its requests are gone
                pass


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the request was cancelled (client went away); the write stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
