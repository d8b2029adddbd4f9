#!/usr/bin/env python3
"""Checks the JSON Schemas in this folder against the shared corpus.

    python docs/schema/check.py [corpus.json] [-v]

Each case of the corpus (default: corpus.json beside this file) is validated with jsonschema's
Draft202012Validator (with a FormatChecker) against <kind>.v1.json beside this file. A line is
printed for each case whose schema verdict disagrees with its `valid`; -v also prints why the
schema rejects each invalid case. Exits 1 if any case disagrees (or the corpus is malformed).
The Rust tests decode the same cases with the real decoder, so the two stay in step.

Needs the `jsonschema` package (scripts/lib.sh installs it into .sitrep/venv).
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker

HERE = pathlib.Path(__file__).resolve().parent
KINDS = ("report", "outage", "maintenance")


def load_validators():
    validators = {}
    for kind in KINDS:
        schema = json.loads((HERE / f"{kind}.v1.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        validators[kind] = Draft202012Validator(schema, format_checker=FormatChecker())
    return validators


def malformed(i, case):
    """Why a corpus entry is not a well-formed case, or None."""
    if not isinstance(case, dict):
        return f"case {i} is not an object"
    for key in ("name", "kind", "payload", "valid"):
        if key not in case:
            return f"case {i} has no {key!r}"
    if case["kind"] not in KINDS:
        return f"case {i} ({case['name']}) has kind {case['kind']!r}; expected one of {', '.join(KINDS)}"
    if not isinstance(case["valid"], bool):
        return f"case {i} ({case['name']}): valid must be true or false"
    if not case["valid"] and not isinstance(case.get("field"), str):
        return f"case {i} ({case['name']}) is invalid but names no field"
    return None


def first_error(validator, payload):
    errors = sorted(validator.iter_errors(payload), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return None
    e = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".") or "(top)"
    return f"{where}: {e.message[:200]}"


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    path = pathlib.Path(args[0]) if args else HERE / "corpus.json"
    cases = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(cases, list):
        print(f"{path}: the corpus must be a JSON array of cases", file=sys.stderr)
        return 1

    validators = load_validators()
    disagree = 0
    for i, case in enumerate(cases):
        problem = malformed(i, case)
        if problem:
            print(f"MALFORMED {problem}")
            disagree += 1
            continue
        validator = validators[case["kind"]]
        schema_valid = validator.is_valid(case["payload"])
        if schema_valid != case["valid"]:
            disagree += 1
            if case["valid"]:
                print(f"DISAGREE {case['kind']} #{i} {case['name']!r}: valid, but the schema rejects it: "
                      f"{first_error(validator, case['payload'])}")
            else:
                print(f"DISAGREE {case['kind']} #{i} {case['name']!r}: invalid ({case['field']}), "
                      f"but the schema accepts it")
        elif verbose and not case["valid"]:
            print(f"ok {case['kind']} #{i} {case['field']}: {first_error(validator, case['payload'])}")

    print(f"schema: {len(cases)} cases, {disagree} disagree")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
