"""Conformance: the real azure-mgmt-apimanagement client against the stand-in, call by call.

Each test drives SDK calls the importer makes and then checks what the stand-in holds afterwards.
"""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import models
from lxml import etree

from armsim import policyxml
from devhost import seed
from tests.armsim.wire import call

SUB, RG, SVC = seed.SUBSCRIPTION, seed.APIM_GROUP, seed.APIM_NAME

OPENAPI = {
    "openapi": "3.0.1",
    "info": {"title": "Azure OpenAI (test)", "version": "2024-10-21", "description": "chat and embeddings"},
    "servers": [{"url": "https://contoso-aoai.openai.azure.com/openai"}],
    "paths": {
        "/deployments/{deployment-id}/chat/completions": {
            "post": {"operationId": "ChatCompletions_Create", "summary": "Creates a chat completion",
                     "parameters": [{"name": "deployment-id", "in": "path", "required": True,
                                     "schema": {"type": "string"}},
                                    {"$ref": "#/components/parameters/ApiVersion"}]}},
        "/deployments/{deployment-id}/embeddings": {
            "parameters": [{"name": "deployment-id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "post": {"operationId": "embeddings_create",
                     "parameters": [{"$ref": "#/components/parameters/ApiVersion"},
                                    {"name": "user", "in": "query", "schema": {"type": "string"}}]}},
        "/models": {"get": {"parameters": [{"$ref": "#/components/parameters/ApiVersion"}]}},
    },
    "components": {"parameters": {"ApiVersion": {"name": "api-version", "in": "query", "required": True,
                                                 "schema": {"type": "string"}}}},
}

RAW_POLICY = (
    '<policies>\n  <inbound>\n    <base />\n'
    '    <set-backend-service backend-id="aoai" />\n'
    '    <choose>\n'
    '      <when condition="@(context.Request.Headers.GetValueOrDefault("x-team", "") == "a" '
    '&& context.Request.Body != null)">\n'
    '        <set-header name="x-route" exists-action="override">'
    '<value>@(context.Variables.Any(v => v.Key == "k") ? "yes" : "no")</value></set-header>\n'
    '      </when>\n    </choose>\n  </inbound>\n  <backend><base /></backend>\n'
    '  <outbound><base /></outbound>\n</policies>'
)


@pytest.fixture
def apim(clients, apim_service):
    return clients.apim(SUB)


def import_api(apim, api_id="aoai-api", path="openai", document=None, **extra):
    params = models.ApiCreateOrUpdateParameter(
        path=path, format="openapi+json", value=json.dumps(document or OPENAPI), protocols=["https"],
        subscription_required=True,
        subscription_key_parameter_names=models.SubscriptionKeyParameterNamesContract(header="api-key",
                                                                                      query="api-key"),
        **extra)
    return apim.api.begin_create_or_update(RG, SVC, api_id, params).result()


def etag_of(getter):
    """Call an SDK getter with a cls hook that returns the ETag header."""
    return getter(cls=lambda _resp, _body, headers: headers["ETag"])


# ---------------------------------------------------------------------------------------------
# Service


def test_service_identity_off_then_turned_on_by_update(clients, armsim):
    created = seed.create_apim(clients, identity=False)
    assert created.identity is None
    assert created.gateway_url == "https://contoso-apim.azure-api.net"
    assert created.provisioning_state == "Succeeded"
    raw = call(armsim.url, "GET", seed.apim_id())
    assert "identity" not in raw.body and raw.headers["etag"] == f'"{raw.body["etag"]}"'.replace('""', '"')

    client = clients.apim(SUB)
    update = models.ApiManagementServiceUpdateParameters(
        identity=models.ApiManagementServiceIdentity(type="SystemAssigned"))
    updated = client.api_management_service.begin_update(RG, SVC, update).result()
    assert updated.identity.type == "SystemAssigned"
    assert updated.identity.principal_id and updated.identity.tenant_id == armsim.options.tenant_id
    again = client.api_management_service.get(RG, SVC)
    assert again.identity.principal_id == updated.identity.principal_id


def test_service_create_is_an_lro_and_keeps_the_principal_across_puts(clients, armsim):
    first = seed.create_apim(clients)
    methods = [(e.method, e.path.rsplit("/", 2)[-2]) for e in armsim.log]
    assert methods == [("PUT", "service"), ("GET", "operationresults"), ("GET", "service")]
    second = seed.create_apim(clients)
    assert second.identity.principal_id == first.identity.principal_id
    with pytest.raises(ResourceNotFoundError):
        clients.apim(SUB).api_management_service.get(RG, "no-such-apim")


# ---------------------------------------------------------------------------------------------
# APIs and operations


def test_api_import_inline_openapi_json_is_an_lro_that_returns_the_contract(apim, armsim):
    armsim.log.clear()
    api = import_api(apim)
    assert isinstance(api, models.ApiContract)
    assert (api.name, api.path, api.display_name) == ("aoai-api", "openai", "Azure OpenAI (test)")
    assert api.service_url == "https://contoso-aoai.openai.azure.com/openai"
    assert api.subscription_key_parameter_names.header == "api-key"
    steps = [(e.method, e.status, e.path.split("/")[-2]) for e in armsim.log]
    assert steps[0] == ("PUT", 201, "apis")
    assert steps[1][:2] == ("GET", 200) and steps[1][2] == "operationResults"
    assert steps[-1] == ("GET", 200, "apis")

    ops = {op.name: op for op in apim.api_operation.list_by_api(RG, SVC, "aoai-api")}
    assert set(ops) == {"ChatCompletions_Create", "embeddings_create", "get-models"}
    chat = ops["ChatCompletions_Create"]
    assert chat.method == "POST"
    assert chat.url_template == "/deployments/{deployment-id}/chat/completions?api-version={api-version}"
    assert [p.name for p in chat.template_parameters] == ["deployment-id", "api-version"]
    assert ops["embeddings_create"].url_template == (
        "/deployments/{deployment-id}/embeddings?api-version={api-version}")
    assert ops["get-models"].url_template == "/models?api-version={api-version}"


def test_api_import_keeps_required_query_parameters_as_query_when_asked(apim):
    import_api(apim, translate_required_query_parameters_conduct="query")
    op = apim.api_operation.get(RG, SVC, "aoai-api", "ChatCompletions_Create")
    assert op.url_template == "/deployments/{deployment-id}/chat/completions"


def test_api_import_by_link_from_the_stand_in_and_from_a_file(apim, armsim, tmp_path):
    url = armsim.add_file("aoai.json", json.dumps(OPENAPI))
    params = models.ApiCreateOrUpdateParameter(path="linked", format="openapi+json-link", value=url)
    api = apim.api.begin_create_or_update(RG, SVC, "linked", params).result()
    assert api.display_name == "Azure OpenAI (test)"
    assert len(list(apim.api_operation.list_by_api(RG, SVC, "linked"))) == 3

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(OPENAPI))
    params = models.ApiCreateOrUpdateParameter(path="from-file", format="openapi-link", value=spec.as_uri())
    assert apim.api.begin_create_or_update(RG, SVC, "from-file", params).result().path == "from-file"


