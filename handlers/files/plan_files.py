"""Reading plan, people and networks files (YAML, CSV, XLSX) into drafts (DESIGN.md §5).

Nothing here writes anything: a file becomes a draft plus a list of every problem found,
with its row, column and value. The importer resolves leads and networks against the
directory and writes only when no problem is an error.

Every cell is read as data: a CSV cell that `pulse export` escaped against formula injection
(a leading `'` before `= + - @`, see handlers/files/export.py) is read back without it, and an XLSX
formula counts only by the value Excel saved for it. Text is UTF-8 (or UTF-16 with a
byte-order mark); a file with no UTF-8 in it at all is read as Windows-1252. NUL characters,
which PostgreSQL cannot store, and files beyond the limits below are refused.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.domain import timescales
from bot.domain.child_details import case_number_pattern
from bot.domain.contacts import MAX_CONTACTS
from bot.domain.cycles import CyclePolicy
from bot.domain.drafts import DraftAction, DraftMilestone, Listing, PlanDraft
from bot.domain.errors import Problem, TimescaleError
from bot.domain.leads import same_key
from bot.domain.model import (
    Channel,
    Contact,
    Network,
    Person,
    Plan,
    Quarters,
    RiskPolicy,
    Timescale,
)
from bot.domain.ratings import RATINGS, rating_from_text
from bot.domain.webhooks import redacted_webhook, webhook_problem
from handlers.files import layout, pasted
from handlers.files.columns import (
    EXPORT_DUE_HEADINGS,
    PLAN_COLUMNS,
    decode_text,
    header_key,
    plan_header,
)

PEOPLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "key": ("key", "initials", "id"),
    "name": ("name", "full name"),
    "email": ("email", "e-mail", "email address"),
    "slack": ("slack", "slack id", "slack user id", "slack_user_id"),
    "prefers": ("prefers", "channel", "preferred channel"),
    "timezone": ("timezone", "time zone", "tz"),
    "delegate": ("delegate",),
    "away_until": ("away until", "away_until", "away"),
    "other_emails": ("other emails", "other_emails", "secondary emails", "also writes from"),
}
NETWORK_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "key": ("key", "id"),
    "name": ("name",),
    "slack_channel": ("slack_channel", "slack channel", "channel", "slack"),
    "teams_webhook": ("teams_webhook", "teams webhook", "teams", "workflows webhook"),
    "coordinators": ("coordinators", "coordinator", "emails", "coordinator emails"),
    "all_actions": ("all_actions", "all actions", "oversight", "plan-wide"),
    "priorities": ("priorities", "priority", "follows priorities"),
}

_BULLET = re.compile(r"^\s*(?:[-•*·‒–—▪◦●]|o(?=\s)|\d+[.)](?=\s))\s*")
_PRIORITY = re.compile(
    r"^\s*(?:(?:priority|workstream|theme|ws|p)\s*)?(\d+)(?:\.0+)?\b\s*[-–—:.)]?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
# Limits on any one file, well above the largest real plans (a few hundred rows) and low
# enough that a wrong file is refused in a second instead of filling memory. README: Limits.
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
# An XLSX is a zip: what it unpacks to is bounded too, so a small file cannot expand to gigabytes.
MAX_XLSX_UNPACKED_BYTES = 500 * 1024 * 1024
# Columns a people or networks file must have; the others, when absent, keep what is stored.
PEOPLE_REQUIRED = ("key", "email")
NETWORKS_REQUIRED = ("key",)
# The model field each optional column fills.
PERSON_FIELDS: Mapping[str, str] = {
    "name": "name",
    "email": "email",
    "slack": "slack_user_id",
    "prefers": "prefers",
    "timezone": "timezone",
    "delegate": "delegate_key",
    "away_until": "away_until",
    "other_emails": "other_emails",
}
NETWORK_FIELDS: Mapping[str, str] = {
    "name": "name",
    "slack_channel": "slack_channel",
    "teams_webhook": "teams_webhook",
    "coordinators": "coordinators",
    "all_actions": "all_actions",
}

# A spreadsheet treats a cell starting with one of these as a formula (OWASP, "CSV
# Injection"); an export puts a `'` before it, and before a `'` already there so that the
# escape can be undone exactly.
_FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
# Lone surrogates: what `decode_text` leaves where bytes were not text in the file's encoding.
_NOT_TEXT = re.compile("[\ud800-\udfff]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY = re.compile(r"^[\w][\w.\-]*$")  # a network's key
# A person's key is any short text as plans write leads (`S Murray`, `SLI Board`), but never
# with the characters that separate leads in a cell.
_PERSON_KEY_BAD = re.compile(r"[/,;\n]")
_PERSON_KEY_MAX = 64


# --------------------------------------------------------------------------- tables


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


@dataclass(slots=True)
class Table:
    """The rows of a CSV or XLSX file as text, header first, and how its bytes were read."""

    rows: list[list[str]]
    encoding: str | None = None
    sheet: str | None = None  # the workbook sheet read
    header_at: int = 0  # the index of a plan's header row, below any title rows


def unescape_formula(text: str) -> str:
    """A CSV cell as it was before `pulse export` escaped it against formula injection."""
    return text[1:] if text.startswith("'") and _FORMULA_START.match(text) else text


def _too_big(path: Path, problems: list[Problem]) -> bool:
    size = path.stat().st_size
    if size <= MAX_FILE_BYTES:
        return False
    problems.append(
        Problem(
            None,
            None,
            None,
            f"the file is {size / 2**20:.1f} MB; files are limited to "
            f"{MAX_FILE_BYTES // 2**20} MB: split the plan",
        )
    )
    return True


def _too_many_rows(problems: list[Problem]) -> None:
    problems.append(
        Problem(
            None,
            None,
            None,
            f"the file has more than {MAX_ROWS:,} rows; files are limited to {MAX_ROWS:,} "
            "rows: split the plan",
        )
    )


def read_table(
    path: Path, problems: list[Problem], *, sheet: str | None = None, plan: bool = False
) -> Table:
    """The rows of a CSV or XLSX file as text, header first (for a plan: `header_at`).

    From a workbook: the sheet named `sheet`, else the first sheet (for a `plan`, the first
    with a plan's header row in its first rows, wherever that row is).

    What cannot be read as data — a NUL character, bytes that are not text, a formula with
    no saved value, a file past the limits — is added to `problems` with its row and column.
    """
    suffix = path.suffix.lower()
    if suffix in (".xls", ".ods", ".numbers"):
        problems.append(
            Problem(None, None, None, f"{suffix} files are not read: save it as .xlsx or .csv")
        )
        return Table([])
    if _too_big(path, problems):
        return Table([])
    if suffix in (".xlsx", ".xlsm"):
        table = _read_xlsx(path, problems, sheet=sheet, plan=plan)
    else:
        table = _read_csv(path, problems)
    _check_cells(table.rows, table.encoding, problems)
    return table


def _read_csv(path: Path, problems: list[Problem]) -> Table:
    text, encoding = decode_text(path.read_bytes())
    if text.count("\0") > len(text) // 100:
        problems.append(
            Problem(
                None,
                None,
                None,
                "the file is full of NUL characters: it is not a CSV text file (save it as "
                "'CSV UTF-8')",
            )
        )
        return Table([], encoding)
    if encoding not in ("UTF-8", "UTF-16"):
        problems.append(
            Problem(
                None,
                None,
                None,
                f"the file is not UTF-8: read as {encoding}; check accented letters and "
                "dashes, or save it as 'CSV UTF-8'",
                "warning",
            )
        )
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t")
    except csv.Error:
        dialect = csv.excel
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        for row in reader:
            if len(rows) > MAX_ROWS:
                _too_many_rows(problems)
                return Table([], encoding)
            rows.append([_cell_text(unescape_formula(c)) for c in row])
    except csv.Error as exc:
        problems.append(Problem(len(rows) + 1, None, None, f"not readable as CSV: {exc}"))
        return Table([], encoding)
    return Table(rows, encoding)


def _read_xlsx(path: Path, problems: list[Problem], *, sheet: str | None, plan: bool) -> Table:
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        problems.append(Problem(None, None, None, "not an XLSX workbook (not a zip archive)"))
        return Table([])
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        problems.append(
            Problem(
                None,
                None,
                None,
                f"the workbook unpacks to {unpacked / 2**20:.0f} MB; workbooks are limited to "
                f"{MAX_XLSX_UNPACKED_BYTES // 2**20} MB unpacked: split the plan",
            )
        )
        return Table([])
    from openpyxl import load_workbook

    try:
        # One opening of the workbook both picks the sheet and reads it (opening a sheet
        # that does not state its size reads all of it to find out).
        book = load_workbook(path, read_only=True, data_only=False)
        try:
            try:
                name, header_at = _choose_sheet(book, sheet, plan=plan)
            except _FormulaHeader:
                name, header_at = _choose_sheet_by_values(path, sheet, plan=plan)
            if name is None:
                problems.append(
                    Problem(None, None, sheet, f"no such sheet: the sheets are {header_at}")
                )
                return Table([])
            raw, formulas = _sheet_cells(book[name])
        finally:
            book.close()
        if formulas:
            # A formula is data only by the value Excel saved with it; openpyxl gives that
            # value or the formula, never both, so a workbook with formulas is read twice.
            saved, _ = _xlsx_cells(path, data_only=True, sheet=name)
            for r, c in formulas:
                value = saved[r][c] if r < len(saved) and c < len(saved[r]) else None
                if value is None:
                    problems.append(
                        Problem(
                            r + 1,
                            _heading(raw, c),
                            str(raw[r][c]),
                            f"cell {_coordinate(r, c)} holds a formula with no saved value: "
                            "open and save the file in Excel, or paste values only",
                        )
                    )
                raw[r][c] = value
    except (InvalidFileException, KeyError, ValueError, zipfile.BadZipFile) as exc:
        problems.append(Problem(None, None, None, f"not a readable XLSX workbook: {exc}"))
        return Table([])
    except _TooManyRows:
        _too_many_rows(problems)
        return Table([])
    return Table([[_cell_text(v) for v in row] for row in raw], sheet=name, header_at=header_at)


class _TooManyRows(Exception):
    pass


class _FormulaHeader(Exception):
    """A row searched for a plan's header holds a formula: only its saved value tells."""


def _choose_sheet(book: Any, sheet: str | None, *, plan: bool) -> tuple[str | None, Any]:
    """(the sheet to read, the index of its plan header row); (None, the sheets' names) when
    `sheet` names none of them. Without `sheet`, a plan's sheet is the first whose first
    rows hold a plan's header row, else the first sheet. Raises `_FormulaHeader` when a
    formula stands in a row it searches (`book` read without saved values)."""
    if sheet is not None:
        names = {name.casefold(): name for name in book.sheetnames}
        if sheet.casefold() not in names:
            return None, ", ".join(map(repr, book.sheetnames))
        chosen = [book[names[sheet.casefold()]]]
    else:
        # The "Summary" sheet `pulse export` puts first is output: looked at last.
        chosen = sorted(book.worksheets, key=lambda ws: ws.title.casefold() == "summary")
    if not plan:
        return chosen[0].title, 0
    for ws in chosen:
        for index, row in enumerate(ws.iter_rows(max_row=_HEADER_SEARCH)):
            if any(cell.data_type == "f" for cell in row):
                raise _FormulaHeader
            if plan_header([_cell_text(cell.value) for cell in row]):
                return ws.title, index
    return chosen[0].title, 0


def _choose_sheet_by_values(path: Path, sheet: str | None, *, plan: bool) -> tuple[str | None, Any]:
    """`_choose_sheet` by the values Excel saved with the formulas."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        return _choose_sheet(book, sheet, plan=plan)
    finally:
        book.close()


_HEADER_SEARCH = 15  # rows searched for a plan's header below its title rows


def _xlsx_cells(
    path: Path, *, data_only: bool, sheet: str
) -> tuple[list[list[object]], list[tuple[int, int]]]:
    """The sheet's values, and the (row, column) indexes of its formula cells."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=data_only)
    try:
        return _sheet_cells(book[sheet])
    finally:
        book.close()


def _sheet_cells(ws: Any) -> tuple[list[list[object]], list[tuple[int, int]]]:
    """A read-only sheet's values, and the (row, column) indexes of its formula cells."""
    rows: list[list[object]] = []
    formulas: list[tuple[int, int]] = []
    for r, row in enumerate(ws.iter_rows()):
        if r > MAX_ROWS:
            raise _TooManyRows
        values: list[object] = []
        for c, cell in enumerate(row):
            if cell.data_type == "f":
                formulas.append((r, c))
            values.append(cell.value)
        rows.append(values)
    return rows, formulas


def _coordinate(row: int, column: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(column + 1)}{row + 1}"


def _heading(rows: Sequence[Sequence[object]], column: int) -> str:
    header = rows[0] if rows else []
    title = str(header[column]).strip() if column < len(header) and header[column] else ""
    return title or f"column {column + 1}"


def _check_cells(rows: list[list[str]], encoding: str | None, problems: list[Problem]) -> None:
    """Refuse NUL characters and bytes that are not text, naming each cell's row and column."""
    for number, row in enumerate(rows, start=1):
        for index, cell in enumerate(row):
            if "\0" in cell:
                problems.append(
                    Problem(
                        number,
                        _heading(rows, index),
                        None,
                        "holds a NUL character, which cannot be stored: remove it",
                    )
                )
            if _NOT_TEXT.search(cell):
                row[index] = _NOT_TEXT.sub("\ufffd", cell)
                problems.append(
                    Problem(
                        number,
                        _heading(rows, index),
                        row[index],
                        f"bytes that are not {encoding} (shown as \ufffd) in a file that is "
                        f"otherwise {encoding}: retype the text there",
                    )
                )


def _columns(
    header: Sequence[str],
    aliases: Mapping[str, tuple[str, ...]],
    problems: list[Problem],
    *,
    row: int = 1,
) -> dict[str, int]:
    lookup = {header_key(a): name for name, names in aliases.items() for a in names}
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        if not title.strip():
            continue
        name = lookup.get(header_key(title))
        if name == "timescale" and name in found and header_key(title) in EXPORT_DUE_HEADINGS:
            found.setdefault("due", index)
        elif name is None:
            problems.append(Problem(row, title, None, "column not recognised; ignored", "warning"))
        elif name in found:
            problems.append(
                Problem(row, title, None, f"second {name!r} column; ignored", "warning")
            )
        else:
            found[name] = index
    return found


@dataclass(slots=True)
class _Records:
    """(row number, {column: text}) for each non-empty data row; row 1 is the header."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    # The columns the file has (for YAML: that any item has); None for an empty file.
    columns: frozenset[str] | None = None
    header: list[str] = field(default_factory=list)
    encoding: str | None = None
    headings: dict[str, str] = field(default_factory=dict)  # field -> the file's heading


def _records(
    path: Path,
    aliases: Mapping[str, tuple[str, ...]],
    problems: list[Problem],
    *,
    sheet: str | None = None,
) -> _Records:
    """A plan's records start at its header row (title rows above it are left out), and
    the report names the sheet a plan was read from."""
    if path.suffix.lower() in (".yaml", ".yml"):
        rows = _yaml_rows(_load_yaml(path, problems), aliases, path.name, problems)
        return _Records(rows, _yaml_columns(rows))
    before = len(problems)
    table = read_table(path, problems, sheet=sheet, plan=aliases is PLAN_COLUMNS)
    at = table.header_at
    if len(table.rows) <= at:
        if not any(p.severity == "error" for p in problems[before:]):
            problems.append(Problem(None, None, None, "the file is empty"))
        return _Records(encoding=table.encoding)
    if table.sheet is not None and aliases is PLAN_COLUMNS:
        problems.append(Problem(None, None, None, f"read sheet {table.sheet!r}", "note"))
    columns = _columns(table.rows[at], aliases, problems, row=at + 1)
    headings = {name: " ".join(table.rows[at][i].split()) for name, i in columns.items()}
    out = []
    for number, row in enumerate(table.rows[at + 1 :], start=at + 2):
        if not any(cell.strip() for cell in row):
            continue
        out.append((number, {name: row[i] if i < len(row) else "" for name, i in columns.items()}))
    header = [cell for cell in table.rows[at] if cell.strip()]
    return _Records(out, frozenset(columns), header, table.encoding, headings)


def _yaml_columns(rows: Sequence[tuple[int, dict[str, str]]]) -> frozenset[str] | None:
    return frozenset(name for _, row in rows for name in row) if rows else None


def _require(
    columns: frozenset[str] | None,
    required: Sequence[str],
    aliases: Mapping[str, tuple[str, ...]],
    what: str,
    problems: list[Problem],
) -> bool:
    """Whether every required column is there; each one missing is reported."""
    if columns is None:
        return True
    missing = [name for name in required if name not in columns]
    for name in missing:
        headed = " or ".join(repr(a) for a in aliases[name][:2])
        problems.append(
            Problem(
                None, name, None, f"no {name!r} column: a {what} file needs one, headed {headed}"
            )
        )
    return not missing


def _unstated(
    rows: Sequence[tuple[int, dict[str, str]]], fields: Mapping[str, str], key: str
) -> dict[str, frozenset[str]]:
    """For each row's key, the model fields of the columns that row does not have."""
    out: dict[str, frozenset[str]] = {}
    for _, rec in rows:
        missing = frozenset(f for column, f in fields.items() if column not in rec)
        if missing and rec.get(key, "").strip():
            out[rec[key].strip()] = missing
    return out


def _load_yaml(path: Path, problems: list[Problem]) -> Any:
    if _too_big(path, problems):
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        problems.append(Problem(row, None, None, f"not valid YAML: {' '.join(str(exc).split())}"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(Problem(None, None, None, f"not UTF-8 text: {exc}"))
        return None
    for where in _nul_texts(data, ""):
        problems.append(
            Problem(None, where, None, "holds a NUL character, which cannot be stored: remove it")
        )
    return data


def _nul_texts(value: Any, where: str) -> Iterable[str]:
    """Where in a YAML document a key or text holds a NUL character (`"\\0"` is one)."""
    if isinstance(value, str):
        if "\0" in value:
            yield where or "document"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            yield from _nul_texts(key, name)
            yield from _nul_texts(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_texts(item, f"{where}[{index}]")


# --------------------------------------------------------------------------- people, networks


def _truthy(text: str) -> bool | None:
    value = text.strip().casefold()
    if value in ("true", "yes", "y", "1", "x"):
        return True
    if value in ("", "false", "no", "n", "0"):
        return False
    return None


def people_from_records(
    records: Sequence[tuple[int, dict[str, str]]], problems: list[Problem]
) -> Listing[Person]:
    """The people in the rows, and for each the fields of the columns the file lacks."""
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row, rec in records:
        key = " ".join(rec.get("key", "").split())
        name = " ".join(rec.get("name", "").split()) or key
        if not key:
            problems.append(Problem(row, "key", "", "a person needs a key"))
            continue
        if _PERSON_KEY_BAD.search(key) or len(key) > _PERSON_KEY_MAX:
            problems.append(
                Problem(
                    row,
                    "key",
                    key,
                    f"a key is at most {_PERSON_KEY_MAX} characters, without '/', ',' or ';'",
                )
            )
            continue
        folded = same_key(key)
        if folded in seen:
            problems.append(
                Problem(row, "key", key, f"duplicate person key (first on row {seen[folded]})")
            )
            continue
        seen[folded] = row
        email = rec.get("email", "").strip() or None
        if email is None and not rec.get("slack", "").strip():
            problems.append(
                Problem(
                    row,
                    "email",
                    "",
                    f"{key} has no email: they cannot be prompted by email until one is added",
                    "warning",
                )
            )
        if email and not _EMAIL.match(email):
            problems.append(Problem(row, "email", email, "not an email address"))
        others = tuple(
            dict.fromkeys(
                a.casefold() for a in re.split(r"[;,\s]+", rec.get("other_emails", "")) if a
            )
        )
        for address in others:
            if not _EMAIL.match(address):
                problems.append(Problem(row, "other_emails", address, "not an email address"))
        prefers_text = rec.get("prefers", "").strip().casefold() or "email"
        if prefers_text not in ("slack", "email", "teams"):
            problems.append(
                Problem(row, "prefers", prefers_text, "must be 'slack', 'email' or 'teams'")
            )
            prefers_text = "email"
        tz = rec.get("timezone", "").strip() or None
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(Problem(row, "timezone", tz, "unknown timezone"))
                tz = None
        away: date | None = None
        if rec.get("away_until", "").strip():
            try:
                away = timescales.read_day(rec["away_until"])
            except TimescaleError as exc:
                problems.append(Problem(row, "away_until", rec["away_until"], exc.reason))
        people.append(
            Person(
                key=key,
                name=name,
                email=email,
                slack_user_id=rec.get("slack", "").strip() or None,
                prefers=Channel(prefers_text),
                timezone=tz,
                delegate_key=rec.get("delegate", "").strip() or None,
                away_until=away,
                other_emails=others,
            )
        )
    return Listing(people, _unstated(records, PERSON_FIELDS, "key"))


def networks_from_records(
    records: Sequence[tuple[int, dict[str, str]]], problems: list[Problem]
) -> Listing[Network]:
    """The networks in the rows, and for each the fields of the columns the file lacks."""
    networks: list[Network] = []
    seen: dict[str, int] = {}
    for row, rec in records:
        key = rec.get("key", "").strip()
        if not key or not _KEY.match(key):
            problems.append(
                Problem(row, "key", key, "a network needs a key of letters, digits, '.', '-', '_'")
            )
            continue
        if key.casefold() in seen:
            problems.append(
                Problem(
                    row, "key", key, f"duplicate network key (first on row {seen[key.casefold()]})"
                )
            )
            continue
        seen[key.casefold()] = row
        coordinators = tuple(a for a in re.split(r"[;,\s]+", rec.get("coordinators", "")) if a)
        for address in coordinators:
            if not _EMAIL.match(address):
                problems.append(Problem(row, "coordinators", address, "not an email address"))
        all_actions = _truthy(rec.get("all_actions", ""))
        if all_actions is None:
            problems.append(
                Problem(row, "all_actions", rec.get("all_actions"), "must be true or false")
            )
        priorities: list[int] = []
        for text in re.split(r"[;,\s]+", rec.get("priorities", "")):
            if not text:
                continue
            if text.isdigit():
                priorities.append(int(text))
            else:
                problems.append(
                    Problem(row, "priorities", text, "priorities are numbers such as 2;3;4")
                )
        webhook = rec.get("teams_webhook", "").strip() or None
        if webhook is not None:
            problem = webhook_problem(webhook)
            if problem is not None:  # shown without its signature, like every webhook
                problems.append(Problem(row, "teams_webhook", redacted_webhook(webhook), problem))
        networks.append(
            Network(
                key=key,
                name=rec.get("name", "").strip() or key,
                slack_channel=rec.get("slack_channel", "").strip() or None,
                coordinators=coordinators,
                all_actions=bool(all_actions),
                priorities=tuple(dict.fromkeys(priorities)),
                teams_webhook=webhook,
            )
        )
    return Listing(networks, _unstated(records, NETWORK_FIELDS, "key"))


def read_people(path: Path) -> tuple[Listing[Person], list[Problem]]:
    """The people file's people; a file without a `key` or `email` column lists nobody."""
    problems: list[Problem] = []
    records = _records(path, PEOPLE_COLUMNS, problems)
    if not _require(records.columns, PEOPLE_REQUIRED, PEOPLE_COLUMNS, "people", problems):
        return Listing(), problems
    return people_from_records(records.rows, problems), problems


def read_networks(path: Path) -> tuple[Listing[Network], list[Problem]]:
    """The networks file's networks; a file without a `key` column lists none."""
    problems: list[Problem] = []
    records = _records(path, NETWORK_COLUMNS, problems)
    if not _require(records.columns, NETWORKS_REQUIRED, NETWORK_COLUMNS, "networks", problems):
        return Listing(), problems
    return networks_from_records(records.rows, problems), problems


# --------------------------------------------------------------------------- plans


def milestone_lines(cell: str) -> list[str]:
    """The milestones in a cell: one per bulleted line; unbulleted lines continue the one
    before when the cell uses bullets, and stand alone when it doesn't."""
    lines = [line for line in cell.split("\n") if line.strip()]
    if not lines:
        return []
    bulleted = [bool(_BULLET.match(line)) for line in lines]
    if not any(bulleted):
        return [line.strip() for line in lines]
    out: list[str] = []
    for line, is_bullet in zip(lines, bulleted, strict=True):
        if is_bullet or not out:
            out.append(_BULLET.sub("", line, count=1).strip())
        else:
            out[-1] = f"{out[-1]} {line.strip()}"
    return [line for line in out if line]


def _priority(text: str) -> tuple[int | None, str]:
    match = _PRIORITY.match(text)
    if match:
        return int(match.group(1)), match.group(2).strip()
    return None, text.strip()


class _PlanBuilder:
    """Collects actions and milestones, assigning references and reporting problems."""

    def __init__(self, plan: Plan, problems: list[Problem], *, number_by_aim: bool = False) -> None:
        self.plan = plan
        self.problems = problems
        self.number_by_aim = number_by_aim
        self.numbered: set[str] = set()  # how references were made up: "aim", "position"
        self.priorities: dict[int, str] = {}
        self._priority_by_title: dict[str, int] = {}
        self.actions: list[DraftAction] = []
        self._by_ref: dict[str, DraftAction] = {}
        # Actions so far in each priority: a made-up reference is the next place in it.
        self._in_priority: Counter[int] = Counter()
        # Letters used so far under each aim number: the next action there takes the next.
        self._lettered: Counter[str] = Counter()
        self._timescales: dict[str, Timescale | TimescaleError] = {}

    def priority(self, text: str, row: int | None, column: str) -> int:
        number, title = _priority(text)
        if number is None:
            existing = self._priority_by_title.get(title.casefold())
            if existing is not None:
                return existing
            number = max(self.priorities, default=0) + 1
        if number in self.priorities:
            if title and not self.priorities[number]:
                self.priorities[number] = title
            elif title and title.casefold() != self.priorities[number].casefold():
                self.problems.append(
                    Problem(
                        row,
                        column,
                        text,
                        f"priority {number} is already titled {self.priorities[number]!r}",
                        "warning",
                    )
                )
        else:
            self.priorities[number] = title
        if title:
            self._priority_by_title.setdefault(title.casefold(), number)
        return number

    def timescale(self, text: str, row: int | None, column: str) -> Timescale | None:
        # A plan repeats its timescales ("31/03/2027", "Q3 2027") across thousands of
        # milestones, and reading one is a pure function of the text and the plan's start
        # and quarters: each distinct text is read once per file.
        ts = self._timescales.get(text)
        if ts is None:
            try:
                ts = timescales.parse(text, plan_start=self.plan.start, quarters=self.plan.quarters)
            except TimescaleError as exc:
                ts = exc.with_traceback(None)
            self._timescales[text] = ts
        if isinstance(ts, TimescaleError):
            self.problems.append(Problem(row, column, text, ts.reason))
            return None
        for warning in ts.warnings:
            self.problems.append(Problem(row, column, text, warning, "warning"))
        return ts

    def new_action(
        self,
        ref: str | None,
        title: str,
        priority: int,
        aim: str | None,
        row: int | None,
        column: str,
    ) -> DraftAction | None:
        aim_number = _AIM_NUMBER.match(aim or "") if self.number_by_aim else None
        made_up = ref is None
        if ref is None and aim_number is not None:
            base = aim_number.group(1)
            if "." not in base:
                base = f"{priority}.{base}"
            n = self._lettered[base]
            ref = f"{base}{_letters(n)}"
            while ref in self._by_ref:
                n += 1
                ref = f"{base}{_letters(n)}"
            self._lettered[base] = n + 1
            self.numbered.add("aim")
        elif ref is None:
            n = self._in_priority[priority] + 1
            ref = f"{priority}.{n}"
            while ref in self._by_ref:
                n += 1
                ref = f"{priority}.{n}"
            self.numbered.add("position")
        elif ref in self._by_ref:
            first = self._by_ref[ref].row
            self.problems.append(
                Problem(
                    row,
                    column,
                    ref,
                    f"duplicate reference (first used on row {first})"
                    if first
                    else "duplicate reference",
                )
            )
            return None
        action = DraftAction(
            ref, title, priority, aim, [], [], [], row, len(self.actions), by_title=made_up
        )
        self.actions.append(action)
        self._in_priority[priority] += 1
        self._by_ref[ref] = action
        return action

    def finish(self) -> None:
        self._say_how_quarters_were_read()
        if self.number_by_aim and self.numbered:
            how = {
                "aim": "by their aim's number and a letter (1.1a, 1.1b, ...)",
                "position": "by their place in their priority (1.1, 1.2, ...)",
            }
            self.problems.append(
                Problem(
                    None,
                    None,
                    None,
                    "actions without a reference are numbered "
                    + " or ".join(how[k] for k in sorted(self.numbered)),
                    "note",
                )
            )
        refs = {a.ref for a in self.actions}
        for action in self.actions:
            if not action.milestones:
                continue
            if len(action.milestones) == 1:
                action.milestones[0].ref = action.ref
            else:
                for n, milestone in enumerate(action.milestones, start=1):
                    milestone.ref = f"{action.ref}-{n}"
                    if milestone.ref in refs:
                        self.problems.append(
                            Problem(
                                milestone.row,
                                "ref",
                                milestone.ref,
                                "milestone reference clashes with an action reference",
                            )
                        )
            if not any(action.lead_cells):
                self.problems.append(
                    Problem(
                        action.row,
                        "leads",
                        "",
                        f"action {action.ref} has no lead: it shows in digests as 'no lead' "
                        "and cannot be prompted",
                        "warning",
                    )
                )
            for milestone in action.milestones:
                ts = milestone.timescale
                if ts.due is None and ts.recurrence is None and not ts.ongoing and not ts.start:
                    self.problems.append(
                        Problem(
                            milestone.row,
                            "timescale",
                            ts.text,
                            f"milestone {milestone.ref} has no date: it shows in digests as "
                            "'no date' and cannot be prompted",
                            "warning",
                        )
                    )

    def _say_how_quarters_were_read(self) -> None:
        """Once per import: how `Q1 2027` (a quarter or half of a plain year) was read."""
        readings = {
            m.timescale.quarters for a in self.actions for m in a.milestones if m.timescale.quarters
        }
        if not readings:
            return
        if self.plan.quarters is Quarters.FINANCIAL:
            how = "as financial-year quarters (Q1 2027 is April-June 2027), as the plan sets"
        else:
            how = (
                "as calendar quarters (Q1 2027 is January-March 2027); give the plan "
                "'quarters: financial' (--settings) to read them from April"
            )
        self.problems.append(
            Problem(None, "quarters", None, f"quarters of a plain year read {how}", "warning")
        )


_AIM_NUMBER = re.compile(r"^\s*(?:aim\s*)?(\d+(?:\.\d+)*)[.):]?\s+\S", re.IGNORECASE)


def _letters(n: int) -> str:
    """a, b, ... z, aa, ab, ...: the n-th (from 0) letter suffix."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _rating(text: str, row: int | None, column: str, problems: list[Problem]) -> int | None:
    if not text.strip():
        return None
    rating = rating_from_text(text)
    if rating is None:
        problems.append(
            Problem(
                row, column, text, "a rating is 1-4 or a word of the scale (e.g. 'in progress')"
            )
        )
    return rating


def plan_from_records(
    plan: Plan,
    records: Sequence[tuple[int, dict[str, str]]],
    problems: list[Problem],
    *,
    number_by_aim: bool = False,
) -> PlanDraft:
    """A draft from table rows: one row per action or per milestone, DESIGN.md §5.

    With `number_by_aim` (a Word or pasted plan), an action without a reference under a
    numbered aim takes the aim's number and a letter.
    """
    builder = _PlanBuilder(plan, problems, number_by_aim=number_by_aim)
    current: DraftAction | None = None
    priority_text = ""
    if records and "action" not in records[0][1] and "milestones" not in records[0][1]:
        problems.append(
            Problem(
                1,
                None,
                None,
                "no action column: expected one of 'Key actions', 'Activity', 'Action'",
            )
        )
        return PlanDraft(plan, {}, [], problems=problems)
    for row, rec in records:
        if rec.get("priority", "").strip():
            priority_text = rec["priority"]
        priority = builder.priority(priority_text or "1", row, "Priority")
        ref = rec.get("ref", "").strip() or None
        title = " ".join(rec.get("action", "").split())
        same_action = current is not None and (
            (ref is not None and ref == current.ref)
            or (
                ref is None
                and (not title or title == current.title)
                and current.priority == priority
            )
        )
        if not same_action:
            if not title and ref is None:
                problems.append(Problem(row, "Key actions", "", "a row needs an action"))
                continue
            current = builder.new_action(
                ref, title or "(untitled)", priority, rec.get("aim", "").strip() or None, row, "Ref"
            )
            if current is None:
                continue
        assert current is not None
        if rec.get("leads", "").strip():
            current.lead_cells.append(rec["leads"])
        for key in re.split(r"[;,\n]+", rec.get("networks", "")):
            if key.strip() and key.strip() not in current.network_keys:
                current.network_keys.append(key.strip())
        rating = _rating(rec.get("rating", ""), row, "Progress", problems)
        note = rec.get("note", "").strip() or None
        action_ts_text = rec.get("timescale", "").strip()
        lines = milestone_lines(rec.get("milestones", ""))
        if not lines:
            ts = builder.timescale(action_ts_text, row, "Timescales")
            if ts is not None:
                current.milestones.append(DraftMilestone(current.title, ts, rating, note, row))
            continue
        for line in lines:
            line_title, line_ts = timescales.split_milestone(line)
            column = "Milestones"
            # A line's own date wins; a line that only says "quarterly" or "rolling" does not
            # override a date in the row's Timescales cell.
            if action_ts_text and not _names_a_date(line_ts):
                line_title, line_ts, column = line, action_ts_text, "Timescales"
            ts = builder.timescale(line_ts, row, column)
            if ts is not None:
                current.milestones.append(DraftMilestone(line_title or line, ts, rating, note, row))
    builder.finish()
    return PlanDraft(plan, builder.priorities, builder.actions, problems=problems)


def _names_a_date(text: str) -> bool:
    if not text.strip():
        return False
    try:
        parsed = timescales.parse(text)
    except TimescaleError:
        return True  # an impossible date is still a date: let it be reported
    return parsed.due is not None or parsed.start is not None


def _policy(raw: object, problems: list[Problem]) -> RiskPolicy:
    if raw is None:
        return RiskPolicy()
    if not isinstance(raw, Mapping):
        problems.append(Problem(None, "plan.thresholds", repr(raw), "expected a mapping"))
        return RiskPolicy()
    known = RiskPolicy.__dataclass_fields__
    values: dict[str, int] = {}
    for name, value in raw.items():
        if name not in known:
            problems.append(
                Problem(None, f"plan.thresholds.{name}", repr(value), "unknown threshold")
            )
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(
                Problem(
                    None,
                    f"plan.thresholds.{name}",
                    repr(value),
                    "a threshold is a whole number of days",
                )
            )
        else:
            values[name] = value
    return RiskPolicy(**values)


def _yaml_date(value: object, column: str, problems: list[Problem]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return timescales.read_day(str(value))
    except TimescaleError as exc:
        problems.append(Problem(None, column, str(value), exc.reason))
        return None


def plan_from_yaml(
    data: Any,
    plan_key: str | None,
    fallback_key: str,
    problems: list[Problem],
    stored: Mapping[str, Plan] | None = None,
) -> PlanDraft:
    """A draft from the full YAML form (see examples/wirral/plan.yaml)."""
    if not isinstance(data, Mapping):
        problems.append(
            Problem(None, None, None, "a YAML plan is a mapping with 'plan' and 'priorities'")
        )
        return PlanDraft(
            Plan(plan_key or fallback_key, plan_key or fallback_key), {}, [], problems=problems
        )
    meta = data.get("plan") or {}
    if not isinstance(meta, Mapping):
        problems.append(Problem(None, "plan", repr(meta), "expected a mapping"))
        meta = {}
    key = plan_key or str(meta.get("key") or fallback_key)
    before = stored.get(key) if stored else None
    # The full form says everything about the plan; a setting it leaves out is the default,
    # except `quarters`, new since, which keeps what is stored.
    base = Plan(key=key, title=key, quarters=before.quarters if before else Quarters.CALENDAR)
    plan, settings = plan_settings({**meta, "key": key}, base, problems, unknown="warning")
    people: Listing[Person] = Listing()
    networks: Listing[Network] = Listing()
    if data.get("people"):
        rows = _yaml_rows(data["people"], PEOPLE_COLUMNS, "people", problems)
        if _require(_yaml_columns(rows), PEOPLE_REQUIRED, PEOPLE_COLUMNS, "people", problems):
            people = people_from_records(rows, problems)
    if data.get("networks"):
        rows = _yaml_rows(data["networks"], NETWORK_COLUMNS, "networks", problems)
        if _require(_yaml_columns(rows), NETWORKS_REQUIRED, NETWORK_COLUMNS, "networks", problems):
            networks = networks_from_records(rows, problems)
    builder = _PlanBuilder(plan, problems)
    priorities = data.get("priorities") or []
    if not isinstance(priorities, list):
        problems.append(Problem(None, "priorities", None, "expected a list"))
        priorities = []
    for p_index, prio in enumerate(priorities):
        where = f"priorities[{p_index}]"
        if not isinstance(prio, Mapping):
            problems.append(Problem(None, where, repr(prio), "expected a mapping"))
            continue
        number = builder.priority(
            f"{prio.get('number', '')} {prio.get('title', '')}".strip() or str(p_index + 1),
            None,
            where,
        )
        for a_index, item in enumerate(prio.get("actions") or []):
            a_where = f"{where}.actions[{a_index}]"
            if not isinstance(item, Mapping) or not str(item.get("title") or "").strip():
                problems.append(Problem(None, a_where, None, "an action needs a title"))
                continue
            ref = str(item["ref"]).strip() if item.get("ref") not in (None, "") else None
            action = builder.new_action(
                ref,
                " ".join(str(item["title"]).split()),
                number,
                str(item["aim"]).strip() if item.get("aim") else None,
                None,
                f"{a_where}.ref",
            )
            if action is None:
                continue
            leads = item.get("leads") or []
            action.lead_cells.append(
                [str(x) for x in leads] if isinstance(leads, list) else str(leads)
            )
            nets = item.get("networks") or []
            action.network_keys.extend(
                str(x)
                for x in (nets if isinstance(nets, list) else re.split(r"[;,]\s*", str(nets)))
            )
            milestones = item.get("milestones") or [
                {
                    "title": action.title,
                    "timescale": item.get("timescale", ""),
                    "rating": item.get("rating"),
                    "note": item.get("note"),
                }
            ]
            for m_index, ms in enumerate(milestones):
                m_where = f"{a_where}.milestones[{m_index}]"
                if not isinstance(ms, Mapping):
                    problems.append(Problem(None, m_where, repr(ms), "expected a mapping"))
                    continue
                ts = builder.timescale(
                    _cell_text(ms.get("timescale", "")), None, f"{m_where}.timescale"
                )
                rating = _rating(_cell_text(ms.get("rating")), None, f"{m_where}.rating", problems)
                if ts is not None:
                    action.milestones.append(
                        DraftMilestone(
                            " ".join(str(ms.get("title") or action.title).split()),
                            ts,
                            rating,
                            str(ms["note"]).strip() if ms.get("note") else None,
                            None,
                        )
                    )
    builder.finish()
    draft = PlanDraft(plan, builder.priorities, builder.actions, people, networks, problems)
    draft.settings = settings
    return draft


# The keys of a plan's settings: the YAML form's `plan:` block, or a `--settings` file.
PLAN_SETTINGS = (
    "key", "title", "organisation", "timezone", "start", "quarters", "labels", "thresholds",
    "cycles", "case_numbers", "contact",
)  # fmt: skip


def plan_settings(
    meta: Mapping[Any, Any], base: Plan, problems: list[Problem], *, unknown: str = "error"
) -> tuple[Plan, dict[str, Any]]:
    """`base` with the plan settings in `meta` applied, and the settings to store with it.

    A setting left out of `meta` keeps its value in `base`. Each bad value is a problem
    named `plan.<setting>`; an unknown setting is a problem of severity `unknown`.
    """
    for name in meta:
        if name not in PLAN_SETTINGS:
            problems.append(
                Problem(None, f"plan.{name}", None, "unknown plan setting; ignored", unknown)
            )
    changes: dict[str, Any] = {}
    stored: dict[str, Any] = {}
    if meta.get("key") not in (None, "") and str(meta["key"]) != base.key:
        problems.append(
            Problem(
                None, "plan.key", str(meta["key"]), f"these settings are not for plan {base.key}"
            )
        )
    if "title" in meta:
        changes["title"] = str(meta.get("title") or base.key)
    if "organisation" in meta:
        changes["organisation"] = str(meta["organisation"]) if meta["organisation"] else None
    if "timezone" in meta:
        timezone = str(meta.get("timezone") or "Europe/London")
        try:
            ZoneInfo(timezone)
            changes["timezone"] = timezone
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(Problem(None, "plan.timezone", timezone, "unknown timezone"))
    if "start" in meta:
        changes["start"] = _yaml_date(meta.get("start"), "plan.start", problems)
    if meta.get("thresholds") is not None:
        changes["policy"] = _policy(meta["thresholds"], problems)
        stored["thresholds"] = asdict(changes["policy"])
    if meta.get("quarters") is not None:
        text = str(meta["quarters"]).strip().casefold()
        if text in set(Quarters):
            changes["quarters"] = stored["quarters"] = Quarters(text)
        else:
            problems.append(
                Problem(
                    None, "plan.quarters", str(meta["quarters"]), "must be calendar or financial"
                )
            )
    if meta.get("labels") is not None:
        labels = _labels(meta["labels"], problems)
        if labels is not None:
            stored["labels"] = labels
    if meta.get("case_numbers") is not None:
        # The plan's own case or ID number pattern: notes matching it are refused.
        try:
            case_number_pattern(str(meta["case_numbers"]))
            stored["case_numbers"] = str(meta["case_numbers"])
        except ValueError as exc:
            problems.append(Problem(None, "plan.case_numbers", str(meta["case_numbers"]), str(exc)))
    if meta.get("contact") is not None:
        contacts = _contacts(meta["contact"], problems)
        if contacts is not None:
            changes["contact"] = contacts
            stored["contact"] = [asdict(c) for c in contacts]
    raw_cycles = meta.get("cycles")
    if raw_cycles is not None:
        try:
            if not isinstance(raw_cycles, Mapping):
                raise ValueError("expected a mapping with prompt, digest, remind_after, holidays")
            CyclePolicy.from_settings(raw_cycles)
            stored["cycles"] = _plain(raw_cycles)
        except ValueError as exc:
            problems.append(Problem(None, "plan.cycles", None, str(exc)))
    return replace(base, **changes), stored


def _contacts(raw: object, problems: list[Problem]) -> tuple[Contact, ...] | None:
    """The `contact` setting: one or two of `Name <address>` or a bare address, as a list
    or one text split at `;`. An empty one clears it (prompts name the coordinators)."""
    texts = raw if isinstance(raw, list) else str(raw).split(";")
    contacts: list[Contact] = []
    for text in texts:
        if not str(text).strip():
            continue
        name, address = parseaddr(" ".join(str(text).split()))
        if not _EMAIL.match(address):
            problems.append(
                Problem(None, "plan.contact", str(text), "expected Name <address> or an address")
            )
            return None
        contacts.append(Contact(name.strip(), address))
    if len(contacts) > MAX_CONTACTS:
        problems.append(Problem(None, "plan.contact", str(raw), f"at most {MAX_CONTACTS} contacts"))
        return None
    return tuple(contacts)


def _labels(raw: object, problems: list[Problem]) -> dict[str, str] | None:
    """A rating scale's labels: {1: "Achieved", ...}, each rating at most once."""
    if not isinstance(raw, Mapping):
        problems.append(
            Problem(None, "plan.labels", repr(raw), "expected a mapping of 1-4 to labels")
        )
        return None
    labels: dict[str, str] = {}
    for rating, label in raw.items():
        number = int(rating) if str(rating).strip() in {str(r) for r in RATINGS} else None
        if number is None or not isinstance(label, str) or not label.strip():
            problems.append(
                Problem(
                    None,
                    f"plan.labels.{rating}",
                    repr(label),
                    "a label is a rating 1-4 and its words",
                )
            )
            continue
        labels[str(number)] = " ".join(label.split())
    return labels


def read_settings(path: Path, base: Plan, problems: list[Problem]) -> tuple[Plan, dict[str, Any]]:
    """A plan's settings from a `--settings` file: the YAML form's `plan:` block alone."""
    found: list[Problem] = []
    data = _load_yaml(path, found) if path.suffix.lower() in (".yaml", ".yml") else None
    if data is None and not found:
        found.append(Problem(None, None, None, "a settings file is YAML: the plan: block alone"))
    if isinstance(data, Mapping) and "plan" in data:
        others = sorted(str(k) for k in data if k != "plan")
        if others:
            found.append(
                Problem(
                    None,
                    None,
                    None,
                    f"a settings file holds the plan: block alone, not {', '.join(others)}",
                )
            )
        data = data["plan"]
    plan = base
    settings: dict[str, Any] = {}
    if data is not None and not isinstance(data, Mapping):
        found.append(Problem(None, None, repr(data), "expected a mapping of plan settings"))
    elif isinstance(data, Mapping):
        plan, settings = plan_settings(data, base, found)
    for problem in found:
        column = f"{path.name}: {problem.column}" if problem.column else path.name
        problems.append(
            Problem(problem.row, column, problem.value, problem.reason, problem.severity)
        )
    return plan, settings


def _plain(value: Any) -> Any:
    """YAML values as JSON-storable ones (times as HH:MM)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


def _yaml_rows(
    items: object, aliases: Mapping[str, tuple[str, ...]], where: str, problems: list[Problem]
) -> list[tuple[int, dict[str, str]]]:
    if not isinstance(items, list):
        problems.append(Problem(None, where, None, "expected a list"))
        return []
    lookup = {header_key(a): name for name, names in aliases.items() for a in names}
    out: list[tuple[int, dict[str, str]]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            problems.append(Problem(index, where, repr(item), "expected a mapping"))
            continue
        row: dict[str, str] = {}
        for k, v in item.items():
            name = lookup.get(header_key(str(k)))
            if name is not None:
                row[name] = (
                    ";".join(_cell_text(x) for x in v) if isinstance(v, list) else _cell_text(v)
                )
        out.append((index, row))
    return out


def read_plan(
    path: Path,
    *,
    plan_key: str | None,
    existing_title: str | None = None,
    stored: Mapping[str, Plan] | None = None,
    settings: Path | None = None,
    sheet: str | None = None,
) -> PlanDraft:
    """A draft of the plan in `path` (YAML, CSV, XLSX, Word or pasted text) with every
    problem found. `sheet` picks an XLSX plan's sheet.

    `stored` holds the plans already imported, by key: a CSV or XLSX plan keeps the stored
    plan's settings, with those of the `settings` file (the YAML form's `plan:` block)
    applied over them.
    """
    problems: list[Problem] = []
    fallback = re.sub(r"[^a-z0-9]+", "-", path.stem.casefold()).strip("-") or "plan"
    if path.suffix.lower() in (".yaml", ".yml"):
        if settings is not None:
            problems.append(
                Problem(
                    None,
                    None,
                    settings.name,
                    "--settings is for CSV and XLSX plans; a YAML plan has its own plan: block",
                )
            )
        data = _load_yaml(path, problems)
        draft = plan_from_yaml(data, plan_key, fallback, problems, stored)
        meta = data.get("plan") if isinstance(data, Mapping) else None
        draft.key_from_file_name = not plan_key and not (
            isinstance(meta, Mapping) and meta.get("key")
        )
        return draft
    key = plan_key or fallback
    plan = (stored or {}).get(key) or Plan(key=key, title=existing_title or key)
    given: dict[str, Any] | None = None
    if settings is not None:
        plan, given = read_settings(settings, plan, problems)
    suffix = path.suffix.lower()
    if suffix in _NOT_READ:
        problems.append(Problem(None, None, path.name, f"{suffix} files cannot be read: {_READ}"))
        return PlanDraft(plan, {}, [], problems=problems)
    if suffix in _READ_AS_BLOCKS:
        draft = _plan_from_blocks(path, plan, problems)
        draft.settings = given
        draft.key_from_file_name = not plan_key
        return draft
    records = _records(path, PLAN_COLUMNS, problems, sheet=sheet)
    draft = plan_from_records(plan, records.rows, problems)
    draft.layout = records.header or None
    draft.headers = records.headings
    draft.problems = draft.located(draft.problems)
    draft.settings = given
    draft.encoding = records.encoding
    draft.key_from_file_name = not plan_key
    return draft


_READ = "save the plan as Word (.docx), Excel (.xlsx), CSV, tab-separated text (.txt) or YAML"
_NOT_READ = {".doc", ".pdf", ".odt", ".ods", ".rtf", ".xls", ".pages", ".numbers"}
_READ_AS_BLOCKS = {".docx", ".txt", ".tsv", ".tab"}


def _plan_from_blocks(path: Path, plan: Plan, problems: list[Problem]) -> PlanDraft:
    """A Word or pasted plan: its tables found and read by `layout`, `pasted` and `word`
    (imported here, late: python-docx is loaded only for a Word plan)."""
    from handlers.files import word

    if _too_big(path, problems):
        return PlanDraft(plan, {}, [], problems=problems)
    if path.suffix.lower() != ".docx":
        blocks = pasted.read_blocks(path)
    else:
        try:
            blocks = word.read_blocks(path)
        except Exception as exc:  # a damaged or mislabelled file: one line, no traceback
            problems.append(
                Problem(None, None, path.name, f"not a Word document ({type(exc).__name__})")
            )
            return PlanDraft(plan, {}, [], problems=problems)
    rows = layout.plan_rows(blocks, problems)
    draft = plan_from_records(plan, rows.records, problems, number_by_aim=True)
    draft.places = rows.places
    draft.headers = rows.headers
    draft.layout = rows.layout or None
    for text, description in rows.descriptions.items():
        number = _priority(text)[0]
        if number is not None:
            draft.descriptions[number] = description
    for text, leads in rows.leads.items():
        number = _priority(text)[0]
        if number is not None:
            draft.priority_leads[number] = leads
    draft.problems = draft.located(draft.problems)
    return draft
