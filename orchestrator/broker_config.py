"""RabbitMQ as the broker: the Celery settings that `BROKER_URL=amqp://…` adds, keyed on the URL's scheme.

`orchestrator.tasks.celery_config` builds the settings every broker shares (late acks, reject on
worker loss, prefetch 1, the queues and routes); for an AMQP URL it takes these on top, so the
Redis and embedded paths stay exactly as they are:

- every task queue is a durable **quorum queue** (`x-queue-type=quorum`: replicated, and survives a
  broker restart) bound to one topic exchange, so that Celery's native delayed delivery (the only way
  countdown/ETA messages work with quorum queues: they have no global QoS for the worker to widen)
  can route a delayed message back to its queue;
- **publisher confirms** (`confirm_publish`): a publish returns once the broker has the message, so
  the outbox marks an event `enqueued` only when it really is;
- a **delivery limit** (`x-delivery-limit`, BROKER_DELIVERY_LIMIT): a message returned that many times
  (its worker died holding it, every time) is moved to the dead-letter queue instead of being
  delivered forever. For events the database's attempt count (EVENT_MAX_ATTEMPTS) parks the event
  first; the limit is the backstop for every queue. What is dead-lettered is kept for inspection:
  the database stays the truth, and the relay and the sweeps publish again whatever is not done.

The dead-letter exchange and queue are declared by each worker as it starts (`declare_dead_letters`).
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange
from kombu import Queue as KombuQueue

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
# One topic exchange for the task queues: native delayed delivery cannot route through a direct one.
EXCHANGE = "orchestrator"
DEAD_LETTER_EXCHANGE = "orchestrator.dead-letter"
DEAD_LETTER_QUEUE = "orchestrator.dead-letter"
_QUORUM = {"x-queue-type": "quorum"}


def is_amqp(broker_url: str) -> bool:
    """True when `broker_url` names a RabbitMQ (AMQP 0-9-1) broker."""
    return broker_url.startswith(AMQP_SCHEMES)


def queue_arguments(delivery_limit: int) -> dict[str, Any]:
    """The arguments every task queue is declared with (the same on every sender and worker, or RabbitMQ refuses)."""
    return {
        **_QUORUM,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        # At-least-once dead-lettering (RabbitMQ ≥ 3.10) needs reject-publish overflow; without it a
        # message could be dropped between the queue and the dead-letter queue.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def amqp_config(queue_names: tuple[str, ...], default_queue: str, delivery_limit: int) -> dict[str, Any]:
    """The Celery settings for RabbitMQ, on top of `orchestrator.tasks.celery_config`'s."""
    exchange = Exchange(EXCHANGE, type="topic", durable=True)
    arguments = queue_arguments(delivery_limit)
    _round_up_sub_second_delays()
    return {
        "task_queues": [
            KombuQueue(name, exchange, routing_key=name, queue_arguments=arguments, durable=True)
            for name in queue_names
        ],
        "task_default_exchange": EXCHANGE,
        "task_default_exchange_type": "topic",
        "task_default_routing_key": default_queue,
        "task_default_queue_type": "quorum",
        # No global QoS on quorum queues: Celery then sets prefetch per consumer (one per queue).
        "worker_detect_quorum_queues": True,
        "broker_native_delayed_delivery_queue_type": "quorum",
        "broker_transport_options": {"confirm_publish": True},
    }


def declare_dead_letters(broker_url: str) -> None:
    """Declare the dead-letter exchange and its quorum queue (idempotent; a worker does it as it starts)."""
    with Connection(broker_url, connect_timeout=10) as connection:
        channel = connection.channel()
        exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
        KombuQueue(DEAD_LETTER_QUEUE, exchange, queue_arguments=_QUORUM, durable=True)(channel).declare()


def queue_depths(broker_url: str, queue_names: tuple[str, ...]) -> dict[str, int]:
    """Ready messages in each queue (the dead-letter queue included); a queue not declared yet counts 0."""
    depths: dict[str, int] = {}
    with Connection(broker_url, connect_timeout=5) as connection:
        for name in (*queue_names, DEAD_LETTER_QUEUE):
            # A passive declare of a missing queue closes the channel: one channel per queue.
            channel: Any = connection.channel()
            try:
                _, depths[name], _ = channel.queue_declare(name, passive=True)
            except connection.channel_errors:
                depths[name] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # closed by the broker already
                    pass
    return depths


_patched = False


def _round_up_sub_second_delays() -> None:
    """Make a countdown under one second a one-second delay instead of a failed publish.

    Celery turns a countdown into kombu's delayed-delivery routing key with `int(countdown)`, and
    kombu refuses 0 with a ValueError: a 0.4 s retry (jittered backoff, an ETA just due) would
    fail to publish. Celery imports the function by name into `celery.app.base`, so it is wrapped there.
    """
    global _patched
    if _patched:
        return
    import celery.app.base as celery_base

    original = getattr(celery_base, "calculate_routing_key")  # noqa: B009 (untyped in the stubs)

    def calculate_routing_key(countdown: int, routing_key: str) -> str:
        return str(original(max(1, int(countdown)), routing_key))

    setattr(celery_base, "calculate_routing_key", calculate_routing_key)  # noqa: B010 (untyped in the stubs)
    _patched = True
