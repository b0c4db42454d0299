"""README.md and docs/*.md render as intended and point at things that exist.

Parsed with markdown-it-py (CommonMark + tables, the parser rich uses): every code fence closes
where it was meant to, every relative link names an existing file, every ``#anchor`` names a
heading (GitHub's slug rules), and the commands they show exist: ``ecgflow`` subcommands and
their options (read from the Typer app), ``make`` targets, ``benchmarks/*.py`` scripts.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])
IDS = [str(p.relative_to(ROOT)) for p in DOCS]
README_MAX_LINES = 450

_MD = MarkdownIt("commonmark").enable("table")


@cache
def _tokens(path: Path) -> list[Token]:
    return _MD.parse(path.read_text(encoding="utf-8"))


def _walk(tokens: list[Token]):
    for tok in tokens:
        yield tok
        if tok.children:
            yield from _walk(tok.children)


def _slug(text: str) -> str:
    """GitHub's heading anchor: lower-case, drop punctuation but ``-``/``_``, spaces to ``-``."""
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_ " or cat[0] in "LNM" or cat == "Pc":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def _heading_text(inline: Token) -> str:
    return "".join(
        child.content
        for child in inline.children or []
        if child.type in ("text", "code_inline", "softbreak")
    )


@cache
def _anchors(path: Path) -> frozenset[str]:
    tokens = _tokens(path)
    seen: dict[str, int] = {}
    anchors = set()
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open":
            continue
        base = _slug(_heading_text(tokens[i + 1]))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return frozenset(anchors)


def _links(path: Path) -> list[str]:
    out = []
    for tok in _walk(_tokens(path)):
        if tok.type == "link_open":
            out.append(str(tok.attrs.get("href", "")))
        elif tok.type == "image":
            out.append(str(tok.attrs.get("src", "")))
    return out


def _code_texts(path: Path) -> list[str]:
    """The text of every fenced/indented block and inline code span."""
    return [
        tok.content
        for tok in _walk(_tokens(path))
        if tok.type in ("fence", "code_block", "code_inline")
    ]


# --- parser-level checks ------------------------------------------------------------------


def test_slug_follows_github_rules():
    assert _slug("Run on your data") == "run-on-your-data"
    assert _slug("GEM: measured (2 cores, PTB-XL 1–500)") == "gem-measured-2-cores-ptb-xl-1500"
    assert _slug("`ecgflow run` output") == "ecgflow-run-output"
    assert _slug("Start-up") == "start-up"


def test_checks_catch_the_broken_fence_the_readme_had(tmp_path):
    """A closing fence with text after it does not close: the fence check must see that."""
    bad = tmp_path / "bad.md"
    bad.write_text("```\ncode\n``` Browse the runs\n\n## Training\n\n```bash\nx\n```\n")
    assert _fence_problems(bad)
    assert "training" not in _anchors(bad)
    good = tmp_path / "good.md"
    good.write_text("```\ncode\n```\nBrowse the runs\n\n## Training\n")
    assert not _fence_problems(good)
    assert "training" in _anchors(good)


def _fence_problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    problems = []
    for tok in _tokens(path):
        if tok.type != "fence" or tok.map is None:
            continue
        start, end = tok.map
        marker = tok.markup
        last = lines[end - 1].strip() if end - 1 > start else ""
        if not (last.startswith(marker) and set(last) <= {marker[0]}):
            problems.append(f"line {start + 1}: fence {marker} never closes")
        for k, line in enumerate(tok.content.split("\n")):
            if line.lstrip().startswith(marker):
                problems.append(
                    f"line {start + 2 + k}: {line.strip()!r} inside a {marker} block "
                    "(a fence meant to close or open swallowed)"
                )
    return problems


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_code_fences_close(path):
    assert not _fence_problems(path), _fence_problems(path)


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_relative_links_and_anchors_resolve(path):
    broken = []
    for href in _links(path):
        if not href or re.match(r"^[a-z][a-z0-9+.-]*:", href, re.I):  # http:, mailto:, ...
            continue
        target, _, anchor = href.partition("#")
        file = (path.parent / unquote(target)).resolve() if target else path
        if not file.exists():
            broken.append(f"{href}: no file {file}")
            continue
        if anchor and file.suffix == ".md" and unquote(anchor) not in _anchors(file):
            broken.append(f"{href}: no heading #{anchor} in {file.name}")
    assert not broken, broken


# --- the README as a product page ----------------------------------------------------------


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move reference material to docs/"


def test_readme_table_of_contents_lists_every_section():
    tokens = _tokens(README)
    sections = [
        _slug(_heading_text(tokens[i + 1]))
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.tag == "h2"
    ]
    linked = {href[1:] for href in _links(README) if href.startswith("#")}
    missing = [s for s in sections if s != "contents" and s not in linked]
    assert len(sections) >= 8
    assert not missing, f"sections missing from the table of contents: {missing}"


