#!/usr/bin/env python3
"""gen-config-docs: the configuration reference, generated from the JSON Schema.

    python3 scripts/gen-config-docs.py           # print docs/configuration.md's text
    python3 scripts/gen-config-docs.py --write   # write it to docs/configuration.md

Reads schemas/config.schema.json (itself generated from the Rust types by `rendition schema
--out schemas`) and renders every section and key with its type, default and description.
The output depends on the schema alone (no dates, no environment), so
scripts/check-docs.py can tell when docs/configuration.md is stale. Python 3.11,
standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "config.schema.json"
OUTPUT = ROOT / "docs" / "configuration.md"

Schema = dict[str, Any]


def definition(root: Schema, node: Schema) -> tuple[str | None, Schema]:
    """Follow a `$ref` (or an `allOf` holding one `$ref`) to its definition."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return name, root["definitions"][name]
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        return definition(root, all_of[0])
    return None, node


def enum_values(node: Schema) -> list[tuple[str, str]] | None:
    """The values of an enum, or of a `oneOf` of one-value enums, with their descriptions."""
    if "enum" in node:
        return [(str(v), "") for v in node["enum"]]
    if "oneOf" in node and all("enum" in alt for alt in node["oneOf"]):
        return [(str(v), alt.get("description", "")) for alt in node["oneOf"] for v in alt["enum"]]
    return None


def type_of(root: Schema, node: Schema) -> str:
    name, target = definition(root, node)
    values = enum_values(target)
    if values is not None:
        return " | ".join(f"`{v}`" for v, _ in values)
    if name == "VariantSpec":
        return "string (a variant spec)"
    kind = target.get("type")
    if kind is None and name is not None:
        return name
    kinds = kind if isinstance(kind, list) else [kind]
    kinds = [k for k in kinds if k != "null"]
    parts = []
    for k in kinds:
        if k == "array":
            parts.append("array of " + type_of(root, target.get("items", {})))
        elif k == "object" and isinstance(target.get("additionalProperties"), dict):
            parts.append("table of " + type_of(root, target["additionalProperties"]))
        elif k == "integer" and "format" in target:
            parts.append(f"integer ({target['format']})")
        else:
            parts.append(str(k))
    return " or ".join(parts) or "any"


def toml_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (int, float)):
        return f"`{value}`"
    if isinstance(value, str):
        return "`" + json.dumps(value, ensure_ascii=False) + "`"
    if isinstance(value, list):
        return "`[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]`"
    return "`" + json.dumps(value, ensure_ascii=False, sort_keys=True) + "`"


def prose(text: str) -> str:
    """A schema description as Markdown: rustdoc links unwrapped, one line."""
    text = re.sub(r"\[(`[^`]+`)\](?!\()", r"\1", text)
    return " ".join(text.split())


def cell(text: str) -> str:
    """Text for a table cell: GitHub splits cells at every `|`, in code spans too."""
    return text.replace("|", "\\|")


def key_rows(root: Schema, target: Schema, section_default: Any) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    required = set(target.get("required", []))
    for key, node in target.get("properties", {}).items():
        name, resolved = definition(root, node)
        if "default" in node:
            default = toml_value(node["default"])
        elif isinstance(section_default, dict) and key in section_default:
            default = toml_value(section_default[key])
        elif key in required:
            default = "required"
        else:
            default = "—"
        described = [prose(node.get("description", ""))]
        if name is not None and resolved.get("description"):
            described.append(prose(resolved["description"]))
        values = enum_values(resolved)
        if values and any(d for _, d in values):
            described.append(" ".join(f"`{v}`: {prose(d)}" for v, d in values if d))
        description = " ".join(d for d in described if d) or "—"
        rows.append(f"| `{key}` | {cell(type_of(root, node))} | {cell(default)} | {cell(description)} |")
    return rows


def environment(root: Schema, name: str, node: Schema, target: Schema) -> str:
    """The line naming a section's environment variables, with an example of one."""
    section = name.upper()
    entries = target.get("additionalProperties")
    if "properties" not in target and isinstance(entries, dict):
        _, item = definition(root, entries)
        keys = list(item.get("required", [])) + list(item.get("properties", {}))
        default = node.get("default")
        entry = next(iter(default), "name") if isinstance(default, dict) else "name"
        example = f"RENDITION__{section}__{entry.upper()}__{keys[0].upper() if keys else 'KEY'}"
        return f"Environment: `RENDITION__{section}__NAME__KEY` (e.g. `{example}`)."
    keys = list(target.get("properties", {}))
    example = f"RENDITION__{section}__{keys[0].upper() if keys else 'KEY'}"
    return f"Environment: `RENDITION__{section}__KEY` (e.g. `{example}`)."


def render(root: Schema) -> str:
    sections = root["properties"]
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen-config-docs.py from schemas/config.schema.json: do not edit by hand. -->",
        "",
        "Every section and key of `rendition.toml`, generated from",
        "[`schemas/config.schema.json`](../schemas/config.schema.json) (which `rendition schema --out schemas`",
        "generates from the Rust types) by `scripts/gen-config-docs.py`: to change a description, change",
        "the Rust doc comment, regenerate the schema, then run `python3 scripts/gen-config-docs.py --write`.",
        "How the file is loaded (built-in defaults → the file → `RENDITION__SECTION__KEY` environment",
        "variables) and which binary reads which section: [Presets and configuration](specs.md#presets-and-configuration).",
    ]
    if root.get("additionalProperties") is False:
        out.append("Unknown sections and keys are refused at start.")
    out += ["", "Sections: " + " · ".join(f"[`{name}`](#{name})" for name in sections), ""]
    for name, node in sections.items():
        def_name, target = definition(root, node)
        out += [f"## `[{name}]`", ""]
        described = [prose(d) for d in (node.get("description"), target.get("description")) if d]
        for d in dict.fromkeys(described):
            out += [d, ""]
        if def_name is None and isinstance(target.get("additionalProperties"), dict):
            item_name, item = definition(root, target["additionalProperties"])
            about = f" (`{item_name}`: {prose(item['description'])})" if item_name and item.get("description") else ""
            out += [f"One table per entry, `[{name}.NAME]`{about}, with these keys:", ""]
            out += key_rows(root, item, None)
            out.append("")
            default = node.get("default")
            if isinstance(default, dict) and default:
                fields = sorted({f for entry in default.values() if isinstance(entry, dict) for f in entry})
                out += ["Built in (used when none are configured):", ""]
                out.append("| name | " + " | ".join(fields) + " |")
                out.append("|---|" + "---|" * len(fields))
                for entry_name, entry in default.items():
                    values = [cell(toml_value(entry.get(f))) if f in entry else "—" for f in fields]
                    out.append(f"| `{entry_name}` | " + " | ".join(values) + " |")
                out.append("")
        else:
            out += key_rows(root, target, node.get("default"))
            out.append("")
        out += [environment(root, name, node, target), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    if argv not in ([], ["--write"]):
        print("usage: gen-config-docs.py [--write]", file=sys.stderr)
        return 2
    text = render(json.loads(SCHEMA.read_text(encoding="utf-8")))
    if argv == ["--write"]:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"gen-config-docs: wrote {OUTPUT.relative_to(ROOT)}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
