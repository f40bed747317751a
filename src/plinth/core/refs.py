"""References to numbered versions: `NAME`, `NAME/VERSION` and, for models, `NAME@ALIAS`.

One rule for every face (the registry, datasets, the CLI, lineage, monitoring, serving): a
reference splits on its last `@` (an alias) or on a final `/VERSION`; whatever comes before is
the name, which may itself hold `/` (`org/churn/3` is version 3 of `org/churn`). So a name may
not end in `/<number>` or hold `@`: such a name could never be referenced. `NAME@latest` is the
newest version, as is `NAME` alone. MLflow's `models:/NAME/3`, `models:/NAME@ALIAS` and
`models:/NAME/latest` read the same way.

A version is written in ASCII digits only (`str.isdigit()` also accepts '²' and '٣', which
`int()` then refuses), with no sign and no spaces, and is at most MAX_VERSION, the largest number
a store's version column holds. A final part that merely looks like a number ('-1', '²', ' 3')
is a bad version, not part of a name. A reference is text a store can hold: not blank, and no
lone surrogates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plinth.core.errors import InvalidInput
from plinth.core.validation import check_name

MAX_VERSION = 2**31 - 1
LATEST = "latest"
MLFLOW_PREFIX = "models:/"
MODEL_FORMS = "NAME, NAME/VERSION or NAME@ALIAS (e.g. 'churn', 'org/churn/3', 'churn@champion')"
DATASET_FORMS = "NAME or NAME/VERSION, e.g. digits-train/1"
_DIGITS = re.compile(r"[0-9]+")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_MLFLOW_STAGES = frozenset({"none", "staging", "production", "archived"})


@dataclass(frozen=True)
class ModelRef:
    """A model reference: a name and at most one of a version or an alias (neither: the newest).

    Example:
        >>> ModelRef.parse("org/churn/3")
        ModelRef(name='org/churn', version=3, alias=None)
        >>> str(ModelRef.parse("models:/churn@champion"))
        'churn@champion'

    Raises:
        InvalidInput: a name no reference could name, a bad version or alias, or both.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_ref_name(self.name, "model")
        if self.alias == LATEST:
            object.__setattr__(self, "alias", None)
        if self.alias is not None:
            check_alias(self.alias)
        if self.version is not None:
            _check_number(self.version, self.name)
            if self.alias is not None:
                raise InvalidInput(
                    f"A model reference names a version or an alias, not both "
                    f"(got version {self.version} and alias {self.alias!r} of {self.name!r})."
                )

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return self.name

    @property
    def moves(self) -> bool:
        """True when the version named can change: the newest version, or an alias."""
        return self.version is None

    @classmethod
    def parse(cls, ref: str | ModelRef) -> ModelRef:
        """Read `NAME`, `NAME/VERSION`, `NAME@ALIAS` or MLflow's `models:/…` forms.

        Raises:
            InvalidInput: the text is none of these; the message says which part is wrong.
        """
        if isinstance(ref, ModelRef):
            return ref
        text = check_ref(ref, "model", MODEL_FORMS)
        body = text[len(MLFLOW_PREFIX) :] if text.startswith(MLFLOW_PREFIX) else text
        name, at, alias = body.rpartition("@")
        if at:
            if name and split_version(name)[1] is not None:
                raise InvalidInput(
                    f"{text!r:.80} names both a version and an alias; use NAME/VERSION or NAME@ALIAS."
                )
            return cls(_named(name, text, "before its alias"), alias=alias)
        if body is not text:
            name, slash, last = body.rpartition("/")
            if slash and last == LATEST:
                return cls(_named(name, text, "before /latest"))
            if slash and last.lower() in _MLFLOW_STAGES:
                raise InvalidInput(
                    f"{text!r:.80} names an MLflow stage ({last}); plinth has aliases instead of "
                    f"stages: point one at a version (`plinth models alias {name} {last.lower()} "
                    f"VERSION`) and use 'models:/{name}@{last.lower()}'."
                )
        name, version = split_version(body)
        return cls(_named(name, text, "before its version"), version=version)


@dataclass(frozen=True)
class DatasetRef:
    """A dataset reference: a name and, optionally, a version (none: the newest).

    Example:
        >>> DatasetRef.parse("org/churn/3")
        DatasetRef(name='org/churn', version=3)

    Raises:
        InvalidInput: a name no reference could name, or a bad version.
    """

    name: str
    version: int | None = None

    def __post_init__(self) -> None:
        check_ref_name(self.name, "dataset")
        if self.version is not None:
            _check_number(self.version, self.name)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}/{self.version}"

    @classmethod
    def parse(cls, ref: str | DatasetRef) -> DatasetRef:
        """Read `NAME`, `NAME/VERSION` or `NAME@latest` (datasets have no other aliases).

        Raises:
            InvalidInput: the text is none of these.
        """
        if isinstance(ref, DatasetRef):
            return ref
        text = check_ref(ref, "dataset", DATASET_FORMS)
        name, at, alias = text.rpartition("@")
        if at:
            if alias != LATEST:
                raise InvalidInput(
                    f"Datasets have no aliases, so {text!r:.80} names nothing; use {DATASET_FORMS}."
                )
            return cls(_named(name, text, "before @latest"))
        name, version = split_version(text)
        return cls(_named(name, text, "before its version"), version=version)


