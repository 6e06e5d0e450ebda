"""Findings: cross-agency inconsistencies as records of ``unified.finding.v1``, keyed by ``finding_id``.

Pure. The joiners raise and resolve findings of their entity (streams/joins.py); the normalizer raises
UNKNOWN_REGION_CODE when an agency writes a kelurahan the reference does not know.
"""

from __future__ import annotations

import datetime as dt

from satubus.schemas.models import Finding, FindingKind

KINDS: dict[FindingKind, tuple[str, str, str]] = {  # kind -> severity, subject type, description
    "AID_TO_DECEASED": ("CRITICAL", "person", "Social aid was paid after the date of death that Dukcapil records."),
    "NO_CIVIL_REGISTRY_RECORD": (
        "WARNING",
        "person",
        "An aid recipient or student identified by NIK has no record in Dukcapil's civil registry.",
    ),
    "PERMIT_FORBIDDEN_BY_ZONING": (
        "WARNING",
        "parcel",
        "A building permit was issued for a function that the parcel's zoning forbids.",
    ),
    "UNKNOWN_REGION_CODE": (
        "INFO",
        "region",
        "An agency wrote a kelurahan that the Kemendagri reference does not know; its records are dead-lettered.",
    ),
}


def finding_id(kind: str, subject_id: str) -> str:
    return f"{kind}:{subject_id}"


def finding(
    kind: FindingKind,
    subject_id: str,
    *,
    status: str,
    detected_at: dt.datetime,
    evidence: dict[str, str],
    agencies: tuple[str, ...],
    version: int,
    updated_at: dt.datetime,
) -> Finding:
    severity, subject_type, description = KINDS[kind]
    return Finding(
        finding_id=finding_id(kind, subject_id),
        kind=kind,
        severity=severity,  # type: ignore[arg-type]
        subject_type=subject_type,
        subject_id=subject_id,
        agencies=list(agencies),
        description=description,
        evidence=evidence,
        status=status,  # type: ignore[arg-type]
        detected_at=detected_at,
        version=version,
        updated_at=updated_at,
    )


def unknown_region(agency: str, dataset: str, written: str, occurred_at: dt.datetime) -> Finding:
    """One finding per agency dataset and place as written; it repeats with the same version, so it stays one."""
    return finding(
        "UNKNOWN_REGION_CODE",
        f"{agency}.{dataset}:{written}",
        status="OPEN",
        detected_at=occurred_at,
        evidence={"agency": agency, "dataset": dataset, "written": written},
        agencies=(agency,),
        version=1,
        updated_at=occurred_at,
    )
