"""Bare Starlette app of `benchmarks/bench_serving.py`: the HTTP ceiling on this machine, no model.

Run with `uvicorn _serving_floor:app --workers 2 --loop uvloop --http httptools` under the
project's interpreter. POST /v1/models/bc/predict parses the body as plinth does (orjson) and
answers one dummy label per instance; GET /readyz answers 200. No validation, no prediction,
no logging: what is left is the server stack, the JSON round trip and wrk on the same 2 cores.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON = "application/json"


async def predict(request: Request) -> Response:
    doc = orjson.loads(await request.body())
    return Response(orjson.dumps({"predictions": [0] * len(doc["instances"])}), media_type=JSON)


async def readyz(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type=JSON)


app = Starlette(
    routes=[
        Route("/v1/models/bc/predict", predict, methods=["POST"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
)
