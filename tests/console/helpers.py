"""Helpers for the console tests: read a page's CSRF token, sign in with an API token."""

from __future__ import annotations

import re
from typing import Any

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on the page."""
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: Any, token: str) -> Any:
    """Sign `client` in with `token` through the login form; the answer after the redirect."""
    page = client.get("/console/login")
    assert page.status_code == 200
    answer = client.post("/console/login", data={"csrf": csrf_of(page.text), "token": token, "next": "/console/"})
    return answer


def post_form(client: Any, url: str, data: dict[str, str], *, page_url: str = "/console/") -> Any:
    """POST a console form with the CSRF token read from `page_url`, not following the redirect."""
    token = csrf_of(client.get(page_url).text)
    return client.post(url, data={"csrf": token, **data}, follow_redirects=False)
