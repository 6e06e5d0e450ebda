"""The guides for agency IT staff (docs/*.md) and their Bahasa Indonesia versions (docs/id/*.md) stay in step: every
guide exists in both languages, both name the same ``satubus`` commands, every command they name exists in the
command line, and every relative link resolves to a file (and a heading, where it names one). The reason codes and
the mapping keys the code knows are each documented in both languages."""

from __future__ import annotations

import argparse
import ast
import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from satubus.cli import build_parser
from satubus.schemas.errors import DecodeError
from satubus.schemas.mapping_spec import Aggregate, Check, FieldSpec, MappingFile, NikCheck
from satubus.streams import mapping as mapping_module

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
INDONESIAN = DOCS / "id"
GUIDES = ("README.md", "onboarding.md", "gateway-and-upload.md", "rejections.md", "mapping.md")

FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)  # indented too
INLINE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# "satubus" as a command word (also ".venv/bin/satubus"), not inside a name such as satubus_api or satubus.cli.
COMMAND = re.compile(r"(?<![\w.-])satubus(?![\w./-])((?:[ \t]+[a-z][\w-]*)*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def pairs() -> list[str]:
    return sorted({p.name for p in DOCS.glob("*.md")} | {p.name for p in INDONESIAN.glob("*.md")})


def all_docs() -> list[Path]:
    return sorted([*DOCS.glob("*.md"), *INDONESIAN.glob("*.md")])


def code_of(text: str) -> list[str]:
    """The text of every fenced block and inline code span."""
    blocks = [m.group(2) for m in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    return blocks + [m.group(2) for m in INLINE.finditer(rest)]


def in_code(word: str, text: str) -> bool:
    """Whether ``word`` is a whole word of the code of ``text``."""
    pattern = re.compile(rf"(?<![\w$]){re.escape(word)}(?!\w)")
    return any(pattern.search(code) for code in code_of(text))


def prose_of(text: str) -> str:
    """The text without its code, where links are read."""
    return INLINE.sub("", FENCE.sub("", text))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def resolve(words: list[str]) -> tuple[str, str | None]:
    """The command ``satubus <words...>`` names, as the words the parser takes as sub-commands or as choices of its
    positional arguments (``dlq inspect``, ``agency credentials issue``), and an error if it names none."""
    parser, taken = build_parser(), []
    position = 0  # of the next positional argument of ``parser``
    for word in words:
        commands = subcommands(parser)
        if commands is not None:
            if word not in commands:
                where = " ".join(["satubus", *taken])
                return " ".join(taken), f"{where} has no sub-command {word!r} (it has {', '.join(commands)})"
            parser, position = commands[word], 0
            taken.append(word)
            continue
        rest = positionals(parser)[position:]
        if not rest or rest[0].choices is None:
            break  # an argument's value (an agency code, a file), not a command word
        if word not in rest[0].choices:
            where = " ".join(["satubus", *taken])
            return " ".join(taken), f"{where}: {word!r} is not one of {', '.join(map(str, rest[0].choices))}"
        taken.append(word)
        position += 1
    if not taken:
        return "", None
    return " ".join(taken), None


@cache
def commands_in(path: Path) -> dict[str, str | None]:
    """Every ``satubus`` command named in the code of a guide, with the error of each that does not exist."""
    found: dict[str, str | None] = {}
    for code in code_of(path.read_text(encoding="utf-8")):
        for match in COMMAND.finditer(code):
            name, error = resolve(match.group(1).split())
            if name or error:
                found[name if error is None else f"{name} ?{match.group(1).split()}"] = error
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: inline markup dropped, lower case, punctuation removed, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = "".join(c for c in text.lower() if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def test_every_guide_is_there_in_both_languages() -> None:
    english = {p.name for p in DOCS.glob("*.md")}
    indonesian = {p.name for p in INDONESIAN.glob("*.md")}
    assert set(GUIDES) <= english, f"missing in docs/: {sorted(set(GUIDES) - english)}"
    assert english == indonesian, (
        f"only in docs/: {sorted(english - indonesian)}; only in docs/id/: {sorted(indonesian - english)}"
    )


@pytest.mark.parametrize("name", pairs())
def test_both_languages_name_the_same_commands(name: str) -> None:
    english, indonesian = DOCS / name, INDONESIAN / name
    assert english.is_file() and indonesian.is_file(), f"{name} must be in docs/ and in docs/id/"
    ours, theirs = set(commands_in(english)), set(commands_in(indonesian))
    assert ours == theirs, (
        f"{name}: only in English: {sorted(ours - theirs)}; only in Bahasa Indonesia: {sorted(theirs - ours)}"
    )


@pytest.mark.parametrize("path", all_docs(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_command_named_exists(path: Path) -> None:
    errors = [error for error in commands_in(path).values() if error is not None]
    assert not errors, f"{path.relative_to(REPO)}:\n  " + "\n  ".join(errors)


@pytest.mark.parametrize("path", all_docs(), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(prose_of(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO)}")
    assert not broken, f"{path.relative_to(REPO)}:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("folder", [DOCS, INDONESIAN], ids=["en", "id"])
def test_the_index_links_every_guide(folder: Path) -> None:
    index = prose_of((folder / "README.md").read_text(encoding="utf-8"))
    linked = {Path(target.partition("#")[0]).name for target in LINK.findall(index)}
    missing = sorted(p.name for p in folder.glob("*.md") if p.name != "README.md" and p.name not in linked)
    assert not missing, f"{folder.relative_to(REPO)}/README.md does not link {missing}"


def rejection_reasons() -> set[str]:
    """The reason codes the mapping rejects with (the second argument of every ``Rejected(...)``), and the decode
    errors' class names, which are the reasons of what does not decode."""
    tree = ast.parse(Path(mapping_module.__file__).read_text(encoding="utf-8"))
    reasons = {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Rejected"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
    }
    assert reasons, "no Rejected(...) call found in streams/mapping.py"
    return reasons | {error.__name__ for error in DecodeError.__subclasses__()}


@pytest.mark.parametrize("folder", [DOCS, INDONESIAN], ids=["en", "id"])
def test_every_reason_code_is_documented(folder: Path) -> None:
    text = (folder / "rejections.md").read_text(encoding="utf-8")
    missing = sorted(reason for reason in rejection_reasons() if not in_code(reason, text))
    assert not missing, f"{folder.relative_to(REPO)}/rejections.md does not explain {missing}"


def mapping_keys() -> set[str]:
    keys = set()
    for model in (MappingFile, FieldSpec, Check, NikCheck, Aggregate):
        keys |= {field.alias or name for name, field in model.model_fields.items()}
    return keys


@pytest.mark.parametrize("folder", [DOCS, INDONESIAN], ids=["en", "id"])
def test_every_mapping_key_is_documented(folder: Path) -> None:
    text = (folder / "mapping.md").read_text(encoding="utf-8")
    missing = sorted(key for key in mapping_keys() if not in_code(key, text))
    assert not missing, f"{folder.relative_to(REPO)}/mapping.md has no `{'`, `'.join(missing)}`"


def test_the_command_finder_tells_a_command_from_a_name() -> None:
    """The checks above are only as good as the extraction: it must find commands and flag ones that do not exist."""
    text = (
        "```sh\n.venv/bin/satubus dataset test drafts/dlh/ritase.mapping.yaml --sample x.csv\n```\n"
        "`satubus dlq inspect --agency dlh`, `satubus agency credentials issue dlh`, `satubus upload --key id a.csv`,\n"
        "`satubus_api`, `satubus.cli`, `satubus-gateway`, `satubus/dataset.py`, `satubus agency enrol dlh`\n"
    )
    found: dict[str, str | None] = {}
    for code in code_of(text):
        for match in COMMAND.finditer(code):
            name, error = resolve(match.group(1).split())
            if name or error:
                found[name] = error
    assert {n for n, e in found.items() if e is None} == {
        "dataset test",
        "dlq inspect",
        "agency credentials issue",
        "upload",
    }
    assert [n for n, e in found.items() if e is not None] == ["agency"]
