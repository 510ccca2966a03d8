"""The JSON Schema users read (``reconcile schema``) describes the manifest as it is checked."""

from __future__ import annotations

import json

from controller.manifest.schema import manifest_json_schema


def test_json_schema_describes_the_manifest() -> None:
    schema = json.loads(json.dumps(manifest_json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    model_props = schema["$defs"]["ModelSpec"]["properties"]
    assert {
        "name",
        "repo",
        "revision",
        "include",
        "exclude",
        "priority",
        "policy",
        "updates",
    } <= set(model_props)
    assert all(prop.get("description") for prop in model_props.values())
    assert schema["$defs"]["ModelSpec"]["additionalProperties"] is False
    assert "statusFile" in schema["$defs"]["Spec"]["properties"]
