"""Celery workers: the app, thin task modules, and the automated review checks they call."""