def test_readme_links_the_measured_docs():
    hrefs = {href.partition("#")[0] for href in _links(README)}
    for doc in ("docs/performance.md", "docs/quality.md", "docs/gem.md", "docs/cluster.md"):
        assert doc in hrefs


# --- the commands the docs show exist --------------------------------------------------------

_ECGFLOW = re.compile(r"(?:^|[\s(`])ecgflow((?:\s+[a-z][a-z|-]*(?=\s|$))+)(.*)$")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _command_lines(text: str) -> list[str]:
    """Each shell command in a code text, continuation lines joined.

    A continuation follows a ``\\`` or, in a synopsis, is indented and starts with an option.
    """
    out: list[str] = []
    for line in text.split("\n"):
        line = re.sub(r"\s#\s.*$|\s{2,}#.*$", "", line)  # trailing comments
        synopsis = line.startswith(" ") and line.lstrip()[:1] in ("-", "[", "(")
        if out and (out[-1].endswith("\\") or (synopsis and "ecgflow" in out[-1])):
            out[-1] = out[-1].rstrip("\\") + " " + line.strip()
        else:
            out.append(line.strip())
    return out


@cache
def _cli_tree():
    import typer.main

    from ecgflow.cli import app

    return typer.main.get_command(app)


def _resolve(words: list[str]) -> list | None:
    """The click commands the words name (``a|b`` names alternatives); None if one is unknown."""
    cmds = [_cli_tree()]
    for word in words:
        if not hasattr(cmds[0], "commands"):  # a command, not a group (typer vendors click)
            break
        subs = [cmds[0].commands.get(name) for name in word.split("|")]
        if any(sub is None for sub in subs):
            return None
        cmds = subs
    return cmds


def _ecgflow_problems(path: Path) -> list[str]:
    problems = []
    for text in _code_texts(path):
        for line in _command_lines(text):
            m = _ECGFLOW.search(line)
            if not m:
                continue
            cmds = _resolve(m.group(1).split())
            if cmds is None:
                problems.append(f"{line!r}: no such command")
                continue
            known = {"--help"} | {
                o
                for cmd in cmds
                for p in cmd.params
                for o in (*p.opts, *getattr(p, "secondary_opts", ()))
            }
            for opt in _OPTION.findall(m.group(2)):
                if opt not in known:
                    problems.append(f"{line!r}: {cmds[0].name} has no option {opt}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_ecgflow_commands_and_options_exist(path):
    assert not _ecgflow_problems(path), _ecgflow_problems(path)


def test_command_check_catches_unknown_commands_and_options(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```\necgflow serve --model M --no-such-flag\necgflow frobnicate\n```\n")
    problems = _ecgflow_problems(doc)
    assert any("--no-such-flag" in p for p in problems)
    assert any("frobnicate" in p for p in problems)
    ok = tmp_path / "ok.md"
    ok.write_text(
        "```\necgflow run --source S\n    [--limit N]\n"
        "next:\n    ecgflow serve --model M\n    mlflow ui --backend-store-uri U\n```\n"
    )
    assert not _ecgflow_problems(ok)


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_make_targets_and_benchmarks_exist(path):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    problems = []
    for text in _code_texts(path):
        for target in re.findall(r"(?:^|[\s`(])make\s+([a-z][a-z-]*)", text, re.M):
            if target not in targets:
                problems.append(f"make {target}: no such Makefile target")
        for script in re.findall(r"\bbenchmarks/[a-z_]+\.py\b", text):
            if not (ROOT / script).is_file():
                problems.append(f"{script}: no such file")
    assert not problems, problems


# --- measured figures say how to reproduce them -----------------------------------------------

MEASURED = ("performance.md", "quality.md", "gem.md")


def _sections(path: Path) -> list[tuple[str, list[Token]]]:
    """(h2 title, tokens) per section; the tokens before the first h2 under title ''."""
    tokens = _tokens(path)
    out: list[tuple[str, list[Token]]] = [("", [])]
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h2":
            out.append((_heading_text(tokens[i + 1]), []))
        out[-1][1].append(tok)
    return out


def _names_a_command(tokens: list[Token]) -> bool:
    codes = [t.content for t in _walk(tokens) if t.type in ("fence", "code_inline")]
    return any(re.search(r"(python )?benchmarks/\w+\.py|\becgflow [a-z]", c) for c in codes)


@pytest.mark.parametrize("name", MEASURED)
def test_every_measured_table_comes_with_the_command_that_reproduces_it(name):
    sections = _sections(ROOT / "docs" / name)
    intro_has_command = _names_a_command(sections[0][1])
    missing = [
        title
        for title, tokens in sections[1:]
        if any(t.type == "table_open" for t in tokens)
        and not (_names_a_command(tokens) or intro_has_command)
    ]
    assert not missing, f"{name}: tables without a command to reproduce them: {missing}"
