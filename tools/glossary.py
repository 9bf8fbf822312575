"""The bilingual glossary: the terms the chapters mark where they define them, "term (中文)".

    python tools/glossary.py check      # every Chinese term a chapter defines is in glossary.md
    python tools/glossary.py draft      # print glossary entries for the terms glossary.md lacks
    python tools/glossary.py list       # every defined term: notebook, label, English, Chinese

``glossary.md`` is a Sphinx ``{glossary}``: each entry is the English term, then an indented
line "中文 · one-line definition · {ref}`q-<label>`" (the section that defines it). Sphinx's
``{term}`` role links any mention in the text to it. ``draft`` proposes entries for missing
terms from the sentence that defines them (edit them before committing);
``tests/test_glossary.py`` fails when a chapter defines a term that the glossary lacks.

Which notebooks: every ``*.ipynb`` under ``chapters/`` (not only those in ``_toc.yml``), so a
chapter being written is checked before it is listed.

What counts as a term definition (the extraction rule, :func:`extract_terms`):

1. Only markdown cells, with math (``$...$``, ``$$...$$``), inline code and HTML comments
   removed first, so ``\\text{卷积输出尺寸}`` inside an equation is not a term.
2. A parenthesis, ASCII ``( )`` or full-width ``（ ）``, that follows English text: the last
   visible character before it (skipping spaces, line breaks and ``*``/``_`` emphasis marks) is a
   Latin letter, a digit, a closing bracket or the math that was removed. A parenthesis after a
   sentence end or a colon is a note, not a definition: "**Short answer.** (饱和区与敏感区.)".
3. Its content is not a sentence: it has no 。！？ and does not end with "." (those are whole
   Chinese remarks, "(为何不能全零或常数初始化.)").
4. Only the first ``;``-separated part names the term; later parts are asides or citations
   ("激活函数; its role: 激活函数的作用", "层归一化; Ba et al., 2016").
5. That part is split at ``,`` ``，`` ``:`` ``、`` and ``/`` between Chinese names; each piece
   that contains a Chinese character and no whitespace is one term ("PTQ, 训练后量化" gives
   训练后量化; "多分类、多标签" gives two terms; "Adam's 优缺点" is an aside, not a name).
   A name such as "混淆矩阵与P/R/F1" or "决定系数R²" stays whole (``/`` splits only between two
   Chinese characters).

Lines that quote the notes ("*In the Chinese notes:* 多标签与多分类损失") are not parentheses and
are never terms; a section's syllabus term is checked by tests/test_book.py instead.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "glossary.md"
CHAPTERS = ROOT / "chapters"
CJK = r"\u3400-\u9fff"
HAS_CJK = re.compile(f"[{CJK}]")
LABEL = re.compile(r"^\(q-([A-Za-z0-9_.\-]+)\)=\s*$", re.M)
PAREN = re.compile(r"[(（]([^()（）]*)[)）]")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", re.S)
CODE = re.compile(r"``.*?``|`[^`\n]*`", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
MATH_MARK = "\x00"  # stands for removed math: a term may be defined right after its formula
SENTENCE_END = re.compile(r"[。！？]|\.\s*$")
SPLIT = re.compile(rf"[,，:：、]|(?<=[{CJK}])/(?=[{CJK}])")
STOP = {"a", "an", "the", "is", "are", "of", "and", "or", "to", "in", "on", "for", "with", "its", "it", "this",
        "that", "as", "by", "we", "be", "called", "also", "which", "so", "each", "every", "our", "their", "answer",
        "then", "from", "one", "two", "into", "per", "at"}


@dataclass(frozen=True)
class Term:
    english: str
    zh: str
    notebook: str
    label: str
    sentence: str


def notebooks() -> list[Path]:
    """Every notebook under chapters/, sorted (chapters not yet in _toc.yml included)."""
    return sorted(p for p in CHAPTERS.rglob("*.ipynb") if not {".ipynb_checkpoints", "_build"} & set(p.parts))


def _clean_english(before: str) -> str:
    """The last few English words before the parenthesis, without leading stop words."""
    before = before.replace(MATH_MARK, " ").replace("**", "").replace("*", "")
    words = re.findall(r"[A-Za-z0-9][\w'’\-]*", before.split("\n\n")[-1])[-5:]
    for i in range(len(words) - 1, -1, -1):
        if words[i].lower() in STOP:
            words = words[i + 1:]
            break
    return " ".join(words)


def _follows_english(before: str) -> bool:
    tail = before.rstrip(" \t\n*_")
    return bool(tail) and (tail[-1] == MATH_MARK or tail[-1].isascii() and (tail[-1].isalnum() or tail[-1] in ")]}'’"))


def term_names(content: str) -> list[str]:
    """The Chinese term names in one parenthesis's content (rules 3-5 of the module docstring)."""
    if not HAS_CJK.search(content) or SENTENCE_END.search(content.strip()):
        return []
    first = content.split(";")[0].split("；")[0]
    names = []
    for piece in SPLIT.split(first):
        piece = piece.strip().strip("*_").strip()
        if piece and HAS_CJK.search(piece) and not re.search(r"\s", piece):
            names.append(piece)
    return names


def extract_terms(text: str, notebook: str = "<text>", label: str = "") -> list[Term]:
    """Every "English (中文)" term definition in one markdown text; ``label`` is the section so far.

    A ``(q-<id>)=`` line in the text starts a new section; terms before any label get ``label``.
    """
    text = COMMENT.sub("", text)
    terms = []
    for block in re.split(r"(?=^\(q-)", text, flags=re.M):
        m = LABEL.search(block)
        if m:
            label = m.group(1)
        prose = CODE.sub("", MATH.sub(MATH_MARK, block))
        for found in PAREN.finditer(prose):
            before = prose[:found.start()]
            if not _follows_english(before):
                continue
            names = term_names(found.group(1))
            if not names:
                continue
            start = max(before.rfind(". ") + 2, before.rfind("\n\n") + 2, 0)
            end = prose.find(". ", found.end())
            sentence = prose[start:end + 1 if end > 0 else len(prose)].replace(MATH_MARK, "$…$").strip()
            english = _clean_english(before)
            terms += [Term(english, zh, notebook, label, sentence) for zh in names]
    return terms


