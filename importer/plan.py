"""Plan: diff(desired, actual) → the changes that would make APIM match, and offboard(account, actual).

Pure. No I/O. Output sorted (Change.order). Only objects carrying our mark are changed or deleted; a
foreign object in the way is a CONFLICT, reported and never written, and then nothing else for that
account is planned. An empty plan means zero writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from importer import policyxml
from importer.identity import description_text, left_by_our_import, owns_role
from importer.model import (
    AccountRef,
    Action,
    Actual,
    ActualBackend,
    ApimRef,
    ApiSpec,
    BackendSpec,
    Change,
    Desired,
    DiagnosticSpec,
    InvalidInput,
    Kind,
    Plan,
    RoleAssignmentSpec,
)

ARROW = "→"


def _text(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)


_desc = description_text  # descriptions compare modulo line ends and surrounding blanks


def _no_query(operation: tuple[str, str]) -> tuple[str, str]:
    method, template = operation
    return method.upper(), template.split("?", 1)[0]


def _field(name: str, old: object, new: object) -> str:
    return f"{name}: {_text(old)} {ARROW} {_text(new)}"


def _field_lines(pairs: Iterable[tuple[str, object, object]], actual_description: str | None,
                 desired_description: str | None) -> list[str]:
    """A line for each (name, actual, desired) that differs, then for the description if it does."""
    out = [_field(name, old, new) for name, old, new in pairs if old != new]
    if _desc(actual_description) != _desc(desired_description):
        out.append(_field("description", _desc(actual_description), _desc(desired_description)))
    return out


def _guid(role_definition: str) -> str:
    """Role definitions compare by their trailing GUID, case-insensitively."""
    return role_definition.rstrip("/").rsplit("/", 1)[-1].lower()


# ---------------------------------------------------------------------------------------------
# Field diffs


def api_diff(actual: ApiSpec, desired: ApiSpec, *, operations: bool = True) -> tuple[str, ...]:
    """Human lines for every compared API field that differs (import_value is never compared:
    APIM does not return the imported document). Every field compared is one APIM keeps as written
    once the properties are set after an import; ``operations=False``: the properties only."""
    out = _field_lines((
        ("display_name", actual.display_name, desired.display_name),
        ("path", actual.path, desired.path),
        ("service_url", actual.service_url or None, desired.service_url or None),
        ("protocols", tuple(sorted(p.lower() for p in actual.protocols)),
         tuple(sorted(p.lower() for p in desired.protocols))),
        ("subscription_required", actual.subscription_required, desired.subscription_required),
        ("key_header", actual.key_header, desired.key_header),
        ("key_query", actual.key_query, desired.key_query),
        ("key_bearer", actual.key_bearer, desired.key_bearer),
    ), actual.description, desired.description)
    if not operations:
        return tuple(out)
    have, want = set(actual.operations), set(desired.operations)
    if desired.linked:
        # A linked (third-party) document: which required query parameters APIM turns into the URL
        # template can't be verified here (the stand-in mirrors our rule, not APIM's), so operations
        # compare by method and path only. A missing or extra operation is still drift.
        have, want = {_no_query(op) for op in have}, {_no_query(op) for op in want}
    out += [f"operation: + {m} {t}" for m, t in sorted(want - have)]
    out += [f"operation: - {m} {t}" for m, t in sorted(have - want)]
    return tuple(out)


def backend_diff(actual: BackendSpec, desired: BackendSpec) -> tuple[str, ...]:
    return tuple(_field_lines((
        ("url", actual.url, desired.url),
        ("title", actual.title, desired.title),
        ("protocol", actual.protocol.lower(), desired.protocol.lower()),
        ("circuit_breaker", actual.circuit_breaker, desired.circuit_breaker),
        ("identity_resource", actual.identity_resource, desired.identity_resource),
    ), actual.description, desired.description))


def policy_differs(actual_xml: str, desired_xml: str) -> bool:
    try:
        return policyxml.canonical(actual_xml) != policyxml.canonical(desired_xml)
    except InvalidInput:
        return True  # what APIM holds does not parse: ours replaces it


def _role_matches(have: RoleAssignmentSpec, want: RoleAssignmentSpec) -> bool:
    return (have.scope.lower() == want.scope.lower()
            and _guid(have.role_definition_guid) == _guid(want.role_definition_guid)
            and have.principal_id.lower() == want.principal_id.lower())


def _role_owned(role: RoleAssignmentSpec, account: AccountRef, apim: ApimRef | None,
                principal: str | None) -> bool:
    return apim is not None and owns_role(role.scope, role.description, role.principal_id, account, apim,
                                          principal)


# ---------------------------------------------------------------------------------------------
# diff


def _clash(desired: Desired, actual: Actual, api: ApiSpec) -> str | None:
    """A foreign API serving ``api``'s path. One of this account's own APIs that the plan deletes
    (a mode removed, or an API id from before modes were a set) is no clash: it goes first."""
    clash = dict((k.lower(), v) for k, v in actual.path_clashes).get(api.api_id.lower())
    if clash is None or clash.lower() == api.api_id.lower():
        return None
    mine = actual.api(clash)
    if mine is not None and mine.owned and clash.lower() not in {a.api_id.lower() for a in desired.apis}:
        return None
    return clash


def _conflicts(desired: Desired, actual: Actual, adopt: bool) -> list[Change]:
    out: list[Change] = []
    for api in desired.apis:
        clash = _clash(desired, actual, api)
        if clash is not None:
            owner = dict(actual.path_clash_owners).get(clash)
            holder = (f"which the importer imported for account {owner}" if owner
                      else "which the importer does not own")
            out.append(Change(Action.CONFLICT, Kind.API, api.api_id,
                              reason=f"path '{api.path}' is already served by API '{clash}', "
                                     f"{holder}: change the base path (tag apim-importer-base-path) "
                                     "of one of them, or move that API",
                              diff=(f"path: {api.path}",), after=api))
        have = actual.api(api.api_id)
        if (have is not None and not have.owned and not adopt
                and not left_by_our_import(have.spec, api, desired.account)):
            out.append(Change(Action.CONFLICT, Kind.API, api.api_id,
                              reason=f"an API with id '{api.api_id}' exists without this account's "
                                     "ownership mark: remove it, or adopt it (IMPORTER_ADOPT=true or "
                                     "option adopt)",
                              before=have.spec, after=api, etag=have.etag))
    if not adopt:
        by_id = {b.spec.backend_id.lower(): b for b in actual.backends}
        for want in desired.backends:
            have_b = by_id.get(want.backend_id.lower())
            if have_b is not None and not have_b.owned:
                out.append(Change(Action.CONFLICT, Kind.BACKEND, want.backend_id,
                                  reason=f"a backend with id '{want.backend_id}' exists without this "
                                         "account's ownership mark: remove it, or adopt it "
                                         "(IMPORTER_ADOPT=true or option adopt)",
                                  before=have_b.spec, after=want, etag=have_b.etag))
    return out


def _api_changes(desired: Desired, actual: Actual) -> list[Change]:
    out: list[Change] = []
    for want in desired.apis:
        have = actual.api(want.api_id)
        if have is None:
            lines: tuple[str, ...] = (f"path: {want.path}", f"operations: {len(want.operations)}")
            if want.linked:
                lines += (f"document: {want.import_value}",)
            out.append(Change(Action.CREATE, Kind.API, want.api_id, reason="API missing", diff=lines,
                              after=want))
            continue
        lines = api_diff(have.spec, want)
        if not have.owned:  # adopt, or our own import left unfinished (else _conflicts stopped it)
            why = ("finish an interrupted import" if left_by_our_import(have.spec, want, desired.account)
                   else "adopt a foreign API")
            out.append(Change(Action.UPDATE, Kind.API, want.api_id, reason=why, diff=lines, before=have.spec,
                              after=want, etag=have.etag))
        elif lines:
            out.append(Change(Action.UPDATE, Kind.API, want.api_id, reason="API drifted", diff=lines,
                              before=have.spec, after=want, etag=have.etag))
    wanted = {a.api_id.lower() for a in desired.apis}
    for have in actual.apis:
        if have.owned and have.spec.api_id.lower() not in wanted:  # a mode removed from the set
            out.append(Change(Action.DELETE, Kind.API, have.spec.api_id, reason="mode no longer published",
                              diff=(f"path: {have.spec.path}",), before=have.spec, etag=have.etag))
    return out


def _backend_changes(desired: Desired, actual: Actual) -> list[Change]:
    out: list[Change] = []
    by_id: dict[str, ActualBackend] = {b.spec.backend_id.lower(): b for b in actual.backends}
    wanted = {b.backend_id.lower() for b in desired.backends}
    for want in desired.backends:
        have = by_id.get(want.backend_id.lower())
        if have is None:
            out.append(Change(Action.CREATE, Kind.BACKEND, want.backend_id, reason="backend missing",
                              diff=(f"url: {want.url}",), after=want))
            continue
        lines = backend_diff(have.spec, want)
        if not have.owned:
            out.append(Change(Action.UPDATE, Kind.BACKEND, want.backend_id, reason="adopt a foreign backend",
                              diff=lines, before=have.spec, after=want, etag=have.etag))
        elif lines:
            out.append(Change(Action.UPDATE, Kind.BACKEND, want.backend_id, reason="backend drifted",
                              diff=lines, before=have.spec, after=want, etag=have.etag))
    for key, have in sorted(by_id.items()):
        if key not in wanted and have.owned:  # ours, no longer wanted (a feature or mode turned off)
            out.append(Change(Action.DELETE, Kind.BACKEND, have.spec.backend_id,
                              reason="backend no longer needed", diff=(f"url: {have.spec.url}",),
                              before=have.spec, etag=have.etag))
    return out


def _policy_changes(desired: Desired, actual: Actual) -> list[Change]:
    out: list[Change] = []
    for want in desired.policies:
        have = actual.policy(want.api_id) if actual.api(want.api_id) is not None else None
        if have is None:
            out.append(Change(Action.CREATE, Kind.POLICY, want.api_id, reason="policy missing",
                              diff=policyxml.diff_lines(None, want.xml), after=want))
        elif policy_differs(have.spec.xml, want.xml):
            out.append(Change(Action.UPDATE, Kind.POLICY, want.api_id, reason="policy drifted",
                              diff=policyxml.diff_lines(have.spec.xml, want.xml), before=have.spec,
                              after=want, etag=have.etag))
    return out


def _logger_name(logger: str) -> str:
    return logger.rstrip("/").rsplit("/", 1)[-1].lower()


def diagnostic_diff(actual: DiagnosticSpec | None, desired: DiagnosticSpec) -> tuple[str, ...]:
    """What differs in the fields the importer manages. An LLM-logging 'off' asks for nothing when
    the diagnostic is absent or already off (the importer never creates a diagnostic to say no)."""
    if desired.llm_logging is False and (actual is None or not actual.llm_logging):
        return ()
    if actual is None:
        return (f"logger: {desired.logger}",)
    out = []
    if _logger_name(actual.logger) != _logger_name(desired.logger):
        out.append(_field("logger", _logger_name(actual.logger), desired.logger))
    if desired.metrics is not None and bool(actual.metrics) != desired.metrics:
        out.append(_field("metrics", bool(actual.metrics), desired.metrics))
    if desired.llm_logging is not None and bool(actual.llm_logging) != desired.llm_logging:
        out.append(_field("llm_logging", bool(actual.llm_logging), desired.llm_logging))
    return tuple(out)


def _diagnostic_key(d: DiagnosticSpec) -> tuple[str, str]:
    return d.api_id.lower(), d.name.lower()  # each API has its own diagnostics of the same names


def _diagnostic_changes(desired: Desired, actual: Actual) -> list[Change]:
    """Diagnostics are listed (no ETags): an update is a PATCH with If-Match * of the importer's own
    fields only (azure/arm.py), so a write never clobbers what others set on the diagnostic."""
    have = {_diagnostic_key(d): d for d in actual.diagnostics}
    out: list[Change] = []
    for want in desired.diagnostics:
        old = have.get(_diagnostic_key(want))
        lines = diagnostic_diff(old, want)
        if not lines:
            continue
        action = Action.CREATE if old is None else Action.UPDATE
        out.append(Change(action, Kind.DIAGNOSTIC, f"{want.api_id}/{want.name}",
                          reason="diagnostic missing" if old is None else "diagnostic drifted",
                          diff=lines, before=old, after=want))
    return out


def _link_changes(desired: Desired, actual: Actual) -> list[Change]:
    # Only missing links: a user may also link our API to other products, and that is theirs.
    have = {(link.product_id.lower(), link.api_id.lower()) for link in actual.product_links
            if actual.api(link.api_id) is not None}
    return [Change(Action.CREATE, Kind.PRODUCT_LINK, link.product_id, reason="product link missing",
                   diff=(f"product: {link.product_id}", f"api: {link.api_id}"), after=link)
            for link in desired.product_links
            if (link.product_id.lower(), link.api_id.lower()) not in have]


def _role_changes(desired: Desired, actual: Actual) -> list[Change]:
    out: list[Change] = []
    principal = desired.role_assignments[0].principal_id if desired.role_assignments else None
    for want in desired.role_assignments:
        if not any(_role_matches(have, want) for have in actual.role_assignments):
            out.append(Change(Action.CREATE, Kind.ROLE_ASSIGNMENT, want.name,
                              reason="role assignment missing",
                              diff=(f"role: {want.role_definition_guid}", f"principal: {want.principal_id}",
                                    f"scope: {want.scope}"), after=want))
    for have in actual.role_assignments:
        wanted = any(_role_matches(have, want) for want in desired.role_assignments)
        if not wanted and _role_owned(have, desired.account, desired.apim, principal):
            out.append(Change(Action.DELETE, Kind.ROLE_ASSIGNMENT, have.name,
                              reason="role assignment no longer needed (the modes changed)",
                              diff=(f"role: {have.role_definition_guid}",), before=have))
    return out


def diff(desired: Desired, actual: Actual, *, adopt: bool = False) -> Plan:
    """Changes that make APIM hold ``desired``. A conflict stops the account's plan: the plan then
    holds only the CONFLICT changes (zero writes)."""
    conflicts = _conflicts(desired, actual, adopt)
    if conflicts:
        return Plan(desired.account, _sorted(conflicts))
    changes = _api_changes(desired, actual) + _policy_changes(desired, actual)
    changes += _backend_changes(desired, actual)
    changes += _link_changes(desired, actual)
    changes += _diagnostic_changes(desired, actual)
    changes += _role_changes(desired, actual)
    return Plan(desired.account, _sorted(changes))


def offboard(account: AccountRef, actual: Actual, apim: ApimRef, principal: str | None = None) -> Plan:
    """Delete exactly what carries this account's mark for this APIM instance: the probe key's
    subscription, the APIs (their policies, operations and product links go with them), their
    backends and role assignments (``principal``: APIM's, when known, to recognise assignments
    whose mark predates naming the instance). Foreign objects are left alone."""
    changes: list[Change] = []
    if actual.subscription is not None and actual.subscription.owned:
        sub = actual.subscription.spec
        changes.append(Change(Action.DELETE, Kind.SUBSCRIPTION, sub.sid, reason="account offboarded",
                              diff=(f"scope: {sub.scope}",), before=sub, etag=actual.subscription.etag))
    for api in actual.apis:
        if api.owned:
            changes.append(Change(Action.DELETE, Kind.API, api.spec.api_id, reason="account offboarded",
                                  diff=(f"path: {api.spec.path}",), before=api.spec, etag=api.etag))
    for b in actual.backends:
        if b.owned:
            changes.append(Change(Action.DELETE, Kind.BACKEND, b.spec.backend_id, reason="account offboarded",
                                  diff=(f"url: {b.spec.url}",), before=b.spec, etag=b.etag))
    for role in actual.role_assignments:
        if _role_owned(role, account, apim, principal):
            changes.append(Change(Action.DELETE, Kind.ROLE_ASSIGNMENT, role.name, reason="account offboarded",
                                  diff=(f"role: {role.role_definition_guid}",), before=role))
    return Plan(account, _sorted(changes))


def _sorted(changes: Iterable[Change]) -> tuple[Change, ...]:
    return tuple(sorted(changes, key=lambda c: (c.order(), c.action.value)))


def describe(plan: Plan) -> str:
    """The plan as human text: one line per change, then its field diff indented."""
    if not plan.changes:
        return f"{plan.account.id}: no changes"
    lines = [f"{plan.account.id}: " + ", ".join(f"{n} {a}" for a, n in plan.summary().items() if n)]
    for c in plan.changes:
        lines.append(f"  {c.action.value:8} {c.kind.value:15} {c.id}  ({c.reason})")
        lines += [f"      {d}" for d in c.diff]
    return "\n".join(lines)

