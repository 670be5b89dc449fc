"""The project's own documentation is complete: every ``docs/<name>.md`` cited in the code exists in the repository.

Docstrings and comments cite the pages of ``docs/`` as ``docs/method.md section 3.2``, ``docs/prior3d.md`` 4.1 and
4.3, ``docs/method.md sections 2-5`` ...  These tests fail when

* a ``.py`` file under ``lowlight3d/``, ``baselines/``, ``scripts/`` or ``tests/`` (or at the top level) cites a page
  that ``docs/`` does not hold, or a page outside the repository (``../shared/docs/...``): a clone must be complete
  on its own;
* a cited section number (the numbers right after the citation, optionally introduced by ``section``/``sections``)
  is not a numbered heading of that page (``## 3.`` or ``### 3.2 ...``);
* a relative link in ``docs/*.md`` or in the README's documentation list points at a missing file.
"""
import os
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = osp.join(ROOT, 'docs')
CODE_DIRS = ('lowlight3d', 'baselines', 'scripts', 'tests')
THIS_FILE = osp.abspath(__file__)

_NUM = r'\d+(?:\.\d+)*'
# A citation: optional path prefix, docs/<name>.md, optional closing backticks, then an optional list of section
# numbers ("section 3.2", "sections 1.2, 1.3 and 2", "3", "4.1 and 4.3", "sections 2-5").
CITATION = re.compile(
    r'(?P<prefix>[\w./:-]*?)\bdocs/(?P<name>[\w-]+)\.md`*'
    r'(?P<sections>\s+(?:sections?\s+)?' + _NUM + r'(?:\s*(?:,|-|and|to)\s*' + _NUM + r')*)?')
HEADING = re.compile(r'^#{1,6}\s+(' + _NUM + r')\.?\s')
SECTION_NUMBER = re.compile(_NUM)


def python_files():
    """Every ``.py`` file of the code folders and the repository's top level (not this file)."""
    found = [osp.join(ROOT, f) for f in os.listdir(ROOT) if f.endswith('.py')]
    for folder in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(osp.join(ROOT, folder)):
            dirnames[:] = [d for d in dirnames if not d.startswith('.') and d != '__pycache__']
            found += [osp.join(dirpath, f) for f in filenames if f.endswith('.py')]
    return sorted(f for f in found if osp.abspath(f) != THIS_FILE)


def headings(name):
    """Section numbers of the numbered headings of ``docs/<name>.md`` (``'3'``, ``'3.2'`` ...)."""
    with open(osp.join(DOCS, f'{name}.md'), encoding='utf-8') as f:
        return {m.group(1) for m in map(HEADING.match, f) if m}


def citations(path):
    """``(line number, prefix, page name, [section numbers])`` of every ``docs/*.md`` citation in a file."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for m in CITATION.finditer(text):
        line = text.count('\n', 0, m.start()) + 1
        sections = SECTION_NUMBER.findall(m.group('sections') or '')
        yield line, m.group('prefix'), m.group('name'), sections


def test_citation_pattern_reads_the_forms_in_use():
    """The parser sees the page and every section number of the citation forms the docstrings use."""
    cases = {
        '(``docs/method.md`` section 3.2).': ('method', ['3.2']),
        '``docs/prior3d.md`` sections 1.2, 1.3 and 2).': ('prior3d', ['1.2', '1.3', '2']),
        '(Sec. 3.2, ``docs/method.md`` 3): a 3-level': ('method', ['3']),
        '(``docs/method.md`` sections 2-5): an edit': ('method', ['2', '5']),
        'see ``docs/data_preparation.md``.': ('data_preparation', []),
        'docs/method.md)': ('method', []),
    }
    for text, expected in cases.items():
        m = CITATION.search(text)
        assert m, text
        assert (m.group('name'), SECTION_NUMBER.findall(m.group('sections') or '')) == expected, text
    assert CITATION.search('``../shared/docs/baselines.md`` section 4').group('prefix') == '../shared/'


def test_docs_pages_have_numbered_sections():
    """The pages the code cites by section number number their headings (the parser finds them)."""
    for name in ('method', 'prior3d', 'baselines', 'environment', 'metric_protocol', 'design'):
        assert {'1', '2'} <= headings(name), name


def test_every_cited_docs_page_and_section_exists():
    """Each ``docs/<name>.md`` cited in a ``.py`` file exists in ``docs/``, inside the repository, with the cited
    sections as numbered headings."""
    problems = []
    pages = {f[:-3] for f in os.listdir(DOCS) if f.endswith('.md')}
    count = 0
    for path in python_files():
        rel = osp.relpath(path, ROOT)
        for line, prefix, name, sections in citations(path):
            where = f'{rel}:{line}: docs/{name}.md'
            if '://' in prefix:  # an address on the web, not a page of this repository
                continue
            count += 1
            if prefix:
                problems.append(f'{where} is cited through {prefix!r}: cite the repository\'s own docs/{name}.md')
            if name not in pages:
                problems.append(f'{where} does not exist (pages: {", ".join(sorted(pages))})')
                continue
            missing = [s for s in sections if s not in headings(name)]
            if missing:
                problems.append(f'{where}: no section {", ".join(missing)} (numbered headings: '
                                f'{", ".join(sorted(headings(name), key=lambda s: [int(p) for p in s.split(".")]))})')
    assert count > 0, 'no docs/*.md citation found at all: the pattern or the file list is broken'
    assert not problems, 'broken documentation citations:\n' + '\n'.join(problems)


LINK = re.compile(r'\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)')


@pytest.mark.parametrize('page', sorted(f for f in os.listdir(DOCS) if f.endswith('.md')) + ['../README.md'])
def test_relative_links_resolve(page):
    """Relative links of ``docs/*.md`` and of the README point at files of the repository."""
    path = osp.normpath(osp.join(DOCS, page))
    with open(path, encoding='utf-8') as f:
        text = f.read()
    missing = [t for t in LINK.findall(text) if not osp.exists(osp.normpath(osp.join(osp.dirname(path), t)))]
    assert not missing, f'{osp.relpath(path, ROOT)} links to missing files: {missing}'


def test_readme_lists_the_docs():
    """The README's documentation list links every page of ``docs/``."""
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    unlisted = [f for f in sorted(os.listdir(DOCS)) if f.endswith('.md') and f'(docs/{f})' not in readme]
    assert not unlisted, f'README.md does not link {unlisted}'


def test_licence_and_citation_files_agree_with_the_package():
    """LICENSE is the Apache-2.0 text setup.py declares; CITATION.cff parses, carries the package version and cites
    the paper the toolkit implements."""
    import yaml

    from lowlight3d.version import __version__
    text = open(osp.join(ROOT, 'LICENSE'), encoding='utf-8').read()
    assert 'Apache License' in text and 'Version 2.0' in text
    assert "license='Apache-2.0'" in open(osp.join(ROOT, 'setup.py'), encoding='utf-8').read()
    cff = yaml.safe_load(open(osp.join(ROOT, 'CITATION.cff'), encoding='utf-8'))
    assert cff['license'] == 'Apache-2.0' and str(cff['version']) == __version__
    assert 'Knowledge Distillation and 3D Prior' in cff['preferred-citation']['title']
    first = open(osp.join(ROOT, 'requirements.txt'), encoding='utf-8').readline()
    assert '../' not in first  # the repository's files point inside the repository
