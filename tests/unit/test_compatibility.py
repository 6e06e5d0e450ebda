from typing import Any

from satubus.schemas.compatibility import field_changes, incompatibilities, same, undocumented

V1: dict[str, Any] = {
    "type": "record",
    "name": "T",
    "namespace": "test",
    "doc": "t",
    "fields": [{"name": "a", "type": "string", "doc": "a"}, {"name": "b", "type": "long", "doc": "b"}],
}


def evolve(*fields: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    kept = [f for f in V1["fields"] if f["name"] != drop]
    return V1 | {"fields": [*kept, *fields]}


OPTIONAL = {"name": "c", "type": ["null", "string"], "default": None, "doc": "c"}
REQUIRED = {"name": "c", "type": "string", "doc": "c"}


def test_an_optional_field_with_a_default_is_fully_compatible() -> None:
    assert incompatibilities("FULL_TRANSITIVE", evolve(OPTIONAL), [V1]) == []
    assert field_changes(V1, evolve(OPTIONAL)) == ["+ c: null|string (with default null)"]


def test_a_new_required_field_breaks_backward_and_says_why() -> None:
    reasons = incompatibilities("BACKWARD", evolve(REQUIRED), [V1])
    assert len(reasons) == 1
    assert "reader_field_missing_default_value" in reasons[0] and "/fields/2" in reasons[0]


def test_removing_a_required_field_breaks_forward_but_not_backward() -> None:
    assert incompatibilities("BACKWARD", evolve(drop="b"), [V1]) == []
    reasons = incompatibilities("FULL", evolve(drop="b"), [V1])
    assert reasons and "readers on version 1 cannot read new data" in reasons[0]
    assert field_changes(V1, evolve(drop="b")) == ["- b: long"]


def test_a_changed_type_is_refused_with_both_types_named() -> None:
    changed = V1 | {"fields": [V1["fields"][0] | {"type": "int"}, V1["fields"][1]]}
    reasons = incompatibilities("BACKWARD", changed, [V1])
    assert "reader type: int not compatible with writer type: string" in reasons[0]


def test_transitive_levels_check_every_version() -> None:
    v2 = evolve(OPTIONAL)
    v3 = V1 | {"fields": [*V1["fields"], {"name": "c", "type": "string", "default": "x", "doc": "c"}]}
    assert incompatibilities("FULL", v3, [V1, v2]) != []  # latest only: union -> string fails anyway
    assert len(incompatibilities("BACKWARD_TRANSITIVE", v3, [V1, v2])) == 1  # only v2 is unreadable


def test_missing_docs_are_listed_by_path() -> None:
    schema = V1 | {"doc": "", "fields": [{"name": "a", "type": "string"}]}
    assert undocumented(schema) == ["T", "T.a"]
    kind = {"name": "k", "doc": "Documented field.", "type": {"type": "enum", "name": "Kind", "symbols": ["A"]}}
    assert undocumented(V1 | {"doc": "Documented.", "fields": [kind]}) == ["T.k:Kind"]


def test_compacted_schemas_compare_equal() -> None:
    nested = {
        "type": "record",
        "name": "Outer",
        "namespace": "x.y",
        "doc": "o",
        "fields": [
            {
                "name": "inner",
                "doc": "i",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "doc": "i",
                    "fields": [{"name": "v", "type": "int", "doc": "v"}],
                },
            }
        ],
    }
    compacted = nested | {
        "fields": [nested["fields"][0] | {"type": nested["fields"][0]["type"] | {"namespace": "x.y"}}]
    }
    assert same(nested, compacted)
