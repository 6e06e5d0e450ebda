import datetime as dt
from collections import Counter

from satubus.producers.simulator.script import plan
from satubus.producers.simulator.truth import Published, compute
from satubus.producers.simulator.world import generate_residents, generate_world
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.nik import parse_nik
from satubus.schemas.record_models import agency_model, validate
from satubus.schemas.regions import load_regions

KEY = b"unit-test-key"
TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def script(seed: int = 5, residents: int = 2000, dirty: float = 0.05):  # type: ignore[no-untyped-def]
    world = generate_world(residents, seed=seed, regions=load_regions(), now=NOW)
    return world, plan(world, seed=seed, dirty=dirty, regions=load_regions())


def published(planned):  # type: ignore[no-untyped-def]
    return [Published(p, NOW - dt.timedelta(seconds=1)) for p in planned]


def test_the_same_seed_gives_the_same_script() -> None:
    assert script(7)[1] == script(7)[1]
    assert script(7)[1] != script(8)[1]


def test_residents_have_unique_valid_niks_and_known_kelurahan() -> None:
    people = generate_residents(5000, seed=3, regions=load_regions(), today=TODAY)
    assert len({p.nik for p in people}) == len(people)
    for person in people:
        info = parse_nik(person.nik, today=TODAY)
        assert (info.birth_date, info.sex) == (person.birth_date, person.sex)
        assert load_regions().kelurahan(person.kelurahan.code) == person.kelurahan


def test_only_integrated_agencies_publish_and_all_of_them_do() -> None:
    _, planned = script()
    agencies = {p.agency for p in planned}
    assert agencies == {a.code for a in load_catalogue() if a.integrated}
    assert len(agencies) == 40


def test_every_clean_record_fits_its_schema() -> None:
    _, planned = script(dirty=0)
    for p in planned:
        assert p.expect == "unified"
        validate(agency_model(p.agency, p.dataset), p.record, p.dataset)


def test_dirt_is_accounted_for_and_counts_reconcile() -> None:
    _, planned = script(dirty=0.05)
    truth = compute(published(planned), KEY)
    kinds = Counter(p.expect for p in planned)
    assert {"unified", "duplicate", "stale", "dlq:invalid_nik", "dlq:unknown_region", "dlq:future_event"} <= set(kinds)
    assert len(truth.dead_letters) == sum(n for kind, n in kinds.items() if kind.startswith("dlq:"))
    for topic, counts in truth.counts.items():  # each outcome counted where the script says
        assert counts["duplicate"] == sum(
            1
            for p in planned
            if p.expect == "duplicate" and topic.split(".")[1] == p.agency and topic.split(".")[2] == p.dataset
        )
    assert sum(c["in"] for c in truth.counts.values()) == len(planned)


def test_duplicates_repeat_an_earlier_event_and_stale_versions_are_older() -> None:
    _, planned = script(dirty=0.05)
    seen: dict[tuple[str, str, str], int] = {}
    ids = set()
    for p in planned:
        topic_key = (p.agency, p.dataset, p.key)
        if p.expect == "duplicate":
            assert p.event_id in ids
        if p.expect == "stale":
            assert p.version < seen[topic_key]
        if p.expect == "unified":
            seen[topic_key] = max(seen.get(topic_key, 0), p.version)
        ids.add(p.event_id)


def test_the_truth_holds_the_cross_agency_findings() -> None:
    world, planned = script(dirty=0)
    truth = compute(published(planned), KEY)
    kinds = Counter(kind for kind, _ in truth.findings)
    assert kinds["AID_TO_DECEASED"] > 0
    assert kinds["NO_CIVIL_REGISTRY_RECORD"] > 0
    assert len(truth.persons) == len(world.residents)
    assert len(truth.parcels) == len(world.parcels)
    assert len(truth.incidents) == len(world.incidents)
