"""The live API over the unified view in PostgreSQL and the unified topics.

- ``GET /v1/scoreboard``: every catalogue agency, integrated / stale / silent, and why (consumers/scoreboard.py)
- ``GET /``: the scoreboard as a live web page; ``GET /v1/scoreboard/stream``: it, live (consumers/scoreboard_page.py)
- ``GET /v1/persons/{person_id}``, ``/v1/parcels/{nop}``, ``/v1/regions/{kelurahan_code}``, ``/v1/incidents/{id}``:
  one unified record; 404 when there is none, 422 when the id cannot be one
- ``GET /v1/datasets``, ``/v1/datasets/{agency}/{dataset}/records[/{key}]``: the datasets that are records of their
  own (consumers/dataset_views.py), their records by key or by kelurahan, newest first
- ``GET /v1/datasets/{agency}/{dataset}/aggregates/{name}``: an aggregate the dataset's mapping declares, per
  kelurahan and day or month; ``GET /v1/regions/{kelurahan_code}/aggregates``: every one, for one kelurahan
- ``GET /v1/findings``: findings newest first, filtered by kind, status, subject and agency, paginated
- ``GET /v1/agencies/{agency}/rejections``: what the bus dead-lettered of the agency's events and why, for that agency's
  own API key (consumers/rejection_views.py)
- ``GET /v1/restricted/persons/{person_id}/nik``: the clear NIK behind a person_id
- ``GET /v1/changes``: Server-Sent Events, every unified record as it is published (tombstones included); the
  stream ends with an ``error`` event if the consumer behind it dies (503 for a new subscriber then)
- ``GET /health``: 200 when PostgreSQL answers and the live changes flow, 503 saying what is wrong otherwise
- ``GET /metrics``: this process's metrics, the scoreboard's among them; OpenAPI at ``/openapi.json``

Who reads what (consumers/api_scopes.py): callers send an API key (``Authorization: Bearer``, from ``satubus
api-key issue``); without one they read the public parts (scoreboard, regions, incidents, health, metrics and the
OpenAPI page: none holds personal data). Personal records need the key's scopes and a ``purpose``; each read of
them is appended to the hash-chained audit log (satubus/audit.py) before the answer leaves: no audit row, no data.

Errors (satubus/errors.py): a ``DataError`` answers 422; an ``InfrastructureError`` (PostgreSQL, Kafka or the
registry unavailable, asyncpg's connection errors included) answers 503 with ``Retry-After``, not a 500 traceback.

No ``from __future__ import annotations`` here: FastAPI reads the parameter annotations at run time.
"""

import argparse
import asyncio
import collections
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
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from satubus import audit, database
from satubus.consumers import api_keys, api_scopes, faults, scoreboard_metrics, scoreboard_page
from satubus.consumers.api_keys import ANONYMOUS, Caller, Keys
from satubus.consumers.api_scopes import Purpose
from satubus.consumers.changes import Changes, ChangesStopped, ViewChange
from satubus.consumers.dataset_views import DatasetView, DatasetViews, aggregate_rows
from satubus.consumers.rejection_views import RejectionsPage, rejections
from satubus.consumers.scoreboard import AgencyStatus, Rules, load_activity, load_blocks, scoreboard
from satubus.consumers.tables import TABLES, TableSpec
from satubus.errors import DataError, InfrastructureError
from satubus.metrics import REGISTRY
from satubus.schemas.configuration import current_catalogue
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.models import Finding, FindingKind, Incident, Parcel, Person, Region
from satubus.settings import Settings

log = logging.getLogger(__name__)

KELURAHAN_CODE = r"^31\.\d{2}\.\d{2}\.\d{4}$"
RETRY_AFTER_SECONDS = 5  # told to a client when a service behind the API is unavailable
HEALTH_TIMEOUT = 5.0  # seconds for PostgreSQL to answer the health check
STREAM_BATCH = 500  # live changes sent (and audited) together at most
LAST = ("overflow", "error", "gone")  # changes that end a live stream (consumers/changes.py)
PURPOSE_NEEDED = (
    "personal data is read for a stated purpose: add ?purpose= (or the Satubus-Purpose header), one of "
    + ", ".join(f"{name} ({meaning})" for name, meaning in api_scopes.PURPOSE_MEANINGS.items())
)