def test_api_import_from_an_unreachable_link_fails_the_lro_and_creates_nothing(apim):
    params = models.ApiCreateOrUpdateParameter(path="x", format="openapi+json-link",
                                               value="https://example.com/openapi.json")
    poller = apim.api.begin_create_or_update(RG, SVC, "unreachable", params)
    with pytest.raises(HttpResponseError, match="no network access"):
        poller.result()
    with pytest.raises(ResourceNotFoundError):
        apim.api.get(RG, SVC, "unreachable")


def test_api_import_waits_while_the_operation_is_in_progress(apim, armsim):
    armsim.faults.lro("PUT", r"/apis/", polls=3)
    armsim.log.clear()
    assert import_api(apim).name == "aoai-api"
    assert armsim.log.count(method="GET", path="/tenant/operationResults/") == 4


def test_api_import_failed_by_fault_raises_and_leaves_no_api(apim, armsim):
    armsim.faults.lro("PUT", r"/apis/", polls=1, outcome="Failed")
    with pytest.raises(HttpResponseError):
        import_api(apim)
    assert list(apim.api.list_by_service(RG, SVC)) == []


def test_api_metadata_put_without_value_answers_directly(apim, armsim):
    params = models.ApiCreateOrUpdateParameter(display_name="Plain", path="plain", protocols=["https"])
    armsim.log.clear()
    api = apim.api.begin_create_or_update(RG, SVC, "plain", params).result()
    assert api.display_name == "Plain"
    first = armsim.log.entries[0]
    assert (first.method, first.status) == ("PUT", 201)
    assert armsim.log.count(path="operationResults") == 0  # no async operation: the SDK just re-reads


