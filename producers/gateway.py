"""The HTTP ingest gateway, for agencies that cannot run a Kafka client.

``POST /v1/agencies/{agency}/datasets/{dataset}/events`` with a JSON batch and the agency's bearer token. Each record
is validated against the dataset's registered schema; the answer lists the accepted events (with their event_id)
and the rejected ones (with every bad field and why). An event counts as accepted only once the broker has
acknowledged it. 400 malformed JSON, 401 no or wrong token, 403 another agency's dataset, 404 unknown dataset,
413 too large, 422 a batch of the wrong shape.

No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time.
"""

import argparse
import asyncio
import hmac
import json
import sys
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaError
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from pydantic import AwareDatetime, BaseModel, Field

from satubus.metrics import REGISTRY
from satubus.producers.publisher import AgencyPublisher
from satubus.registry import registry_client
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.record_models import RecordRejected, validate_json
from satubus.serde import AvroSerde
from satubus.settings import Settings

UNAUTHENTICATED = "a valid agency token is required"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Event(BaseModel):
    key: str = Field(min_length=1, description="The record's natural key at the agency.")
    version: int = Field(ge=0, le=2**63 - 1, description="Monotonic per key at the agency; higher wins.")
    op: Literal["c", "u", "d", "r"] = Field("c", description="c create, u update, d delete, r snapshot.")
    occurred_at: AwareDatetime | None = Field(None, description="When it happened (ISO 8601 with offset).")
    event_id: uuid.UUID | None = Field(None, description="Idempotency id; generated when absent.")
    record: dict[str, Any] | None = Field(None, description="The record in the dataset's schema; null on delete.")


class Batch(BaseModel):
    events: list[Event]


class FieldProblem(BaseModel):
    field: str
    reason: str


class Accepted(BaseModel):
    index: int
    event_id: uuid.UUID


class Rejected(BaseModel):
    index: int
    errors: list[FieldProblem]


class BatchResult(BaseModel):
    topic: str
    accepted: list[Accepted]
    rejected: list[Rejected]


def create_app(settings: Settings) -> FastAPI:
    datasets: dict[str, set[str]] = {a.code: set(a.datasets) for a in load_catalogue()}
    tokens = {agency: token.get_secret_value().encode() for agency, token in settings.gateway_tokens.items()}
    publishers: dict[tuple[str, str], AgencyPublisher] = {}
    serde = AvroSerde(registry_client(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
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

    def agency_of(token: str) -> str | None:
        for agency, secret in tokens.items():
            if hmac.compare_digest(token.encode(), secret):
                return agency
        return None

    def authenticated_agency(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        agency = None if credentials is None else agency_of(credentials.credentials)
        if agency is None:
            raise HTTPException(401, UNAUTHENTICATED, headers=CHALLENGE)
        return agency

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        credentials = await bearer(request)  # a stranger learns nothing about the body
        if credentials is None or agency_of(credentials.credentials) is None:
            return JSONResponse({"detail": UNAUTHENTICATED}, 401, headers=CHALLENGE)
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        problems = [{"field": ".".join(map(str, e["loc"][1:])), "reason": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": "the batch does not have the expected shape", "errors": problems}, 422)

    @app.post(
        "/v1/agencies/{agency}/datasets/{dataset}/events",
        response_model=BatchResult,
        responses={400: {}, 401: {}, 403: {}, 404: {}, 413: {}, 422: {}, 503: {}},
    )
    async def publish(
        agency: str, dataset: str, batch: Batch, caller: Annotated[str, Depends(authenticated_agency)]
    ) -> Any:
        if caller != agency:
            raise HTTPException(403, f"agency {caller!r} may publish only to its own datasets")
        if dataset not in datasets.get(agency, set()):
            raise HTTPException(404, f"agency {agency!r} has no dataset {dataset!r} in the catalogue")
        if len(batch.events) > settings.gateway_max_events:
            raise HTTPException(413, f"at most {settings.gateway_max_events} events per batch")
        publisher = publishers.get((agency, dataset))
        if publisher is None:
            publisher = publishers[(agency, dataset)] = AgencyPublisher(
                settings,
                serde,
                agency=agency,
                dataset=dataset,
                system="http-gateway",
                delivery_timeout=settings.gateway_ack_timeout,
            )
        return await _publish(publisher, batch.events, settings.gateway_ack_timeout)

    return app


async def _publish(publisher: AgencyPublisher, events: list[Event], ack_timeout: float) -> BatchResult:
    """Publish the valid events; each is accepted once the broker acknowledged it. By ``ack_timeout`` (plus a margin)
    every event has a definite answer, because the publisher fails what is unacknowledged by then."""
    outcomes: dict[uuid.UUID, KafkaError | None] = {}
    queued: list[tuple[int, uuid.UUID]] = []
    rejected: list[Rejected] = []
    for index, event in enumerate(events):
        try:
            record = (
                None
                if event.record is None
                else validate_json(publisher.model, json.dumps(event.record), publisher.dataset)
            )
            event_id = publisher.publish(
                event.key,
                record,
                version=event.version,
                op=event.op,
                occurred_at=event.occurred_at,
                event_id=event.event_id,
                on_delivery=outcomes.__setitem__,
            )
            queued.append((index, event_id))
        except RecordRejected as exc:
            rejected.append(
                Rejected(index=index, errors=[FieldProblem(field=e.field, reason=e.reason) for e in exc.errors])
            )
    await asyncio.to_thread(publisher.wait, ack_timeout + 5)
    accepted = []
    for index, event_id in queued:
        if event_id in outcomes and outcomes[event_id] is None:
            accepted.append(Accepted(index=index, event_id=event_id))
        else:
            error = outcomes.get(event_id)
            reason = error.str() if error is not None else "no answer from the broker; retry"
            rejected.append(Rejected(index=index, errors=[FieldProblem(field="<broker>", reason=reason)]))
    if queued and not accepted:
        raise HTTPException(503, "the broker acknowledged none of the events; retry later")
    return BatchResult(topic=publisher.topic, accepted=accepted, rejected=sorted(rejected, key=lambda r: r.index))


def main(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if not settings.gateway_tokens:
        print(
            'satubus gateway: no agency tokens configured; set SATUBUS_GATEWAY_TOKENS=\'{"<agency>": "<token>"}\'',
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.gateway_host,
        port=args.port or settings.gateway_port,
        log_level="info",
    )
    return 0
