#!/usr/bin/env python3
"""check-docs: the documentation's links and shape, checked without a network.

    python3 scripts/check-docs.py

Checks, from the repository root:
  (a) every relative Markdown link (inline `[text](target)`, images, and reference
      definitions `[id]: target`) in README.md, docs/*.md, STYLE.md, infra/**/README.md,
      clients/README.md and clients/*/README.md resolves: the file or folder exists and a
      `#anchor` matches a heading of the target Markdown file, slugged as GitHub does
      (or an explicit `<a id=…>` / `<a name=…>`). Links inside code are not links;
      absolute URLs (`https:`, `mailto:`, …) are not checked.
  (b) README.md has at most 250 lines and a ```mermaid block.
  (c) every docs/*.md page is linked from README.md.
  (d) docs/configuration.md is exactly what scripts/gen-config-docs.py generates now.

Prints one line per problem and exits 1, or `check-docs: ok (N links)`. Python 3.11,
standard library only.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
# [text](target) and ![alt](target); text may hold one level of brackets (`[`x`]`).
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def files_to_check() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "STYLE.md", ROOT / "clients" / "README.md"]
    found += sorted((ROOT / "docs").glob("*.md"))
    found += sorted((ROOT / "infra").glob("**/README.md"))
    found += sorted((ROOT / "clients").glob("*/README.md"))
    seen: list[Path] = []
    for f in found:
        if f.is_file() and f not in seen and "node_modules" not in f.parts:
            seen.append(f)
    return seen


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their 1-based numbers."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            out.append((n, line))
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and line.strip() == m.group(1):
            fence = None
    return out


def strip_code_spans(line: str) -> str:
    """Blank out inline code (`…`, ``…``) so that a link inside it is not taken for one."""
    return re.sub(r"(`+)(?:(?!\1).)+?\1", lambda m: " " * len(m.group(0)), line)


def heading_text(raw: str) -> str:
    """A heading as GitHub renders its text: code spans, emphasis, links and tags unwrapped."""
    text = re.sub(r"(`+)(.+?)\1", r"\2", raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text


def slug(text: str) -> str:
    """GitHub's heading anchor (github-slugger): lower case, punctuation and symbols
    dropped (letters, digits, marks, `-`, `_` and spaces kept), each space a `-`."""
    kept = []
    for ch in text.strip().lower():
        cat = unicodedata.category(ch)
        if ch in "-_ " or cat[0] in "LNM":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors_of(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        text = path.read_text(encoding="utf-8")
        anchors: set[str] = set()
        counts: dict[str, int] = {}
        for _, line in prose_lines(text):
            for a in HTML_ANCHOR.findall(line):
                anchors.add(a)
            m = ATX.match(line)
            if not m or m.group(2) is None:
                continue
            base = slug(heading_text(m.group(2)))
            n = counts.get(base, 0)
            counts[base] = n + 1
            anchors.add(base if n == 0 else f"{base}-{n}")
        cache[path] = anchors
    return cache[path]


def links_of(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for n, line in prose_lines(text):
        bare = strip_code_spans(line)
        m = REF_DEF.match(bare)
        if m:
            out.append((n, m.group(1)))
            continue
        for m in INLINE_LINK.finditer(bare):
            out.append((n, m.group(1)))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in out]


def check_links(problems: list[str]) -> tuple[int, dict[Path, set[Path]]]:
    cache: dict[Path, set[str]] = {}
    checked = 0
    targets: dict[Path, set[Path]] = {}
    for source in files_to_check():
        rel_source = source.relative_to(ROOT)
        targets[source] = set()
        for line_no, target in links_of(source.read_text(encoding="utf-8")):
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            checked += 1
            where = f"{rel_source}:{line_no}: {target}"
            path_part, _, anchor = target.partition("#")
            path_part = unquote(path_part.split("?", 1)[0])
            if path_part.startswith("/"):
                dest = ROOT / path_part.lstrip("/")
            elif path_part:
                dest = source.parent / path_part
            else:
                dest = source
            if not dest.exists():
                problems.append(f"{where}: no such file")
                continue
            targets[source].add(dest.resolve())
            if anchor:
                if dest.is_dir() or dest.suffix.lower() != ".md":
                    problems.append(f"{where}: an anchor on something that is not a Markdown file")
                elif unquote(anchor) not in anchors_of(dest.resolve(), cache):
                    problems.append(f"{where}: no heading with the anchor #{anchor} in {dest.resolve().relative_to(ROOT)}")
    return checked, targets


def check_readme(problems: list[str], targets: dict[Path, set[Path]]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if lines > README_MAX_LINES:
        problems.append(f"README.md: {lines} lines, more than {README_MAX_LINES}")
    if not re.search(r"^ {0,3}```+\s*mermaid\s*$", text, re.M):
        problems.append("README.md: no ```mermaid block")
    linked = targets.get(readme, set())
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.resolve() not in linked:
            problems.append(f"README.md: does not link docs/{page.name}")


def check_configuration(problems: list[str]) -> None:
    generator = ROOT / "scripts" / "gen-config-docs.py"
    doc = ROOT / "docs" / "configuration.md"
    run = subprocess.run([sys.executable, str(generator)], cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        problems.append(f"scripts/gen-config-docs.py failed: {run.stderr.strip().splitlines()[-1:] or run.returncode}")
        return
    if not doc.is_file():
        problems.append("docs/configuration.md: missing (python3 scripts/gen-config-docs.py --write)")
    elif doc.read_text(encoding="utf-8") != run.stdout:
        problems.append(
            "docs/configuration.md: differs from what scripts/gen-config-docs.py generates from "
            "schemas/config.schema.json (python3 scripts/gen-config-docs.py --write)"
        )


def main() -> int:
    problems: list[str] = []
    checked, targets = check_links(problems)
    check_readme(problems, targets)
    check_configuration(problems)
    for p in problems:
        print(f"check-docs: {p}")
    if problems:
        return 1
    print(f"check-docs: ok ({checked} links)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
