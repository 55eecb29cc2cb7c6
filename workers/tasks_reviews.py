"""Celery tasks for the reviews queue (thin: parse, call a service, record the outcome)."""
