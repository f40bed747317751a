"""What the server's OpenAPI document says of its request bodies, headers and answers.

The routes parse bodies themselves (one pass, every problem listed); these schemas describe
the same wire format for clients and for the fuzz tests that hold the server to it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from plinth.core.validation import MAX_ID
from plinth.serving.body import JSON

ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID}


class PredictResponse(BaseModel):
    """What a prediction request returns."""

    predictions: list[Any]
    model: str
    version: int
    request_id: str


class ErrorBody(BaseModel):
    """What a refused request returns: the reason and, for bad input, each problem."""

    error: str
    problems: list[dict[str, str]] = []


PREDICT_BODY = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["instances"],
                        "properties": {
                            "instances": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                            "subject_id": ID_SCHEMA,
                            "output": {"type": "string", "enum": ["predict", "proba"]},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array"}, "minItems": 1},
                            "subject_id": ID_SCHEMA,
                            "output": {"type": "string", "enum": ["predict", "proba"]},
                        },
                    },
                ]
            },
            "example": {"instances": [{"feature_a": 1.0, "feature_b": 2.5}]},
        }
    },
}

ID_HEADERS = [
    {
        "name": "x-request-id",
        "in": "header",
        "required": False,
        "description": "Your id for this request, 1 to 128 printable characters (a UUID, say); "
        "one is made when absent. Labels join predictions by it.",
        "schema": ID_SCHEMA,
    },
    {
        "name": "x-subject-id",
        "in": "header",
        "required": False,
        "description": "Whose data this is (1 to 128 printable characters), so it can be erased; "
        '"subject_id" in the body takes precedence.',
        "schema": ID_SCHEMA,
    },
]


class ReadyBody(BaseModel):
    """What `/readyz` returns once the models are loaded: `degraded` maps a part (prediction_logs,
    audit, alias_watch) to why it works only in part; empty while everything works."""

    status: str
    degraded: dict[str, str]


class LabelsResponse(BaseModel):
    """What a labels request returns."""

    model: str
    stored: int


LABELS_BODY = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["labels"],
                "properties": {
                    "labels": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["request_id", "label"],
                            "properties": {
                                "request_id": ID_SCHEMA,
                                "label": {},
                                "subject_id": ID_SCHEMA,
                            },
                        },
                    }
                },
            },
            "example": {"labels": [{"request_id": "01J9Z8…", "label": 1}]},
        }
    },
}
