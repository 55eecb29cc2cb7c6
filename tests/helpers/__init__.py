"""Helpers and fixtures that tests of more than one domain use."""
