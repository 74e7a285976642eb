"""docs/contract.md is generated from the models; a change to the contract must regenerate it."""

from pathlib import Path

from ratio_zoom.contract.schema_doc import render


def test_contract_doc_is_current() -> None:
    path = Path(__file__).resolve().parent.parent / "docs" / "contract.md"
    assert path.read_text() == render(), "run: python -m ratio_zoom.contract.schema_doc > docs/contract.md"
