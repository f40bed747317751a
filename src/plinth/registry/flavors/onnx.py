"""ONNX models (`onnx.ModelProto`), saved as `model.onnx` and run with ONNX Runtime."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput
from plinth.registry.flavors.base import Flavor, module_of

if TYPE_CHECKING:
    from plinth.registry.package import Package

MODEL_FILE = "model.onnx"
EXTERNAL_DATA = "model.onnx.data"
PROTOBUF_LIMIT = 2**31 - 1  # larger models keep their weights beside the graph

# ONNX Runtime's element types -> NumPy dtype names (inputs are cast to what the model declares).
ORT_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint64)": "uint64",
    "tensor(uint32)": "uint32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxFlavor(Flavor):
    """An `onnx.ModelProto`; loaded as an `onnxruntime.InferenceSession` (CUDA first where available).

    predict feeds the input to the model's single input (or a DataFrame's columns to the inputs
    of the same names) and returns the first output. predict_proba returns the second output
    when it holds probabilities, as skl2onnx classifiers' `output_probability` does.
    """

    name = "onnx"
    libraries = ("onnx", "onnxruntime")

    @classmethod
    def detect(cls, model: Any) -> bool:
        if module_of(model) != "onnx":
            return False
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        import onnx

        if options:
            raise InvalidInput(f"The onnx flavor takes no save options; remove {', '.join(sorted(options))}.")
        if not isinstance(model, onnx.ModelProto):
            raise InvalidInput(
                f"The onnx flavor saves an onnx.ModelProto, got {type(model).__name__}; "
                "load the model with onnx.load() first."
            )
        large = model.ByteSize() > PROTOBUF_LIMIT
        if large:
            _save_large(model, os.path.join(path, MODEL_FILE), onnx)
        else:
            _check(model, onnx)
            onnx.save_model(model, os.path.join(path, MODEL_FILE))
        return _describe(model, large)

    def load(self, package: Package) -> Any:
        import onnxruntime as ort

        meta = package.meta
        if "external_data" in meta:  # ONNX Runtime finds it beside the graph
            package.path(package.field("external_data"))
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        return ort.InferenceSession(package.path(package.field("file")), providers=providers)

    def predict(self, raw: Any, data: Any) -> Any:
        import numpy as np

        first = raw.get_outputs()[0].name
        return np.asarray(raw.run([first], _feeds(raw, data))[0])

    def has_proba(self, raw: Any) -> bool:
        return _proba_output(raw) is not None

    def predict_proba(self, raw: Any, data: Any) -> Any:
        output = _proba_output(raw)
        if output is None:
            raise InvalidInput("This ONNX model has no probability output; use predict.")
        return _as_matrix(raw.run([output], _feeds(raw, data))[0])


def _check(model: Any, onnx: Any) -> None:
    """InvalidInput when the ONNX checker rejects `model`."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidInput(f"This ONNX model is not valid: {exc}. Fix or re-export it.") from exc


def _save_large(model: Any, file: str, onnx: Any) -> None:
    """Save a model past protobuf's 2 GiB limit with its weights in one external file.

    onnx rewrites the tensors it moves out, so a copy is saved to leave the caller's model intact.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy, file, save_as_external_data=True, all_tensors_to_one_file=True, location=EXTERNAL_DATA
    )


def _describe(model: Any, large: bool) -> dict[str, Any]:
    """JSON-safe meta: files, graph input and output names, opset and IR version."""
    initializers = {t.name for t in model.graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    meta: dict[str, Any] = {
        "file": MODEL_FILE,
        "inputs": [i.name for i in model.graph.input if i.name not in initializers],
        "outputs": [o.name for o in model.graph.output],
        "opset": opset,
        "ir_version": model.ir_version,
    }
    if large:
        meta["external_data"] = EXTERNAL_DATA
    return meta


def _feeds(session: Any, data: Any) -> dict[str, Any]:
    """Map `data` onto the session's inputs, cast to the element types they declare."""
    import pandas as pd

    inputs = session.get_inputs()
    if isinstance(data, dict):
        return {i.name: _cast(_column(data, i.name), i) for i in inputs}
    if len(inputs) == 1:
        value = data.to_numpy() if isinstance(data, pd.DataFrame) else data
        return {inputs[0].name: _cast(value, inputs[0])}
    if not isinstance(data, pd.DataFrame):
        names = ", ".join(i.name for i in inputs)
        raise InvalidInput(
            f"This ONNX model has {len(inputs)} inputs ({names}); pass a DataFrame or a dict with one "
            "column per input, named as the inputs are."
        )
    return {i.name: _cast(_column(data, i.name), i, column=True) for i in inputs}


def _column(data: Any, name: str) -> Any:
    """`data[name]`, or InvalidInput naming the missing input."""
    if name not in data:
        raise InvalidInput(f"The ONNX model's input {name!r} is missing; add a column or key named {name!r}.")
    return data[name]


def _cast(value: Any, node: Any, column: bool = False) -> Any:
    """`value` as an ndarray of the input's element type; a column gets the input's rank."""
    import numpy as np

    dtype = ORT_DTYPES.get(node.type)
    array = np.asarray(value, dtype=dtype) if dtype else np.asarray(value)
    if dtype == "object":
        array = array.astype(str).astype(object)
    if column and len(node.shape) == 2 and array.ndim == 1:
        array = array.reshape(-1, 1)
    return array


def _proba_output(session: Any) -> str | None:
    """The name of the second output when it holds probabilities (a name with 'prob' or a map sequence)."""
    outputs = session.get_outputs()
    if len(outputs) < 2:
        return None
    second = outputs[1]
    return second.name if "prob" in second.name.lower() or second.type.startswith("seq(map") else None


def _as_matrix(value: Any) -> Any:
    """Probabilities as an (n, classes) ndarray, from a tensor or ZipMap's list of dicts."""
    import numpy as np

    if isinstance(value, list):
        if not value:
            return np.empty((0, 0), dtype=np.float32)
        classes = list(value[0])
        return np.array([[row[c] for c in classes] for row in value], dtype=np.float32)
    return np.asarray(value)
