"""Celery tasks for the notifications queue (thin: parse, call a service, record the outcome)."""
