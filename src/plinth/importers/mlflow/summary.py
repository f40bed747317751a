"""What an import did: counts of what it wrote and what was there already, and what it left out."""

from __future__ import annotations

from dataclasses import dataclass, field

ENTITIES = (
    "experiments",
    "runs",
    "runs completed",
    "params",
    "tags",
    "metric points",
    "artifact files",
    "artifact bytes",
    "datasets",
    "dataset links",
    "logged models",
    "registered models",
    "model versions",
    "aliases",
)
"""What the summary counts, in the order it is shown. "runs completed": runs an earlier import
left unfinished (interrupted, or RUNNING in MLflow then), brought up to date."""


@dataclass
class ImportSummary:
    """Counts per entity (imported now, already in plinth) and the problems met, in order.

    A problem is one thing left out (a missing artifact folder, a model version whose files
    could not be found, a run the store refused), named so that it can be fixed; the rest of
    the import went on.
    """

    source: str
    imported: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _problem_groups: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _note_groups: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def add(self, entity: str, imported: int = 0, existing: int = 0) -> None:
        """Count `imported` new and `existing` already-there items of `entity` (one of ENTITIES)."""
        if entity not in ENTITIES:
            raise KeyError(f"unknown summary entity {entity!r}")
        self.imported[entity] = self.imported.get(entity, 0) + imported
        self.existing[entity] = self.existing.get(entity, 0) + existing

    def problem(self, text: str) -> None:
        """Record one thing left out, in words that say what and where."""
        self.problems.append(text)

    def note(self, text: str) -> None:
        """Record something worth knowing that left nothing out."""
        self.notes.append(text)

    def problem_of(self, kind: str, item: str) -> None:
        """Record one of many alike problems (`kind` says what, `item` which): shown as one line."""
        self._problem_groups.setdefault(kind, []).append(item)

    def note_of(self, kind: str, item: str) -> None:
        """Record one of many alike notes: shown as one line."""
        self._note_groups.setdefault(kind, []).append(item)

    def problem_lines(self) -> list[str]:
        """Every problem, alike ones as one line with their count and the first of them."""
        return self.problems + _grouped(self._problem_groups)

    def note_lines(self) -> list[str]:
        """Every note, alike ones as one line with their count and the first of them."""
        return self.notes + _grouped(self._note_groups)

    def rows(self) -> list[tuple[str, int, int]]:
        """(entity, imported, already there) for every entity counted, in ENTITIES order."""
        counted = self.imported.keys() | self.existing.keys()
        return [(e, self.imported.get(e, 0), self.existing.get(e, 0)) for e in ENTITIES if e in counted]

    def count(self, entity: str) -> int:
        """How many of `entity` this import wrote."""
        return self.imported.get(entity, 0)


def _grouped(groups: dict[str, list[str]]) -> list[str]:
    return [
        f"{kind}: {items[0]}" if len(items) == 1 else f"{kind}: {len(items)}, e.g. {items[0]}"
        for kind, items in groups.items()
    ]
