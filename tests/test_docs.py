"""The repository's documentation holds together.

1. Every reference to a Markdown file resolves to a file in the repository: relative links
   ``[text](path#anchor)`` in Markdown (the anchor must be a heading of the target), and plain
   or backticked paths ending in ``.md`` in Markdown, Python (docstrings, comments, strings)
   and shell files, e.g. ``see edge/FAILURES.md``. A path with a slash is resolved from the
   referring file's folder or from the repository root; a bare file name may also name a
   file of that name anywhere in the repository (the README's layout block lists them so).
2. A section named after such a path, ``docs/ARCHITECTURE.md, Pitfalls`` or
   ``PROTOCOL.md, "Envelope"`` (a comma, then a capitalised name up to ``:`` ``;`` ``,``
   ``.`` ``)`` or the end of the line), must be a heading of that file, or the start of one.
3. Nothing points outside the repository: no file names the design notes the project began
   from, nor a path into the shared folder next to the repository.

Runs under pytest only (it reads the git index); not part of the MicroPython suites.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED_SUFFIXES = (".md", ".py", ".pyi", ".sh")
SKIPPED_DIRS = {".git", ".venv", "build", "var", "__pycache__", "node_modules"}
# Spelled in pieces so that this file does not trip its own check.
FORBIDDEN = re.compile("|".join((r"\bDESIGN" + r"\.md\b", r"\bDOMAIN" + r"\.md\b",
                                 r"(?:\.\./|/work/)" + r"shared\b")))

MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MD_PATH = re.compile(r"(?<![\w/.:-])((?:\.\.?/)*[\w.-]+(?:/[\w.-]+)*\.md)(?![\w/-])")
SECTION = re.compile(r"`?, \"?([A-Z][^\"():;,.\n]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def repo_files(root: Path) -> list[Path]:
    """Tracked files and new ones not ignored (git), or every file outside build dirs."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=root, capture_output=True,
                             check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(root)) for p in root.rglob("*")
                 if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(root).parts)]
    return sorted({root / n for n in names if (root / n).is_file()})


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def outside_fences(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) of the Markdown lines not inside a fenced code block."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def headings(path: Path) -> list[str]:
    text = read_text(path) or ""
    return [m.group(2) for _, line in outside_fences(text) if (m := HEADING.match(line))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in headings(path):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def names_section(path: Path, section: str) -> bool:
    """Whether `section` is a heading of `path`, or the start of one at a word boundary."""
    want = section.strip().strip("`\"").lower()
    for h in headings(path):
        have = h.replace("`", "").strip().lower()
        if have == want or (have.startswith(want) and not have[len(want)].isalnum()):
            return True
    return False


class Checker:
    """Finds broken references in the files of one repository tree."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.files = repo_files(self.root)
        self.by_name: dict[str, list[Path]] = {}
        for f in self.files:
            self.by_name.setdefault(f.name, []).append(f)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def resolve(self, ref: str, source: Path, *, bare_anywhere: bool) -> Path | None:
        """The file or folder `ref` (as written in `source`) names, if it exists inside."""
        candidates = [source.parent / ref]
        if not ref.startswith("."):
            candidates.append(self.root / ref)
        for c in candidates:
            c = c.resolve()
            if c.exists() and c.is_relative_to(self.root):
                return c
        if bare_anywhere and "/" not in ref and len(self.by_name.get(ref, [])) >= 1:
            return self.by_name[ref][0]
        return None

    def link_problems(self, source: Path, text: str) -> Iterable[Problem]:
        """Relative Markdown links: the target exists; an #anchor is one of its headings."""
        for n, line in outside_fences(text):
            line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
            for m in MD_LINK.finditer(line):
                target = m.group(1)
                if URL_SCHEME.match(target):
                    continue
                ref, _, anchor = target.partition("#")
                path = (source.parent / ref).resolve() if ref else source
                if not (path.exists() and path.is_relative_to(self.root)):
                    yield Problem(self.rel(source), n, f"link to {ref!r}: no such file "
                                  f"(links are relative to {self.rel(source.parent) or '.'}/)")
                elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                    yield Problem(self.rel(source), n, f"link to {target!r}: "
                                  f"{self.rel(path)} has no heading with anchor #{anchor}")

    def path_problems(self, source: Path, text: str) -> Iterable[Problem]:
        """Plain and backticked paths to .md files, and the section named after one."""
        for n, line in enumerate(text.splitlines(), 1):
            if source.suffix == ".md":
                line = MD_LINK.sub("", line)  # link targets: checked by link_problems
            for m in MD_PATH.finditer(line):
                ref = m.group(1)
                path = self.resolve(ref, source, bare_anywhere=True)
                if path is None:
                    yield Problem(self.rel(source), n, f"{ref!r}: no such file in the "
                                  "repository")
                    continue
                sec = SECTION.match(line, m.end())
                if sec and path.suffix == ".md" and not names_section(path, sec.group(1)):
                    yield Problem(self.rel(source), n, f"{ref!r}, {sec.group(1).strip()!r}: "
                                  f"{self.rel(path)} has no such heading")

    def problems(self) -> list[Problem]:
        found: list[Problem] = []
        for f in self.files:
            if f.suffix not in SCANNED_SUFFIXES or f.resolve() == Path(__file__).resolve():
                continue
            text = read_text(f)
            if text is None:
                continue
            if f.suffix == ".md":
                found += self.link_problems(f, text)
            found += self.path_problems(f, text)
        return found

    def outside_references(self) -> list[Problem]:
        found = []
        for f in self.files:
            text = read_text(f)
            for n, line in enumerate((text or "").splitlines(), 1):
                if m := FORBIDDEN.search(line):
                    found.append(Problem(self.rel(f), n, f"{m.group(0)!r} is outside the "
                                         "repository: point to docs/ instead"))
        return found


def test_docs_references_resolve() -> None:
    problems = Checker(REPO).problems()
    assert not problems, "broken documentation references:\n" + "\n".join(map(str, problems))


def test_docs_nothing_points_outside_the_repository() -> None:
    problems = Checker(REPO).outside_references()
    assert not problems, "\n".join(map(str, problems))


def _tree(root: Path, files: dict[str, str]) -> Checker:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return Checker(root)


def test_docs_checker_flags_each_kind_of_broken_reference(tmp_path: Path) -> None:
    checker = _tree(tmp_path, {
        "docs/guide.md": "# Guide\n\n## Pitfalls\n\nSee [the notes](notes.md), "
                         "[pitfalls](#pitfalls), [gone](#gone), [up](../README.md#nowhere).\n"
                         "```\n[not a link](inside-a-fence.md)\n```\n",
        "README.md": "# Readme\n\n## Layout\n\n[guide](docs/guide.md#pitfalls)\n",
        "pkg/mod.py": '"""See docs/guide.md, Pitfalls; docs/guide.md, Nothing here; '
                      'pkg/missing.md."""\n# (docs/guide.md, Pitfalls: the first)\n',
    })
    got = sorted(str(p) for p in checker.problems())
    assert got == sorted([
        "docs/guide.md:5: link to 'notes.md': no such file (links are relative to docs/)",
        "docs/guide.md:5: link to '#gone': docs/guide.md has no heading with anchor #gone",
        "docs/guide.md:5: link to '../README.md#nowhere': README.md has no heading with "
        "anchor #nowhere",
        "pkg/mod.py:1: 'docs/guide.md', 'Nothing here': docs/guide.md has no such heading",
        "pkg/mod.py:1: 'pkg/missing.md': no such file in the repository",
    ]), got


def test_docs_checker_flags_references_outside_the_repository(tmp_path: Path) -> None:
    name = "DESIGN" + ".md"
    checker = _tree(tmp_path, {"a.py": f"# see {name}, Pitfalls\n",
                               "b.md": "fine: tests/shared_support.py\n"})
    assert [(p.file, p.line) for p in checker.outside_references()] == [("a.py", 1)]
