"""The people an identity provider (Okta, Microsoft Entra ID, ...) provisions, and what their changes mean.

- `models`: the `idp_user` table (one row per SCIM User the IdP created here).
- `scim`: SCIM 2.0 resources in and out (scim2-models), with the IdPs' quirks normalised.
- `service`: create / replace / patch / delete a user; a deactivation or deletion raises `owner.left`
  through the outbox, deduplicated so IdP retries are harmless; a reactivation is audited only.
- `reconcile`: compare the IdP's active users with the catalogued people and raise `owner.left` for
  those missing, with guards against an empty or partial listing.
"""
