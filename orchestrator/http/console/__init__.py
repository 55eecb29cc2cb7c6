"""The web console: server-rendered pages (Jinja2 + vendored htmx) over the API's own handlers.

An entry point like the rest of `orchestrator.http`: every page reads and acts through the same
handler functions and authorization helpers as the JSON API, so its rules are exactly the API's.
"""
