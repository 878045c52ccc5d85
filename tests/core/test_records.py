"""References (`name`, `name@N`, `name@latest`, `name@alias`) and user-given names."""

from __future__ import annotations

import pytest

from shipyard.core.errors import Invalid
from shipyard.core.records import Ref, check_name


@pytest.mark.parametrize(
    ("text", "name", "version", "alias", "shown"),
    [
        ("loans", "loans", None, None, "loans@latest"),
        ("loans@3", "loans", 3, None, "loans@3"),
        ("loans@latest", "loans", None, None, "loans@latest"),
        ("m@champion", "m", None, "champion", "m@champion"),
        ("credit-risk.v2@12", "credit-risk.v2", 12, None, "credit-risk.v2@12"),
        ("  loans@3  ", "loans", 3, None, "loans@3"),
    ],
)
def test_parse(text: str, name: str, version: int | None, alias: str | None, shown: str) -> None:
    ref = Ref.parse(text)
    assert (ref.name, ref.version, ref.alias) == (name, version, alias)
    assert str(ref) == shown
    assert Ref.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"reference '' is not of the form NAME, NAME@N or NAME@latest\."),
        ("   ", r"reference '   ' is not of the form NAME, NAME@N or NAME@latest\."),
        ("@3", r"reference '@3' is not of the form NAME, NAME@N or NAME@latest\."),
        ("loans@", r"reference 'loans@' is not of the form NAME, NAME@N or NAME@latest\."),
        (
            "loans@0",
            r"reference 'loans@0': the part after '@' must be a version number \(1, 2, \.\.\.\), "
            r"'latest' or an alias, not '0'\.",
        ),
        ("loans@-1", r"reference 'loans@-1': the part after '@' must be a version number"),
        ("loans@3@4", r"reference 'loans@3@4': the part after '@' must be a version number"),
        ("loans@1.5", r"the part after '@' must be a version number .* not '1\.5'"),
        ("loans@²", r"the part after '@' must be a version number .* not '²'"),
        ("loans@\u0663", r"the part after '@' must be a version number"),  # Arabic-Indic 3
        ("../x@1", r"reference name '\.\./x' is not allowed: use 1-64 letters, digits"),
        ("a b", r"reference name 'a b' is not allowed: use 1-64 letters, digits"),
        ("loans\n@1", r"reference name 'loans\\n' is not allowed"),
        ("x" * 65 + "@1", r"reference name 'x{65}' is not allowed"),
    ],
)
def test_bad_refs_are_invalid_with_a_helpful_message(text: str, pattern: str) -> None:
    with pytest.raises(Invalid, match=pattern):
        Ref.parse(text)


def test_ref_parse_names_what_was_being_parsed() -> None:
    with pytest.raises(Invalid, match=r"^model name '9lives' is not allowed"):
        Ref.parse("9lives@2", what="model")


@pytest.mark.parametrize("name", ["loans", "a", "credit-risk", "Model_2.v1", "x" * 64, "A-._-"])
def test_check_name_accepts_and_returns(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1loans",
        "-x",
        "_x",
        ".hidden",
        "x" * 65,
        "a b",
        "a/b",
        "../x",
        "a\\b",
        "a@1",
        "loans\n",
        "loans\x00",
        "caf\u00e9",
        "\uff41bc",
    ],
)
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(
        Invalid,
        match=r"^dataset .* is not allowed: use 1-64 letters, digits, '_', '\.' or '-', "
        r"starting with a letter \(for example 'loans' or 'credit-risk'\)\.$",
    ) as info:
        check_name(name, what="dataset")
    assert repr(name) in info.value.message
