from pathlib import Path

import pytest

from satubus.schemas.code_lists import agency_code_lists, code_lists_of
from satubus.schemas.errors import SchemaError

HEADER = "# an agency's own codes\nagency,field,code,meaning\n*,status,BARU,OPEN\n*,status,SELESAI,CLOSED\n"


def lists(tmp_path: Path, rows: str) -> dict[str, dict[str, dict[str, str]]]:
    (tmp_path / "x.codes.csv").write_text(HEADER + rows, encoding="utf-8")
    return agency_code_lists("x", tmp_path)


def test_an_agency_without_lists_of_its_own_gets_the_default(tmp_path: Path) -> None:
    lists(tmp_path, "bpbd,status,1,OPEN\nbpbd,status,3,CLOSED\n")
    assert code_lists_of("bpbd", "x", tmp_path) == {"status": {"1": "OPEN", "3": "CLOSED"}}
    assert code_lists_of("dinsos", "x", tmp_path) == {"status": {"BARU": "OPEN", "SELESAI": "CLOSED"}}


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("bpdb,status,1,OPEN\n", "'bpdb' is not an agency of the catalogue"),
        ("bpbd,status,1,OPEN\nbpbd,status,3,CLOSD\n", "bpbd's status codes mean ['CLOSD', 'OPEN']"),
        ("bpbd,status,1,OPEN\n", "bpbd's status codes mean ['OPEN']; they must mean exactly ['CLOSED', 'OPEN']"),
        ("bpbd,status,,OPEN\n", "x.codes.csv:5: a row needs agency, field, code and meaning"),
    ],
)
def test_a_wrong_list_is_refused_naming_the_file_and_the_problem(tmp_path: Path, rows: str, problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        lists(tmp_path, rows)
    assert problem in str(caught.value)
