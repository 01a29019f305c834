"""Event Grid wiring: the event subscription filter and destination in Bicep, and the postdeploy hook's
planning (infra/hooks/events.py), whose parameters must match infra/events.bicep's."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.infra.bicep import INFRA, Expr, has_default, load


def _load_hook():
    spec = importlib.util.spec_from_file_location("infra_hooks_events", INFRA / "hooks" / "events.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


events = _load_hook()

SUB_A = "11111111-2222-3333-4444-555555555555"
SUB_B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
RG_PROD = f"/subscriptions/{SUB_A}/resourceGroups/rg-prod"
APIM = f"/subscriptions/{SUB_A}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso"


def test_event_subscription_filter_and_destination() -> None:
    bicep = load("modules/event-subscriptions.bicep")
    assert bicep.var("includedEventTypes").body == [
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ]
    assert bicep.var("operationNames").body == [
        "Microsoft.CognitiveServices/accounts/write",
        "Microsoft.CognitiveServices/accounts/delete",
        "Microsoft.CognitiveServices/accounts/deployments/write",
        "Microsoft.CognitiveServices/accounts/deployments/delete",
        "Microsoft.Authorization/roleAssignments/write",
        "Microsoft.Authorization/roleAssignments/delete",
    ]
    # Role assignments only at (under) an AI account; accounts and deployments match it too.
    assert bicep.var("accountSubjects").body == ["/providers/Microsoft.CognitiveServices/accounts/"]
    sub = bicep.resource("eventSubscriptions")
    assert sub.loop
    props = sub.body["properties"]
    assert props["destination"].text == "destination"
    destination = bicep.var("destination").body
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"].text == "functionEndpointId"
    assert props["eventDeliverySchema"] == "EventGridSchema"
    flt = props["filter"]
    assert flt["includedEventTypes"].text == "includedEventTypes"
    assert flt["subjectBeginsWith"].text == "prefix"
    assert flt["isSubjectCaseSensitive"] is False
    filters = {f["key"] if isinstance(f, dict) else f.text: f for f in flt["advancedFilters"]}
    assert set(filters) == {"data.operationName", "subject", "succeeded"}
    assert filters["data.operationName"]["operatorType"] == "StringIn"
    assert filters["data.operationName"]["values"].text == "operationNames"
    assert filters["subject"]["operatorType"] == "StringContains"
    assert filters["subject"]["values"].text == "accountSubjects"
    assert bicep.var("succeeded").body == {
        "operatorType": "StringIn",
        "key": "data.status",
        "values": ["Succeeded"],
    }
    assert props["retryPolicy"].text == "retryPolicy"
    assert set(bicep.var("retryPolicy").body) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
    assert props["deadLetterWithResourceIdentity"].text == "deadLetterWithResourceIdentity"
    dead_letter = bicep.var("deadLetterWithResourceIdentity").body
    assert isinstance(dead_letter, Expr) and dead_letter.type == "ternary_expression"
    assert "endpointType: 'StorageBlob'" in dead_letter.text
    assert "type: 'SystemAssigned'" in dead_letter.text


def test_apim_event_subscription_watches_only_the_importers_kinds_of_object() -> None:
    bicep = load("modules/event-subscriptions.bicep")
    assert bicep.var("apimOperationNames").body == [
        f"Microsoft.ApiManagement/service/{kind}/{action}"
        for kind in ("apis", "apis/policies", "apis/diagnostics", "backends", "products/apis",
                     "subscriptions")
        for action in ("write", "delete")
    ]
    sub = bicep.resource("apimEventSubscription")
    assert not sub.loop
    props = sub.body["properties"]
    assert props["destination"].text == "destination"
    flt = props["filter"]
    assert flt["subjectBeginsWith"].text == "apimSubjectPrefix"  # '{APIM id}/': this instance only
    assert flt["isSubjectCaseSensitive"] is False
    assert flt["includedEventTypes"].text == "includedEventTypes"
    first, second = flt["advancedFilters"]
    assert (first["operatorType"], first["key"]) == ("StringIn", "data.operationName")
    assert first["values"].text == "apimOperationNames"
    assert second.text == "succeeded"
    assert props["deadLetterWithResourceIdentity"].text == "deadLetterWithResourceIdentity"
    assert isinstance(sub.condition, Expr) and sub.condition.text == "!empty(apimSubjectPrefix)"


def test_plan_adds_the_apim_instance_to_its_subscription() -> None:
    scopes = events.parse_scopes(f"/subscriptions/{SUB_A},/subscriptions/{SUB_B}/resourceGroups/rg-ai")
    plans = {p.subscription_id: p for p in events.plan_subscriptions(scopes, APIM)}
    assert plans[SUB_A].apim_prefix == APIM + "/" and plans[SUB_A].subject_prefixes == ("",)
    assert plans[SUB_B].apim_prefix == ""
    # APIM in a subscription nothing is watched in: a plan of its own, with only the APIM subscription.
    alone = events.plan_subscriptions(events.parse_scopes(f"/subscriptions/{SUB_B}"), APIM)
    assert [(p.subscription_id, p.subject_prefixes, p.apim_prefix) for p in alone] == [
        (SUB_B, ("",), ""), (SUB_A, (), APIM + "/")]
    ctx = _ctx(f"/subscriptions/{SUB_B}")
    plans = events.plan_subscriptions(ctx.scopes, ctx.apim_id)
    values = [events.events_parameters(ctx, p, None) for p in plans]
    assert [v["apimSubjectPrefix"] for v in values] == ["", APIM + "/"]


def test_function_endpoint_is_on_resource_event() -> None:
    bicep = load("events.bicep")
    assert bicep.param("functionName").body == "on_resource_event"
    params = bicep.module("subscriptions").body["params"]
    assert params["functionEndpointId"].text == "'${functionAppId}/functions/${functionName}'"


def test_system_topic_is_the_subscription_topic() -> None:
    topic = load("modules/events-topic.bicep").resource("topic").body
    assert topic["location"] == "global"
    assert topic["identity"] == {"type": "SystemAssigned"}
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert topic["properties"]["source"].text == "subscription().id"


def test_hook_parameters_match_events_bicep() -> None:
    bicep = load("events.bicep")
    declared = {p.name for p in bicep.of_kind("param")}
    required = {p.name for p in bicep.of_kind("param") if not has_default(p)}
    ctx = _ctx(f"/subscriptions/{SUB_A}")
    plan = events.plan_subscriptions(ctx.scopes)[0]
    values = events.events_parameters(ctx, plan, None)
    assert set(values) <= declared
    assert required <= set(values)


def _ctx(scopes: str, **extra: str):
    env = {
        "AZURE_ENV_NAME": "Prod_1",
        "AZURE_SUBSCRIPTION_ID": SUB_A,
        "AZURE_LOCATION": "swedencentral",
        "AZURE_RESOURCE_GROUP": "rg-prod",
        "AZURE_FUNCTION_APP_ID": f"{RG_PROD}/providers/Microsoft.Web/sites/func-x",
        "AZURE_FUNCTION_PRINCIPAL_ID": "99999999-9999-9999-9999-999999999999",
        "DEPLOY_DEADLETTER_STORAGE_ID": f"{RG_PROD}/providers/Microsoft.Storage/storageAccounts/stx",
        "DEPLOY_WATCH_SCOPES": scopes,
        "DEPLOY_APIM_RESOURCE_ID": APIM,
        **extra,
    }
    return events.AppContext.from_env(env)


def test_parse_scopes_accepts_subscriptions_and_groups_and_dedupes() -> None:
    scopes = events.parse_scopes(
        f" /subscriptions/{SUB_A} , /subscriptions/{SUB_B}/resourceGroups/rg-ai,,"
        f"/subscriptions/{SUB_B.upper()}/resourcegroups/rg-ai"
    )
    assert [s.id for s in scopes] == [
        f"/subscriptions/{SUB_A}",
        f"/subscriptions/{SUB_B}/resourceGroups/rg-ai",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "  ,",
        "/subscriptions/not-a-guid",
        f"/subscriptions/{SUB_A}/",
        f"/subscriptions/{SUB_A}/resourceGroups/rg/providers/x",
        "subscriptions/" + SUB_A,
    ],
)
def test_parse_scopes_rejects(bad: str) -> None:
    with pytest.raises(events.ConfigError):
        events.parse_scopes(bad)


def test_plan_groups_by_subscription_and_whole_subscription_wins() -> None:
    scopes = events.parse_scopes(
        f"/subscriptions/{SUB_A}/resourceGroups/rg-1,/subscriptions/{SUB_A},"
        f"/subscriptions/{SUB_B}/resourceGroups/rg-ai2,/subscriptions/{SUB_B}/resourceGroups/rg-ai"
    )
    plans = {p.subscription_id: p.subject_prefixes for p in events.plan_subscriptions(scopes)}
    assert plans == {
        SUB_A: ("",),
        SUB_B: (
            f"/subscriptions/{SUB_B}/resourceGroups/rg-ai/",
            f"/subscriptions/{SUB_B}/resourceGroups/rg-ai2/",
        ),
    }


def test_new_topic_in_own_subscription_goes_to_the_app_group() -> None:
    ctx = _ctx(f"/subscriptions/{SUB_A},/subscriptions/{SUB_B}/resourceGroups/rg-ai")
    plans = {p.subscription_id: p for p in events.plan_subscriptions(ctx.scopes)}
    own = events.events_parameters(ctx, plans[SUB_A], None)
    assert own["topicResourceGroupName"] == "rg-prod" and own["createResourceGroup"] is False
    assert own["createTopic"] is True and own["deadLetter"] is True
    assert own["subjectPrefixes"] == [""]
    assert own["eventSubscriptionName"] == "apim-ai-importer-prod-1"
    other = events.events_parameters(ctx, plans[SUB_B], None)
    assert other["topicResourceGroupName"] == "rg-prod-events" and other["createResourceGroup"] is True
    assert other["subjectPrefixes"] == [f"/subscriptions/{SUB_B}/resourceGroups/rg-ai/"]
    assert other["tags"] == {"azd-env-name": "Prod_1", "managed-by": "apim-ai-importer"}


def test_existing_topic_is_reused_and_dead_letter_needs_its_identity() -> None:
    ctx = _ctx(f"/subscriptions/{SUB_B}")
    plan = events.plan_subscriptions(ctx.scopes)[0]
    listed = [
        {"name": "storage-topic", "topicType": "Microsoft.Storage.StorageAccounts", "source": "/x"},
        {
            "name": "Defender",
            "resourceGroup": "rg-sec",
            "topicType": "microsoft.resources.subscriptions",
            "source": f"/subscriptions/{SUB_B.upper()}",
            "id": "/subscriptions/x/resourceGroups/rg-sec/p/t/Defender",
            "identity": None,
        },
    ]
    topic = events.find_subscription_topic(listed, SUB_B)
    assert topic is not None and topic["name"] == "Defender"
    values = events.events_parameters(ctx, plan, topic)
    assert values["createTopic"] is False and values["createResourceGroup"] is False
    assert values["topicName"] == "Defender" and values["topicResourceGroupName"] == "rg-sec"
    assert values["deadLetter"] is False and values["existingTopicPrincipalId"] == ""
    with_identity = {**topic, "identity": {"type": "SystemAssigned", "principalId": "p-1"}}
    values = events.events_parameters(ctx, plan, with_identity)
    assert values["deadLetter"] is True and values["existingTopicPrincipalId"] == "p-1"


def test_event_subscription_name_fits_event_grid_limits() -> None:
    name = events.event_subscription_name("A_very/long environment name that goes on and on and on")
    assert len(name) <= 48 and name.startswith("apim-ai-importer-")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert len(events.topic_name("x" * 80)) <= 64


def test_teardown_recognises_only_this_environments_event_subscriptions() -> None:
    assert events.is_our_event_subscription("apim-ai-importer-prod", "prod")
    assert events.is_our_event_subscription("apim-ai-importer-prod-abcdefghijklm", "prod")
    assert events.is_our_event_subscription("apim-ai-importer-prod-apim", "prod")
    assert not events.is_our_event_subscription("apim-ai-importer-prod2-apim", "prod")
    assert not events.is_our_event_subscription("apim-ai-importer-prod2", "prod")
    assert not events.is_our_event_subscription("apim-ai-importer-prod-eu-abcdefghijklm", "prod")
    assert not events.is_our_event_subscription("something-else", "prod")


def test_only_endpoint_errors_are_retried() -> None:
    assert events.is_endpoint_not_ready("Destination endpoint not found. Resource details: ...")
    assert not events.is_endpoint_not_ready("AuthorizationFailed: the client does not have authorization")


def test_role_cleanup_covers_every_scope_outside_the_app_group() -> None:
    topic = f"/subscriptions/{SUB_B}/resourceGroups/rg-t/providers/Microsoft.EventGrid/topics/outcomes"
    ctx = _ctx(
        f"/subscriptions/{SUB_A},/subscriptions/{SUB_B}/resourceGroups/rg-ai", IMPORTER_EVENT_TOPIC_ID=topic
    )
    assert events.role_cleanup_scopes(ctx) == [
        f"/subscriptions/{SUB_A}",
        f"/subscriptions/{SUB_B}/resourceGroups/rg-ai",
        APIM,
        topic,
    ]


def test_validate_command(capsys) -> None:
    ok = {"IMPORTER_SCOPES": f"/subscriptions/{SUB_A}", "IMPORTER_APIM_ID": APIM}
    assert events.main(["validate"], ok) == 0
    assert events.main(["validate"], {**ok, "IMPORTER_APIM_ID": "/subscriptions/x"}) == 2
    assert events.main(["validate"], {**ok, "IMPORTER_SCOPES": "rg-ai"}) == 2
    assert events.main(["validate"], {}) == 0  # not set yet: azd prompts for the parameters
    assert "IMPORTER_SCOPES" in capsys.readouterr().err


def test_the_event_subscription_name_comes_from_main_bicep_when_given() -> None:
    """main.bicep outputs the name it gives the app (IMPORTER_EVENT_SUBSCRIPTION, what doctor looks
    for); the hook names the event subscriptions the same, and tears down only those."""
    ctx = _ctx(f"/subscriptions/{SUB_A}", DEPLOY_EVENT_SUBSCRIPTION_NAME="apim-ai-importer-custom")
    [plan] = events.plan_subscriptions(ctx.scopes)
    assert events.events_parameters(ctx, plan, None)["eventSubscriptionName"] == "apim-ai-importer-custom"
    base = ctx.event_subscription_base
    assert events.is_our_event_subscription("apim-ai-importer-custom", ctx.env_name, base)
    assert not events.is_our_event_subscription("apim-ai-importer-prod-1", ctx.env_name, base)
    # The APIM instance's event subscription is that name plus '-apim' (the template derives it).
    assert events.is_our_event_subscription("apim-ai-importer-custom-apim", ctx.env_name, base)
    assert not events.is_our_event_subscription("apim-ai-importer-prod-1-apim", ctx.env_name, base)
    [with_apim] = events.plan_subscriptions(ctx.scopes, ctx.apim_id)
    values = events.events_parameters(ctx, with_apim, None)
    assert (values["eventSubscriptionName"], values["apimSubjectPrefix"]) == ("apim-ai-importer-custom",
                                                                              ctx.apim_id + "/")
    assert _ctx(f"/subscriptions/{SUB_A}").event_subscription_base == "apim-ai-importer-prod-1"
