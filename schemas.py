"""Request and response shapes. Validation lives here, on the fields, once."""

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models import DESCRIPTION_MAX, TITLE_MAX

MAX_BIGINT = 2**63 - 1

# NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded as UTF-8. Both
# would otherwise surface as a driver error (a 500), so they are input errors here.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise PydanticCustomError(
            "unstorable_character",
            "must not contain NUL characters or unpaired surrogates",
        )
    return value


def _title(value: str) -> str:
    value = _storable(value).strip()
    if not 1 <= len(value) <= TITLE_MAX:
        raise PydanticCustomError(
            "title_length",
            "must be 1 to {max} characters after trimming surrounding whitespace",
            {"max": TITLE_MAX},
        )
    if not any(char.isprintable() and not char.isspace() for char in value):
        # e.g. only zero-width spaces: a title nobody could see or click.
        raise PydanticCustomError("title_invisible", "must contain a visible character")
    return value


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > DESCRIPTION_MAX:
        raise PydanticCustomError(
            "description_length",
            "must be at most {max} characters",
            {"max": DESCRIPTION_MAX},
        )
    return _storable(value)


Title = Annotated[
    StrictStr,
    AfterValidator(_title),
    Field(
        examples=["Buy milk"],
        description=f"1 to {TITLE_MAX} characters after trimming surrounding whitespace",
    ),
]
Description = Annotated[
    StrictStr | None,
    AfterValidator(_description),
    Field(description=f"At most {DESCRIPTION_MAX:,} characters; null: no description"),
]


def _never_null(schema: dict[str, Any]) -> None:
    """Document an optional field as optional only: absent is allowed, null is not (the
    validators say so with a 400). Python still sees ``None`` for "absent"."""
    options = schema.pop("anyOf", None)
    if options is not None:
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    schema.pop("default", None)


class _Body(BaseModel):
    # Frontends send whole task objects (priority, due_date, id, user_id, ...): unknown fields are
    # ignored, and identity or timestamps in a body can never change anything.
    model_config = ConfigDict(extra="ignore")


class TaskCreate(_Body):
    title: Title
    description: Description = None
    completed: StrictBool = False


class TaskUpdate(_Body):
    """Partial update (PUT and PATCH alike): only the fields sent change.

    ``description: null`` clears the description; ``title`` and ``completed`` cannot be null.
    """

    # Optional, never null (documented so): absent means unchanged, null is a 400.
    title: Title | None = Field(default=None, json_schema_extra=_never_null)
    description: Description = None
    completed: StrictBool | None = Field(default=None, json_schema_extra=_never_null)

    @field_validator("title", "completed", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields that were sent: absent means "unchanged", null is an error.
        if value is None:
            raise PydanticCustomError(
                "null_not_allowed", "cannot be null; omit it to leave it unchanged"
            )
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


COMPLETION_BODY = (
    'send no body or {} to toggle, or {"completed": true} or {"completed": false} to set'
)


class TaskCompletion(BaseModel):
    """Body of PATCH .../complete: ``{"completed": true|false}`` sets the state; no body or
    ``{}`` toggles it. Nothing else is guessed at: a typo (``{"done": true}``), a null or a
    string must not silently toggle a task the other way, so each is a 400 that names the body
    to send."""

    model_config = ConfigDict(extra="forbid")

    # Documented as an optional boolean (never null): absent toggles.
    completed: StrictBool | None = Field(default=None, json_schema_extra=_never_null)

    @model_validator(mode="before")
    @classmethod
    def _exactly_completed(cls, data: Any) -> Any:
        if isinstance(data, dict) and (
            data.keys() - {"completed"}
            or ("completed" in data and not isinstance(data["completed"], bool))
        ):
            raise PydanticCustomError("completion_body", COMPLETION_BODY)
        return data


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str
    # Validation errors only; absent otherwise (never null).
    errors: list[ErrorItem] | None = Field(default=None, json_schema_extra=_never_null)


# ---- listing -----------------------------------------------------------------------------------


def _true_or_false(value: object) -> object:
    # pydantic would also take yes/no, on/off, 1/0, t/f: the contract says true or false.
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "must be true or false")
        return value.lower() == "true"
    return value


SortKey = Literal["created", "updated", "title"]
StatusValue = Literal["all", "pending", "completed"]
# Each key's natural direction: dates newest first, titles A to Z. "-key" or order=desc sorts
# descending, order=asc ascending.
_SORT_KEYS: dict[str, SortKey] = {"created": "created", "updated": "updated", "title": "title"}
_NATURAL_DESCENDING: dict[str, bool] = {
    "created": True,
    "updated": True,
    "title": False,
}


NOT_OUR_CURSOR = "cursor is not one this API issued"
MAX_OFFSET = 10_000
SEARCH_MAX = 200


