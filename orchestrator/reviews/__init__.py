"""Automated reviews of a micro-app's source: secrets, dependencies, LLM egress and PII, scopes, escalation.

`orchestrator.reviews.checks.engine.review_directory` is the pure entry point; it needs no database or server
(the maker tool uses it). In the service, `handlers` queue a review on `app.created`, `app.updated` and
`review.due`; `flows.run_review` (the `workers.run_review` task) fetches the source (`fetch`), runs the
engine, stores the findings (`results`) and drives the lifecycle (`outcome`). See docs/reviews.md.
"""