# An import overwrites what the PUT says (modelled pessimistically: azure-cli #20812, the Terraform
# azurerm provider's import-then-update, azure-powershell; docs/sandbox.md).


@pytest.mark.parametrize("link", [False, True], ids=["inline", "link"])
def test_api_import_takes_the_description_from_the_document_not_the_put(apim, armsim, link):
    doc = {**OPENAPI, "info": {**OPENAPI["info"], "description": "from the document"}}
    extra = {"description": "from the PUT\n[mark]"}
    if link:
        params = models.ApiCreateOrUpdateParameter(path="openai", format="openapi+json-link",
                                                   value=armsim.add_file("d.json", json.dumps(doc)), **extra)
        api = apim.api.begin_create_or_update(RG, SVC, "aoai-api", params).result()
    else:
        api = import_api(apim, document=doc, **extra)
    assert api.description == "from the document"
    assert apim.api.get(RG, SVC, "aoai-api").description == "from the document"


def test_api_import_of_a_document_without_description_leaves_none(apim):
    doc = {k: v for k, v in OPENAPI.items()}
    doc["info"] = {"title": "t", "version": "1"}
    import_api(apim, document=doc, description="from the PUT")
    assert apim.api.get(RG, SVC, "aoai-api").description is None
    # a re-import over an API that had a description loses it the same way
    apim.api.begin_create_or_update(RG, SVC, "aoai-api", models.ApiCreateOrUpdateParameter(
        path="openai", display_name="t", description="set by hand"), if_match="*").result()
    import_api(apim, document=doc, description="from the PUT")
    assert apim.api.get(RG, SVC, "aoai-api").description is None


def test_api_import_service_url_is_the_puts_else_the_documents_servers(apim):
    assert import_api(apim).service_url == "https://contoso-aoai.openai.azure.com/openai"
    assert import_api(apim, "given", path="given", service_url="https://given.example.com/x").service_url == \
        "https://given.example.com/x"
    relative = {**OPENAPI, "servers": [{"url": "/openai"}]}
    assert import_api(apim, "relative", path="relative", document=relative).service_url is None
    second = {**OPENAPI, "servers": [{"url": "/openai"}, {"url": "https://second.example.com/openai"}]}
    assert import_api(apim, "second", path="second", document=second).service_url == \
        "https://second.example.com/openai"


def test_api_properties_written_after_an_import_keep_its_operations(apim):
    import_api(apim)
    api = apim.api.begin_create_or_update(RG, SVC, "aoai-api", models.ApiCreateOrUpdateParameter(
        path="openai", display_name="Mine", description="mine\n[mark]", protocols=["https"]),
        if_match="*").result()
    assert (api.display_name, api.description) == ("Mine", "mine\n[mark]")
    assert len(list(apim.api_operation.list_by_api(RG, SVC, "aoai-api"))) == 3


