"""The HTTP ingest gateway, for agencies that cannot run a Kafka client.

``POST /v1/agencies/{agency}/datasets/{dataset}/events`` with a JSON batch and the agency's bearer token. Each record
is validated against the dataset's registered schema, then through the dataset's mapping as the stream processor will
(producers/mapping_check.py: a value rule, an unknown kelurahan or code is refused here, with its reason). The
datasets, their schemas and mappings are those of the mappings directory (``SATUBUS_MAPPINGS_DIR``, by default the
package's ``schemas/agencies/``); the gateway looks at it every few seconds and takes up what ``satubus dataset
apply`` changed there (a new dataset, a changed mapping) without a restart. The answer
lists the accepted events (with their event_id) and the rejected ones (with every bad field and why, or the broker's
reason under ``<broker>``). An event counts as accepted only once the broker has acknowledged it. 400 malformed JSON,
401 no or wrong token, 403 another agency's dataset, 404 unknown dataset, 413 too large, 422 a batch of the wrong
shape or one whose every event was rejected (a data error: sending it again changes nothing), 503 with
``Retry-After`` when the broker or the schema registry is unavailable or acknowledged none of the events (an
infrastructure error: retry later).

``GET /health`` (readiness) asks the broker and the registry, each within ``HEALTH_TIMEOUT``, and checks that the
agencies' tokens were read: 200, or 503 naming each that is not (satubus/health.py). The tokens read once, a
PostgreSQL outage is no problem (the last ones read are used). ``GET /health/live`` (liveness): the gateway answers.

No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time.
"""

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaException, Producer
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from pydantic import AwareDatetime, BaseModel, Field

from satubus import access, health
from satubus.errors import BrokerUnavailable, DataError, InfrastructureError, RegistryUnavailable
from satubus.kafka import producer_config
from satubus.metrics import REGISTRY
from satubus.producers.gateway_tokens import Tokens, follow
from satubus.producers.mapping_check import LiveMappingCheck
from satubus.producers.publisher import AgencyPublisher, Change, Outcome
from satubus.registry import registry_client, require_registry
from satubus.schemas.catalogue import Agency
from satubus.schemas.configuration import current_catalogue
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.errors import SchemaError
from satubus.schemas.nik import mask_nik
from satubus.serde import AvroSerde
from satubus.settings import Settings

UNAUTHENTICATED = "a valid agency token is required"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
RETRY_AFTER = {"Retry-After": "10"}  # seconds: a 503 is an infrastructure error, worth another try later
HEALTH_TIMEOUT = 5.0  # seconds for the broker, and for the registry, to answer a readiness check

log = logging.getLogger(__name__)


class Event(BaseModel):
    key: str = Field(min_length=1, description="The record's natural key at the agency.")
    version: int = Field(ge=1, le=2**63 - 1, description="Counts the record's changes, from 1; higher wins.")
    op: Literal["c", "u", "d", "r"] = Field("c", description="c create, u update, d delete, r snapshot.")
    occurred_at: AwareDatetime | None = Field(None, description="When it happened (ISO 8601 with offset).")
    event_id: uuid.UUID | None = Field(None, description="Idempotency id; generated when absent.")
    record: dict[str, Any] | None = Field(None, description="The record in the dataset's schema; null on delete.")


class Batch(BaseModel):
    events: list[Event]


class FieldProblem(BaseModel):
    field: str
    reason: str


class AcceptedEvent(BaseModel):
    index: int
    event_id: uuid.UUID


class RejectedEvent(BaseModel):
    index: int
    errors: list[FieldProblem]


class BatchResponse(BaseModel):
    topic: str
    accepted: list[AcceptedEvent]
    rejected: list[RejectedEvent]


