"""Event handling: the handler registry, the runner that applies handlers once, the relay.

Built-in handlers are wired per event type in `orchestrator.wiring`. The public seam for modules
named in EVENT_HANDLER_MODULES (extensions, test probes):

    from orchestrator.events import PoisonEvent, prepared, register_handler

See `orchestrator.events.registry` for the contract and docs/pipeline.md for the whole pipeline.
"""

from orchestrator.events.registry import HANDLERS, PoisonEvent, prepared, register_handler

__all__ = ["HANDLERS", "PoisonEvent", "prepared", "register_handler"]
