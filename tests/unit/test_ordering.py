from satubus.streams.ordering import RECENT_IDS, KeyState, admit, dead_lettered_before, remember, remember_rejected


def test_first_event_of_a_key_is_new() -> None:
    assert admit(None, "a", 1) == "new"


def test_a_redelivered_event_is_a_duplicate_even_after_newer_ones() -> None:
    state = remember(remember(None, "a", 1), "b", 2)
    assert admit(state, "a", 1) == "duplicate"
    assert admit(state, "b", 2) == "duplicate"


def test_an_older_or_equal_version_is_stale_and_a_newer_one_is_new() -> None:
    state = remember(None, "a", 5)
    assert admit(state, "x", 4) == "stale"
    assert admit(state, "y", 5) == "stale"
    assert admit(state, "z", 6) == "new"


def test_state_remembers_a_bounded_number_of_ids_and_round_trips() -> None:
    state = None
    for version in range(1, 40):
        state = remember(state, f"e{version}", version)
    assert state is not None and len(state.recent) == RECENT_IDS and state.version == 39
    assert KeyState.decode(state.encode()) == state
    assert KeyState.decode(None) is None


def test_a_dead_lettered_event_is_remembered_without_touching_the_applied_version() -> None:
    state = remember_rejected(remember(None, "a", 3), "bad")
    assert dead_lettered_before(state, "bad") and not dead_lettered_before(state, "a")
    assert state.version == 3 and admit(state, "bad", 4) == "new"  # a replay after a fix is applied normally
    assert KeyState.decode(state.encode()) == state
    assert dead_lettered_before(remember(state, "c", 4), "bad")
    assert not dead_lettered_before(None, "bad")


def test_an_older_version_read_late_is_superseded_and_one_sent_late_is_stale() -> None:
    applied = remember(None, "e2", 2, offset=150)  # version 2 was published at offset 150 and applied
    assert admit(applied, "e1", 1, offset=100) == "superseded"  # published before it, read after it (#596)
    assert admit(applied, "e1", 1, offset=160) == "stale"  # the agency sent it after the newer one
    assert admit(applied, "e1", 1) == "stale"  # no offset to tell
    assert admit(remember(None, "e2", 2), "e1", 1, offset=100) == "stale"  # state from before offsets were kept
    assert KeyState.decode(applied.encode()) == applied
    assert KeyState.decode(b'{"v": 2, "ids": ["e2"]}') == KeyState(2, ("e2",))  # older state still reads
