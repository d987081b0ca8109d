"""Check every internal link of a built HTML site: each href/src to a page of the site names a file that
exists, and each #fragment an id (or name) in that page. External links (a scheme, or //host) are not
fetched: the build is offline.

    python scripts/check_links.py docs/_build/html

Prints one line per broken link (``page: href: what is wrong``) and exits 1 if there is any; prints the
count of links checked and exits 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["broken_links", "main"]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link", "area")) or (
                name == "src" and tag in ("img", "script", "iframe", "source")
            ):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: Path) -> tuple[int, list[str]]:
    """(links checked, one message per broken internal link) for the site under ``root``."""
    root = root.resolve()
    pages = {
        path: _parse(path)
        for path in sorted(root.rglob("*.html"))
        if "_static" not in path.relative_to(root).parts  # theme templates copied as they are, not pages
    }
    checked = 0
    problems = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("//", "mailto:", "javascript:")):
                continue
            checked += 1
            where = path.relative_to(root)
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(root):
                problems.append(f"{where}: {link}: points outside the site")
                continue
            if not target.is_file():
                problems.append(f"{where}: {link}: no such file")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if fragment not in ids:
                    problems.append(f"{where}: {link}: no id {fragment!r} in {target.relative_to(root)}")
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the internal links of a built HTML site.")
    parser.add_argument("root", type=Path, help="the site's folder, e.g. docs/_build/html")
    args = parser.parse_args(argv)
    if not (args.root / "index.html").is_file():
        print(f"check_links: no index.html in {args.root}: build the site first (make docs)", file=sys.stderr)
        return 2
    checked, problems = broken_links(args.root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_links: {len(problems)} broken of {checked} internal links", file=sys.stderr)
        return 1
    print(f"check_links: {checked} internal links, none broken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