def check_ref_name(name: object, what: str) -> str:
    """Validate a model or dataset name: one every reference can name.

    Parts are separated by single `/` (`org/churn`); none is empty, `.` or `..`, the last is
    not a number (`churn/3` is a reference to version 3), and `@` (which starts an alias) is
    not used.

    Raises:
        InvalidInput: the name breaks one of these rules or those of `check_name`.
    """
    name = check_name(name, what)
    parts = name.split("/")
    label = f"{what.capitalize()} name {name!r:.80}"
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(
            f"{label} has an empty, '.' or '..' part; separate parts with single '/', "
            "neither leading nor trailing, e.g. 'org/churn'."
        )
    if "@" in name:
        raise InvalidInput(f"{label} may not contain '@', which starts an alias; use e.g. 'org/churn'.")
    if len(parts) > 1 and _looks_numeric(parts[-1]):
        raise InvalidInput(
            f"{label} would be read as a reference NAME/VERSION; use a name that does not end "
            "in '/<number>', e.g. 'org/churn' or 'digits-train'."
        )
    return name


def check_alias(alias: object) -> str:
    """Validate an alias: a word starting with a letter (not a number, not 'latest').

    Raises:
        InvalidInput: anything else.
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias == LATEST:
        raise InvalidInput(
            f"Alias {alias!r:.80} is not valid: use letters, digits, '_', '.', '-', starting with a "
            "letter (e.g. 'champion'); 'latest' is reserved."
        )
    return alias


def check_ref(ref: object, what: str, forms: str) -> str:
    """Return `ref` when it is text a store can look up; InvalidInput naming `forms` otherwise.

    Args:
        ref: the reference as given.
        what: what it names ("model", "dataset"), for the message.
        forms: the accepted forms, e.g. "'name', 'name/VERSION' or 'name@ALIAS'".
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"A {what} reference must be {forms}, got {ref!r:.80}.")
    try:
        ref.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"The {what} reference {ref!r:.80} holds a lone surrogate, which no store can hold; "
            "use printable text."
        ) from exc
    return ref


def is_version(text: str) -> bool:
    """True when `text` is written as a version number (ASCII digits), whatever its size."""
    return _DIGITS.fullmatch(text) is not None


def parse_version(text: str, ref: str) -> int:
    """The version number `text` spells (1 to MAX_VERSION); `ref` is the whole reference, for messages.

    Raises:
        InvalidInput: not ASCII digits, zero, or past MAX_VERSION.
    """
    if not is_version(text) or not text.strip("0"):
        raise InvalidInput(f"The version in {ref!r:.80} must be a positive whole number, e.g. 3.")
    digits = text.lstrip("0")
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        raise InvalidInput(
            f"The version in {ref!r:.80} is larger than any version can be (at most {MAX_VERSION})."
        )
    return int(digits)


def split_version(ref: str) -> tuple[str, int | None]:
    """('NAME', N) for 'NAME/N' whose last part is written as a number, else (ref, None).

    Raises:
        InvalidInput: the last part looks like a number but is not a valid version (0, too
            large, signed, not ASCII digits), is empty, or nothing comes before it.
    """
    name, slash, number = ref.rpartition("/")
    if slash and not number:
        raise InvalidInput(
            f"The reference {ref!r:.80} ends with '/'; write NAME/VERSION, or NAME for the newest version."
        )
    if not slash or not _looks_numeric(number):
        return ref, None
    version = parse_version(number, ref)
    if not name:
        raise InvalidInput(f"The reference {ref!r:.80} has no name before its version; use NAME/VERSION.")
    return name, version


def version_text(version: int) -> str:
    """A version number as a message shows it; one past what any store holds is not spelled out."""
    if -MAX_VERSION <= version <= MAX_VERSION:
        return str(version)
    return f"{'below -' if version < 0 else 'above '}{MAX_VERSION}"


def _named(name: str, ref: str, where: str) -> str:
    if not name:
        raise InvalidInput(
            f"The reference {ref!r:.80} has no name {where}; e.g. 'churn/3' or 'churn@champion'."
        )
    return name


def _looks_numeric(part: str) -> bool:
    """True for a part meant as a number, well written or not ('3', '-1', ' 3', '1_000', '²')."""
    core = part.strip().lstrip("+-").replace("_", "")
    return bool(core) and core.isdigit()


def _check_number(version: object, name: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(
            f"The version of {name!r:.80} must be a whole number from 1 to {MAX_VERSION}, "
            f"got {version!r:.40}."
        )
