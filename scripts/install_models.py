"""Installs Gatehouse's ONNX Runtime library and default models from the pinned Python packages.

Run by scripts/setup.sh with the private virtual environment's Python:
    python install_models.py DATA_DIR
Everything is copied out of installed wheels; nothing is downloaded here.
"""

import json
import os
import pathlib
import shutil
import sys

import magika
import onnxruntime

MAGIKA_MODEL = "standard_v3_3"


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def install_runtime(data: pathlib.Path) -> None:
    capi = pathlib.Path(onnxruntime.__file__).parent / "capi"
    library = next(capi.glob("libonnxruntime.so.*"))
    target = data / "runtime" / library.name
    write_atomic(target, library.read_bytes())
    link = data / "runtime" / "libonnxruntime.so"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(library.name)


def install_magika(models: pathlib.Path) -> None:
    package = pathlib.Path(magika.__file__).parent
    source = package / "models" / MAGIKA_MODEL
    config = json.loads((source / "config.min.json").read_text())
    knowledge = json.loads((package / "config" / "content_types_kb.min.json").read_text())
    labels = config["target_labels_space"]
    write_atomic(models / "magika" / "1" / "model.onnx", (source / "model.onnx").read_bytes())
    lines = [
        "# Installed by Gatehouse setup from the magika " + magika.__version__ + " wheel.",
        "description = " + toml_string(
            "Magika content-type classifier (" + MAGIKA_MODEL + "): give it the first "
            + str(config["beg_size"]) + " and last " + str(config["end_size"])
            + " bytes of a file as INT32 values (pad with " + str(config["padding_token"])
            + "); it scores " + str(len(labels)) + " content types."
        ),
        "labels = [" + ", ".join(toml_string(label) for label in labels) + "]",
        "",
        "[notes]",
        "bytes = " + toml_string(
            "[batch, 2048] INT32: bytes 0-255 of the file's beginning, then of its end; 256 pads short files"
        ),
        "target_label = " + toml_string("[batch, " + str(len(labels)) + "] FP32 scores, in the order of labels"),
        "",
    ]
    write_atomic(models / "magika" / "config.toml", "\n".join(lines).encode())
    # The content types' descriptions, for people reading results (the panel's "try it").
    described = {label: knowledge.get(label, {}).get("description", label) for label in labels}
    write_atomic(models / "magika" / "labels.json", json.dumps(described, indent=1).encode())


def install_tiny(models: pathlib.Path) -> None:
    datasets = pathlib.Path(onnxruntime.__file__).parent / "datasets"
    write_atomic(models / "sigmoid" / "1" / "model.onnx", (datasets / "sigmoid.onnx").read_bytes())
    write_atomic(
        models / "sigmoid" / "config.toml",
        b'description = "Element-wise sigmoid of a [3, 4, 5] FP32 tensor, from the onnxruntime wheel: '
        b'a model that costs almost nothing, for measuring the server\'s own overhead."\n',
    )


def main() -> None:
    data = pathlib.Path(sys.argv[1])
    install_runtime(data)
    models = data / "models"
    install_magika(models)
    install_tiny(models)
    print("installed ONNX Runtime " + onnxruntime.__version__ + " and models magika, sigmoid into " + str(data))


if __name__ == "__main__":
    main()
