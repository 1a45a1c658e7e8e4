"""The content-generation chain over HTTP on the real embedded model (short answers)."""

from __future__ import annotations

import pytest

from workflows.workflow_templates import WorkflowTemplates

pytestmark = pytest.mark.local_model


def test_content_generation_chain_on_the_local_model(client, svc) -> None:
    steps = [{**step, "max_tokens": 8, "temperature": 0}
             for step in WorkflowTemplates.content_generation_workflow("local")]
    response = client.post("/api/workflow", json={"steps": steps, "input": "tea", "name": "content_generation"})
    assert response.status_code == 200, response.get_json()
    workflow = response.get_json()["workflow"]
    first, second, _third = workflow["steps"]
    assert first["output"].strip() and first["output"] in second["prompt"]
    assert all(0 < step["tokens"] and step["cost"] == 0.0 for step in workflow["steps"])
    rows = [svc.request_log.get(step["request_id"]) for step in workflow["steps"]]
    assert workflow["total_tokens"] == sum(row["total_tokens"] for row in rows)
    assert {row["source"] for row in rows} == {"workflow"}