def test_api_path_clash_is_refused_like_apim(apim):
    import_api(apim, "first", path="openai")
    with pytest.raises(HttpResponseError) as err:
        import_api(apim, "second", path="openai")
    assert err.value.status_code == 400
    assert "same Path" in str(err.value)


def test_api_get_entity_tag_list_and_delete_cascades(apim, clients, armsim):
    import_api(apim)
    assert apim.api.get_entity_tag(RG, SVC, "aoai-api") is True
    assert [a.name for a in apim.api.list_by_service(RG, SVC)] == ["aoai-api"]
    by_path = apim.api.list_by_service(RG, SVC, filter="properties/path eq 'openai'")
    assert [a.name for a in by_path] == ["aoai-api"]
    assert list(apim.api.list_by_service(RG, SVC, filter="properties/path eq 'other'")) == []
    seed.create_product(clients, seed.apim_id(), "starter")
    apim.product_api.create_or_update(RG, SVC, "starter", "aoai-api")
    apim.tag.create_or_update(RG, SVC, "ai", models.TagCreateUpdateParameters(display_name="ai"))
    apim.tag.assign_to_api(RG, SVC, "aoai-api", "ai")
    apim.backend.create_or_update(RG, SVC, "aoai", models.BackendContract(url="https://x.example/openai",
                                                                          protocol="http"))
    apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy",
                                     models.PolicyContract(value=RAW_POLICY, format="rawxml"))

    apim.api.begin_delete(RG, SVC, "aoai-api", if_match="*").result()
    with pytest.raises(ResourceNotFoundError):
        apim.api.get(RG, SVC, "aoai-api")
    with pytest.raises(ResourceNotFoundError):
        apim.api.get_entity_tag(RG, SVC, "aoai-api")
    api_prefix = seed.apim_id() + "/apis/aoai-api"
    assert [i for i in armsim.ids() if i.lower().startswith(api_prefix.lower())] == []
    assert list(apim.product_api.list_by_product(RG, SVC, "starter")) == []
    assert apim.tag.get(RG, SVC, "ai").display_name == "ai"  # the tag itself stays
    apim.api.begin_delete(RG, SVC, "aoai-api", if_match="*").result()  # already gone: still succeeds


def test_api_delete_with_a_stale_etag_is_412(apim):
    import_api(apim)
    etag = etag_of(lambda **kw: apim.api.get(RG, SVC, "aoai-api", **kw))
    apim.api.update(RG, SVC, "aoai-api", "*", models.ApiUpdateContract(description="changed"))
    with pytest.raises(HttpResponseError) as err:
        apim.api.begin_delete(RG, SVC, "aoai-api", if_match=etag).result()
    assert err.value.status_code == 412
    fresh = etag_of(lambda **kw: apim.api.get(RG, SVC, "aoai-api", **kw))
    apim.api.begin_delete(RG, SVC, "aoai-api", if_match=fresh).result()


def test_api_operation_get_and_delete(apim):
    import_api(apim)
    op = apim.api_operation.get(RG, SVC, "aoai-api", "embeddings_create")
    assert op.display_name == "embeddings_create" and op.method == "POST"
    assert [p.name for p in op.request.query_parameters] == ["user"]
    apim.api_operation.delete(RG, SVC, "aoai-api", "embeddings_create", if_match="*")
    names = {o.name for o in apim.api_operation.list_by_api(RG, SVC, "aoai-api")}
    assert names == {"ChatCompletions_Create", "get-models"}
    with pytest.raises(ResourceNotFoundError):
        apim.api_operation.get(RG, SVC, "aoai-api", "embeddings_create")


# ---------------------------------------------------------------------------------------------
# Policies


