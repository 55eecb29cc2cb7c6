"""Credential providers: the interface, the built-in token service, and external systems."""
