import datetime as dt
import itertools

from producers.simulator import dukcapil_record, expected_person, generate_residents, resident_events
from schemas.nik import parse_nik
from schemas.regions import load_regions
from streams.normalize import normalize_resident

KEY = b"unit-test-key"
TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def residents(seed: int, count: int = 500) -> list:
    return generate_residents(count, seed=seed, regions=load_regions(), today=TODAY)


def test_the_same_seed_gives_the_same_residents() -> None:
    assert residents(7) == residents(7)
    assert residents(7) != residents(8)


def test_residents_have_unique_valid_niks_and_known_kelurahan() -> None:
    people = residents(3, count=5000)
    assert len({p.nik for p in people}) == len(people)
    for person in people:
        info = parse_nik(person.nik, today=TODAY)
        assert (info.birth_date, info.sex) == (person.birth_date, person.sex)
        assert load_regions().kelurahan(person.kelurahan.code) == person.kelurahan
    deceased = sum(p.deceased_on is not None for p in people)
    assert 0.01 * len(people) < deceased < 0.06 * len(people)


def test_ground_truth_agrees_with_the_normalizer() -> None:
    """Two independent paths from the same facts: the simulator's truth and the normalizer's output."""
    clock = itertools.repeat(NOW - dt.timedelta(seconds=1)).__next__
    for event in resident_events(residents(11), seed=11, clock=clock):
        envelope = {
            "event_id": event.event_id,
            "op": "c",
            "occurred_at": event.occurred_at,
            "key": event.resident.nik,
            "version": event.version,
            "after": dukcapil_record(event.resident),
        }
        normalized = normalize_resident(envelope, pseudonym_key=KEY, regions=load_regions(), now=NOW)
        assert normalized == expected_person(event, KEY)
