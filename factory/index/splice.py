"""Put one project's entry into a whole-index document, without reading the others.

The catalog (records/_catalog.json), the project list (simple/index.html and
index.json) and the home page each list every project, in name order, one
entry after another in a fixed text form. A publish changes one project, so it
replaces (or inserts) that project's entry in the text as last written, found
by binary search over the text, instead of parsing, re-rendering and comparing
every entry: its cost does not grow with the index (but for copying the bytes).

Each function returns the new text, or None when the text is not in the form
this code writes (hand-edited, damaged, or by another version): the caller then
renders the document whole (factory.index.regen). Every value inside an entry is
escaped (JSON, HTML), so an entry's start marker appears nowhere else; names are
normalized (``[a-z0-9-]``), so they need no escaping.
"""

from __future__ import annotations

from collections.abc import Callable

from factory._internal.atomic import canonical_json
from factory.index.records import is_normalized, normalize


def find_entry(text: str, lo: int, hi: int, prefix: str, key_end: str, name: str,
               key: Callable[[str], str] = str) -> tuple[int, bool] | None:
    """Where the entry of ``name`` starts in ``text[lo:hi]`` (True), or where it would be
    inserted (False): the start of the first entry whose key sorts after it, else ``hi``.

    Entries start with ``prefix``, followed by their key up to ``key_end``, and are in
    key order. O(log n) probes of ``str.find``. None if a probe finds no key.
    """
    answer = hi
    low, high = lo, hi
    while low < high:
        mid = (low + high) // 2
        start = text.find(prefix, mid, hi)
        if start < 0:
            high = mid
            continue
        begin = start + len(prefix)
        end = text.find(key_end, begin, hi)
        if end < 0:
            return None
        found = key(text[begin:end])
        if found == name:
            return start, True
        if found > name:
            answer, high = start, mid
        else:
            low = start + 1
    return answer, False


# -- records/_catalog.json: canonical JSON (factory._internal.atomic), one object per project
_CATALOG_ENTRY = '\n  "'  # a top-level key: the values inside are indented further
_CATALOG_KEY_END = '": {\n'
_CATALOG_ENTRY_END = "\n  }"


def catalog_put(text: str, name: str, summary: dict[str, object]) -> str | None:
    """``text`` (the catalog as written) with ``name``'s line set to ``summary``."""
    whole = canonical_json({name: summary})
    block = whole[2:-3]  # '  "name": {\n ... \n  }'
    if text == "{}\n":
        return whole
    if not (text.startswith("{\n") and text.endswith("\n}\n")):
        return None
    found = find_entry(text, 1, len(text) - 3, _CATALOG_ENTRY, _CATALOG_KEY_END, name)
    if found is None:
        return None
    at, exists = found
    if exists:
        end = text.find(_CATALOG_ENTRY_END, at + 1)
        if end < 0:
            return None
        return text[:at + 1] + block + text[end + len(_CATALOG_ENTRY_END):]
    if at == len(text) - 3:  # after the last entry
        return text[:at] + ",\n" + block + text[at:]
    return text[:at + 1] + block + ",\n" + text[at + 1:]


# -- the home page's project rows (factory.index.human: home_rows, render_home_page) ----------
_TABLE = '<table id="projects">'
_ROWS_START = "<tbody>\n"
_ROWS_END = "\n</tbody></table>"
_ROW = '<tr>\n<td><a href="project/'
_ROW_KEY_END = '/">'
_ROW_END = "</tr>\n"


def home_rows_of(page: str, empty: str) -> str | None:
    """The project rows of a home page as written ("" for none), or None."""
    table = page.find(_TABLE)
    if table < 0:
        return None
    start = page.find(_ROWS_START, table)
    end = page.find(_ROWS_END, start)
    if start < 0 or end < 0:
        return None
    rows = page[start + len(_ROWS_START):end]
    if rows == empty:
        return ""
    return rows if (not rows or (rows.startswith(_ROW) and rows.endswith(_ROW_END))) else None


def rows_put(rows: str, name: str, row: str) -> str | None:
    """``rows`` with the row of ``name`` replaced by ``row`` (or inserted in order)."""
    found = find_entry(rows, 0, len(rows), _ROW, _ROW_KEY_END, name)
    if found is None:
        return None
    at, exists = found
    end = at
    if exists:
        end = rows.find(_ROW_END, at)
        if end < 0:
            return None
        end += len(_ROW_END)
    return rows[:at] + row + rows[end:]


def row_count(rows: str) -> int:
    return rows.count(_ROW)


# -- the project list (factory.index.pages: project_list_html, project_list_json) -------------
_LIST_START = "<h1>Simple index</h1>\n"
_LIST_END = "</body>\n</html>\n"
_LINK = '<a href="'


def list_html_put(text: str, name: str, line: str) -> str | None:
    """The HTML project list with ``line`` (the link to ``name``) in its place."""
    start, end = text.find(_LIST_START), len(text) - len(_LIST_END)
    if start < 0 or not text.endswith(_LIST_END):
        return None
    found = find_entry(text, start + len(_LIST_START), end, _LINK, _ROW_KEY_END, name)
    if found is None:
        return None
    at, exists = found
    if exists:  # a display name is fixed when a project is first published
        end_of_line = text.find("\n", at)
        return text[:at] + line + text[end_of_line:] if end_of_line > 0 else None
    return text[:at] + line + "\n" + text[at:]


_JSON_ENTRY = '  {\n   "name": "'
_JSON_KEY_END = '"\n  }'
_JSON_END = "\n ]\n}\n"


def _list_key(display: str) -> str:
    # A display name is a spelling of the normalized name it is listed under;
    # anything else is not a key of this list (sorts first, never matches).
    return normalize(display) if is_normalized(normalize(display)) else ""


def list_json_put(text: str, name: str, entry: str) -> str | None:
    """The JSON project list with ``entry`` (``name``'s object, as rendered) in its place."""
    if not text.endswith(_JSON_END) or _JSON_ENTRY not in text:
        return None  # none listed yet ("projects": []): the caller renders it
    lo = text.find(_JSON_ENTRY) - 1  # the newline after '['
    hi = len(text) - len(_JSON_END)
    found = find_entry(text, lo, hi, "\n" + _JSON_ENTRY, _JSON_KEY_END, name, _list_key)
    if found is None:
        return None
    at, exists = found
    if exists:
        end = text.find(_JSON_KEY_END, at + 1)
        return text[:at + 1] + entry + text[end + len(_JSON_KEY_END):] if end > 0 else None
    if at == hi:  # after the last entry
        return text[:at] + ",\n" + entry + text[at:]
    return text[:at + 1] + entry + ",\n" + text[at + 1:]