def test_policy_rawxml_round_trip_escapes_in_xml_and_stays_raw_in_rawxml(apim):
    import_api(apim)
    apim.backend.create_or_update(RG, SVC, "aoai", models.BackendContract(url="https://x.example/openai",
                                                                          protocol="http"))
    put = apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy",
                                           models.PolicyContract(value=RAW_POLICY, format="rawxml"))
    as_xml = apim.api_policy.get(RG, SVC, "aoai-api", "policy").value
    assert put.value == as_xml
    assert "=&gt;" in as_xml and "&amp;&amp;" in as_xml and "&quot;x-team&quot;" in as_xml
    assert "\r\n" in as_xml and "\n" not in as_xml.replace("\r\n", "")
    assert "\r\n    <set-backend-service backend-id=\"aoai\" />\r\n" in as_xml

    as_raw = apim.api_policy.get(RG, SVC, "aoai-api", "policy", format="rawxml").value
    assert 'condition="@(context.Request.Headers.GetValueOrDefault("x-team", "") == "a" && ' in as_raw
    assert '<value>@(context.Variables.Any(v => v.Key == "k") ? "yes" : "no")</value>' in as_raw
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(as_raw.encode())

    parsed = etree.fromstring(as_xml.encode())  # the xml form is real XML ...
    when = parsed.find("inbound/choose/when")
    assert when.get("condition").startswith('@(context.Request.Headers.GetValueOrDefault("x-team", "")')
    assert policyxml.parse(as_xml).canonical() == policyxml.parse(RAW_POLICY, "rawxml").canonical()
    assert policyxml.parse(as_raw, "rawxml").canonical() == policyxml.parse(RAW_POLICY, "rawxml").canonical()

    # ... and putting the xml form back as xml changes nothing.
    again = apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy",
                                             models.PolicyContract(value=as_xml, format="xml"), if_match="*")
    assert again.value == as_xml
    apim.api_policy.delete(RG, SVC, "aoai-api", "policy", if_match="*")
    with pytest.raises(ResourceNotFoundError):
        apim.api_policy.get(RG, SVC, "aoai-api", "policy")


def test_policy_etag_guards_concurrent_writers(apim):
    import_api(apim)
    value = "<policies><inbound><base /></inbound></policies>"
    apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(value=value))
    etag = etag_of(lambda **kw: apim.api_policy.get(RG, SVC, "aoai-api", "policy", **kw))
    apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(value=value),
                                     if_match=etag)
    with pytest.raises(HttpResponseError) as err:
        apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(value=value),
                                         if_match=etag)
    assert err.value.status_code == 412


@pytest.mark.parametrize("statement, message", [
    ('<set-backend-service backend-id="missing" />', "Backend with id 'missing'"),
    ('<include-fragment fragment-id="nope" />', "Policy fragment with id 'nope'"),
    ('<set-header name="x" exists-action="override"><value>{{no-such-value}}</value></set-header>',
     "no-such-value"),
    ('<set-header name="x"><value>@(context.Request.Body != null && true)</value></set-header>',
     "not well-formed"),
    ('<llm-emit-token-metric namespace="n"><dimension name="Backend ID" /></llm-emit-token-metric>',
     "only in the outbound section"),
])
def test_policy_refuses_what_apim_refuses(apim, statement, message):
    import_api(apim)
    value = f"<policies><inbound>{statement}</inbound></policies>"
    with pytest.raises(HttpResponseError, match=message) as err:
        apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(value=value))
    assert err.value.status_code == 400


def test_policy_fragment_create_get_and_include(apim):
    fragment = ('<fragment><set-header name="x-caller" exists-action="override">'
                '<value>@(context.Subscription?.Id ?? "anonymous")</value></set-header></fragment>')
    created = apim.policy_fragment.begin_create_or_update(
        RG, SVC, "org-ai-policy", models.PolicyFragmentContract(value=fragment, format="rawxml",
                                                                description="org policy")).result()
    assert created.description == "org policy"
    as_raw = apim.policy_fragment.get(RG, SVC, "org-ai-policy", format="rawxml")
    assert '<value>@(context.Subscription?.Id ?? "anonymous")</value>' in as_raw.value
    as_xml = apim.policy_fragment.get(RG, SVC, "org-ai-policy")
    assert "&quot;anonymous&quot;" not in as_xml.value and '"anonymous"' in as_xml.value  # text keeps quotes
    import_api(apim)
    apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(
        value='<policies><inbound><include-fragment fragment-id="org-ai-policy" /></inbound></policies>'))


