"""The bilingual glossary (glossary.md) against the terms the chapters define (tools/glossary.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import glossary  # noqa: E402

TEXT = glossary.GLOSSARY.read_text(encoding="utf-8")
ENTRIES, PROBLEMS = glossary.parse_glossary(TEXT)


# -- (a) every Chinese term a chapter defines is in the glossary -------------------------------------
def test_scans_every_notebook_under_chapters():
    scanned = glossary.notebooks()
    assert set(scanned) == set((ROOT / "chapters").rglob("*.ipynb")) - {
        p for p in (ROOT / "chapters").rglob("*.ipynb") if {".ipynb_checkpoints", "_build"} & set(p.parts)}
    assert len(glossary.defined_terms()) >= 100


def test_every_defined_term_is_in_the_glossary():
    lacking = glossary.missing()
    assert not lacking, (
        f"{len(lacking)} term(s) a chapter defines are not in glossary.md "
        "(add them; `python tools/glossary.py draft` proposes entries):\n"
        + "\n".join(f"  {t.notebook} [q-{t.label}]: {t.english} ({t.zh})" for t in lacking))


# -- (b) glossary.md is a well-formed Sphinx glossary ------------------------------------------------
def test_glossary_parses():
    assert TEXT.startswith("# Glossary (术语表)\n")
    assert not PROBLEMS, "glossary.md:\n" + "\n".join(PROBLEMS)
    assert len(ENTRIES) >= 100


def test_glossary_entries_have_three_fields():
    bad = [e.term for e in ENTRIES
           if not (glossary.HAS_CJK.search(e.zh) and e.definition and e.ref.startswith("q-"))]
    assert not bad, f"entries without 中文 · definition · {{ref}}: {bad}"
    long = [(e.term, n) for e in ENTRIES
            if (n := len(re.sub(r"\$[^$]*\$", "x", e.definition).split())) > 30]
    assert not long, f"definitions over 30 words: {long}"


def test_glossary_refs_exist():
    labels = glossary.chapter_labels()
    dangling = [(e.term, e.ref) for e in ENTRIES if e.ref.removeprefix("q-") not in labels]
    assert not dangling, f"glossary {{ref}} targets that no chapter defines: {dangling}"


def test_glossary_terms_unique_and_sorted():
    keys = [e.term.lower() for e in ENTRIES]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"duplicate glossary terms (Sphinx matches case-insensitively): {dupes}"
    zh = [e.zh for e in ENTRIES]
    assert len(set(zh)) == len(zh), f"a Chinese term appears twice: {sorted({z for z in zh if zh.count(z) > 1})}"
    assert keys == sorted(keys), "glossary entries are not in alphabetical order"


def test_glossary_directive_shape():
    """Sphinx's glossary: a term line, indented definition line(s), a blank line between entries."""
    body = re.search(r"^```\{glossary\}\n(.*?)^```$", TEXT, re.S | re.M).group(1)
    for block in body.strip("\n").split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and not lines[0].startswith(" ") and lines[1].startswith("  "), block
        assert lines[0] == lines[0].strip() and " · " not in lines[0], block


def test_parse_glossary_reports_problems():
    entries, problems = glossary.parse_glossary(
        "```{glossary}\nwidget\n  小部件 · A thing. · {ref}`q-x`\nWidget\n  部件 no fields\n```\n")
    assert [e.term for e in entries] == ["widget"]
    assert any("no blank line" in p for p in problems)
    assert any("definition is not" in p for p in problems)
    _, problems = glossary.parse_glossary("no directive")
    assert problems == ["expected one {glossary} directive, found 0"]


# -- (c) the extraction rule, and a mutation: a new term is reported missing -------------------------
def test_new_term_in_a_chapter_is_reported_missing(tmp_path):
    text = "(q-widgets.demo)=\n## What is a widget?\n\n**Short answer.** A widget (小部件) is a gadget.\n"
    terms = glossary.extract_terms(text, "fake.ipynb")
    assert [(t.english, t.zh, t.label) for t in terms] == [("widget", "小部件", "widgets.demo")]
    lacking = glossary.missing(terms, glossary.glossary_zh())
    assert [t.zh for t in lacking] == ["小部件"]
    # the same through a notebook file in a temporary chapters folder
    nb = tmp_path / "chapters" / "widgets" / "01-demo.ipynb"
    nb.parent.mkdir(parents=True)
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [text]},
                                        {"cell_type": "code", "source": ["x = 1  # (代码) not prose"]}]}),
                  encoding="utf-8")
    found = glossary.defined_terms([nb])
    assert [t.zh for t in glossary.missing(found, glossary.glossary_zh())] == ["小部件"]
    assert [t.zh for t in glossary.missing(found, {"小部件"})] == []


@pytest.mark.parametrize("text, expected", [
    ("cross-entropy (交叉熵)", ["交叉熵"]),
    ("**batch normalization** (批归一化)", ["批归一化"]),
    ("Multi-class and multi-label (多分类、多标签)", ["多分类", "多标签"]),
    ("Post-training quantization (PTQ, 训练后量化)", ["训练后量化"]),
    ("Layer normalization (层归一化; Ba et al., 2016)", ["层归一化"]),
    ("An activation function (激活函数; its role: 激活函数的作用)", ["激活函数"]),
    ("the confusion matrix (混淆矩阵与P/R/F1)", ["混淆矩阵与P/R/F1"]),
    ("the learning rate（学习率）", ["学习率"]),
    ("residual $x + F(x)$ (残差连接)", ["残差连接"]),
    # not term definitions:
    ("**Short answer.** (饱和区与敏感区.)", []),
    ("**Short answer.** (生成模型家族对比)", []),
    ("*In the Chinese notes:* 多标签与多分类损失", []),
    ("the notes say (这是一个完整的中文句子。)", []),
    ("a remark (为何不能全零或常数初始化.)", []),
    ("costs (Adam's 优缺点: for a 7B model)", []),
    ("ReLU (the rectified linear unit; ReLU的优点: its advantages)", []),
    ("$$n = \\left\\lfloor \\frac{N}{S} \\right\\rfloor \\quad(\\text{卷积输出尺寸})$$", []),
    ("`torch.f(x)` (代码)", []),
    ("plain English (with no Chinese)", []),
])
def test_extraction_rule(text, expected):
    assert [t.zh for t in glossary.extract_terms(text)] == expected


def test_cli_check_passes_and_fails(monkeypatch, capsys):
    assert glossary.main(["check"]) == 0
    monkeypatch.setattr(glossary, "glossary_zh", lambda text=None: set())
    assert glossary.main(["check"]) == 1
    out = capsys.readouterr().out
    assert "is not in glossary.md" in out and "chapters/" in out
