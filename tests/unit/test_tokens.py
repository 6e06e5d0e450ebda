import datetime as dt

from satubus import tokens
from satubus.producers.gateway_tokens import StoredToken, Tokens

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def test_a_token_is_kept_as_a_digest_and_recognised_by_it() -> None:
    issued = tokens.issue()
    token_id, secret = tokens.parse(issued.token) or ("", "")
    assert token_id == issued.token_id and secret not in issued.digest.hex()
    assert tokens.matches(secret, issued.digest)
    assert not tokens.matches(secret + "x", issued.digest)


def test_strangers_are_not_tokens() -> None:
    assert [tokens.parse(t) for t in ("", "sdb", "sdb.abc", "xyz.abc.def", "sdb..secret")] == [None] * 5


def test_the_gateway_accepts_live_tokens_of_agencies_not_blocked() -> None:
    live, expired, blocked = tokens.issue(), tokens.issue(), tokens.issue()
    view = Tokens(
        {
            live.token_id: StoredToken("bpbd", live.digest),
            expired.token_id: StoredToken("bpbd", expired.digest, NOW - dt.timedelta(seconds=1)),
            blocked.token_id: StoredToken("dinsos", blocked.digest),
        },
        blocked=frozenset({"dinsos"}),
    )
    assert view.agency_of(live.token, NOW) == "bpbd"
    assert view.agency_of(expired.token, NOW) is None
    assert view.agency_of(blocked.token, NOW) is None
    forged = live.token[:-1] + ("A" if live.token[-1] != "A" else "B")  # the right id, another secret
    assert view.agency_of(forged, NOW) is None
