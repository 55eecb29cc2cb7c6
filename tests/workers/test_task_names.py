"""The worker registers exactly the tasks `orchestrator.tasks.TaskName` names, each on its queue."""

from __future__ import annotations

from orchestrator.tasks import QUEUE_OF, Queue, TaskName


def _registered() -> set[str]:
    from workers.app import app

    app.loader.import_default_modules()  # the task modules, as a starting worker imports them
    return {str(name) for name in app.tasks if not str(name).startswith("celery.")}


def test_every_task_name_is_registered_and_every_registered_task_is_named() -> None:
    """A TaskName without a task, or a task without a TaskName, fails here (not as a lost message)."""
    registered = _registered()
    assert set(registered) == {name.value for name in TaskName}


def test_each_task_consumes_the_queue_its_senders_use() -> None:
    """The worker's routes (task_routes) send each task to QUEUE_OF[task], as `send` does; every queue is a Queue."""
    assert set(QUEUE_OF) == set(TaskName)
    assert {QUEUE_OF[name] for name in TaskName} == set(Queue)
    from workers.app import app

    for name in TaskName:
        assert app.amqp.router.route({}, name.value)["queue"].name == QUEUE_OF[name].value, name


def test_the_worker_app_and_the_sender_share_the_configuration() -> None:
    """Late acks, the queues and the serializer come from one `celery_config`."""
    from orchestrator.tasks import sender
    from workers.app import app

    worker_conf, sender_conf = app.conf, sender(app.conf.broker_url).conf
    for key in ("task_acks_late", "task_reject_on_worker_lost", "task_serializer", "task_default_queue"):
        assert worker_conf[key] == sender_conf[key], key
    assert [q.name for q in worker_conf.task_queues] == [q.name for q in sender_conf.task_queues] == list(Queue)
