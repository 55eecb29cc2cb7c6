"""Celery tasks for the events queue (thin: parse, call a service, record the outcome)."""