def notebook_terms(path: Path) -> list[Term]:
    """The terms one notebook defines; a term before the first label points at the first label."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    first = LABEL.search("\n".join(markdown))
    label = first.group(1) if first else ""
    try:
        name = str(path.relative_to(ROOT))
    except ValueError:
        name = str(path)
    terms = []
    for text in markdown:
        found = extract_terms(text, name, label)
        if found:
            label = found[-1].label
        m = list(LABEL.finditer(text))
        if m:
            label = m[-1].group(1)
        terms += found
    return terms


def defined_terms(paths: list[Path] | None = None) -> list[Term]:
    """Every term the chapters define, in notebook order."""
    return [t for nb in (notebooks() if paths is None else paths) for t in notebook_terms(nb)]


def chapter_labels(paths: list[Path] | None = None) -> set[str]:
    """Every ``(q-<id>)=`` label the chapters define (without the ``q-``)."""
    labels = set()
    for nb in notebooks() if paths is None else paths:
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                labels.update(LABEL.findall("".join(cell["source"])))
    return labels


@dataclass(frozen=True)
class Entry:
    term: str
    zh: str
    definition: str
    ref: str
    line: int


ENTRY_LINE = re.compile(r"^  (?P<zh>\S[^·\n]*?) · (?P<definition>.+) · \{ref\}`(?P<ref>q-[A-Za-z0-9_.\-]+)`\s*$")


def parse_glossary(text: str) -> tuple[list[Entry], list[str]]:
    """The entries of the one ``{glossary}`` directive in ``text``, and the problems found.

    Sphinx's glossary syntax: a term line at the directive's indentation, then indented
    definition lines, a blank line between entries. Here each definition is one line with
    three fields: "中文 · definition · {ref}`q-<label>`".
    """
    problems: list[str] = []
    blocks = re.findall(r"^```\{glossary\}[^\n]*\n(.*?)^```\s*$", text, re.S | re.M)
    if len(blocks) != 1:
        return [], [f"expected one {{glossary}} directive, found {len(blocks)}"]
    offset = text[:text.index(blocks[0])].count("\n") + 1
    entries = []
    lines = blocks[0].split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith(":"):
            i += 1
            continue
        if line.startswith(" "):
            problems.append(f"line {offset + i}: definition without a term: {line.strip()[:60]}")
            i += 1
            continue
        term, body = line.strip(), []
        if i > 0 and lines[i - 1].strip():
            problems.append(f"line {offset + i}: no blank line before the term {term!r}")
        i += 1
        while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
            body.append(lines[i])
            i += 1
        if len(body) != 1:
            problems.append(f"line {offset + i}: {term!r} needs exactly one definition line, has {len(body)}")
            continue
        m = ENTRY_LINE.match(body[0])
        if not m:
            problems.append(f"line {offset + i}: {term!r}: definition is not '中文 · definition · {{ref}}`q-...`'")
            continue
        if not HAS_CJK.search(m["zh"]):
            problems.append(f"line {offset + i}: {term!r}: first field {m['zh']!r} has no Chinese")
        entries.append(Entry(term, m["zh"].strip(), m["definition"].strip(), m["ref"], offset + i))
    seen: dict[str, str] = {}
    for e in entries:
        key = e.term.lower()
        if key in seen:
            problems.append(f"duplicate term {e.term!r} (also {seen[key]!r})")
        seen[key] = e.term
    return entries, problems


def glossary_zh(text: str | None = None) -> set[str]:
    """The Chinese names glossary.md gives (the first field of each entry's definition line)."""
    if text is None:
        if not GLOSSARY.exists():
            return set()
        text = GLOSSARY.read_text(encoding="utf-8")
    return {entry.zh for entry in parse_glossary(text)[0]}


def missing(terms: list[Term] | None = None, have: set[str] | None = None) -> list[Term]:
    """The defined terms whose Chinese name the glossary lacks (first occurrence of each)."""
    have = glossary_zh() if have is None else have
    seen, out = set(), []
    for term in defined_terms() if terms is None else terms:
        if term.zh not in have and term.zh not in seen:
            seen.add(term.zh)
            out.append(term)
    return out


def draft(terms: list[Term]) -> str:
    lines = []
    for t in sorted(terms, key=lambda t: (t.english or t.zh).lower()):
        sentence = re.sub(r"\*\*Short answer\.\*\*\s*", "", t.sentence)
        sentence = re.sub(rf"\s*[(（][^)）]*[{CJK}][^)）]*[)）]", "", sentence).replace("\n", " ").strip()
        where = f"{{ref}}`q-{t.label}`" if t.label else t.notebook
        lines += [(t.english or t.zh).lower(), f"  {t.zh} · {sentence} · {where}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "check":
        lacking = missing()
        for t in lacking:
            print(f"{t.notebook}: {t.english} ({t.zh}) [q-{t.label}] is not in glossary.md")
        print(f"{len(glossary_zh())} glossary terms; {len(lacking)} defined in the chapters but missing")
        return 1 if lacking else 0
    if command == "draft":
        print(draft(missing()))
        return 0
    if command == "list":
        for t in defined_terms():
            print(f"{t.notebook}\tq-{t.label}\t{t.english}\t{t.zh}")
        return 0
    raise SystemExit("usage: glossary.py [check|draft|list]")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
