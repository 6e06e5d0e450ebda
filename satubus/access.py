"""Who may do what on the bus's Kafka cluster: the principals and their ACLs, derived from the agency catalogue.

The ACL set is data, computed here and never typed by hand (``satubus acl plan`` shows its difference with the
cluster, ``satubus acl apply`` makes the cluster match). Principals live in the bus's namespace like its topics
(``test.agency-dukcapil`` in the ``test`` namespace), so two buses on one cluster never share an identity; only
the cluster's administrator, a super user, is common to all.

Kafka implies DESCRIBE from READ and WRITE, and idempotent producers need only WRITE on their topics (KIP-679).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.topics import ERASURES, canonical_topic

ADMIN = "admin"  # the super user that creates topics, users and ACLs; never namespaced
BROKER = "broker"  # the broker's own identity on the inter-broker listener (a super user)
CONTROLLER = "controller"  # on the controller listener (SASL/PLAIN: SCRAM does not work there, KAFKA-15513)
STREAMS = "satubus-streams"  # the stream processor; also its faust application id and consumer group
MATERIALIZER = "satubus-materializer"
# The only reader of restricted.* (the materializer of clear NIKs) and of bus.dlq (whose values are the events as
# sent), and the sender of erasures (satubus erase)
RESTRICTED = "satubus-restricted"
API = "satubus-api"
GATEWAY = "satubus-gateway"
DOWNSTREAM = "satubus-downstream"  # read-only, for the applications that subscribe to unified topics

MATERIALIZER_GROUPS = "satubus-materializer-"  # "<prefix><entity>" (consumers/materializer.py)
RESTRICTED_GROUP = "satubus-materializer-person_nik"
REJECTIONS_GROUP = "satubus-materializer-rejection"  # the dead letters, read for each agency's own rejections
API_GROUP = "satubus-api-changes"  # consumers/changes.py
DOWNSTREAM_GROUPS = "downstream-"

ResourceKind = Literal["TOPIC", "GROUP"]
Pattern = Literal["LITERAL", "PREFIXED"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "DELETE"]


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on the resource (any host)."""

    principal: str  # the user name, without "User:"
    resource_type: ResourceKind
    resource: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern == "PREFIXED" else ""
        return f"User:{self.principal} {self.operation} {self.resource_type.lower()} {self.resource}{star}"


def agency_principal(code: str) -> str:
    return f"agency-{code}"


def principal(namespace: str, role: str) -> str:
    """The Kafka user name of ``role`` (e.g. ``satubus-streams``, ``agency-dukcapil``) in a namespace."""
    if role in (ADMIN, BROKER, CONTROLLER) or not namespace:
        return role
    return f"{namespace}.{role}"


def principals(namespace: str) -> list[str]:
    """Every user of the bus's namespace, besides the administrator."""
    roles = [STREAMS, MATERIALIZER, RESTRICTED, API, GATEWAY, DOWNSTREAM]
    roles += [agency_principal(a.code) for a in load_catalogue()]
    return [principal(namespace, role) for role in roles]


def is_managed(namespace: str, user: str) -> bool:
    """Whether ``user`` is one of the namespace's principals, so that its ACLs are the plan's to decide."""
    return user in set(principals(namespace))


def grants(namespace: str, *, blocked: frozenset[str] = frozenset()) -> set[Grant]:
    """Every ACL of the namespace; a ``blocked`` agency (by code) has none."""
    p = f"{namespace}." if namespace else ""
    result: set[Grant] = set()

    def allow(role: str, kind: ResourceKind, name: str, pattern: Pattern, *operations: Operation) -> None:
        user = principal(namespace, role)
        result.update(Grant(user, kind, name, pattern, op) for op in operations)

    for agency in load_catalogue():
        if agency.code not in blocked:
            allow(agency_principal(agency.code), "TOPIC", f"{p}agency.{agency.code}.", "PREFIXED", "WRITE")
    allow(GATEWAY, "TOPIC", f"{p}agency.", "PREFIXED", "WRITE")

    app = principal(namespace, STREAMS)  # faust prefixes its internal topics with the application id
    allow(STREAMS, "TOPIC", f"{p}agency.", "PREFIXED", "READ")
    allow(STREAMS, "TOPIC", f"{p}canonical.", "PREFIXED", "READ", "WRITE")
    for prefix in ("unified.", "restricted."):
        allow(STREAMS, "TOPIC", f"{p}{prefix}", "PREFIXED", "WRITE")
    for topic in ("bus.dlq", "bus.activity"):
        allow(STREAMS, "TOPIC", f"{p}{topic}", "LITERAL", "WRITE")
    allow(STREAMS, "TOPIC", f"{p}{ERASURES.name}", "LITERAL", "READ")
    allow(STREAMS, "TOPIC", f"{app}-", "PREFIXED", "READ", "WRITE", "CREATE", "DESCRIBE_CONFIGS")
    allow(STREAMS, "GROUP", app, "LITERAL", "READ")

    allow(MATERIALIZER, "TOPIC", f"{p}unified.", "PREFIXED", "READ")
    allow(MATERIALIZER, "TOPIC", f"{p}bus.activity", "LITERAL", "READ")
    allow(MATERIALIZER, "TOPIC", f"{p}bus.dlq", "LITERAL", "WRITE")
    allow(MATERIALIZER, "GROUP", f"{p}{MATERIALIZER_GROUPS}", "PREFIXED", "READ")

    allow(RESTRICTED, "TOPIC", f"{p}restricted.", "PREFIXED", "READ")
    for erasures in (canonical_topic("person"), ERASURES.name):  # satubus erase
        allow(RESTRICTED, "TOPIC", f"{p}{erasures}", "LITERAL", "WRITE")
    allow(RESTRICTED, "TOPIC", f"{p}bus.dlq", "LITERAL", "READ", "WRITE")
    for group in (RESTRICTED_GROUP, REJECTIONS_GROUP):
        allow(RESTRICTED, "GROUP", f"{p}{group}", "LITERAL", "READ")

    allow(API, "TOPIC", f"{p}unified.", "PREFIXED", "READ")
    allow(API, "GROUP", f"{p}{API_GROUP}", "LITERAL", "READ")

    allow(DOWNSTREAM, "TOPIC", f"{p}unified.", "PREFIXED", "READ")
    allow(DOWNSTREAM, "GROUP", f"{p}{DOWNSTREAM_GROUPS}", "PREFIXED", "READ")
    return result