class Probes:
    """The readiness checks of the services the gateway publishes through; blocking (each runs in a thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None  # made at the first check, kept: a check costs no new connection

    def broker(self) -> None:
        """``BrokerUnavailable`` unless the broker answers a metadata request within ``HEALTH_TIMEOUT``."""
        if self._producer is None:
            self._producer = Producer(producer_config(self.settings, "satubus-gateway-health", access.GATEWAY))
        try:
            self._producer.list_topics(timeout=HEALTH_TIMEOUT)
        except KafkaException as exc:
            raise BrokerUnavailable(f"Kafka does not answer: {exc.args[0]}") from exc

    def registry(self) -> None:
        """``RegistryUnavailable`` unless the schema registry answers (within its own timeout)."""
        try:
            require_registry(self.settings)
        except SchemaError as exc:
            raise RegistryUnavailable(str(exc)) from exc


def create_app(settings: Settings, given: Tokens | None = None) -> FastAPI:
    """The gateway; its tokens are read from PostgreSQL and kept current, unless ``given`` (tests)."""
    root = settings.mappings_dir or AGENCIES_DIR
    current_catalogue(root)  # read now: a broken catalogue ends the start, not a request
    tokens = given or Tokens()
    publishers: dict[tuple[str, str], AgencyPublisher] = {}
    creating = asyncio.Lock()
    serde = AvroSerde(registry_client(settings))
    probes = Probes(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        stop, first = asyncio.Event(), asyncio.Event()
        following = None if given else asyncio.create_task(follow(tokens, settings, stop, first))
        if following is not None:
            await first.wait()
        yield
        stop.set()
        if following is not None:
            await following
        for publisher in publishers.values():  # outcomes already went to the callers; just drain
            await asyncio.to_thread(publisher.wait, settings.gateway_ack_timeout + 5)
        serde.close()

    app = FastAPI(
        title="Satu Data Bus ingest gateway",
        version="1",
        description="Publish change events of an agency dataset over HTTP.",
        lifespan=lifespan,
        max_body_size=settings.gateway_max_body_bytes,  # 413, counted as the body streams in (chunked too)
    )
    app.mount("/metrics", make_asgi_app(registry=REGISTRY))
    bearer = HTTPBearer(auto_error=False)

    def authenticated_agency(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        agency = None if credentials is None else tokens.agency_of(credentials.credentials)
        if agency is None:
            raise HTTPException(401, UNAUTHENTICATED, headers=CHALLENGE)
        return agency

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        credentials = await bearer(request)  # a stranger learns nothing about the body
        if credentials is None or tokens.agency_of(credentials.credentials) is None:
            return JSONResponse({"detail": UNAUTHENTICATED}, 401, headers=CHALLENGE)
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        problems = [{"field": ".".join(map(str, e["loc"][1:])), "reason": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": "the batch does not have the expected shape", "errors": problems}, 422)

    @app.exception_handler(InfrastructureError)
    async def unavailable(request: Request, exc: InfrastructureError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"{_service(exc)} is unavailable; retry later"}, 503, headers=RETRY_AFTER)

    @app.exception_handler(DataError)
    async def bad_data(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": mask_nik(str(exc))}, 422)

    def publishes(agency: str, dataset: str) -> bool:
        """Whether the catalogue lists the dataset; one it does not is looked for again at once, in case it was
        applied within the last few seconds. It may read the directory: call it in a thread."""

        def listed(catalogue: tuple[Agency, ...]) -> bool:
            return any(a.code == agency and dataset in a.datasets for a in catalogue)

        return listed(current_catalogue(root)) or listed(current_catalogue(root, fresh=True))

    async def publisher_for(agency: str, dataset: str) -> AgencyPublisher:
        """The dataset's publisher, made on first use (in a thread: it asks the registry for the schema) and kept:
        its check follows the dataset's mapping as it changes."""
        if (publisher := publishers.get((agency, dataset))) is not None:
            return publisher
        async with creating:
            publisher = publishers.get((agency, dataset))
            if publisher is None:
                publisher = publishers[(agency, dataset)] = await asyncio.to_thread(
                    AgencyPublisher,
                    settings,
                    serde,
                    agency=agency,
                    dataset=dataset,
                    system="http-gateway",
                    role=access.GATEWAY,
                    delivery_timeout=settings.gateway_ack_timeout,  # every event has its answer by then
                    check=LiveMappingCheck(agency, dataset, root),
                    root=root,
                )
            return publisher

    async def probe(name: str, what: str, check: Callable[[], None]) -> health.Problem | None:
        try:
            await asyncio.wait_for(asyncio.to_thread(check), HEALTH_TIMEOUT + 1)
        except InfrastructureError as exc:
            return health.STATE.problem(name, what, str(exc))
        except TimeoutError:
            return health.STATE.problem(name, what, f"no answer within {HEALTH_TIMEOUT:.0f}s")
        return None

    @app.get(
        "/health",
        summary="Readiness: whether the broker and the schema registry answer and the tokens were read",
        responses={503: {"description": "Not ready: ``problems`` names each service that does not answer"}},
    )
    async def ready() -> JSONResponse:
        checks = await asyncio.gather(
            probe("broker", "publishing", probes.broker), probe("registry", "validating", probes.registry)
        )
        problems = [problem for problem in checks if problem is not None]
        if not tokens.loaded:
            detail = "the agencies' tokens were never read: every token is refused"
            problems.append(health.STATE.problem("database", "authenticating", detail))
        status, body = health.STATE.readiness(problems)
        return JSONResponse(body, status, headers=RETRY_AFTER if status != 200 else None)

    @app.get("/health/live", summary="Liveness: the gateway answers (a restart does not bring a service back)")
    async def alive() -> JSONResponse:
        status, body = health.STATE.liveness()
        return JSONResponse(body, status)

    @app.post(
        "/v1/agencies/{agency}/datasets/{dataset}/events",
        response_model=BatchResponse,
        responses={400: {}, 401: {}, 403: {}, 404: {}, 413: {}, 422: {}, 503: {}},
    )
    async def publish(
        agency: str, dataset: str, batch: Batch, caller: Annotated[str, Depends(authenticated_agency)]
    ) -> Any:
        if caller != agency:
            raise HTTPException(403, f"agency {caller!r} may publish only to its own datasets")
        if not await asyncio.to_thread(publishes, agency, dataset):
            raise HTTPException(404, f"agency {agency!r} has no dataset {dataset!r} in the catalogue")
        if len(batch.events) > settings.gateway_max_events:
            raise HTTPException(413, f"at most {settings.gateway_max_events} events per batch")
        publisher = await publisher_for(agency, dataset)
        changes = [
            Change(
                event.key,
                None if event.record is None else json.dumps(event.record),  # validated as JSON: ISO dates
                event.version,
                event.op,
                event.occurred_at,
                event.event_id,
            )
            for event in batch.events
        ]
        # In a thread: publish_batch waits for the broker (at most the ack timeout plus a margin).
        outcomes = await asyncio.to_thread(publisher.publish_batch, changes)
        return batch_response(publisher.topic, outcomes)

    return app


