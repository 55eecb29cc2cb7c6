"""Commands that run the services: `worker`, `up` (API + worker + scheduler together) and `demo`."""

from __future__ import annotations

import os
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli import ensure_data_dirs, fail, load_policy_or_exit, require_catalog

if TYPE_CHECKING:
    from orchestrator.cli.supervisor import Supervisor

DEFAULT_QUEUES = "ingest,reviews,notifications,sunset"


class Pool(StrEnum):
    """Celery execution pools the worker command offers."""

    prefork = "prefork"
    solo = "solo"
    threads = "threads"


def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues to consume")] = DEFAULT_QUEUES,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="worker processes/threads (default: number of CPUs)")
    ] = None,
    pool: Annotated[Pool, typer.Option(help="execution pool")] = Pool.prefork,
    loglevel: Annotated[str | None, typer.Option(help="log level (default: LOG_LEVEL)")] = None,
    hostname: Annotated[str | None, typer.Option(help="node name, e.g. worker1@%h")] = None,
) -> None:
    """Run a Celery worker for the orchestrator's task queues."""
    from orchestrator.config import get_settings
    from orchestrator.logs import configure_logging

    load_policy_or_exit()
    # The embedded broker is a SQLite file: its folder must exist before Celery opens it.
    ensure_data_dirs()
    from orchestrator.tasks import QUEUES

    celery_app = process_entry(WORKER_APP).app

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if not wanted or unknown:
        fail(f"--queues: unknown queue(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(QUEUES)}", 2)
    settings = get_settings()
    # Configured before Celery starts, so Celery keeps our JSON handler instead of adding its own.
    configure_logging(settings.log_level, json=settings.log_json)
    argv = ["worker", "--queues", ",".join(wanted), "--pool", pool.value, "--loglevel", loglevel or settings.log_level]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if hostname:
        argv += ["--hostname", hostname]
    # Start-up hooks belong on Celery's signals (worker_init / worker_ready / worker_shutdown) in the
    # workers package, not here: they then also run under `celery -A workers.app worker`.
    # Celery's stub says NoReturn, but `start` returns the exit code that the click command exited with.
    code: int | None = celery_app.start(argv)
    raise typer.Exit(code or 0)


# The process packages this CLI launches. They are named, not imported: `orchestrator` is the library
# they are built on and never imports them (an import contract checks it), the CLI only starts them.
WORKER_APP = "workers.app"
SCHEDULER_MAIN = "schedules.main"


def process_entry(module: str) -> Any:
    """The entry module of a process package (WORKER_APP, SCHEDULER_MAIN), loaded by name."""
    import importlib

    return importlib.import_module(module)


def _registered_commands() -> set[str]:
    from orchestrator.cli import build

    command = typer.main.get_command(build())
    return set(getattr(command, "commands", {}))


def _check_port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; is another `orchestrator up` running? (--port)", 2)


def _check_schema_current() -> None:
    from orchestrator.db import schema_is_current

    if not schema_is_current():
        fail("the database is not at the newest schema; run `orchestrator migrate` first", 2)


def _print_demo_token(token: str) -> None:
    typer.echo("Demo admin API token (shown once; it is stored hashed):")
    typer.echo(f"  export ORCHESTRATOR_TOKEN={token}")


