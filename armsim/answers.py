"""What every answer of the stand-in shares: ARM's error shape (``ArmError`` and the 400s it sends
most), a JSON response, ARM timestamps and ``systemData``.

Rule: the wire is the contract. The stand-in follows the public REST specs and examples and imports
nothing from ``azure.*``, so the SDK cannot agree with it by construction. Ground floor: imports
nothing from armsim.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response


class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message"[, "details"]}}``."""

    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message)


def validation_error(message: str, target: str | None = None) -> ArmError:
    """APIM's shape: a generic top message and the reason in ``details``."""
    detail = {"code": "ValidationError", "message": message}
    if target:
        detail["target"] = target
    return ArmError(400, "ValidationError", "One or more fields contain incorrect values:", details=[detail])


def system_data(previous: dict[str, Any] | None = None, by: str = "armsim@contoso.example") -> dict[str, Any]:
    """ARM ``systemData``: creation kept from the previous body, modification now."""
    created = (previous or {}).get("systemData") or {}
    now = utcnow()
    return {"createdBy": created.get("createdBy", by), "createdByType": created.get("createdByType", "User"),
            "createdAt": created.get("createdAt", now), "lastModifiedBy": by, "lastModifiedByType": "User",
            "lastModifiedAt": now}


def utcnow() -> str:
    """ARM timestamps: ISO 8601 with seven fractional digits and a Z."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