def batch_response(topic: str, outcomes: list[Outcome]) -> BatchResponse | JSONResponse:
    """The answer to a batch: 200 listing each event once it had anything published; when nothing was, 503 (with
    ``Retry-After``) if the broker failed any event, else 422 (every event's record is wrong)."""
    response = BatchResponse(
        topic=topic,
        accepted=[AcceptedEvent(index=o.index, event_id=o.event_id) for o in outcomes if o.status == "published"],
        rejected=[
            RejectedEvent(index=o.index, errors=[FieldProblem(field=e.field, reason=e.reason) for e in o.errors])
            for o in outcomes
            if o.status != "published"
        ],
    )
    if response.accepted or not response.rejected:
        return response
    body = response.model_dump(mode="json")
    if any(o.status == "failed" for o in outcomes):
        detail = "the broker acknowledged none of the events; retry later"
        return JSONResponse({"detail": detail, **body}, 503, headers=RETRY_AFTER)
    return JSONResponse({"detail": "every event was rejected; fix the records (see rejected)", **body}, 422)


def _service(error: InfrastructureError) -> str:
    if isinstance(error, BrokerUnavailable):
        return "the broker"
    if isinstance(error, RegistryUnavailable):
        return "the schema registry"
    return "a service of the bus"


def main(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    health.STATE.process = "gateway"
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.gateway_host,
        port=args.port or settings.gateway_port,
        log_level="info",
    )
    return 0
