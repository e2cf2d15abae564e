#!/usr/bin/env python3
"""Turn the Django documentation (docs/ in Django's sdist) into a retrieval evaluation set.

Used by scripts/kb-eval-corpus; stdlib only.

Construction
------------
* Every reStructuredText page under docs/ (release notes and the Sphinx theme excluded) is split at
  *every* heading, of any level, into sections. A section is the text between its heading and the
  next heading, so sections do not overlap.
* Each section whose text is long enough becomes one document, docs/<source_id>.md: the section's
  text converted to Markdown, WITHOUT its heading (and without the `.. _label:` targets that sit next
  to headings and usually spell the heading out). Source ids are opaque (dj-0001, ...) so that neither
  a file name nor a derived title leaks the heading into the index.
* A query is a section heading that reads like a search: plain words only (no ``code`` or roles, so
  exact-identifier matching is not rewarded), at least three words of which two are not stop words,
  and unique in the whole documentation set (so it names exactly one section). Its only relevant
  document is that section. Headings that fail the test still index their section as a distractor.
* Cross-references are rendered the way the built HTML shows them: :ref:`label` becomes the target
  heading's text, :doc:`page` the page title. A section that links to another therefore mentions the
  other's heading, exactly as a reader of the real docs would see.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass, field

MIN_DOC_CHARS = 80  # shorter sections (after conversion) are not indexed
MIN_QUERY_DOC_CHARS = 250  # a query's section must have at least this much text
EXCLUDED_DIRS = ("releases/", "_theme/", "_ext/")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our ours out over own same she should so some such
    than that the their theirs them then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours""".split()
)

ADORN = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1*\s*$")
LABEL = re.compile(r"^\.\. _([^:]+):\s*$")
DIRECTIVE = re.compile(r"^(\s*)\.\. ([A-Za-z][\w:-]*)::(?:\s+(.*))?$")
EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s|$)")  # comments, link targets, footnotes, substitutions
OPTION = re.compile(r"^\s*:[\w -]+:(\s|$)")
ROLE = re.compile(r":(?:[a-z]+:)?([a-z]+):`([^`]+)`")
LINK = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?")
REFLINK = re.compile(r"`([^`]+)`__?(?![A-Za-z0-9])")

CODE_DIRECTIVES = {"code-block": None, "code": None, "sourcecode": None, "console": "console", "parsed-literal": ""}
DROP_DIRECTIVES = {
    "toctree", "index", "module", "currentmodule", "highlight", "image", "figure", "raw", "include",
    "contents", "default-role", "rst-class", "role", "meta", "sectionauthor", "moduleauthor",
}
ADMONITIONS = {
    "note": "Note", "warning": "Warning", "tip": "Tip", "important": "Important", "hint": "Hint",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
    "seealso": "See also",
}
VERSION_NOTES = {"versionadded": "New in Django {}.", "versionchanged": "Changed in Django {}:",
                 "deprecated": "Deprecated since Django {}:", "versionremoved": "Removed in Django {}:"}
API_DIRECTIVES = {
    "class", "method", "function", "attribute", "data", "exception", "classmethod", "staticmethod",
    "decorator", "setting", "templatetag", "templatefilter", "fieldlookup", "django-admin",
    "django-admin-option", "envvar", "option", "object", "describe", "program",
}
PLAIN_ROLES = {"ref", "doc", "term", "abbr", "menuselection", "guilabel", "kbd", "sup", "sub", "pypi",
               "source", "commit", "mimetype", "keyword"}


@dataclass
class Section:
    page: str  # docs-relative path without .txt
    title_raw: str
    level: int
    body: list[str] = field(default_factory=list)
    markdown: str = ""