def up(
    host: Annotated[str | None, typer.Option(help="API interface (API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="API port (API_PORT)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="worker processes (a laptop-sized default)")] = 2,
    stop_timeout: Annotated[float, typer.Option(help="seconds each process gets to stop before SIGKILL")] = 20.0,
) -> None:
    """Run the API, a worker and the scheduler in the foreground; Ctrl-C stops them all."""
    from orchestrator.cli.supervisor import Child, Supervisor, python_module_command
    from orchestrator.config import get_settings, local_url

    load_policy_or_exit()
    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    ensure_data_dirs()
    require_catalog()
    _check_schema_current()
    if settings.demo_data:
        _load_demo_if_empty()
    _check_port_free(host, port)

    cli = "orchestrator.cli"
    children = [
        Child("api", python_module_command(cli, "api", "--host", host, "--port", str(port))),
        Child("worker", python_module_command(cli, "worker", "--concurrency", str(concurrency))),
    ]
    if "scheduler" in _registered_commands():
        children.append(Child("scheduler", python_module_command(cli, "scheduler")))
    else:
        typer.echo("up: no `scheduler` command is installed; running without timers", err=True)

    url = local_url(host, port)
    # The children derive PUBLIC_URL (links, token issuer) from the port they are told here.
    env = {**os.environ, "API_HOST": host, "API_PORT": str(port)}
    # The worker loads the review checks' data as it starts, not on the first push (WORKER_WARM_REVIEWS).
    env.setdefault("WORKER_WARM_REVIEWS", "true")
    supervisor = Supervisor(children, env=env, stop_timeout=stop_timeout)
    supervisor.say(f"starting {', '.join(c.name for c in children)}; API at {url}")
    probe = _ReadinessProbe(url, supervisor)
    code, failure = supervisor.run(on_tick=probe)
    if failure:
        fail(failure, code)
    raise typer.Exit(code)


class _ReadinessProbe:
    """Polls /healthz until the API answers, then prints the URL banner once."""

    def __init__(self, url: str, supervisor: Supervisor) -> None:
        self.url = url
        self.supervisor = supervisor
        self.started = time.monotonic()
        self.next_try = 0.0
        self.done = False

    def __call__(self) -> None:
        now = time.monotonic()
        if self.done or now < self.next_try:
            return
        self.next_try = now + 0.5
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                ready = response.status == 200
        except (urllib.error.URLError, OSError):
            ready = False
        say = self.supervisor.say
        if ready:
            self.done = True
            say(
                f"ready: API at {self.url}  (web console {self.url}/console/, OpenAPI docs {self.url}/docs)"
                " — press Ctrl-C to stop"
            )
        elif now - self.started > 60:
            self.done = True
            say(f"the API does not answer on {self.url}/healthz after 60s; see its output above")


def _load_demo_if_empty() -> None:
    from orchestrator.catalog.demo import load_demo
    from orchestrator.catalog.policy import get_policy
    from orchestrator.cli import session_scope
    from orchestrator.credentials.handover import on_app_approved

    with session_scope() as session:
        result = load_demo(session, policy=get_policy(), on_approved=on_app_approved)
    if result.loaded and result.token:
        typer.echo(f"demo: loaded {result.apps} apps")
        _print_demo_token(result.token)


def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="do nothing (exit 0) when the catalog already has apps")
    ] = False,
) -> None:
    """Load the demo catalog (a few apps, people, an admin token) into an empty database."""
    from orchestrator.catalog.demo import load_demo
    from orchestrator.catalog.policy import get_policy
    from orchestrator.cli import session_scope
    from orchestrator.config import get_settings
    from orchestrator.credentials.handover import on_app_approved

    load_policy_or_exit()
    with session_scope() as session:
        result = load_demo(session, policy=get_policy(), on_approved=on_app_approved)
    if not result.loaded:
        message = f"the catalog already has {result.existing_apps} app(s); the demo loads only into an empty one"
        if if_empty:
            typer.echo(f"demo: {message}; nothing to do")
            return
        fail(message)
    typer.echo(f"demo: loaded {result.apps} apps, their owners and approvers")
    assert result.token is not None
    _print_demo_token(result.token)
    url = get_settings().public_url.rstrip("/")
    typer.echo(f'Try: curl -H "Authorization: Bearer $ORCHESTRATOR_TOKEN" {url}/api/v1/apps')


def register(app: typer.Typer) -> None:
    """Attach `worker`, `up` and `demo` to the CLI."""
    app.command("worker")(worker)
    app.command("up")(up)
    app.command("demo")(demo)