OWN_REJECTIONS = (
    "an agency reads its own rejections with its API key (from `satubus agency onboard <code>`, or "
    "`satubus api-key issue <caller> --agency <code>`)"
)


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


class PersonView(Person):
    """A person as the caller's scopes show them: ``withheld`` names the fields left out (they need
    ``read:health`` or ``read:aid``)."""

    withheld: list[str] = Field(default_factory=list)


class PersonNik(BaseModel):
    person_id: str
    nik: str


class FindingsPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Finding]


def create_app(settings: Settings, keys: Keys | None = None) -> FastAPI:
    """The API; ``keys`` given (tests) replace the keys read from PostgreSQL."""
    given = keys is not None
    keys = keys if keys is not None else Keys()
    rules = Rules(
        freshness=dt.timedelta(seconds=settings.scoreboard_freshness_seconds),
        max_invalid_ratio=settings.scoreboard_max_invalid_ratio,
    )
    root = settings.mappings_dir or AGENCIES_DIR
    datasets = DatasetViews(root)
    state: dict[str, Any] = {}

    async def board() -> list[AgencyStatus]:
        now = dt.datetime.now(dt.UTC)
        async with faults.connection(state["pool"]) as conn:
            activity, blocks = await load_activity(conn, now, rules), await load_blocks(conn)
        catalogue = await asyncio.to_thread(current_catalogue, root)  # a dataset applied meanwhile is in it
        return scoreboard(catalogue, activity, now, rules, blocks)

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
        state["nik_pool"] = await asyncpg.create_pool(database.dsn(settings, database.NIK_API), min_size=0, max_size=2)
        changes = state["changes"] = Changes(settings, [spec.contract for spec in TABLES.values()])
        changes.start(asyncio.get_running_loop())
        refreshing = asyncio.create_task(refresh_metrics())
        stop, first = asyncio.Event(), asyncio.Event()
        following = None if given else asyncio.create_task(api_keys.follow(keys, settings, stop, first))
        if following is not None:
            await first.wait()
        try:
            yield
        finally:
            stop.set()
            refreshing.cancel()
            if following is not None:
                await following
            await asyncio.to_thread(changes.stop)  # joins the consumer thread: not on the event loop
            await state["pool"].close()
            await state["nik_pool"].close()

    app = FastAPI(
        title="Satu Data Bus live API",
        version="1",
        description="The unified view of Jakarta's agencies, the integration scoreboard and live changes.",
        lifespan=lifespan,
    )
    app.mount("/metrics", make_asgi_app(registry=REGISTRY))
    hosts = [host.strip() for host in settings.api_allowed_hosts.split(",") if host.strip()]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    bearer = HTTPBearer(auto_error=False, description="An API key: `satubus api-key issue <caller> --scope ...`")
    open_streams: collections.Counter[str] = collections.Counter()

    def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        if credentials is None:
            return ANONYMOUS
        found = keys.caller(credentials.credentials)
        if found is None:
            raise HTTPException(
                401,
                "the API key is unknown, revoked or expired: ask the bus's operators for a new one",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    def purpose(
        who: Annotated[Caller, Depends(caller)],
        purpose: Annotated[
            Purpose | None, Query(description="Why personal data is read (or the Satubus-Purpose header)")
        ] = None,
        header: Annotated[Purpose | None, Header(alias="Satubus-Purpose", include_in_schema=False)] = None,
    ) -> str:
        given = purpose or header
        if given is None and who is not ANONYMOUS:  # an anonymous caller is refused for want of a key first
            raise HTTPException(422, PURPOSE_NEEDED)
        return given or ""

    Who = Annotated[Caller, Depends(caller)]
    Why = Annotated[str, Depends(purpose)]
    # A purpose where the read may or may not be of personal data (a dataset of its own): checked by the route.
    OptionalPurpose = Annotated[Purpose | None, Query(description="Why personal data is read, where it is")]

    def require(who: Caller, scope: str | None) -> None:
        """Refuse ``who`` unless it has ``scope`` (None: a public read)."""
        if scope is None or scope in who.scopes:
            return
        if who is ANONYMOUS:
            raise HTTPException(
                401, f"this needs an API key with the scope {scope}", headers={"WWW-Authenticate": "Bearer"}
            )
        raise HTTPException(403, f"the API key of {who.name} lacks the scope {scope}")

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

    async def personal(spec: TableSpec, key: str, who: Caller, why: str, request: Request) -> dict[str, Any]:
        """One personal record as ``who`` may see it, audited before it is returned (a 404 is audited too)."""
        require(who, api_scopes.ENTITY_SCOPES[spec.entity])
        async with faults.connection(state["pool"]) as conn:
            row = await conn.fetchrow(f"SELECT * FROM {spec.table} WHERE {spec.key} = $1", key)
            record, withheld = (
                ({}, []) if row is None else api_scopes.visible(spec.entity, _record(spec, row), who.scopes)
            )
            await audit.append(conn, _access(who, why, request, spec.entity, [key], sorted(record)))
        if row is None:
            raise HTTPException(404, f"no {spec.entity} {key!r} in the unified view")
        return {**record, "withheld": withheld} if spec.entity == "person" else record

    @app.get("/v1/scoreboard", response_model=Scoreboard, summary="The integration scoreboard of every agency")
    async def get_scoreboard() -> Scoreboard:
        statuses = await board()
        return Scoreboard(
            integrated=sum(s.status == "integrated" for s in statuses),
            total=len(statuses),
            as_of=dt.datetime.now(dt.UTC),
            agencies=[AgencyScore(**{**_fields(s), "datasets": list(s.datasets)}) for s in statuses],
        )

    scoreboard_page.register(app, get_scoreboard)  # the page at / and its live stream, from this same scoreboard

    @app.get(
        "/v1/persons/{person_id}",
        response_model=PersonView,
        response_model_exclude_unset=True,
        summary="A person by person_id (read:person; aid needs read:aid, health read:health)",
    )
    async def get_person(
        person_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], who: Who, why: Why, request: Request
    ) -> dict[str, Any]:
        return await personal(TABLES["person"], person_id, who, why, request)

    @app.get("/v1/parcels/{nop}", response_model=Parcel, summary="A parcel by NOP, 18 digits (read:person)")
    async def get_parcel(
        nop: Annotated[str, Path(pattern=r"^\d{18}$")], who: Who, why: Why, request: Request
    ) -> dict[str, Any]:
        return await personal(TABLES["parcel"], nop, who, why, request)

    @app.get(
        "/v1/restricted/persons/{person_id}/nik",
        response_model=PersonNik,
        summary="The clear NIK behind a person_id (read:restricted)",
    )
    async def get_nik(
        person_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], who: Who, why: Why, request: Request
    ) -> PersonNik:
        require(who, api_scopes.RESTRICTED)
        async with faults.connection(state["pool"]) as conn:  # the audit row first: no row, no NIK
            await audit.append(conn, _access(who, why, request, "person_nik", [person_id], ["nik"]))
        async with faults.connection(state["nik_pool"]) as conn:
            nik = await conn.fetchval("SELECT nik FROM restricted.person_nik WHERE person_id = $1", person_id)
        if nik is None:
            raise HTTPException(404, f"no NIK is held for person {person_id!r}")
        return PersonNik(person_id=person_id, nik=nik)

    @app.get("/v1/regions/{kelurahan_code}", response_model=Region, summary="A kelurahan by Kemendagri code")
    async def get_region(kelurahan_code: Annotated[str, Path(pattern=KELURAHAN_CODE)]) -> dict[str, Any]:
        return await one(TABLES["region"], kelurahan_code)

    @app.get("/v1/incidents/{incident_id}", response_model=Incident, summary="A disaster incident")
    async def get_incident(incident_id: str) -> dict[str, Any]:
        return await one(TABLES["incident"], incident_id)

    @app.get("/v1/datasets", summary="The datasets that are records of their own: fields, topic, who may read them")
    async def get_datasets() -> list[dict[str, Any]]:
        return [view.describe() for view in datasets.all()]

    def dataset_view(agency: str, dataset: str) -> DatasetView:
        view = datasets.get(agency, dataset)
        if view is None:
            raise HTTPException(404, f"no dataset {agency}.{dataset} of its own: GET /v1/datasets lists them")
        return view

    async def dataset_read(
        view: DatasetView, who: Caller, why: str | None, request: Request, query: str, *args: Any
    ) -> list[dict[str, Any]]:
        """The rows of ``query``; a dataset that is personal needs read:person and a purpose, and is audited."""
        spec = view.table
        if not view.personal:
            async with faults.connection(state["pool"]) as conn:
                return [_record(spec, row) for row in await conn.fetch(query, *args)]
        require(who, api_scopes.PERSON)
        if not why:
            raise HTTPException(422, PURPOSE_NEEDED)
        async with faults.connection(state["pool"]) as conn:
            rows = [_record(spec, row) for row in await conn.fetch(query, *args)]
            keys = [str(row[spec.key]) for row in rows]
            await audit.append(conn, _access(who, why, request, view.record.name, keys, sorted(spec.columns)))
        return rows

    @app.get(
        "/v1/datasets/{agency}/{dataset}/records/{key}",
        summary="One record of a dataset of its own (read:person and a purpose where it is personal)",
    )
    async def get_dataset_record(
        agency: str, dataset: str, key: str, who: Who, request: Request, purpose: OptionalPurpose = None
    ) -> dict[str, Any]:
        view = dataset_view(agency, dataset)
        spec = view.table
        query = f"SELECT * FROM {spec.table} WHERE {spec.key}::text = $1"
        rows = await dataset_read(view, who, purpose, request, query, key)
        if not rows:
            raise HTTPException(404, f"no {view.record.name} {key!r} in the view")
        return rows[0]

    @app.get(
        "/v1/datasets/{agency}/{dataset}/records",
        summary="Records of a dataset of its own, newest first, by kelurahan (read:person where it is personal)",
    )
    async def get_dataset_records(
        agency: str,
        dataset: str,
        who: Who,
        request: Request,
        purpose: OptionalPurpose = None,
        kelurahan_code: Annotated[str | None, Query(pattern=KELURAHAN_CODE)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        view = dataset_view(agency, dataset)
        spec = view.table
        if kelurahan_code is not None and "kelurahan_code" not in spec.columns:
            raise HTTPException(422, f"{view.record.name} has no kelurahan_code")
        where, args = ("WHERE kelurahan_code = $3", [kelurahan_code]) if kelurahan_code else ("", [])
        query = (
            f"SELECT *, count(*) OVER () AS total FROM {spec.table} {where} "
            f"ORDER BY updated_at DESC, {spec.key} LIMIT $1 OFFSET $2"
        )
        rows = await dataset_read(view, who, purpose, request, query, limit, offset, *args)
        total = rows[0].pop("total") if rows else 0
        for row in rows[1:]:
            row.pop("total")
        return {"total": total, "limit": limit, "offset": offset, "items": rows}

    @app.get(
        "/v1/datasets/{agency}/{dataset}/aggregates/{name}",
        summary="An aggregate a dataset's mapping declares: records (and sums) per kelurahan and day or month",
    )
    async def get_dataset_aggregate(
        agency: str,
        dataset: str,
        name: str,
        who: Who,
        kelurahan_code: Annotated[str | None, Query(pattern=KELURAHAN_CODE)] = None,
        since: Annotated[dt.date | None, Query(description="periods from this date on")] = None,
        until: Annotated[dt.date | None, Query(description="periods up to this date")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        view = dataset_view(agency, dataset)
        aggregate = view.aggregate_view(name)
        if aggregate is None:
            raise HTTPException(404, f"{view.record.name} declares no aggregate {name!r}: GET /v1/datasets lists them")
        if view.classification != "publik":
            require(who, api_scopes.PERSON)
        async with faults.connection(state["pool"]) as conn:
            total, items = await aggregate_rows(
                conn, aggregate, kelurahan_code=kelurahan_code, since=since, until=until, limit=limit, offset=offset
            )
        return {"aggregate": name, "total": total, "limit": limit, "offset": offset, "items": items}

    @app.get(
        "/v1/regions/{kelurahan_code}/aggregates",
        summary="Every aggregate the datasets' mappings declare, for one kelurahan (read:person for those not publik)",
    )
    async def get_region_aggregates(
        kelurahan_code: Annotated[str, Path(pattern=KELURAHAN_CODE)],
        who: Who,
        since: Annotated[dt.date | None, Query(description="periods from this date on")] = None,
        until: Annotated[dt.date | None, Query(description="periods up to this date")] = None,
    ) -> dict[str, Any]:
        found, withheld = [], []
        async with faults.connection(state["pool"]) as conn:
            for view in datasets.all():
                for name, aggregate in view.record.spec.aggregates.items():
                    if view.classification != "publik" and api_scopes.PERSON not in who.scopes:
                        withheld.append(f"{view.record.name}.{name}")
                        continue
                    _, rows = await aggregate_rows(
                        conn, str(view.aggregate_view(name)), kelurahan_code=kelurahan_code, since=since, until=until
                    )
                    items = [{k: v for k, v in row.items() if k != "kelurahan_code"} for row in rows]
                    found.append({"dataset": view.record.name, "aggregate": name, "per": aggregate.per, "items": items})
        return {"kelurahan_code": kelurahan_code, "aggregates": found, "withheld": withheld}

    @app.get(
        "/v1/agencies/{agency}/rejections",
        response_model=RejectionsPage,
        summary="What the bus dead-lettered of an agency's events, newest first (that agency's own API key)",
    )
    async def get_rejections(
        agency: str,
        who: Who,
        dataset: str | None = None,
        reason: Annotated[str | None, Query(description="e.g. out_of_range, unknown_region")] = None,
        since: Annotated[dt.datetime | None, Query(description="rejected at or after (ISO 8601, with offset)")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> RejectionsPage:
        if who is ANONYMOUS:
            raise HTTPException(401, OWN_REJECTIONS, headers={"WWW-Authenticate": "Bearer"})
        if who.agency != agency:
            raise HTTPException(403, f"the API key of {who.name} does not belong to agency {agency!r}")
        async with faults.connection(state["pool"]) as conn:
            return await rejections(
                conn, agency, dataset=dataset, reason=reason, since=since, limit=limit, offset=offset
            )

    @app.get("/v1/findings", response_model=FindingsPage, summary="Findings, newest first (read:person)")
    async def get_findings(
        who: Who,
        why: Why,
        request: Request,
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
        require(who, api_scopes.PERSON)
        async with faults.connection(state["pool"]) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM {spec.table} WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT * FROM {spec.table} WHERE {where} ORDER BY detected_at DESC, finding_id "
                f"LIMIT {limit} OFFSET {offset}",
                *args,
            )
            if rows:  # the findings and their subjects: a person's report lists the findings about them
                read = [r["finding_id"] for r in rows] + sorted({r["subject_id"] for r in rows})
                await audit.append(conn, _access(who, why, request, "finding", read, list(rows[0].keys())))
        return FindingsPage(total=total, limit=limit, offset=offset, items=[Finding(**_record(spec, r)) for r in rows])

    @app.get(
        "/v1/changes",
        summary="Live changes (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}},
            429: {"description": "The caller has too many streams open"},
            503: {"description": "The live stream is down"},
        },
    )
    async def get_changes(
        request: Request,
        who: Who,
        entity: Annotated[
            list[Literal["person", "parcel", "region", "incident", "finding"]] | None,
            Query(description="Only these entities (repeat the parameter); by default all that the key may read"),
        ] = None,
        purpose: Annotated[Purpose | None, Query(description="Required when personal entities are streamed")] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Each unified record as it is published, as an SSE event named after its entity, with the Kafka
        position as its id; ``data`` is ``{"key": ..., "record": ..., "withheld": [...]}`` (``record`` null for a
        deletion; ``withheld`` the fields the key's scopes leave out). A client that reconnects with
        ``Last-Event-ID`` gets the changes it missed, or a ``gone`` event when they are no longer held (reload,
        then subscribe again without it). The stream ends with an ``overflow`` event when the client fell behind
        and with an ``error`` event when the stream behind it stopped; ``data`` is then ``{"detail": ...}``.
        Personal records are audited as they are sent, in batches."""
        if entity is None:
            wanted = {name for name in TABLES if api_scopes.may_read(name, who.scopes)}
        else:
            for name in entity:
                require(who, api_scopes.ENTITY_SCOPES[name])
            wanted = set(entity)
        why = purpose or request.headers.get("Satubus-Purpose")
        if any(api_scopes.is_personal(name) for name in wanted) and why not in api_scopes.PURPOSES:
            raise HTTPException(
                422, "streaming personal records needs ?purpose=, one of " + ", ".join(api_scopes.PURPOSES)
            )
        changes: Changes = state["changes"]
        changes.ensure_running()  # 503 when the stream is dead
        stream_of = who.key_id or f"anonymous@{_client(request)}"
        if open_streams[stream_of] >= settings.api_streams_per_caller:
            raise HTTPException(
                429,
                f"{settings.api_streams_per_caller} live streams are open for this caller already: close one first",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        open_streams[stream_of] += 1

        async def events() -> AsyncIterator[str]:
            try:
                with changes.subscribe(after=last_event_id) as queue:
                    yield ": connected\n\n"
                    while not await request.is_disconnected():
                        try:
                            batch = [await asyncio.wait_for(queue.get(), timeout=15)]
                        except TimeoutError:
                            changes.ensure_running()
                            yield ": keep-alive\n\n"
                            continue
                        while len(batch) < STREAM_BATCH and not queue.empty() and batch[-1].entity not in LAST:
                            batch.append(queue.get_nowait())
                        shown = [c for c in batch if c.entity in wanted]
                        await audit_stream(who, str(why), request, shown)
                        for change in shown:
                            yield _event(change, who)
                        if batch[-1].entity in LAST:
                            yield _last_event(batch[-1], changes.failure)
                            return
            except ChangesStopped as exc:
                yield f"event: error\ndata: {json.dumps({'detail': str(exc)})}\n\n"
            finally:
                open_streams[stream_of] -= 1

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def audit_stream(who: Caller, why: str, request: Request, shown: list[ViewChange]) -> None:
        by_entity: dict[str, list[str]] = {}
        for change in shown:
            if api_scopes.is_personal(change.entity):
                by_entity.setdefault(change.entity, []).append(change.key)
        if not by_entity:
            return
        async with faults.connection(state["pool"]) as conn:
            for name, keys_sent in by_entity.items():
                fields = sorted(api_scopes.visible(name, dict.fromkeys(TABLES[name].columns), who.scopes)[0])
                await audit.append(conn, _access(who, why, request, name, keys_sent, fields, "GET /v1/changes"))

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


def _access(
    who: Caller, why: str, request: Request, entity: str, keys: list[str], fields: list[str], action: str = ""
) -> audit.Access:
    route = request.scope.get("route")
    action = action or f"{request.method} {getattr(route, 'path', request.url.path)}"
    return audit.Access(who.name, why, action, entity, keys, fields, _client(request))


def _client(request: Request) -> str:
    """Where a request came from: the caller's address (uvicorn takes a local proxy's X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


def _event(change: ViewChange, who: Caller) -> str:
    record, withheld = (
        (None, []) if change.record is None else api_scopes.visible(change.entity, change.record, who.scopes)
    )
    data = json.dumps({"key": change.key, "record": record, "withheld": withheld}, default=str)
    return f"event: {change.entity}\nid: {change.position}\ndata: {data}\n\n"


def _last_event(change: ViewChange, failure: str | None) -> str:
    if change.entity == "gone":
        detail = "the changes since Last-Event-ID are no longer held: reload, then subscribe again without it"
        return f"event: gone\ndata: {json.dumps({'detail': detail})}\n\n"
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
            timeout_graceful_shutdown=5,  # seconds: an open live stream (a page, /v1/changes) must not hold a stop
        )
    return 0