def find_headings(lines: list[str]):
    """Yield (start, after, style, title) for each reST section title."""
    i = 0
    n = len(lines)
    while i < n - 1:
        line = lines[i]
        if (ADORN.match(line) and len(line.strip()) >= 3 and i + 2 < n and lines[i + 1].strip()
                and not lines[i + 1][0].isspace() and lines[i + 2].rstrip() == line.rstrip()):
            yield i, i + 3, (line[0], True), lines[i + 1].strip()
            i += 3
            continue
        nxt = lines[i + 1]
        if (line.strip() and not line[0].isspace() and not ADORN.match(line) and ADORN.match(nxt)
                and len(nxt.rstrip()) >= max(3, len(line.rstrip()) - 1) and (i == 0 or not lines[i - 1].strip())
                and not line.startswith(".. ")):
            yield i, i + 2, (nxt[0], False), line.strip()
            i += 2
            continue
        i += 1


def split_page(page: str, text: str):
    lines = text.replace("\r\n", "\n").replace("\t", "    ").split("\n")
    styles: list = []
    heads = list(find_headings(lines))
    labels: dict[str, int] = {}  # label -> index of the section it names
    sections: list[Section] = []
    for k, (start, after, style, title) in enumerate(heads):
        if style not in styles:
            styles.append(style)
        end = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        sections.append(Section(page, title, styles.index(style), lines[after:end]))
        # `.. _label:` lines (and blank lines) right above the heading name this section.
        j = start - 1
        while j >= 0 and (not lines[j].strip() or LABEL.match(lines[j])):
            m = LABEL.match(lines[j])
            if m:
                labels[m.group(1).strip().lower()] = len(sections) - 1
            j -= 1
    return sections, labels


def block_end(lines: list[str], i: int, indent: int) -> int:
    """Index just past the block of lines more indented than `indent` (blank lines included) from i."""
    j = i
    while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
        j += 1
    while j > i and not lines[j - 1].strip():
        j -= 1
    return j


def dedent(lines: list[str]) -> list[str]:
    widths = [len(x) - len(x.lstrip()) for x in lines if x.strip()]
    cut = min(widths) if widths else 0
    return [x[cut:] for x in lines]