# ---------------------------------------------------------------------------------------------
# Backends, products and links, tags


def test_backends_single_and_pool(apim):
    single = models.BackendContract(url="https://contoso-aoai.openai.azure.com/openai", protocol="http",
                                    description="aoai", title="AOAI",
                                    circuit_breaker=models.BackendCircuitBreaker(rules=[
                                        models.CircuitBreakerRule(name="r", trip_duration="PT1M")]))
    assert apim.backend.create_or_update(RG, SVC, "b1", single).url.endswith("/openai")
    apim.backend.create_or_update(RG, SVC, "b2", single)
    pool = models.BackendContract(type_properties_type="Pool", pool=models.BackendPool(services=[
        models.BackendPoolItem(id=f"{seed.apim_id()}/backends/b1", priority=1),
        models.BackendPoolItem(id=f"{seed.apim_id()}/backends/b2", priority=2)]))
    created = apim.backend.create_or_update(RG, SVC, "pool", pool)
    assert created.type_properties_type == "Pool" and len(created.pool.services) == 2
    got = apim.backend.get(RG, SVC, "b1")
    assert (got.title, got.circuit_breaker.rules[0].name) == ("AOAI", "r")
    assert {b.name for b in apim.backend.list_by_service(RG, SVC)} == {"b1", "b2", "pool"}
    apim.backend.delete(RG, SVC, "pool", if_match="*")
    with pytest.raises(ResourceNotFoundError):
        apim.backend.get(RG, SVC, "pool")
    bad = models.BackendContract(type_properties_type="Pool", pool=models.BackendPool(services=[
        models.BackendPoolItem(id=f"{seed.apim_id()}/backends/missing")]))
    with pytest.raises(HttpResponseError, match="missing"):
        apim.backend.create_or_update(RG, SVC, "bad", bad)


def test_products_and_product_api_links(apim, clients):
    created = seed.create_product(clients, seed.apim_id(), "starter", display_name="Starter")
    assert (created.display_name, created.state) == ("Starter", "published")
    assert apim.product.get(RG, SVC, "starter").subscription_required is True
    import_api(apim)
    linked = apim.product_api.create_or_update(RG, SVC, "starter", "aoai-api")
    assert isinstance(linked, models.ApiContract) and linked.name == "aoai-api"
    assert apim.product_api.check_entity_exists(RG, SVC, "starter", "aoai-api") is True
    assert [p.name for p in apim.api_product.list_by_apis(RG, SVC, "aoai-api")] == ["starter"]
    apim.product_api.delete(RG, SVC, "starter", "aoai-api")
    with pytest.raises(ResourceNotFoundError):
        apim.product_api.check_entity_exists(RG, SVC, "starter", "aoai-api")
    assert list(apim.api_product.list_by_apis(RG, SVC, "aoai-api")) == []
    with pytest.raises(ResourceNotFoundError):
        apim.product_api.create_or_update(RG, SVC, "no-product", "aoai-api")


