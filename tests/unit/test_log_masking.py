"""No clear NIK in a log line: not in the message, its arguments or the traceback of the exception it carries."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from satubus import log_masking
from satubus.log_masking import MaskPersonalData

NIK = "3171064808850001"
WRITTEN = "3171 0648 0885 0001"


@pytest.fixture
def stream() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger of its own writing to a string, with the standard formatter and no filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(f"test_log_masking.{id(out)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, out, handler
    logger.removeHandler(handler)


@pytest.fixture
def installed() -> Iterator[None]:
    original = logging.getLogRecordFactory()
    log_masking.install()
    log_masking.install()  # a second call changes nothing
    yield
    logging.setLogRecordFactory(original)


def fail_with_a_nik() -> None:
    raise ValueError(f"nik: {NIK} is not valid (written {WRITTEN}, born 08-08-1985)")


def test_the_filter_masks_the_message_and_its_arguments(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = stream
    handler.addFilter(MaskPersonalData())
    logger.warning("rejected %s: %s", WRITTEN, ValueError(f"bad value {NIK}"))
    logger.info(f"inline {NIK}")  # noqa: G004  # what the filter is for
    logger.info("as a number %d", int(NIK))
    logger.info("born %(born)s", {"born": "08-08-1985"})
    assert out.getvalue().splitlines() == [
        f"WARNING {logger.name}: rejected 3171 **** **** ****: bad value 3171************",
        f"INFO {logger.name}: inline 3171************",
        f"INFO {logger.name}: as a number 3171************",
        f"INFO {logger.name}: born **-**-1985",
    ]


def test_the_filter_masks_an_exceptions_traceback(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = stream
    handler.addFilter(MaskPersonalData())
    try:
        fail_with_a_nik()
    except ValueError:
        logger.exception("could not normalize")
    text = out.getvalue()
    assert "Traceback (most recent call last)" in text and "fail_with_a_nik" in text
    assert "ValueError: nik: 3171************ is not valid (written 3171 **** **** ****, born **-**-1985)" in text
    assert NIK not in text and WRITTEN not in text and "08-08" not in text


def test_installed_masking_reaches_handlers_set_up_later_without_a_filter(
    installed: None, stream: tuple[logging.Logger, io.StringIO, logging.Handler]
) -> None:
    logger, out, _ = stream  # as uvicorn's handlers: configured after satubus set up logging, no filter of ours
    try:
        fail_with_a_nik()
    except ValueError as exc:
        logger.exception("request failed: %s", exc)
    text = out.getvalue()
    assert "request failed: nik: 3171************ is not valid" in text
    assert "ValueError: nik: 3171************" in text
    assert NIK not in text and WRITTEN not in text


def test_arguments_stay_apart_where_a_formatter_reads_them(installed: None) -> None:
    # uvicorn's access log formatter unpacks (client, method, path, http version, status).
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/persons/{NIK}", "1.1", 404),
        None,
    )
    assert record.args == ("127.0.0.1:5000", "GET", "/v1/persons/3171************", "1.1", 404)


def test_a_nik_split_between_the_message_and_an_argument_is_masked_whole(installed: None) -> None:
    record = logging.getLogger(__name__).makeRecord(
        __name__, logging.INFO, __file__, 1, f"nik {NIK[:8]}%s", (NIK[8:],), None
    )
    assert record.getMessage() == "nik 3171************"


def test_a_message_without_personal_data_is_left_as_it_was(installed: None) -> None:
    args = ("agency.dukcapil.penduduk.v1", 3, 1234)
    record = logging.getLogger(__name__).makeRecord(__name__, logging.INFO, __file__, 1, "%s:%d@%d", args, None)
    assert (record.msg, record.args) == ("%s:%d@%d", args)


def test_a_log_call_never_raises_for_an_argument_that_cannot_be_shown(installed: None) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError(NIK)

    record = logging.getLogger(__name__).makeRecord(
        __name__, logging.INFO, __file__, 1, f"nik {NIK}: %s", (Unprintable(),), None
    )
    assert record.getMessage() == "nik 3171************: %s (its arguments cannot be shown)"
