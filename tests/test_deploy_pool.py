"""`factory deploy --pool NAME`: the build pool, the factory-build deployment on it, and
the automation that crashes build runs whose heartbeats stopped; idempotent."""

from __future__ import annotations

import uuid

import pytest

from factory.config import Settings
from factory.errors import ConfigError
from tests import factories


@pytest.mark.slow  # a CLI process against the session's Prefect server
def test_deploy_pool_creates_pool_deployment_and_zombie_automation(
        prefect_api: str, project: Settings) -> None:
    from prefect.client.orchestration import get_client

    from flows.build import AUTOMATION, DEPLOYMENT, FLOW, deploy_build

    pool = f"factory-test-{uuid.uuid4().hex[:8]}"
    deploy_build(pool, zombie_seconds=60)
    done = factories.cli(project, "deploy", "--pool", pool, "--zombie-seconds", "75",
                         PREFECT_API_URL=prefect_api)  # again: it updates, it does not add
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"prefect worker start --pool {pool} --type process" in done.stdout
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(pool).type == "process"
        deployment = client.read_deployment_by_name(f"{FLOW}/{DEPLOYMENT}")
        assert deployment.work_pool_name == pool
        # one process per build: the engine itself, not Prefect's workspace supervisor
        assert deployment.job_variables == {"command": "python -m prefect.engine"}
        (automation,) = client.read_automations_by_name(AUTOMATION)
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.within.total_seconds() == 75
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.Crashed" in trigger.expect
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.match_related.model_dump() == {
        "prefect.resource.role": "deployment",
        "prefect.resource.id": [f"prefect.deployment.{deployment.id}"]}
    assert [a.type for a in automation.actions] == ["change-flow-run-state"]
    assert automation.actions[0].state.value == "CRASHED"

    # Shorter than the heartbeat itself would crash healthy runs: refused in one line.
    with pytest.raises(ConfigError) as refused:
        deploy_build(pool, zombie_seconds=20)
    assert "heartbeat" in refused.value.message and "\n" not in refused.value.message
