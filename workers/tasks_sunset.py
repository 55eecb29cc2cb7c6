"""Celery tasks for the sunset queue (thin: parse, call a service, record the outcome)."""
