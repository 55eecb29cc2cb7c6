"""Sunset."""
