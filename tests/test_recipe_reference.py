"""docs/recipes.md is generated from the recipe schema and must stay equal to it."""

from __future__ import annotations

import re
from pathlib import Path

from bigmodel.recipes.finetune_schema import FinetuneRecipe
from bigmodel.recipes.reference import field_paths, recipe_reference_markdown, schema_fields
from bigmodel.recipes.schema import Recipe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
REGENERATE = "python -m bigmodel.recipes.reference > docs/recipes.md"


def test_committed_page_equals_the_generated_text():
    assert DOCS.is_file(), f"docs/recipes.md is missing; write it with: {REGENERATE}"
    assert DOCS.read_text(encoding="utf-8") == recipe_reference_markdown(), (
        f"docs/recipes.md is out of date with the recipe schema; regenerate it with: {REGENERATE}")


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows of the page by key path: [type, default, meaning]."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if match:
            cells = re.split(r"(?<!\\) \| ", match.group(2))
            rows[match.group(1)] = cells
    return rows


def test_every_field_appears_with_type_default_and_meaning():
    text = recipe_reference_markdown()
    rows = _rows(text)
    paths = set(field_paths(Recipe)) | set(field_paths(FinetuneRecipe))
    sections = {"model", "data", "train", "output"}  # top-level sections: one heading each
    for name in sections:
        assert f"\n## `{name}`\n" in text, name
    paths -= sections
    assert {"train.epochs", "data.speech.sample_rate", "data.augment[].name",
            "finetune.lora.rank", "data.classes"} <= paths  # nested, list items, fine-tuning keys
    missing = sorted(paths - set(rows))
    assert not missing, f"keys absent from the page: {missing}"
    for path in paths:
        kind, default, meaning = rows[path]
        assert kind.strip("`") and default and meaning.strip(), path
    assert rows["train.epochs"][:2] == ["`int (≥ 1)`", "`5`"]
    assert rows["train.precision"][0] == '`"fp32" \\| "bf16" \\| "fp16"`'
    assert rows["data.augment[].name"][1] == "required"
    assert rows["finetune.lora.alpha"][1] == "`16.0`"


def test_every_schema_field_has_a_description():
    """A key added without ``description=`` would reach the page with no meaning: refused here."""
    for model in (Recipe, FinetuneRecipe):
        bare = [path for path, info in schema_fields(model) if not info.description]
        assert not bare, f"recipe fields without description=: {bare}"


def test_defaults_on_the_page_are_the_schema_defaults():
    rows = _rows(recipe_reference_markdown())
    recipe = Recipe()
    assert rows["train.lr"][1] == f"`{recipe.train.lr!r}`"
    assert rows["train.batch_size"][1] == f"`{recipe.train.batch_size}`"
    assert rows["model.name"][1] == f'`"{recipe.model.name}"`'
    assert rows["output.name"][1] == "`null`"
