"""Micro-app lifecycle orchestrator: catalog, lifecycle, reviews, approvals, timers, credentials."""

__version__ = "0.1.0"
