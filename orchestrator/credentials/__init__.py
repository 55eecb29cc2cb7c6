"""Credentials: the ledger of everything an app holds, and the services that issue and revoke."""
