"""The project's own documentation is complete: every ``docs/<name>.md`` cited in the code exists in the repository.

Docstrings and comments cite the pages of ``docs/`` as ``docs/method.md section 3.2``, ``docs/prior3d.md`` 4.1 and
4.3, ``docs/method.md sections 2-5`` ...  These tests fail when

* a ``.py`` file under ``lowlight3d/``, ``baselines/``, ``scripts/`` or ``tests/`` (or at the top level) cites a page
  that ``docs/`` does not hold, or a page outside the repository (``../shared/docs/...``): a clone must be complete
  on its own;
* a cited section number (the numbers right after the citation, optionally introduced by ``section``/``sections``)
  is not a numbered heading of that page (``## 3.`` or ``### 3.2 ...``);
* a relative link or image path of ``README.md``, ``docs/*.md`` or ``baselines/README.md`` points at a missing file,
  or its ``#anchor`` at a heading the page does not have;
* the README grows past 220 lines (it is the short user guide; details belong in ``docs/``), stops listing a page of
  ``docs/``, or loses the two commands that ``.ci/run`` relies on.
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


README = osp.join(ROOT, 'README.md')
README_MAX_LINES = 220
MARKDOWN_PAGES = ['README.md', 'baselines/README.md'] + sorted(
    f'docs/{f}' for f in os.listdir(DOCS) if f.endswith('.md'))
# Markdown links and images ``[text](target)`` / ``![alt](target)`` and HTML ``<img src="target">``; targets on the
# web or mail addresses are not files of the repository.
MD_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HTML_SRC = re.compile(r'<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*["\']([^"\']+)["\']', re.IGNORECASE)
EXTERNAL = re.compile(r'^(?:[a-z][a-z0-9+.-]*:|//)', re.IGNORECASE)
FENCE = re.compile(r'^(```|~~~).*?^\1', re.MULTILINE | re.DOTALL)


def _read(rel):
    with open(osp.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


def link_targets(text):
    """Relative link and image targets of a markdown page (fenced code blocks and inline code left out)."""
    text = FENCE.sub('', text)
    text = re.sub(r'`[^`\n]*`', '', text)
    targets = MD_LINK.findall(text) + HTML_SRC.findall(text)
    return [t for t in targets if not EXTERNAL.match(t)]


def anchors(text):
    """GitHub's anchors of a markdown page's headings (``## 3. Real-face benchmark`` -> ``3-real-face-benchmark``)."""
    found = set()
    for line in FENCE.sub('', text).splitlines():
        m = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            slug = re.sub(r'[^\w\- ]', '', m.group(1).strip().lower()).replace(' ', '-')
            base, n = slug, 1
            while slug in found:
                slug, n = f'{base}-{n}', n + 1
            found.add(slug)
    return found


def test_link_parser_reads_links_images_and_skips_code():
    """The parser finds links, images and HTML sources, and leaves out web addresses and code."""
    text = ('[a](docs/a.md) ![b](docs/figures/b.jpg "title") <img src="c.png" width=3> [d](https://x.org/e.md)\n'
            '[f](#local) [g](docs/g.md#sec) `[h](h.md)`\n```\n[i](i.md)\n```\n[m](mailto:x@y.z)\n')
    assert link_targets(text) == ['docs/a.md', 'docs/figures/b.jpg', '#local', 'docs/g.md#sec', 'c.png']
    assert anchors('# Title\n## 3. Real-face benchmark\n### 6.1 Paper data sets\n## Licence and citation\n') == {
        'title', '3-real-face-benchmark', '61-paper-data-sets', 'licence-and-citation'}


@pytest.mark.parametrize('page', MARKDOWN_PAGES)
def test_relative_links_resolve(page):
    """Every relative link and image path of the README, ``docs/*.md`` and ``baselines/README.md`` points at a file
    (or folder) of the repository, and every ``#anchor`` at a heading of its page."""
    text = _read(page)
    base = osp.dirname(osp.join(ROOT, page))
    problems = []
    for target in link_targets(text):
        path, _, anchor = target.partition('#')
        full = osp.normpath(osp.join(base, path)) if path else osp.join(ROOT, page)
        if not osp.exists(full):
            problems.append(f'{target}: no such file')
        elif not osp.abspath(full).startswith(ROOT + os.sep):
            problems.append(f'{target}: outside the repository')
        elif anchor and full.endswith('.md') and anchor not in anchors(_read(osp.relpath(full, ROOT))):
            problems.append(f'{target}: no heading with anchor #{anchor}')
    assert not problems, f'{page} has broken links:\n' + '\n'.join(problems)


def test_readme_is_short():
    """The README stays the short user guide (GFPGAN/BasicSR style); details go to ``docs/``."""
    lines = _read('README.md').count('\n')
    assert lines <= README_MAX_LINES, (f'README.md has {lines} lines, more than {README_MAX_LINES}: move details to '
                                       'docs/train_test.md, docs/inference.md or docs/experiments.md')


def test_readme_lists_the_docs():
    """The README's documentation list links every page of ``docs/`` and the baselines' notes."""
    readme = _read('README.md')
    unlisted = [f for f in sorted(os.listdir(DOCS)) if f.endswith('.md') and f'(docs/{f})' not in readme]
    unlisted += [] if '(baselines/README.md)' in readme else ['baselines/README.md']
    assert not unlisted, f'README.md does not link {unlisted}'


def test_readme_keeps_the_two_commands_the_ci_runs():
    """The README's two commands stay verbatim, and ``.ci/run`` runs the README's test command."""
    readme = _read('README.md')
    for line in ('make demo    # creates .venv if needed, generates the demo faces, trains the 3D prior and the full '
                 'method, tests it',
                 'make test    # creates .venv if needed, runs the test suite on CPU'):
        assert '\n' + line + '\n' in readme, f'README.md lost the command line {line!r}'
    ci = [s.strip() for s in _read('.ci/run').splitlines() if s.strip() and not s.lstrip().startswith('#')]
    assert 'make test' in ci, '.ci/run no longer runs the README\'s test command (make test)'


def test_readme_figure_is_small_and_generated():
    """The README's picture exists, is a small JPEG, and comes from the script that makes it from demo results."""
    figure = osp.join(ROOT, 'docs', 'figures', 'demo_faces.jpg')
    assert '(docs/figures/demo_faces.jpg)' in _read('README.md')
    assert osp.getsize(figure) < 150 * 1024, 'docs/figures/demo_faces.jpg should stay below 150 KB'
    with open(figure, 'rb') as f:
        assert f.read(3) == b'\xff\xd8\xff', 'docs/figures/demo_faces.jpg is not a JPEG'
    script = _read('scripts/readme_figure.py')
    assert 'docs/figures/demo_faces.jpg' in script and 'results/demo_LowLight3D_randomVGG/grids/' in script


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
