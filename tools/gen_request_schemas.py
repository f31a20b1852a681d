#!/usr/bin/env python3
"""Generate broker/src/protocol/schemas.rs, the request layout table the request guard
interprets (broker/src/protocol/guard.rs).

The source of truth is Apache Kafka's own message schemas (common/message/*.json) as
shipped inside the kafka-clients jar. The jar is read in place from the local Maven
repository; nothing from it is copied into this repository, only the layout facts the
guard needs (types, version ranges, tags).

    mvn -q dependency:get -Dartifact=org.apache.kafka:kafka-clients:4.4.0 -Dtransitive=false
    python3 tools/gen_request_schemas.py           # rewrite the table
    python3 tools/gen_request_schemas.py --check   # exit 1 if the committed table is stale

Every version the broker advertises (shared/KAFKA-COMPAT.md) is still described by the
4.4.0 schemas, so every range in the table comes from that one jar. Produce v0-2 are gone
from them (KIP-896); the broker refuses those versions before decoding anyway. Where the
4.4.0 and 3.9.1 schemas both list a version, they describe the same layout (compared
field by field when this table was introduced), so older clients are read correctly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

KAFKA_CLIENTS_VERSION = "4.4.0"

# The request APIs the guard lets through, one line each:
# (api key, name, highest version the broker's decoder, the kafka-protocol 0.18 crate,
# can decode). The table holds the schema's stable versions up to that cap; anything
# else is answered UNSUPPORTED_VERSION without being decoded.
APIS: list[tuple[int, str, int]] = [
    (0, "Produce", 13),
    (1, "Fetch", 18),
    (2, "ListOffsets", 10),
    (3, "Metadata", 13),
    (8, "OffsetCommit", 9),
    (9, "OffsetFetch", 9),
    (10, "FindCoordinator", 6),
    (11, "JoinGroup", 9),
    (12, "Heartbeat", 4),
    (13, "LeaveGroup", 5),
    (14, "SyncGroup", 5),
    (15, "DescribeGroups", 6),
    (16, "ListGroups", 5),
    (17, "SaslHandshake", 1),
    (18, "ApiVersions", 4),
    (19, "CreateTopics", 7),
    (20, "DeleteTopics", 6),
    (21, "DeleteRecords", 2),
    (22, "InitProducerId", 5),
    (23, "OffsetForLeaderEpoch", 4),
    (24, "AddPartitionsToTxn", 5),
    (25, "AddOffsetsToTxn", 4),
    (26, "EndTxn", 5),
    (28, "TxnOffsetCommit", 5),
    (29, "DescribeAcls", 3),
    (30, "CreateAcls", 3),
    (31, "DeleteAcls", 3),
    (32, "DescribeConfigs", 4),
    (33, "AlterConfigs", 2),
    (35, "DescribeLogDirs", 4),
    (36, "SaslAuthenticate", 2),
    (37, "CreatePartitions", 3),
    (42, "DeleteGroups", 2),
    (43, "ElectLeaders", 2),
    (44, "IncrementalAlterConfigs", 1),
    (45, "AlterPartitionReassignments", 1),
    (46, "ListPartitionReassignments", 0),
    (47, "OffsetDelete", 0),
    (48, "DescribeClientQuotas", 1),
    (50, "DescribeUserScramCredentials", 0),
    (51, "AlterUserScramCredentials", 0),
    (60, "DescribeCluster", 2),
    (61, "DescribeProducers", 0),
    (64, "UnregisterBroker", 0),
    (65, "DescribeTransactions", 0),
    (66, "ListTransactions", 2),
    (75, "DescribeTopicPartitions", 0),
]

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "broker" / "src" / "protocol" / "schemas.rs"

OPEN = 0x7FFF  # i16::MAX: "N+" ranges are open-ended

PRIMITIVES = {
    "bool": "Bool",
    "int8": "I8",
    "int16": "I16",
    "uint16": "U16",
    "int32": "I32",
    "int64": "I64",
    "float64": "F64",
    "uuid": "Uuid",
    "string": "Str",
    "bytes": "Bytes",
    "records": "Records",
}

# Field attributes that do not change the wire layout.
LAYOUT_FREE_KEYS = {"about", "default", "ignorable", "entityType", "mapKey", "zeroCopy"}
LAYOUT_KEYS = {
    "name",
    "type",
    "versions",
    "fields",
    "nullableVersions",
    "taggedVersions",
    "tag",
    "flexibleVersions",
}


class SchemaError(Exception):
    pass


def jar_path(version: str) -> Path:
    m2 = Path(os.environ.get("M2_REPO", Path.home() / ".m2" / "repository"))
    return m2 / "org/apache/kafka/kafka-clients" / version / f"kafka-clients-{version}.jar"


def strip_comments(text: str) -> str:
    """Drop `//` comments outside string literals (the schemas carry licence headers and
    notes; string values may contain `//` inside URLs)."""
    out = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def load_schema(jar: zipfile.ZipFile, name: str) -> dict:
    return json.loads(strip_comments(jar.read(f"common/message/{name}.json").decode("utf-8")))


def parse_versions(spec: str | None, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """'3' -> (3, 3), '3-7' -> (3, 7), '3+' -> (3, OPEN), 'none' -> empty range."""
    if spec is None:
        if default is None:
            raise SchemaError("missing version range")
        return default
    spec = spec.strip()
    if spec == "none":
        return (1, 0)
    if spec.endswith("+"):
        return (int(spec[:-1]), OPEN)
    if "-" in spec:
        lo, hi = spec.split("-")
        return (int(lo), int(hi))
    return (int(spec), int(spec))


def rust_range(r: tuple[int, int]) -> str:
    if r[0] > r[1]:
        return "NONE"
    hi = "X" if r[1] == OPEN else str(r[1])
    return f"V({r[0]}, {hi})"


def upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


class Emitter:
    """Turns one message schema into Rust constants, one per struct, children first."""

    def __init__(self, prefix: str, common: dict[str, list]):
        self.prefix = prefix
        self.common = common
        self.consts: list[str] = []
        self.seen: dict[str, str] = {}

    def struct_const(self, type_name: str, fields: list) -> str:
        const = f"{self.prefix}_{upper_snake(type_name)}"
        if const in self.seen:
            return const
        self.seen[const] = const
        body = self.fields(fields, type_name)
        self.consts.append(f"const {const}: &[Field] = &[\n{body}];\n")
        return const

    def element_type(self, type_name: str, field: dict) -> str:
        if type_name in PRIMITIVES:
            if "fields" in field:
                raise SchemaError(f"{field['name']}: primitive array with fields")
            return PRIMITIVES[type_name]
        fields = field.get("fields")
        if fields is None:
            fields = self.common.get(type_name)
            if fields is None:
                raise SchemaError(f"{field['name']}: unknown struct type {type_name}")
        return f"Struct({self.struct_const(type_name, fields)})"

    def field_type(self, field: dict) -> str:
        t = field["type"]
        if t.startswith("[]"):
            return f"Array(&{self.element_type(t[2:], field)})"
        if t in PRIMITIVES:
            return PRIMITIVES[t]
        # A nullable plain struct (DescribeTopicPartitions' Cursor) carries a presence
        # byte before it; the guard reads it from the field's nullable range.
        return self.element_type(t, field)

    def fields(self, fields: list, owner: str) -> str:
        lines = []
        for field in fields:
            unknown = set(field) - LAYOUT_KEYS - LAYOUT_FREE_KEYS
            if unknown:
                raise SchemaError(f"{owner}.{field['name']}: unknown attributes {sorted(unknown)}")
            versions = parse_versions(field["versions"])
            expr = f'f("{field["name"]}", {self.field_type(field)}, {rust_range(versions)})'
            if "nullableVersions" in field:
                expr += f".nullable({rust_range(parse_versions(field['nullableVersions']))})"
            if "flexibleVersions" in field:
                if field["type"] not in ("string", "bytes"):
                    raise SchemaError(f"{owner}.{field['name']}: flexibleVersions on {field['type']}")
                expr += f".flexible({rust_range(parse_versions(field['flexibleVersions']))})"
            if "tag" in field:
                tagged = parse_versions(field.get("taggedVersions"))
                expr += f".tagged({int(field['tag'])}, {rust_range(tagged)})"
            elif "taggedVersions" in field:
                raise SchemaError(f"{owner}.{field['name']}: taggedVersions without tag")
            lines.append(f"    {expr},\n")
        return "".join(lines)


def valid_versions(schema: dict, cap: int) -> tuple[int, int]:
    lo, hi = parse_versions(schema["validVersions"])
    if schema.get("latestVersionUnstable"):
        # Unstable versions may still change shape; never accept them from clients.
        hi -= 1
    return (lo, min(hi, cap))


def generate(jar_file: Path) -> str:
    out = [
        f"// Generated by tools/gen_request_schemas.py from kafka-clients {KAFKA_CLIENTS_VERSION}\n",
        "// (common/message/*Request.json and RequestHeader.json). Do not edit: change the\n",
        "// generator and rerun it; `tools/gen_request_schemas.py --check` fails on drift.\n",
        "//\n",
        "// Layout facts only: field order, wire types, version ranges, nullability, tags.\n",
        "// `V(a, b)` is an inclusive version range, `X` means open-ended, `NONE` is empty.\n",
        "\n",
        "use super::layout::{f, Api, Field, Ty::*, NONE, V, X};\n",
        "\n",
    ]
    with zipfile.ZipFile(jar_file) as jar:
        header = load_schema(jar, "RequestHeader")
        emitter = Emitter("HEADER", {})
        out.append(f"/// Request header, versions {header['validVersions']}.\n")
        out.append(f"pub(crate) const REQUEST_HEADER: &[Field] = &[\n{emitter.fields(header['fields'], 'RequestHeader')}];\n")
        out.append(
            f"pub(crate) const REQUEST_HEADER_FLEXIBLE: V = {rust_range(parse_versions(header['flexibleVersions']))};\n\n"
        )

        api_lines = []
        keys = set()
        # Sorted by key: the guard looks APIs up by binary search.
        for key, name, cap in sorted(APIS):
            if key in keys:
                raise SchemaError(f"api key {key} listed twice")
            keys.add(key)
            schema = load_schema(jar, f"{name}Request")
            if schema.get("type") != "request" or schema.get("apiKey") != key:
                raise SchemaError(f"{name}Request.json is not request api key {key}")
            prefix = upper_snake(name)
            common = {c["name"]: c["fields"] for c in schema.get("commonStructs", [])}
            emitter = Emitter(prefix, common)
            top = emitter.fields(schema["fields"], schema["name"])
            out.extend(emitter.consts)
            out.append(f"const {prefix}: &[Field] = &[\n{top}];\n\n")
            valid = valid_versions(schema, cap)
            flexible = parse_versions(schema.get("flexibleVersions", "none"))
            api_lines.append(
                f'    Api {{ key: {key}, name: "{name}", valid: {rust_range(valid)}, '
                f"flexible: {rust_range(flexible)}, fields: {prefix} }},\n"
            )
    out.append("/// The request APIs the guard lets through, by api key.\n")
    out.append("pub(crate) static APIS: &[Api] = &[\n")
    out.extend(api_lines)
    out.append("];\n")
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--check", action="store_true", help="fail if the committed table differs")
    parser.add_argument("--jar", type=Path, default=None, help="kafka-clients jar to read")
    args = parser.parse_args()

    jar_file = args.jar or jar_path(KAFKA_CLIENTS_VERSION)
    if not jar_file.is_file():
        print(
            f"{jar_file} not found; fetch it with\n  mvn -q dependency:get "
            f"-Dartifact=org.apache.kafka:kafka-clients:{KAFKA_CLIENTS_VERSION} -Dtransitive=false",
            file=sys.stderr,
        )
        return 2
    try:
        text = generate(jar_file)
    except SchemaError as e:
        print(f"gen_request_schemas: {e}", file=sys.stderr)
        return 2

    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run tools/gen_request_schemas.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
