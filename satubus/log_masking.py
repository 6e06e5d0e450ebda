"""Log records with personal data masked: the message and the traceback of every record (``mask_text``: NIK and KK
numbers however written, dates of birth), whichever handler or formatter writes them.

``install()`` masks each record as it is made, in the logging module's record factory, so that the handlers a
library configures later (uvicorn's, with ``propagate`` off) get masked records too. ``MaskPersonalData`` does the
same as a filter, for a handler set up by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from satubus.schemas.masking import mask_text

_MASKED = "satubus_masked"  # set on a record once masked: masking twice would cost twice
_TRACEBACKS = logging.Formatter()


class MaskPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        mask_log_record(record)
        return True


def install() -> None:
    """Mask every log record made in this process from now on; a second call changes nothing."""
    make = logging.getLogRecordFactory()
    if getattr(make, _MASKED, False):
        return

    def make_masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        mask_log_record(record)
        return record

    setattr(make_masked, _MASKED, True)
    logging.setLogRecordFactory(make_masked)


def mask_log_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place: its message and arguments, and its exception's text."""
    if getattr(record, _MASKED, False):
        return
    setattr(record, _MASKED, True)
    try:
        _mask_message(record)
    except Exception:  # an argument whose str() fails: logging reports that when it writes; a log call never raises
        shown = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        record.msg, record.args = f"{mask_text(shown)} (its arguments cannot be shown)", ()
    if record.exc_info and not record.exc_text:
        # Formatters print ``exc_text`` when it is set, rather than format ``exc_info`` again.
        record.exc_text = _TRACEBACKS.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)


def _mask_message(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # the arguments do not fit the message: logging reports that, masked
        record.msg, record.args = mask_text(str(record.msg)), _masked_args(record.args)
        return
    masked = mask_text(message)
    if masked == message:
        return
    # Keep the arguments apart where masking them one by one is enough: some formatters read them (uvicorn's
    # access log unpacks them). Where it is not (a NIK split between the message and an argument), the message
    # is kept whole, masked.
    record.msg, record.args = mask_text(str(record.msg)), _masked_args(record.args)
    try:
        again = record.getMessage()
    except (TypeError, ValueError):  # a number masked into text no longer fits %d
        again = None
    if again is None or mask_text(again) != again:
        record.msg, record.args = masked, ()


def _masked_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {name: _masked_arg(value) for name, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_masked_arg(value) for value in args)
    return args


def _masked_arg(value: Any) -> Any:
    text = str(value)
    masked = mask_text(text)
    return value if masked == text else masked