class Converter:
    def __init__(self, label_titles: dict[str, str], doc_titles: dict[str, str]):
        self.label_titles = label_titles
        self.doc_titles = doc_titles
        self.page = ""

    # -- inline markup -------------------------------------------------------------------------
    def role(self, m: re.Match) -> str:
        role, content = m.group(1), m.group(2).strip()
        explicit = re.match(r"^(.*?)\s*<([^<>]+)>$", content, re.S)
        text, target = (explicit.group(1), explicit.group(2)) if explicit else (None, content)
        if role == "ref":
            return text or self.label_titles.get(target.lower(), target.replace("-", " "))
        if role == "doc":
            if text:
                return text
            path = target[1:] if target.startswith("/") else posixpath.normpath(
                posixpath.join(posixpath.dirname(self.page), target))
            return self.doc_titles.get(path, posixpath.basename(target).replace("-", " "))
        if role == "ticket":
            return f"ticket #{content}"
        if role in ("pep", "rfc", "cve", "bpo"):
            return f"{role.upper()} {content}"
        if role in PLAIN_ROLES:
            return text or target
        if text:
            return f"`{text}`"
        target = target.lstrip("!")
        if target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        target = target.lstrip(".")
        if role in ("meth", "func") and not target.endswith(")"):
            target += "()"
        return f"`{target}`"

    def inline(self, s: str) -> str:
        s = s.replace("``", "\x00")
        parts = s.split("\x00")
        out = []
        for k, part in enumerate(parts):
            if k % 2:  # inside ``literal``
                out.append(f"`{part}`")
                continue
            part = ROLE.sub(self.role, part)
            part = LINK.sub(lambda m: f"[{m.group(1).strip()}]({m.group(2).strip()})", part)
            part = REFLINK.sub(lambda m: m.group(1), part)
            part = part.replace("\\ ", "").replace("|version|", "").replace("|release|", "")
            out.append(part)
        return "".join(out)

    # -- blocks --------------------------------------------------------------------------------
    def convert(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        para: list[str] = []  # plain text lines, converted together so that markup may span lines

        def flush() -> None:
            if para:
                out.extend(self.inline("\n".join(para)).split("\n"))
                para.clear()

        i = 0
        n = len(lines)
        while i < n:
            line = lines[i]
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if stripped and not (DIRECTIVE.match(line) or EXPLICIT.match(line) or stripped.endswith("::")
                                 or (ADORN.match(line) and len(stripped) >= 4)):
                para.append(stripped)
                i += 1
                continue
            if not (stripped.endswith("::") and not stripped.startswith("..")):
                flush()  # a literal block's introducing line still belongs to the paragraph
            d = DIRECTIVE.match(line)
            if d:
                name, arg = d.group(2).lower(), (d.group(3) or "").strip()
                name = name.split(":")[-1]
                end = block_end(lines, i + 1, indent)
                body = lines[i + 1:end]
                while body and (not body[0].strip() or OPTION.match(body[0])):
                    body = body[1:]  # directive options
                body = dedent(body)
                i = end
                if name in DROP_DIRECTIVES:
                    continue
                if name in CODE_DIRECTIVES:
                    lang = CODE_DIRECTIVES[name]
                    lang = arg.split()[0] if lang is None and arg else (lang or "")
                    out += ["", f"```{lang}", *[x.rstrip() for x in body], "```", ""]
                    continue
                if name in ADMONITIONS:
                    head = f"**{ADMONITIONS[name]}:**"
                    if arg:
                        head += " " + self.inline(arg)
                    out += ["", head, *self.convert(body), ""]
                    continue
                if name == "admonition":
                    out += ["", f"**{self.inline(arg)}**" if arg else "", *self.convert(body), ""]
                    continue
                if name in VERSION_NOTES:
                    ver, _, rest = arg.partition(" ")
                    head = "*" + VERSION_NOTES[name].format(ver) + "*"
                    if rest:
                        head += " " + self.inline(rest)
                    out += ["", head, *self.convert(body), ""]
                    continue
                if name in API_DIRECTIVES:
                    # an API entry (.. method:: save(...)): its signature, then its description
                    out += ["", f"`{arg}`" if arg else "", "", *self.convert(body), ""]
                    continue
                if name == "rubric":
                    out += ["", f"**{self.inline(arg)}**", ""]
                    continue
                # glossary, only, table, list-table, csv-table, container, ...: keep the content
                if arg and name not in ("only", "glossary", "container"):
                    out += ["", self.inline(arg)]
                out += self.convert(body)
                continue
            if EXPLICIT.match(line):
                # comment, link target, substitution definition or footnote
                end = block_end(lines, i + 1, indent)
                fn = re.match(r"^\s*\.\. (\[[^\]]+\])\s*(.*)$", line)
                if fn:
                    out += ["", self.inline(f"{fn.group(1)} {fn.group(2)}"),
                            *[self.inline(x.strip()) for x in lines[i + 1:end]]]
                i = end
                continue
            if stripped.endswith("::") and not stripped.startswith(".."):
                # paragraph introducing a literal block
                text = stripped[:-2].rstrip()
                if stripped == "::":
                    text = ""
                elif stripped.endswith(" ::"):
                    pass
                else:
                    text += ":"
                if text:
                    para.append(text)
                flush()
                j = i + 1
                while j < n and not lines[j].strip():
                    j += 1
                if j < n and len(lines[j]) - len(lines[j].lstrip()) > indent:
                    end = block_end(lines, j, indent)
                    out += ["", "```", *[x.rstrip() for x in dedent(lines[j:end])], "```", ""]
                    i = end
                else:
                    i += 1
                continue
            if stripped:  # transition
                out.append("---")
            else:
                out.append("")
            i += 1
        flush()
        return out


def to_markdown(lines: list[str]) -> str:
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text + "\n" if text else ""


def plain(title_raw: str, conv: Converter) -> str:
    return re.sub(r"\s+", " ", conv.inline(title_raw).replace("`", "")).strip()


def query_ok(title_raw: str, title: str) -> bool:
    if "``" in title_raw or ROLE.search(title_raw) or "`" in title_raw:
        return False
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", title)
    content = [w for w in words if w.lower() not in STOPWORDS]
    return len(words) >= 3 and len(content) >= 2


def norm(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", title.lower()))


def build(sdist: str, out: str, name: str, max_queries: int) -> dict:
    pages: dict[str, str] = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 2)
            if len(parts) < 3 or parts[1] != "docs" or not member.isfile() or not parts[2].endswith(".txt"):
                continue
            rel = parts[2]
            if rel.startswith(EXCLUDED_DIRS):
                continue
            f = tar.extractfile(member)
            assert f is not None
            pages[rel[:-4]] = f.read().decode("utf-8")
    if len(pages) < 100:
        raise SystemExit(f"kb_eval_corpus: only {len(pages)} documentation pages found in {sdist}")

    all_sections: list[Section] = []
    label_idx: dict[str, int] = {}
    for page in sorted(pages):
        secs, labels = split_page(page, pages[page])
        base = len(all_sections)
        all_sections += secs
        label_idx.update({k: base + v for k, v in labels.items()})

    conv = Converter({}, {})
    titles = [plain(s.title_raw, conv) for s in all_sections]
    conv.label_titles = {k: titles[v] for k, v in label_idx.items()}
    conv.doc_titles = {}
    for s, t in zip(all_sections, titles):
        conv.doc_titles.setdefault(s.page, t)
    for s in all_sections:
        conv.page = s.page
        s.markdown = to_markdown(conv.convert(s.body))

    counts: dict[str, int] = {}
    for t in titles:
        counts[norm(t)] = counts.get(norm(t), 0) + 1

    docs_dir = os.path.join(out, "docs")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(docs_dir)
    queries = []
    sources = []
    total_chars = 0
    seq = 0
    for s, title in zip(all_sections, titles):
        if len(s.markdown) < MIN_DOC_CHARS:
            continue
        seq += 1
        sid = f"dj-{seq:04d}"
        with open(os.path.join(docs_dir, sid + ".md"), "w", encoding="utf-8") as f:
            f.write(s.markdown)
        total_chars += len(s.markdown)
        sources.append({"id": sid, "page": s.page, "heading": title, "level": s.level})
        if len(s.markdown) >= MIN_QUERY_DOC_CHARS and counts[norm(title)] == 1 and query_ok(s.title_raw, title):
            queries.append({"query": title, "relevant": [sid]})
    if len(queries) > max_queries:
        # Deterministic, order-independent subsample.
        queries.sort(key=lambda q: hashlib.sha256(q["query"].encode()).hexdigest())
        queries = sorted(queries[:max_queries], key=lambda q: q["relevant"][0])
    with open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "sources.jsonl"), "w", encoding="utf-8") as f:
        for s in sources:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    meta = {
        "name": name,
        "source": "Django documentation (docs/ of the sdist on PyPI), release notes excluded",
        "sdist": os.path.basename(sdist),
        "licence": "BSD-3-Clause (Django's LICENSE covers the docs)",
        "construction": "one document per reST section with its heading removed; query = a plain-words, "
                        "corpus-unique heading; relevant = that section",
        "docs": len(sources),
        "queries": len(queries),
        "avg_doc_chars": round(total_chars / max(1, len(sources))),
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", required=True, help="path of Django's .tar.gz sdist")
    ap.add_argument("--out", required=True, help="output directory (replaced)")
    ap.add_argument("--name", required=True, help="the set's name, recorded in meta.json")
    ap.add_argument("--max-queries", type=int, default=1000)
    args = ap.parse_args()
    meta = build(args.sdist, args.out, args.name, args.max_queries)
    print(f"kb_eval_corpus: {meta['docs']} docs (avg {meta['avg_doc_chars']} chars), {meta['queries']} queries",
          file=sys.stderr)


if __name__ == "__main__":
    main()
