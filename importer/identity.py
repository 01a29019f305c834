"""Identity: every id the importer derives, its ownership mark, and the one "is it ours" rule.

Pure. No I/O. Every object an account owns has an id that starts with the account's prefix (one
listing rule, ``startswith(name, prefix)``, finds them all at any account-name length) and carries
a mark naming the account and the APIM instance. Anything else, and anything that only looks
similar, is not ours.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from importer.model import (
    OWNER_MARK,
    AccountRef,
    ApimRef,
    ApiSpec,
    Mode,
    RoleAssignmentSpec,
    SubscriptionSpec,
)

MAX_ID = 80  # APIM's limit on API and backend ids

# What follows an account's prefix in each id it owns. An API and its main backend share the id
# of their mode; the Azure OpenAI mode keeps the bare prefix (the id every earlier release used).
MODE_SUFFIX: dict[Mode, str] = {Mode.AZURE_OPENAI: "", Mode.AZURE_AI: "-models",
                                Mode.AZURE_OPENAI_V1: "-v1"}
FEATURE_SUFFIX: dict[str, str] = {"embeddings": "-embeddings", "safety": "-safety"}
BACKEND_ROLES = ("main", *FEATURE_SUFFIX)
PROBE_SUFFIX = "-probe"
# Room kept for the longest suffix, so every id fits MAX_ID whatever the account name's length.
LONGEST_SUFFIX = max(len(s) for s in (*(m + PROBE_SUFFIX for m in MODE_SUFFIX.values()),
                                      *FEATURE_SUFFIX.values()))
_HASH = 8
NAME_BUDGET = MAX_ID - len("ai-") - len("-") - _HASH - LONGEST_SUFFIX

# Fixed namespace of role-assignment names: uuid5(namespace, "scope|role|principal"), all lowercase.
ROLE_ASSIGNMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:apim-ai-importer:role-assignment")

_ID = r"/subscriptions/[^\s\]]+"
_MARK_LINE = re.compile(r"^\[" + re.escape(OWNER_MARK) + rf" account=({_ID})(?: apim=({_ID}))?\]$")


# ---------------------------------------------------------------------------------------------
# Ids


def account_prefix(ref: AccountRef) -> str:
    """``ai-{account name, lower-cased, at most NAME_BUDGET chars}-{8 hex of sha256(account id)}``."""
    name = re.sub(r"[^a-z0-9-]", "-", ref.name.lower())[:NAME_BUDGET]
    return f"ai-{name}-{hashlib.sha256(ref.key.encode('utf-8')).hexdigest()[:_HASH]}"


def api_id(ref: AccountRef, mode: Mode = Mode.AZURE_OPENAI) -> str:
    """The API serving ``mode`` for the account."""
    return account_prefix(ref) + MODE_SUFFIX[Mode(mode)]


def backend_id(ref: AccountRef, role: str = "main", mode: Mode = Mode.AZURE_OPENAI) -> str:
    """``main``: the mode's route (same id as its API); ``embeddings`` / ``safety``: the account's
    feature backends, shared by its modes."""
    if role == "main":
        return api_id(ref, mode)
    if role not in FEATURE_SUFFIX:
        raise ValueError(f"unknown backend role {role!r}: expected one of {', '.join(BACKEND_ROLES)}")
    return account_prefix(ref) + FEATURE_SUFFIX[role]


def probe_subscription_id(ref: AccountRef) -> str:
    """The APIM subscription (key) that ``test`` and the probes use."""
    return account_prefix(ref) + PROBE_SUFFIX


def listing_filter(ref: AccountRef) -> str:
    """The OData filter that lists every API, backend or subscription the account may own."""
    return prefix_filter(account_prefix(ref))


def prefix_filter(prefix: str) -> str:
    """The OData filter for names starting with ``prefix`` (a quote in it doubled, as OData wants)."""
    quoted = prefix.replace("'", "''")
    return f"startswith(name,'{quoted}')"


def mode_of_api(ref: AccountRef, object_id: str) -> Mode | None:
    """The mode whose API (or main backend) id ``object_id`` is, for ``ref``; else None."""
    found = [m for m in Mode if api_id(ref, m).lower() == object_id.lower()]
    return found[0] if found else None


def is_owned_id(ref: AccountRef, object_id: str) -> bool:
    """Whether ``object_id`` is one of the API or backend ids derived for ``ref``."""
    ids = {api_id(ref, m).lower() for m in Mode} | {backend_id(ref, r).lower() for r in FEATURE_SUFFIX}
    return object_id.lower() in ids


def role_assignment_name(scope: str, role_guid: str, principal_id: str) -> str:
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE,
                          f"{scope.lower()}|{role_guid.lower()}|{principal_id.lower()}"))


# ---------------------------------------------------------------------------------------------
# The mark


@dataclass(frozen=True)
class Mark:
    account: str
    apim: str | None  # None: a mark written before marks named the instance


def owner_mark(ref: AccountRef, apim: ApimRef) -> str:
    return f"[{OWNER_MARK} account={ref.id} apim={apim.id}]"


def owner_description(ref: AccountRef, apim: ApimRef, text: str) -> str:
    """``text`` followed by a final line carrying the ownership mark."""
    body = text.rstrip()
    return f"{body}\n{owner_mark(ref, apim)}" if body else owner_mark(ref, apim)


def last_line(description: str | None) -> str:
    """A description's final non-blank line, stripped: where every mark of the importer lives."""
    lines = [line.strip() for line in (description or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def read_mark(description: str | None) -> Mark | None:
    """The mark on the description's final line, or None."""
    m = _MARK_LINE.fullmatch(last_line(description))
    return Mark(m.group(1), m.group(2)) if m else None


def owned_account(description: str | None, apim: ApimRef | None = None) -> str | None:
    """The account id the mark names, or None without a mark (or, given ``apim``, with a mark of
    another APIM instance)."""
    mark = read_mark(description)
    if mark is None or (apim is not None and mark.apim is not None
                        and mark.apim.lower() != apim.id.lower()):
        return None
    return mark.account


def owns(description: str | None, ref: AccountRef, apim: ApimRef) -> bool:
    """An APIM object (API, backend) is ours for ``ref``: its mark names the account, and names this
    APIM instance or none (marks from before they named it: the object lives in this instance)."""
    found = owned_account(description, apim)
    return found is not None and found.lower() == ref.key


def owns_object(object_id: str, description: str | None, ref: AccountRef, apim: ApimRef) -> bool:
    """The whole rule for an API or backend: an id derived for ``ref`` and our mark for ``ref``."""
    return is_owned_id(ref, object_id) and owns(description, ref, apim)


def owns_role(scope: str, description: str | None, principal_id: str, ref: AccountRef, apim: ApimRef,
              principal: str | None = None) -> bool:
    """A role assignment is ours for ``ref``: made at the account's scope, and its mark names the
    account and this APIM instance. A mark from before marks named the instance counts only when the
    assignment is of this instance's principal (``principal``, when known): another importer's grant
    for its own APIM is never ours."""
    mark = read_mark(description)
    if scope.lower() != ref.key or mark is None or mark.account.lower() != ref.key:
        return False
    if mark.apim is not None:
        return mark.apim.lower() == apim.id.lower()
    return principal is not None and principal_id.lower() == principal.lower()


def owned_principal(scope_roles: Iterable[RoleAssignmentSpec], ref: AccountRef, apim: ApimRef) -> str | None:
    """The principal of this importer's own assignment on the account, if exactly one principal
    holds one: an assignment whose mark names ``ref`` and this APIM instance (or no instance, an
    older mark) and whose name is the deterministic name for its own (scope, role, principal).
    Anything else (none, several, a renamed one) → None."""
    found: set[str] = set()
    for r in scope_roles:
        mark = read_mark(r.description)
        if (mark is not None and mark.account.lower() == ref.key
                and (mark.apim is None or mark.apim.lower() == apim.id.lower())
                and r.name.lower() == role_assignment_name(ref.id, r.role_definition_guid, r.principal_id)):
            found.add(r.principal_id.lower())
    return found.pop() if len(found) == 1 else None


def needs_principal(scope_roles: Iterable[RoleAssignmentSpec], ref: AccountRef) -> bool:
    """Whether an assignment at the account's scope has a mark for ``ref`` that names no APIM
    instance: only APIM's principal then tells whether it is this importer's."""
    return any((m := read_mark(r.description)) is not None and m.apim is None
               and m.account.lower() == ref.key for r in scope_roles)


def description_text(value: str | None) -> str:
    """A description modulo what APIM may change when it hands it back: line ends (CRLF), trailing
    blanks on lines, blank lines around the whole."""
    return "\n".join(line.rstrip() for line in (value or "").replace("\r\n", "\n").split("\n")).strip()


def left_by_our_import(have: ApiSpec, want: ApiSpec, ref: AccountRef) -> bool:
    """An unmarked API that is what our own import of ``want`` leaves when the properties write after
    it never happened (a failure between the two writes): the account's id for that API, its path,
    and exactly the description the import takes from the document, with no mark of anyone's.
    The next run finishes the job instead of reporting a conflict."""
    return (want.imported_description is not None and mode_of_api(ref, have.api_id) is not None
            and have.api_id.lower() == want.api_id.lower() and read_mark(have.description) is None
            and have.path.strip("/").lower() == want.path.strip("/").lower()
            and description_text(have.description) == description_text(want.imported_description))


def probe_subscription(ref: AccountRef, mode: Mode = Mode.AZURE_OPENAI) -> SubscriptionSpec:
    """Scoped to the API of ``mode`` only; the display name carries the mark (APIM allows 100 chars)."""
    return SubscriptionSpec(sid=probe_subscription_id(ref), scope=f"/apis/{api_id(ref, mode)}",
                            display_name=f"{OWNER_MARK} probe {ref.name}", state="active")


def owns_subscription(spec: SubscriptionSpec, ref: AccountRef) -> bool:
    """Ours for ``ref``: our sid, the mark in the display name, and scoped to one of this account's
    APIs (whose ids carry the account's hash)."""
    scope = spec.scope.rstrip("/").lower()
    return (spec.sid.lower() == probe_subscription_id(ref).lower()
            and spec.display_name.startswith(OWNER_MARK)
            and any(scope.endswith(f"/apis/{api_id(ref, m)}".lower()) for m in Mode))