def test_tags_and_api_tag_links(apim):
    import_api(apim)
    tag = models.TagCreateUpdateParameters(display_name="importer")
    apim.tag.create_or_update(RG, SVC, "managed-by", tag)
    assigned = apim.tag.assign_to_api(RG, SVC, "aoai-api", "managed-by")
    assert (assigned.name, assigned.display_name) == ("managed-by", "importer")
    assert apim.tag.get_by_api(RG, SVC, "aoai-api", "managed-by").display_name == "importer"
    assert [t.name for t in apim.tag.list_by_api(RG, SVC, "aoai-api")] == ["managed-by"]
    apim.tag.detach_from_api(RG, SVC, "aoai-api", "managed-by")
    assert list(apim.tag.list_by_api(RG, SVC, "aoai-api")) == []
    with pytest.raises(ResourceNotFoundError):
        apim.tag.assign_to_api(RG, SVC, "aoai-api", "no-such-tag")


# ---------------------------------------------------------------------------------------------
# Named values, caches, loggers, diagnostics, subscriptions


def test_named_value_secret_is_hidden_but_listable(apim, armsim):
    raw = call(armsim.url, "PUT", f"{seed.apim_id()}/namedValues/k2",
               {"properties": {"displayName": "k2", "value": "s3cret", "secret": True}})
    assert raw.status == 201 and "value" not in raw.body["properties"]
    params = models.NamedValueCreateContract(display_name="aoai-key", value="s3cret", secret=True)
    poller = apim.named_value.begin_create_or_update(RG, SVC, "aoai-key", params)
    assert poller.result().value is None
    got = apim.named_value.get(RG, SVC, "aoai-key")
    assert got.display_name == "aoai-key" and got.secret is True and got.value is None
    assert apim.named_value.list_value(RG, SVC, "aoai-key").value == "s3cret"
    import_api(apim)
    apim.api_policy.create_or_update(RG, SVC, "aoai-api", "policy", models.PolicyContract(
        value='<policies><inbound><set-header name="api-key"><value>{{aoai-key}}</value></set-header>'
              '</inbound></policies>'))


def test_cache_list_and_create(apim):
    assert list(apim.cache.list_by_service(RG, SVC)) == []
    params = models.CacheContract(connection_string="redis.example:6380,password=x,ssl=True",
                                  use_from_location="default", description="semantic cache")
    created = apim.cache.create_or_update(RG, SVC, "default", params)
    assert created.connection_string.startswith("{{")  # APIM never echoes the connection string
    assert [c.name for c in apim.cache.list_by_service(RG, SVC)] == ["default"]


def test_logger_and_diagnostic(apim):
    logger = models.LoggerContract(logger_type="applicationInsights",
                                   credentials={"instrumentationKey": "11111111-2222-3333-4444-555555555555"})
    created = apim.logger.create_or_update(RG, SVC, "appinsights", logger)
    assert created.logger_type == "applicationInsights"
    assert "11111111" not in json.dumps(created.credentials)
    diagnostic = models.DiagnosticContract(logger_id=f"{seed.apim_id()}/loggers/appinsights",
                                           always_log="allErrors", sampling=models.SamplingSettings(
                                               sampling_type="fixed", percentage=100))
    made = apim.diagnostic.create_or_update(RG, SVC, "applicationinsights", diagnostic)
    assert made.logger_id.endswith("/loggers/appinsights")
    with pytest.raises(HttpResponseError, match="Logger"):
        apim.diagnostic.create_or_update(RG, SVC, "azuremonitor", models.DiagnosticContract(
            logger_id="/loggers/missing"))


def test_subscription_keys_for_one_api(apim, armsim):
    import_api(apim)
    params = models.SubscriptionCreateParameters(scope="/apis/aoai-api", display_name="probe", state="active")
    created = apim.subscription.create_or_update(RG, SVC, "probe", params)
    assert created.scope == f"{seed.apim_id()}/apis/aoai-api" and created.state == "active"
    assert created.primary_key is None  # keys only via listSecrets
    keys = apim.subscription.list_secrets(RG, SVC, "probe")
    assert len(keys.primary_key) == 32 and keys.primary_key != keys.secondary_key
    assert armsim.log.count(method="POST", path="/listSecrets$", kind="write") == 1
    apim.subscription.delete(RG, SVC, "probe", if_match="*")
    with pytest.raises(ResourceNotFoundError):
        apim.subscription.get(RG, SVC, "probe")
    with pytest.raises(HttpResponseError, match="scope"):
        apim.subscription.create_or_update(RG, SVC, "bad", models.SubscriptionCreateParameters(
            scope="/apis/no-such-api", display_name="bad"))


