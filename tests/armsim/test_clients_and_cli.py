"""importer.azure.clients (the one SDK client factory), ``python -m armsim``, and the official
operation sets imported through the stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import models

from devhost import seed
from importer.azure.clients import Clients, StaticCredential
from importer.model import Mode
from importer.settings import Settings
from tests import official

ROOT = Path(__file__).resolve().parents[2]


def test_local_clients_are_cached_per_subscription_and_configured_for_the_stand_in(clients, armsim):
    apim = clients.apim(seed.SUBSCRIPTION)
    assert clients.apim(seed.SUBSCRIPTION) is apim
    assert clients.apim("00000000-0000-0000-0000-000000000002") is not apim
    assert apim._client._base_url == armsim.url  # private, but the only way to see it
    assert apim._config.polling_interval == 0.05
    assert apim._config.retry_policy.backoff_factor == 0.05
    assert isinstance(clients.credential, StaticCredential)
    assert clients.credential.get_token("https://management.azure.com/.default").token
    role_assignments = clients.authorization(seed.SUBSCRIPTION).role_assignments
    assert type(role_assignments).__module__.startswith("azure.mgmt.authorization.v2022_04_01")


def test_public_cloud_clients_use_default_credential_and_arm():
    from azure.identity import DefaultAzureCredential

    clients = Clients(Settings.from_env({}))
    assert not clients.local
    assert isinstance(clients.credential, DefaultAzureCredential)
    apim = clients.apim(seed.SUBSCRIPTION)
    assert apim._client._base_url == "https://management.azure.com"
    assert apim._config.polling_interval == 30  # the SDK default


def test_keyword_overrides(armsim):
    clients = Clients(Settings.from_env({}), arm_endpoint=armsim.url, polling_interval=0.01, retry_total=0)
    assert clients.local and clients.apim(seed.SUBSCRIPTION)._config.polling_interval == 0.01
    armsim.faults.error(503, times=5, method="GET")
    with pytest.raises(HttpResponseError):
        clients.cognitive(seed.SUBSCRIPTION).accounts.get(seed.AI_GROUP, "x")
    assert armsim.log.count(status=503) == 1  # retry_total=0: no retry


def test_importing_the_factory_does_not_import_the_sdks():
    code = ("import sys, importer.azure.clients; "
            "print(sorted(m for m in sys.modules if m.startswith('azure.mgmt') or m == 'azure.identity'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_stand_in_never_imports_the_azure_sdk():
    code = ("import sys, armsim.server, armsim.__main__; "
            "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    server_modules = list((ROOT / "armsim").glob("*.py"))  # every module: the seed helpers live in devhost/
    for module in server_modules:
        assert "azure" not in "".join(line for line in module.read_text().splitlines(keepends=True)
                                      if line.lstrip().startswith(("import ", "from "))), module.name


def test_python_dash_m_armsim_serves_until_stopped():
    process = subprocess.Popen([sys.executable, "-m", "armsim", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("armsim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        with urllib.request.urlopen(f"{url}/_armsim/health", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("mode, operations", [
    (Mode.AZURE_OPENAI, 49), (Mode.AZURE_AI, 5),
    # README says 67; the document holds 60 path+method pairs, and APIM makes one operation per pair.
    (Mode.AZURE_OPENAI_V1, 60),
])
def test_official_operation_sets_import_by_file_link(clients, apim_service, tmp_path, mode, operations):
    # The official operation sets (tests/data/official_operations.json) as a document on disk.
    name = official.file_name(mode)
    (tmp_path / name).write_text(official.document_text(mode), encoding="utf-8")
    apim = clients.apim(seed.SUBSCRIPTION)
    api_id = name.lower().removesuffix(".json")
    params = models.ApiCreateOrUpdateParameter(path=api_id, format="openapi+json-link",
                                               value=(tmp_path / name).as_uri())
    apim.api.begin_create_or_update(seed.APIM_GROUP, seed.APIM_NAME, api_id, params).result()
    listed = list(apim.api_operation.list_by_api(seed.APIM_GROUP, seed.APIM_NAME, api_id))
    assert len(listed) == operations
    if name == "AIFoundryOpenAI.json":
        chat = next(o for o in listed if o.name == "ChatCompletions_Create")
        assert chat.url_template == "/deployments/{deployment-id}/chat/completions?api-version={api-version}"
