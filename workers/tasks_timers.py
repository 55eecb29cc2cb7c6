"""Celery tasks for the timers queue (thin: parse, call a service, record the outcome)."""
