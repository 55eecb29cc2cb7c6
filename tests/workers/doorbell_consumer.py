"""A consumer of the embedded broker in a process of its own, for tests/workers/test_embedded_doorbell.py.

    python -m tests.workers.doorbell_consumer BROKER_URL POLL_SECONDS COUNT

It consumes the `doorbell` queue through the project's transport, polling every POLL_SECONDS
(the fallback), prints `listening` once its doorbell socket is bound, then one line per message
body (flushed), and exits after COUNT messages.
"""

from __future__ import annotations

import sys

from kombu import Connection, Consumer, Exchange, Queue

from orchestrator import embedded_broker

QUEUE = Queue("doorbell", Exchange("doorbell", type="direct"), routing_key="doorbell")


def main() -> None:
    """Consume COUNT messages, printing each body."""
    url, poll, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    embedded_broker.install(poll)
    received = 0

    def on_message(body: str, message: object) -> None:
        nonlocal received
        print(body, flush=True)
        message.ack()  # type: ignore[attr-defined]
        received += 1

    with Connection(url) as connection, Consumer(connection, [QUEUE], callbacks=[on_message], accept=["json"]):
        # One empty pass binds the doorbell socket; from here on a publish wakes this process.
        try:
            connection.drain_events(timeout=0.01)
        except TimeoutError:
            pass
        print("listening", flush=True)
        while received < count:
            try:
                connection.drain_events(timeout=poll * 4)
            except TimeoutError:
                continue


if __name__ == "__main__":
    main()
