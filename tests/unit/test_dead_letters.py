import time

from satubus.schemas.dead_letters import DeadLetter, preview
from satubus.schemas.masking import SCAN_CHARS
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
    assert headers["satubus.error.preview"] == b"..... 3171************.S*** R********"  # the shape, no name
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


def test_preview_shows_the_shape_of_a_record_without_its_personal_data() -> None:
    # An Avro body as Dukcapil's simulator writes it: NIK in groups, KK, name, birth date, address, RT, kelurahan.
    fields = ["3171 0648 0885 0001", "3171060101200003", "SITI RAHMAWATI", "08-08-1985", "Jl. Kebon Sirih No. 12"]
    raw = b"\x00\x00\x00\x00\x07" + b"".join(bytes([2 * len(f)]) + f.encode() for f in [*fields, "3", "3171061001"])
    shown = preview(raw)
    # The NIK and the KK touch (a length byte can be a space): one chain, the KK starred whole. So do the house
    # number, the RT and the kelurahan code.
    assert shown == (
        ".....&3171 **** **** **** ****************.S*** R********.**-**-1985,J*. K**** S**** N*. 12.3.3*********"
    )
    for clear in ["0648", "0101200003", "SITI", "RAHMAWATI", "08-08", "Kebon", "Sirih"]:
        assert clear not in shown


def test_preview_of_a_huge_payload_is_masked_quickly_and_cut_after_masking() -> None:
    raw = b"," * 250 + " ".join(NIK[i : i + 2] for i in range(0, 16, 2)).encode() + b"\xff" * 1_000_000 + b"1"
    started = time.perf_counter()
    assert preview(raw) == "," * 250 + "31 71 "
    assert time.perf_counter() - started < 0.1  # masking the whole megabyte took 0.2s
    assert preview(b"," * 253 + NIK.encode() + b"SITI") == "," * 253 + "317"


def test_preview_hides_the_digits_of_a_chain_that_runs_on_past_what_it_reads() -> None:
    # Digits spread out over more than SCAN_CHARS: whether they make a NIK is not read, so they count as one.
    raw = b"," * 240 + b"1 2 3 4 5 6 7" + b" " * SCAN_CHARS + b"8 9 0"
    assert preview(raw) == "," * 240 + "1 2 3 4 * * *   "
