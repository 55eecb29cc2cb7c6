"""SCIM 2.0 User resources in and out, on scim2-models, with what Okta and Entra really send accepted.

Accepted quirks (all documented by the IdPs, see tests/data/SOURCES.md):
- Entra capitalises operations (`"op": "Replace"`) and sends booleans as strings (`"False"`):
  scim2-models already reads both;
- Okta (and Entra) send path-less operations whose value is an object of attributes;
- Okta's documented examples use `@okta.local` addresses, which a strict email validator refuses:
  the IdP is the authority on its people's addresses, so emails are taken as given;
- Entra sends the enterprise `manager` as a bare id string or as a one-item list of `{"value": ...}`
  (with `"$ref": null`): both are normalised to the `{"value": ...}` object the schema defines.
A password in a request is never stored nor returned.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, Email, EnterpriseUser, PatchOp, ResponseParameters, SCIMException, User


class LenientEmail(Email):
    """An email as the IdP sends it: the IdP owns the address, a reserved domain (`okta.local`) included."""

    value: str | None = None


class ScimUser(User[EnterpriseUser]):
    """A SCIM User with the enterprise extension, whose emails are not re-validated here."""

    emails: list[LenientEmail] | None = None  # type: ignore[assignment]


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_MANAGER_PATH = f"{ENTERPRISE}:manager".lower()


class ScimRefused(ValueError):
    """A request SCIM refuses: its status, scimType and a detail for the IdP's logs."""

    def __init__(self, detail: str, *, status: int = 400, scim_type: str | None = "invalidValue") -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type


def _manager_object(value: Any) -> Any:
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k == "$ref" and v is None)}
    return value


def _normalise_resource(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k.lower() != "password"}
    for key, ext in list(out.items()):
        if key.lower() == ENTERPRISE.lower() and isinstance(ext, dict) and "manager" in ext:
            out[key] = {**ext, "manager": _manager_object(ext["manager"])}
    return out


def _describe(exc: ValidationError | SCIMException | ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "(body)"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc).splitlines()[0][:500]


def parse_user(body: Any) -> ScimUser:
    """A User from a POST or PUT body (400 invalidValue / invalidSyntax when it is not one)."""
    if not isinstance(body, dict):
        raise ScimRefused("the body must be a JSON object", scim_type="invalidSyntax")
    try:
        user = ScimUser.model_validate(_normalise_resource(body))
    except (ValidationError, SCIMException, ValueError) as exc:
        raise ScimRefused(_describe(exc)) from None
    if not user.user_name or not user.user_name.strip():
        raise ScimRefused("userName is required", scim_type="invalidValue")
    return user


def _normalise_operation(operation: Any) -> Any:
    if not isinstance(operation, dict):
        return operation
    op = dict(operation)
    path = str(op.get("path") or "").strip()
    value = op.get("value")
    if path.lower() == _MANAGER_PATH and str(op.get("op", "")).lower() != "remove":
        op["value"] = _manager_object(value)
    elif not path and isinstance(value, dict):
        op["value"] = _normalise_resource(value)
    return op


def apply_patch(user: ScimUser, body: Any) -> None:
    """Apply a PatchOp body to `user` in place (400 invalidPath / invalidValue / invalidSyntax)."""
    if not isinstance(body, dict):
        raise ScimRefused("the body must be a JSON object", scim_type="invalidSyntax")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise ScimRefused("Operations must be a non-empty list", scim_type="invalidSyntax")
    normalised = {**body, "Operations": [_normalise_operation(o) for o in operations]}
    normalised.pop("operations", None)
    try:
        patch = PatchOp[ScimUser].model_validate(normalised, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        patch.patch(user)
    except (ValidationError, SCIMException, ValueError) as exc:
        text = _describe(exc)
        kind = "invalidPath" if "path" in text.lower() or "attribute" in text.lower() else "invalidValue"
        raise ScimRefused(text, scim_type=kind) from None
    user.password = None


def primary_email(user: ScimUser) -> str:
    """The person's email: the primary (else first work, else first) email, else the userName."""
    emails = [e for e in (user.emails or []) if e.value]
    chosen = next((e for e in emails if e.primary), None) or next(
        (e for e in emails if str(e.type or "") == "work"), None
    )
    chosen = chosen or (emails[0] if emails else None)
    return str(chosen.value if chosen else user.user_name or "").strip().lower()


def manager_ref(user: ScimUser) -> str | None:
    """The enterprise extension's manager.value, if any."""
    extension = user[EnterpriseUser]
    manager = extension.manager if extension is not None else None
    value = manager.value if manager is not None else None
    return str(value) if value else None


def dump_for_storage(user: ScimUser) -> str:
    """The resource as stored: SCIM JSON without id, meta or password."""
    user.password = None
    data = user.model_dump()
    for key in ("id", "meta", "password"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def load_stored(text: str) -> ScimUser:
    """A stored resource back as a User."""
    return ScimUser.model_validate(json.loads(text or "{}") or {"userName": "unknown"})


def response_parameters(attributes: Any = None, excluded: Any = None) -> ResponseParameters[Any] | None:
    """The `attributes` / `excludedAttributes` of a query (comma-separated or lists); 400 when invalid."""
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters.model_validate(
            {k: v for k, v in (("attributes", attributes), ("excludedAttributes", excluded)) if v}
        )
    except (ValidationError, SCIMException, ValueError) as exc:
        raise ScimRefused(_describe(exc)) from None


def to_response(
    stored: str,
    *,
    id: str,
    created: datetime,
    modified: datetime,
    location: str,
    active: bool,
    parameters: ResponseParameters[Any] | None = None,
) -> dict[str, Any]:
    """The resource as returned to the IdP, with `id` and `meta` (`active` as the IdP last set it)."""
    user = load_stored(stored)
    user.id = id
    if user.active is not None or not active:
        user.active = active
    data = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)
    data["meta"] = {
        "resourceType": "User",
        "created": created.isoformat(),
        "lastModified": modified.isoformat(),
        "location": location,
    }
    return data