# ---------------------------------------------------------------------------------------------
# The importer's JSON seam: APIM at 2025-03-01-preview, fields the 2024-05-01 models lack


def _svc_path() -> str:
    return seed.apim_id()


def test_preview_version_keeps_newer_fields_and_ones_armsim_does_not_interpret(apim):
    from importer.azure.rest import ArmJson

    rest = ArmJson(apim)
    path = f"{_svc_path()}/backends/safety"
    rest.put(path, {"properties": {"url": "https://s.cognitiveservices.azure.com/", "protocol": "http",
                                   "credentials": {"managedIdentity": {
                                       "resource": "https://cognitiveservices.azure.com"}},
                                   "someFutureField": {"x": 1}}})
    body, etag = rest.get(path)
    assert body["properties"]["credentials"]["managedIdentity"]["resource"] == "https://cognitiveservices.azure.com"
    assert body["properties"]["someFutureField"] == {"x": 1} and etag
    # The typed 2024-05-01 client can't carry the credentials: its full PUT leaves none (armsim drops
    # the field from any older-version request, as such a request can't express it).
    apim.backend.create_or_update(RG, SVC, "safety", models.BackendContract(
        url="https://s.cognitiveservices.azure.com/", protocol="http"))
    assert "managedIdentity" not in (rest.get(path)[0]["properties"].get("credentials") or {})


def test_api_key_names_with_bearer_only_at_the_newer_version(apim):
    from importer.azure.rest import ArmJson

    import_api(apim)
    rest = ArmJson(apim)
    path = f"{_svc_path()}/apis/aoai-api"
    names = {"header": "api-key", "query": "api-key", "bearer": "enabled"}
    rest.patch(path, {"properties": {"subscriptionKeyParameterNames": names}})
    assert rest.get(path)[0]["properties"]["subscriptionKeyParameterNames"] == names
    with pytest.raises(HttpResponseError) as err:
        rest.patch(path, {"properties": {"subscriptionKeyParameterNames": {**names, "bearer": "yes"}}})
    assert err.value.status_code == 400
    old = ArmJson(apim, api_version="2024-05-01")
    old.patch(path, {"properties": {"subscriptionKeyParameterNames": names}})
    assert "bearer" not in rest.get(path)[0]["properties"]["subscriptionKeyParameterNames"]


def test_api_diagnostics_need_their_logger_and_keep_llm_logging_at_the_newer_version(apim):
    from importer.azure.rest import ArmJson

    import_api(apim)
    rest = ArmJson(apim)
    path = f"{_svc_path()}/apis/aoai-api/diagnostics/azuremonitor"
    llm = {"logs": "enabled", "requests": {"messages": "all", "maxSizeInBytes": 1024}}
    # Every service has the built-in azuremonitor logger.
    rest.put(path, {"properties": {"loggerId": "/loggers/azuremonitor", "largeLanguageModel": llm}})
    props = rest.get(path)[0]["properties"]
    assert props["largeLanguageModel"] == llm and props["loggerId"].endswith("/loggers/azuremonitor")
    rest.patch(path, {"properties": {"largeLanguageModel": {"logs": "disabled"}}})
    assert rest.get(path)[0]["properties"]["largeLanguageModel"] == {"logs": "disabled"}
    with pytest.raises(HttpResponseError) as err:
        rest.put(f"{_svc_path()}/apis/aoai-api/diagnostics/applicationinsights",
                 {"properties": {"loggerId": "/loggers/nope", "metrics": True}})
    assert err.value.status_code == 400 and "nope" in str(err.value)
