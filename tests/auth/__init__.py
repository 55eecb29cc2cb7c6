"""Tests of the auth domain: API tokens and their revocation."""
