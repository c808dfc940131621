"""The OpenAPI document as code generators and linters read it."""

from __future__ import annotations

from openapi_spec_validator import validate

from gateway.api.openapi import openapi_document
from gateway.config import load_config


def test_every_operation_has_a_unique_operation_id() -> None:
    doc = openapi_document(load_config("config/gateway.example.yaml").config)
    ids = [op["operationId"] for methods in doc["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids)) == sum(len(m) for m in doc["paths"].values())
    assert doc["paths"]["/api/v1/actuators/{id}"]["post"]["operationId"] == "switchActuator"
    hooks = [i for i in ids if i.startswith("receiveHook_")]
    assert hooks, "each configured hook has its own operation"


def test_servers_license_and_the_outbound_webhooks_are_described() -> None:
    doc = openapi_document(load_config("config/demo.yaml").config)
    validate(doc)
    assert doc["servers"] == [{"url": "/", "description": "This gateway"}]
    assert doc["info"]["license"]["identifier"] == "MIT"
    sent = doc["webhooks"]["gatewayEvent"]["post"]
    body = sent["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["type", "timestamp", "data"]
    assert body["properties"]["type"]["enum"] == ["freezer.warm", "motion.detected"]
    headers = {p["name"] for p in sent["parameters"]}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
