"""Validates every object of a `gatehouse export kubernetes` directory offline.

Core objects go through kubernetes-validate's strict schemas for the Kubernetes versions given;
KServe and cert-manager objects through their CRDs' schemas (schemas/), made strict. Prints one
JSON report; exits 1 when any object fails."""

import copy
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).parent
CUSTOM = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-serving.kserve.io-v1beta1.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-serving.kserve.io-v1alpha1.json",
    ("cert-manager.io/v1", "Certificate"): "certificate-cert-manager.io-v1.json",
}


def strict(schema):
    """Unknown fields are errors, as with `kubectl apply --validate=strict`, except where the CRD
    itself keeps them (x-kubernetes-preserve-unknown-fields) or takes any key (a map)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def custom_validator(file_name):
    schema = strict(json.loads((HERE / "schemas" / file_name).read_text()))
    # The CRD schema says only `metadata: object`; the API server checks it as ObjectMeta.
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name", "namespace"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    return jsonschema.Draft7Validator(schema)


def main(directory, versions):
    validators = {key: custom_validator(name) for key, name in CUSTOM.items()}
    report = {"files": 0, "objects": 0, "kinds": {}, "versions": versions, "errors": [], "embedded": {}}
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        report["files"] += 1
        for index, obj in enumerate(yaml.safe_load_all(path.read_text())):
            if obj is None:
                continue
            report["objects"] += 1
            kind = obj.get("kind", "?")
            report["kinds"][kind] = report["kinds"].get(kind, 0) + 1
            where = f"{path.name} #{index} {kind}/{obj.get('metadata', {}).get('name')}"
            # The files a ConfigMap or Secret carries, as a YAML reader sees them, for the test
            # to check that Gatehouse reads them back.
            for field in ("data", "stringData"):
                if kind in ("ConfigMap", "Secret") and isinstance(obj.get(field), dict):
                    report["embedded"][f"{kind}/{obj['metadata']['name']}"] = obj[field]
            key = (obj.get("apiVersion"), kind)
            if key in validators:
                for error in validators[key].iter_errors(copy.deepcopy(obj)):
                    field = ".".join(str(p) for p in error.absolute_path)
                    report["errors"].append(f"{where}: {field}: {error.message}")
                continue
            for version in versions:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    field = ".".join(str(p) for p in error.path)
                    report["errors"].append(f"{where} (Kubernetes {version}): {field}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    report["errors"].append(f"{where}: no schema for {key[0]} {kind}")
    print(json.dumps(report, indent=2))
    return 1 if report["errors"] or report["objects"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:] or ["1.30.0", "1.37.0"]))