class Cursor(BaseModel):
    """Position after the last row of a page: its sort value and id, plus what it was sorted by."""

    model_config = ConfigDict(extra="forbid")

    sort: SortKey
    desc: bool
    status: StatusValue
    value: datetime | str
    id: int = Field(ge=1, le=MAX_BIGINT)

    @model_validator(mode="before")
    @classmethod
    def _typed_value(cls, data: Any) -> Any:
        # JSON carries the value as a string; its type follows the sort key.
        if isinstance(data, dict) and data.get("sort") in ("created", "updated"):
            value = data.get("value")
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise ValueError("a date cursor needs a timezone-aware timestamp")
            try:
                data = {**data, "value": moment.astimezone(UTC)}
            except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is before year 1 in UTC
                raise ValueError("cursor timestamp out of range") from None
        return data

    @model_validator(mode="after")
    def _value_fits_sort(self) -> Self:
        if (self.sort == "title") != isinstance(self.value, str):
            raise ValueError("cursor value does not fit its sort key")
        if isinstance(self.value, str):
            _storable(self.value)
        return self

    def encode(self) -> str:
        raw = self.model_dump_json().encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return cls.model_validate(json.loads(raw))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            # ValidationError is a ValueError: every malformed cursor lands here.
            raise PydanticCustomError("cursor_invalid", NOT_OUR_CURSOR) from None


class TaskListQuery(BaseModel):
    """Query parameters of GET /api/tasks, with the aliases frontends already send."""

    model_config = ConfigDict(extra="ignore")

    status: StatusValue | None = Field(default=None, description="all, pending or completed")
    status_filter: StatusValue | None = Field(default=None, description="alias of status")
    completed: Annotated[bool | None, BeforeValidator(_true_or_false)] = Field(
        default=None, description="true = completed, false = pending"
    )
    sort: Literal["created", "updated", "title", "-created", "-updated", "-title"] | None = Field(
        default=None,
        description="created (default, newest first), updated or title; '-' = descending",
    )
    order: Literal["asc", "desc"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(
        default=0,
        ge=0,
        description=f"at most {MAX_OFFSET:,}; deeper pages: follow the Link header's cursor",
    )
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="opaque; from the Link: rel=next header",
    )
    search: str | None = Field(
        default=None,
        description=(
            f"case-insensitive text to find in title or description (at most {SEARCH_MAX} "
            "characters; empty: no search)"
        ),
    )

    @field_validator("offset", mode="after")
    @classmethod
    def _shallow_offset(cls, value: int) -> int:
        # Every skipped row is read: deep pages go by the keyset cursor, which costs the same
        # on page 200 as on page 1 (issue 15: a deep offset let one user starve the others).
        if value > MAX_OFFSET:
            raise PydanticCustomError(
                "offset_too_deep",
                "must be at most {max}; for deeper pages follow the cursor in the Link header "
                '(rel="next"), which has no limit',
                {"max": MAX_OFFSET},
            )
        return value

    @field_validator("search", mode="after")
    @classmethod
    def _search_text(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # an empty search box: every task
        if len(value) > SEARCH_MAX:
            raise PydanticCustomError(
                "search_length", "must be at most {max} characters", {"max": SEARCH_MAX}
            )
        return _storable(value.strip())

    _position: "Cursor | None" = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        wanted = {s for s in (self.status, self.status_filter) if s is not None}
        if self.completed is not None:
            wanted.add("completed" if self.completed else "pending")
        if len(wanted) > 1:
            raise PydanticCustomError(
                "conflicting_filters", "status, status_filter and completed disagree"
            )
        if self.sort and self.sort.startswith("-") and self.order == "asc":
            raise PydanticCustomError(
                "conflicting_sort",
                "sort={sort} is descending but order=asc",
                {"sort": self.sort},
            )
        if self.cursor is not None:
            if self.offset:
                raise PydanticCustomError(
                    "conflicting_paging", "use either cursor or offset, not both"
                )
            self._position = self._check_cursor(Cursor.decode(self.cursor))
        return self

    def _check_cursor(self, cursor: "Cursor") -> "Cursor":
        if (cursor.sort, cursor.desc, cursor.status) != (
            self.sort_key,
            self.descending,
            self.status_value,
        ):
            raise PydanticCustomError(
                "cursor_mismatch",
                "cursor was issued for a different sort, order or status filter",
            )
        return cursor

    @property
    def position(self) -> "Cursor | None":
        """Where this page starts (after the cursor's row), or None for the first page."""
        return self._position

    @property
    def status_value(self) -> StatusValue:
        return (
            self.status
            or self.status_filter
            or ("all" if self.completed is None else "completed" if self.completed else "pending")
        )

    @property
    def sort_key(self) -> SortKey:
        return _SORT_KEYS[(self.sort or "created").lstrip("-")]

    @property
    def descending(self) -> bool:
        if self.sort and self.sort.startswith("-"):
            return True
        if self.order is not None:
            return self.order == "desc"
        return _NATURAL_DESCENDING[self.sort_key]


def _not_nullable(field: dict[str, Any]) -> dict[str, Any]:
    """A query string cannot carry null: an optional parameter is absent, never null."""
    options = field.get("anyOf", [])
    if {"type": "null"} not in options:
        return field
    rest = [option for option in options if option != {"type": "null"}]
    plain = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    return plain | (rest[0] if len(rest) == 1 else {"anyOf": rest})


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects for a model read from the query string, as FastAPI would
    write them for ``Annotated[model, Query()]``."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, declared in schema["properties"].items():
        field = _not_nullable(declared)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
        }
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters
