"""The SCIM compliance checker scim2-tester, run offline against the real app (in-process HTTP)."""

from __future__ import annotations

from collections.abc import Callable


def test_scim2_tester_finds_no_error(db_url: str, make_token: Callable[..., str]) -> None:
    """Discovery and User create/read/replace/delete as scim2-tester drives them: no check errors."""
    from fastapi.testclient import TestClient
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    from orchestrator.http.app import create_app

    token = make_token("scim", None, "scim2-tester")
    with TestClient(
        create_app(), base_url="http://testserver/scim/v2", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        results = check_server(SyncSCIMClient(http), resource_types=["User"])
    failures = [(r.title, r.reason) for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert results and not failures, failures
