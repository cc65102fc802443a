"""The rebuild flow: lock check, fetch, plan, build, attest, sign, publish.

Builds run as Prefect tasks capped by the global concurrency limit
``factory-builds``. Downloads retry (transient); builds do not (deterministic).
A component whose inputs (sdist, recipe, image, build tools, patches) are
unchanged is skipped by input digest without starting a container, and an
already published wheel is not signed again. One component's failure stops
only what depends on it; it is recorded in the ledger and in the run's
artifacts, and the flow ends Failed after publishing everything else.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.runtime import flow_run

from factory import fetch, ledger
from factory.build.executor import run_plan, summarise
from factory.build.job import MissingRequirementsError
from factory.build.record import BuildRecord
from factory.config import Settings, load_settings
from factory.errors import BuildError, UpstreamError, printable
from factory.index import Index
from factory.plan import Node, Plan, make_plan
from factory.publish import ReleaseReport, is_published, release_all
from flows.build import remote_builder
from flows.slots import BUILD_LIMIT, build_slot


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try: the network."""
    try:
        state.result()
    except UpstreamError:
        return True
    except Exception:  # noqa: BLE001 - anything else is deterministic
        return False
    return False


def ensure_build_limit(limit: int) -> None:
    """Create (or resize) the global concurrency limit the builds take slots from."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(BUILD_LIMIT)
            if current.limit != limit:
                client.update_global_concurrency_limit(
                    BUILD_LIMIT, GlobalConcurrencyLimitUpdate(limit=limit))
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=BUILD_LIMIT, limit=limit))


# Our own skip logic compares input digests (factory.build.executor); Prefect's input
# hashing would only re-hash large arguments on every run.
@task(name="fetch-and-plan", retries=3, retry_delay_seconds=[2, 10, 30],
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def fetch_and_plan(settings: Settings, names: list[str] | None,
                   ) -> tuple[Plan, dict[str, str]]:
    """Verified sources, then the build order (one task: a run pays per task).

    A component refused at fetch stays in the plan, failed with that refusal before
    anything is built; only what depends on it is skipped."""
    refused: dict[str, str] = {}
    fetch.fetch_stage(settings, set(names) if names else None, failed=refused)
    for component, reason in sorted(refused.items()):
        get_run_logger().error("refused at fetch: %s: %s", component, reason)
    return make_plan(settings, names), refused


@task(name="build", task_run_name="build {name} {version}", cache_policy=NO_CACHE)
def build_component(settings: Settings, name: str, version: str,
                    job: Callable[[], BuildRecord]) -> BuildRecord | MissingRequirementsError:
    with build_slot(settings):
        try:
            return job()
        except MissingRequirementsError as learnt:
            # Not a failure: the backend named dynamic requirements; the executor adds
            # them to the plan and builds this component again once they are built.
            return learnt


@task(name="sign-and-publish", cache_policy=NO_CACHE)
def publish_records(settings: Settings, records: list[BuildRecord],
                    run_id: str | None) -> ReleaseReport:
    # A refused wheel (gate, attest, sign, index) is recorded and skipped: the rest publish.
    return release_all(settings, records, run_id=run_id)


def _task_wrapper(settings: Settings) -> Callable[[Node, Callable[[], BuildRecord]], BuildRecord]:
    """Run each real build as a Prefect task from the executor's worker threads.

    The concurrency limit is made on the first real build: a no-op run needs none.
    """
    parent = contextvars.copy_context()
    limit_ready = threading.Lock()
    made: list[bool] = []

    def wrap(node: Node, job: Callable[[], BuildRecord]) -> BuildRecord:
        with limit_ready:
            if not made:
                parent.copy().run(ensure_build_limit, settings.build_concurrency)
                made.append(True)
        result = parent.copy().run(build_component, settings, node.name, node.version, job)
        if isinstance(result, MissingRequirementsError):
            raise result
        return result

    return wrap


def _outcomes(plan: Plan, built: list[BuildRecord], failed: dict[str, str],
              skipped: set[str]) -> list[dict[str, str]]:
    """One row per wheel built or kept (a native component has one per interpreter) and
    per failure (``name==version [cp313]`` for another interpreter's build)."""
    by_node: dict[str, list[BuildRecord]] = {}
    for record in built:
        by_node.setdefault(f"{record.component}=={record.version}", []).append(record)
    rows = []
    for nid in plan.order:
        node = plan.nodes[nid]
        key = f"{node.locked.key}=={node.version}"
        if nid in failed:
            rows.append({"component": node.name, "version": node.version, "outcome": "failed",
                         "detail": failed[nid]})
        for record in by_node.get(key, []):
            outcome = "unchanged" if record.wheel_filename in skipped else "built"
            rows.append({"component": node.name, "version": node.version, "outcome": outcome,
                         "detail": record.wheel_filename})
        for vid, why in failed.items():  # another interpreter's build of it
            if vid.startswith(f"{nid} ["):
                rows.append({"component": node.name, "version": node.version,
                             "outcome": "failed", "detail": f"{vid}: {why}"})
    return rows


def _record_outcomes(settings: Settings, rows: list[dict[str, str]], records: list[BuildRecord],
                     run_id: str | None) -> None:
    by_wheel = {r.wheel_filename: r for r in records}
    for row in rows:
        if row["outcome"] == "unchanged":
            continue
        record = by_wheel.get(row["detail"])
        ledger.record_build(
            settings, component=row["component"], version=row["version"],
            outcome=row["outcome"], sdist_sha256=record.source.sha256 if record else "",
            wheel_filename=record.wheel_filename if record else None,
            wheel_sha256=record.wheel_sha256 if record else None,
            invocation_id=record.invocation_id if record else None, run_id=run_id,
            error=None if record else row["detail"])


@flow(name="factory-rebuild", log_prints=True)
def rebuild(components: list[str] | None = None) -> dict[str, Any]:
    """Rebuild ``components`` (default: every approved one) and publish what changed."""
    started = time.monotonic()
    settings = load_settings()
    logger = get_run_logger()
    run_id = str(flow_run.get_id() or "")
    the_plan, refused = fetch_and_plan(settings, components)
    before = {p.name for p in settings.wheels_dir.glob("*.whl")} \
        if settings.wheels_dir.is_dir() else set()
    get_run_context()  # the executor's threads inherit this flow's context
    # With [distributed] pool each build is a flow run on that work pool (flows.build);
    # attesting, signing and publishing stay here, in the one process that holds keys.
    builder = remote_builder(settings) if settings.build_pool else None
    outcome = run_plan(settings, the_plan, wrap=_task_wrapper(settings), refused=refused,
                       build=builder)
    skipped = {r.wheel_filename for r in outcome.records if r.wheel_filename in before}
    rows = _outcomes(the_plan, outcome.records, outcome.failed, skipped)
    _record_outcomes(settings, rows, outcome.records, run_id)
    index = Index.of(settings)
    pending = [r for r in outcome.records if not is_published(index, r)]
    # With nothing new no task is run (a no-op run stays cheap); release_all still
    # closes what a run killed between publishing and recording it left open.
    report = publish_records(settings, outcome.records, run_id) if pending \
        else release_all(settings, outcome.records, run_id=run_id)
    published = len(report.published)
    summary: dict[str, Any] = {"built": sum(r["outcome"] == "built" for r in rows),
               "unchanged": sum(r["outcome"] == "unchanged" for r in rows),
               "failed": sum(r["outcome"] == "failed" for r in rows),
               "published": published, "refused": len(report.refused),
               "seconds": round(time.monotonic() - started, 2)}
    if outcome.skipped:  # native components another interpreter is not built for
        summary["not built for"] = dict(outcome.skipped)
    if report.equivalence:  # the verdicts of this run's pure wheels against upstream's
        summary["equivalence with upstream"] = report.equivalence
    # Builds that went without their C extension (factory.build.missing.skipped): the
    # wheels that stand, so a kept one is said again until its recipe is fixed.
    warnings = summary_warnings(outcome.records)
    if warnings:
        summary["warnings"] = warnings
    _artifacts(rows, summary, [r.line() for r in report.refused])
    logger.info("rebuild: %s", summary)
    for warning in warnings:
        logger.warning("%s", printable(warning))
    if report.equivalence:  # the pure wheels published against upstream's own
        logger.info("equivalence with upstream: %s", report.equivalence)
    for note in report.equivalence_notes:  # an unreachable upstream leaves no statement
        logger.warning("%s", note)
    for alarm in report.equivalence_alarms:  # recorded in the ledger; `factory status`
        logger.error("ALARM %s", alarm)
    for refusal in report.refused:
        logger.error("%s", refusal.line())
    if outcome.failed:
        also = f"; {len(report.refused)} wheel(s) refused" if report.refused else ""
        raise BuildError(summarise(outcome.failed, "component(s) failed to build") + also)
    report.raise_for_refusals()
    return summary


def summary_warnings(records: list[BuildRecord]) -> list[str]:
    """The records' warnings, each once, printable: the summary is returned to
    ``factory rebuild``, whose --json prints it with Rich (ensure_ascii=False), and a
    remote worker's record is its word (from_dict refuses controls; escaped again)."""
    return list(dict.fromkeys(printable(w, "") for r in records for w in r.warnings))


def _artifacts(rows: list[dict[str, str]], summary: dict[str, Any],
               refused: list[str]) -> None:
    create_table_artifact(key="rebuild-outcomes", table=rows,
                          description="Outcome of each component in this rebuild")
    lines = [f"# Rebuild: {summary['built']} built, {summary['unchanged']} unchanged, "
             f"{summary['failed']} failed, {summary['published']} published, "
             f"{summary['refused']} refused",
             "", f"Took {summary['seconds']} s."]
    failed = [r for r in rows if r["outcome"] == "failed"]
    # The details quote build logs and upstream text: fenced, so nothing in them is
    # rendered as Markdown (links, images) in the Prefect UI.
    if failed:
        lines += ["", "## Failed", ""] + [
            f"- **{r['component']} {r['version']}**\n\n{_fenced(r['detail'])}" for r in failed]
    if refused:  # not signed, not published: recorded in the ledger with the reason
        lines += ["", "## Refused", "", _fenced("\n".join(refused))]
    if summary.get("warnings"):  # built, but without what the log says was missing
        lines += ["", "## Warnings", "", _fenced("\n".join(summary["warnings"]))]
    create_markdown_artifact(key="rebuild-summary", markdown="\n".join(lines))


def _fenced(text: str) -> str:
    """``text`` as a Markdown code block that it cannot close early."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{printable(text)}\n{fence}"
