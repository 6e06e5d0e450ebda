"""The live API over the unified view in PostgreSQL and the unified topics.

- ``GET /v1/scoreboard``: every catalogue agency, integrated / stale / silent, and why (consumers/scoreboard.py)
- ``GET /v1/persons/{person_id}``, ``/v1/parcels/{nop}``, ``/v1/regions/{kelurahan_code}``, ``/v1/incidents/{id}``:
  one unified record; 404 when there is none, 422 when the id cannot be one
- ``GET /v1/findings``: findings newest first, filtered by kind, status, subject and agency, paginated
- ``GET /v1/changes``: Server-Sent Events, every unified record as it is published (tombstones included); the
  stream ends with an ``error`` event if the consumer behind it dies (503 for a new subscriber then)
- ``GET /health``: 200 when PostgreSQL answers and the live changes flow, 503 saying what is wrong otherwise
- ``GET /metrics``: this process's metrics, the scoreboard's among them; OpenAPI at ``/openapi.json``

Errors (satubus/errors.py): a ``DataError`` answers 422; an ``InfrastructureError`` (PostgreSQL, Kafka or the
registry unavailable, asyncpg's connection errors included) answers 503 with ``Retry-After``, not a 500 traceback.

No ``from __future__ import annotations`` here: FastAPI reads the parameter annotations at run time.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import make_asgi_app
from pydantic import BaseModel

from satubus import database
from satubus.consumers import faults, scoreboard_metrics
from satubus.consumers.changes import Changes, ChangesStopped, ViewChange
from satubus.consumers.scoreboard import AgencyStatus, Rules, load_activity, load_blocks, scoreboard
from satubus.consumers.tables import TABLES, TableSpec
from satubus.errors import DataError, InfrastructureError
from satubus.metrics import REGISTRY
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.models import Finding, FindingKind, Incident, Parcel, Person, Region
from satubus.settings import Settings

log = logging.getLogger(__name__)

KELURAHAN_CODE = r"^31\.\d{2}\.\d{2}\.\d{4}$"
RETRY_AFTER_SECONDS = 5  # told to a client when a service behind the API is unavailable
HEALTH_TIMEOUT = 5.0  # seconds for PostgreSQL to answer the health check


class AgencyScore(BaseModel):
    code: str
    name: str
    kind: str
    datasets: list[str]
    status: Literal["integrated", "stale", "silent", "blocked"]
    reason: str
    last_valid_at: dt.datetime | None
    events_per_minute: float
    invalid_ratio: float | None


class Scoreboard(BaseModel):
    integrated: int
    total: int
    as_of: dt.datetime
    agencies: list[AgencyScore]


class FindingsPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Finding]


def create_app(settings: Settings) -> FastAPI:
    rules = Rules(
        freshness=dt.timedelta(seconds=settings.scoreboard_freshness_seconds),
        max_invalid_ratio=settings.scoreboard_max_invalid_ratio,
    )
    catalogue = load_catalogue()
    state: dict[str, Any] = {}

    async def board() -> list[AgencyStatus]:
        now = dt.datetime.now(dt.UTC)
        async with faults.connection(state["pool"]) as conn:
            return scoreboard(catalogue, await load_activity(conn, now, rules), now, rules, await load_blocks(conn))

    async def refresh_metrics() -> None:
        while True:
            try:
                scoreboard_metrics.record(await board(), dt.datetime.now(dt.UTC))
            except InfrastructureError as exc:  # the metrics say how old they are by staying put
                log.warning("scoreboard metrics not refreshed: %s", exc)
            except Exception:  # the API keeps serving
                log.exception("scoreboard metrics not refreshed")
            await asyncio.sleep(settings.scoreboard_refresh_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No connection at start (min_size=0): the API starts and answers 503 while PostgreSQL is unavailable.
        state["pool"] = await asyncpg.create_pool(database.dsn(settings, database.API), min_size=0, max_size=4)
        changes = state["changes"] = Changes(settings, [spec.contract for spec in TABLES.values()])
        changes.start(asyncio.get_running_loop())
        refreshing = asyncio.create_task(refresh_metrics())
        try:
            yield
        finally:
            refreshing.cancel()
            await asyncio.to_thread(changes.stop)  # joins the consumer thread: not on the event loop
            await state["pool"].close()

    app = FastAPI(
        title="Satu Data Bus live API",
        version="1",
        description="The unified view of Jakarta's agencies, the integration scoreboard and live changes.",
        lifespan=lifespan,
    )
    app.mount("/metrics", make_asgi_app(registry=REGISTRY))

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(InfrastructureError)
    async def unavailable(request: Request, exc: InfrastructureError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"{exc}; retry later"}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    async def one(spec: TableSpec, key: str) -> dict[str, Any]:
        async with faults.connection(state["pool"]) as conn:
            row = await conn.fetchrow(f"SELECT * FROM {spec.table} WHERE {spec.key} = $1", key)
        if row is None:
            raise HTTPException(404, f"no {spec.entity} {key!r} in the unified view")
        return _record(spec, row)

    @app.get("/v1/scoreboard", response_model=Scoreboard, summary="The integration scoreboard of every agency")
    async def get_scoreboard() -> Scoreboard:
        statuses = await board()
        return Scoreboard(
            integrated=sum(s.status == "integrated" for s in statuses),
            total=len(statuses),
            as_of=dt.datetime.now(dt.UTC),
            agencies=[AgencyScore(**{**_fields(s), "datasets": list(s.datasets)}) for s in statuses],
        )

    @app.get("/v1/persons/{person_id}", response_model=Person, summary="A person by person_id")
    async def get_person(person_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]) -> dict[str, Any]:
        return await one(TABLES["person"], person_id)

    @app.get("/v1/parcels/{nop}", response_model=Parcel, summary="A parcel by NOP (18 digits)")
    async def get_parcel(nop: Annotated[str, Path(pattern=r"^\d{18}$")]) -> dict[str, Any]:
        return await one(TABLES["parcel"], nop)

    @app.get("/v1/regions/{kelurahan_code}", response_model=Region, summary="A kelurahan by Kemendagri code")
    async def get_region(kelurahan_code: Annotated[str, Path(pattern=KELURAHAN_CODE)]) -> dict[str, Any]:
        return await one(TABLES["region"], kelurahan_code)

    @app.get("/v1/incidents/{incident_id}", response_model=Incident, summary="A disaster incident")
    async def get_incident(incident_id: str) -> dict[str, Any]:
        return await one(TABLES["incident"], incident_id)

    @app.get("/v1/findings", response_model=FindingsPage, summary="Findings, newest first")
    async def get_findings(
        kind: FindingKind | None = None,
        status: Literal["OPEN", "RESOLVED"] | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        agency: Annotated[str | None, Query(description="Findings that involve this agency")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> FindingsPage:
        filters = {"kind": kind, "status": status, "subject_type": subject_type, "subject_id": subject_id}
        clauses = [f"{column} = ${n}" for n, column in enumerate(filters, start=1)]
        where = " AND ".join(f"(${n}::text IS NULL OR {clause})" for n, clause in enumerate(clauses, start=1))
        where += f" AND (${len(filters) + 1}::text IS NULL OR ${len(filters) + 1} = ANY(agencies))"
        args = [*filters.values(), agency]
        spec = TABLES["finding"]
        async with faults.connection(state["pool"]) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM {spec.table} WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT * FROM {spec.table} WHERE {where} ORDER BY detected_at DESC, finding_id "
                f"LIMIT {limit} OFFSET {offset}",
                *args,
            )
        return FindingsPage(total=total, limit=limit, offset=offset, items=[Finding(**_record(spec, r)) for r in rows])

    @app.get(
        "/v1/changes",
        summary="Live changes (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 503: {"description": "The live stream is down"}},
    )
    async def get_changes(
        request: Request,
        entity: Annotated[
            list[Literal["person", "parcel", "region", "incident", "finding"]] | None,
            Query(description="Only these entities (repeat the parameter); all by default"),
        ] = None,
    ) -> StreamingResponse:
        """Each unified record as it is published, as an SSE event named after its entity, with the Kafka
        position as its id; ``data`` is ``{"key": ..., "record": ...}`` (``record`` null for a deletion).
        The stream ends with an ``overflow`` event when the client fell behind (reload, then subscribe again) and
        with an ``error`` event when the stream behind it stopped; ``data`` is then ``{"detail": ...}``."""
        wanted = set(entity or TABLES)
        changes: Changes = state["changes"]
        changes.ensure_running()  # 503 when the stream is dead

        async def events() -> AsyncIterator[str]:
            try:
                with changes.subscribe() as queue:
                    yield ": connected\n\n"
                    while not await request.is_disconnected():
                        try:
                            change = await asyncio.wait_for(queue.get(), timeout=15)
                        except TimeoutError:
                            changes.ensure_running()
                            yield ": keep-alive\n\n"
                            continue
                        if change.entity in ("overflow", "error"):
                            yield _last_event(change, changes.failure)
                            return
                        if change.entity in wanted:
                            data = json.dumps({"key": change.key, "record": change.record}, default=str)
                            yield f"event: {change.entity}\nid: {change.position}\ndata: {data}\n\n"
            except ChangesStopped as exc:
                yield f"event: error\ndata: {json.dumps({'detail': str(exc)})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get(
        "/health",
        summary="Whether PostgreSQL answers and the live changes flow",
        responses={503: {"description": "Unhealthy: ``problems`` says what is wrong"}},
    )
    async def health() -> JSONResponse:
        problems: dict[str, str] = {}
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT), faults.connection(state["pool"]) as conn:
                await conn.fetchval("SELECT 1")
        except (InfrastructureError, TimeoutError) as exc:
            problems["database"] = str(exc) or f"no answer within {HEALTH_TIMEOUT:.0f}s"
        failure = state["changes"].failure
        if failure is not None:
            problems["changes"] = failure
        if problems:
            body = {"status": "unhealthy", "problems": problems}
            return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return JSONResponse({"status": "ok", "problems": {}})

    return app


def _last_event(change: ViewChange, failure: str | None) -> str:
    if change.entity == "overflow":
        detail = "the client fell behind and was dropped: reload, then subscribe again"
        return f"event: overflow\nid: {change.position}\ndata: {json.dumps({'detail': detail})}\n\n"
    detail = f"the live change stream stopped: {failure}"
    return f"event: error\ndata: {json.dumps({'detail': detail})}\n\n"


def _record(spec: TableSpec, row: Any) -> dict[str, Any]:
    return {
        k: json.loads(v) if k in spec.json_columns and v is not None else v
        for k, v in row.items()
        if k != "committed_at"
    }


def _fields(status: AgencyStatus) -> dict[str, Any]:
    return {name: getattr(status, name) for name in status.__slots__}


def main(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM, then raises it again with the handler found at start: this one,
    # so that a requested stop exits 0 like the other processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            create_app(settings),
            host=args.host or settings.api_host,
            port=args.port or settings.api_port,
            log_level="info",
        )
    return 0
