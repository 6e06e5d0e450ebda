from satubus.schemas.dead_letters import DeadLetter, preview
from satubus.streams.errors import Rejected

NIK = "3171061508950001"


def test_headers_say_where_and_why_without_a_clear_nik() -> None:
    raw = b"\x00\x00\x00\x00\x01\x20" + NIK.encode() + b"\x10SITI RAHMAWATI"
    error = Rejected("nik", "invalid_nik", f"bad value {NIK}")
    letter = DeadLetter("normalize", "invalid_nik", error, "agency.dukcapil.penduduk.v1", 2, 41, "dukcapil")
    headers = dict(letter.headers(raw))
    assert headers["satubus.error.stage"] == b"normalize"
    assert headers["satubus.error.reason"] == b"invalid_nik"
    assert headers["satubus.error.class"] == b"Rejected"
    assert headers["satubus.error.topic"] == b"agency.dukcapil.penduduk.v1"
    assert (headers["satubus.error.partition"], headers["satubus.error.offset"]) == (b"2", b"41")
    assert headers["satubus.error.agency"] == b"dukcapil"
    assert b"SITI RAHMAWATI" in headers["satubus.error.preview"]
    assert all(NIK.encode() not in value for value in headers.values())


def test_preview_masks_a_nik_that_straddles_the_cut() -> None:
    raw = b"x" * 250 + NIK.encode()
    assert NIK[:6] not in preview(raw)[-6:]
    assert len(preview(raw)) == 256
    assert preview(None) == "<null>"


def test_a_nik_touching_digit_bytes_in_an_avro_body_is_still_masked() -> None:
    # Avro writes a string's length before it: a length of 24-28 encodes as the digits "0".."8".
    raw = b"\x00\x00\x00\x00\x01" + b"4" + NIK.encode() + b"3171060101200003" + b"\x30"
    shown = preview(raw)
    assert NIK not in shown and "3171060101200003" not in shown
