"""The `orchestrator` command line: run the services, administer the catalog, talk to the API.

Sub-command groups live in their own modules of this package, listed in `GROUPS` and attached here.
Every command answers in a fresh process, so this package and the group modules import only typer
and light modules at their top: the database layer, Celery, FastAPI and the review engine are
imported inside the commands that use them (tests/cli/test_lazy_imports.py holds this).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from orchestrator.errors import ConfigError, OrchestratorError

if TYPE_CHECKING:
    from sqlmodel import Session

app = typer.Typer(
    name="orchestrator",
    help="Micro-app lifecycle orchestrator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Inspect and check policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with `code` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_actor() -> str:
    """Who audit entries written from this shell are attributed to: `cli:<login>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def session_scope(*, write: bool = True) -> Iterator[Session]:
    """`orchestrator.db.session_scope` for commands, with the process wired first.

    Wiring (the event handlers and the outbox publisher) happens here rather than in `main()`, so that
    only commands that use the database pay for importing every domain: events a command writes are
    published after commit, and `events retry` can run handlers.
    """
    from orchestrator import wiring
    from orchestrator.db import session_scope as db_session_scope

    require_catalog()
    wiring.install()

    with db_session_scope(write=write) as session:
        yield session


def require_catalog() -> None:
    """Exit 2 with advice when the catalog is an embedded SQLite file that does not exist.

    SQLite would create an empty file on connect, and a command run outside the deployment's folder
    would then silently work on a new, empty catalog.
    """
    from orchestrator.config import get_settings

    settings = get_settings()
    if not settings.is_sqlite:
        return
    catalog = settings.sqlite_paths()[0] if settings.sqlite_paths() else None
    if catalog is not None and not catalog.exists():
        fail(
            f"cannot use the database: no catalog at {catalog}. Run the command in the deployment's folder "
            "(or a sub-folder), set DATA_DIR or DATABASE_URL, or create it with `orchestrator migrate`",
            2,
        )


def ensure_data_dirs() -> None:
    """Create the folders of the embedded SQLite catalog and broker (what `up`, `worker` and `migrate` need)."""
    from orchestrator.config import get_settings

    for path in get_settings().sqlite_paths():
        path.parent.mkdir(parents=True, exist_ok=True)


def _database_error_line(exc: BaseException) -> str | None:
    """The first line of a SQLAlchemy error, or None when `exc` is not one."""
    # SQLAlchemy is only loaded when a command used the database; if it is not, this is no database error.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    return str(orig if orig else exc).strip().splitlines()[0][:300]


def load_policy_or_exit() -> None:
    """Validate the configured policy; exit 2 with the field and reason when it is bad."""
    from orchestrator.catalog.policy import get_policy

    try:
        get_policy()
    except ConfigError as exc:
        fail(exc.message, 2)


@app.command()
def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="change nothing: exit 0 at the newest schema, 1 when behind")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(min=0, help="with --check, keep checking this many seconds (an init container awaiting a Job)"),
    ] = 0.0,
) -> None:
    """Apply database migrations (safe to run again), or with --check only say whether they are applied."""
    from orchestrator.config import get_settings
    from orchestrator.db import migrate as run_migrations

    url = _safe_url(get_settings().database_url)
    if check:
        _await_schema(url, wait)
        return
    ensure_data_dirs()
    run_migrations()
    typer.echo(f"database at the newest schema: {url}")


def _await_schema(url: str, wait: float) -> None:
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.db import schema_is_current

    give_up = time.monotonic() + wait
    while True:
        try:
            current, why = schema_is_current(), "behind the newest schema; run `orchestrator migrate`"
        except SQLAlchemyError as exc:  # not up yet, or unreachable: keep waiting, then say so
            current, why = False, f"unreachable ({type(exc).__name__})"
        if current:
            typer.echo(f"database at the newest schema: {url}")
            return
        if time.monotonic() >= give_up:
            fail(f"database {url} is {why}", 1)
        time.sleep(min(2.0, max(0.0, give_up - time.monotonic())))


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="interface to bind (API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (API_PORT)")] = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from orchestrator.config import get_settings

    load_policy_or_exit()
    settings = get_settings()
    uvicorn.run(
        "orchestrator.http.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
        access_log=False,
    )


@policy_app.command("check")
def policy_check(path: Annotated[str, typer.Argument(help="policy.yaml to check")]) -> None:
    """Validate a policy file and print the effective policy as YAML."""
    import yaml

    from orchestrator.catalog.policy import load_policy

    try:
        policy = load_policy(path)
    except ConfigError as exc:
        fail(exc.message, 2)
        return
    typer.echo(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))


_built = False


# The command groups, in the order `--help` lists them; each module has `register(app)`.
GROUPS = (
    "orchestrator.cli.admin",
    "orchestrator.cli.advisories",
    "orchestrator.cli.approvals",
    "orchestrator.cli.credentials",
    "orchestrator.cli.doctor",
    "orchestrator.cli.events",
    "orchestrator.cli.llm",
    "orchestrator.cli.kpis",
    "orchestrator.cli.new",
    "orchestrator.cli.remote",
    "orchestrator.cli.review",
    "orchestrator.cli.run",
    "orchestrator.cli.scheduler",
    "orchestrator.cli.submit",
)


def build() -> typer.Typer:
    """The CLI with every command group of `GROUPS` attached."""
    global _built
    if not _built:
        import importlib

        for name in GROUPS:
            importlib.import_module(name).register(app)
        _built = True
    return app


def main() -> None:
    """Entry point of the `orchestrator` console script."""
    build()
    try:
        app()
    except OrchestratorError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except Exception as exc:
        first_line = _database_error_line(exc)
        if first_line is None:
            raise
        typer.echo(
            f"error: database error: {first_line} (is DATABASE_URL right, and has `orchestrator migrate` run?)",
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
