"""Event handling: the handler registry, the runner that applies handlers once, the relay.

Built-in handlers are wired per event type in `orchestrator.wiring`. The public seam for modules
named in EVENT_HANDLER_MODULES (extensions, test probes):

    from orchestrator.events import PoisonEvent, prepared, register_handler

See `orchestrator.events.registry` for the contract and docs/pipeline.md for the whole pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.events.registry import HANDLERS, PoisonEvent, prepared, register_handler

__all__ = ["HANDLERS", "PoisonEvent", "prepared", "register_handler"]


def __getattr__(name: str) -> Any:
    # The registry (and with it the database layer) loads on first use, so light modules of this
    # package such as `orchestrator.events.enums` can be imported alone (the CLI does).
    if name in __all__:
        from orchestrator.events import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
