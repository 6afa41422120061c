"""An experiment's results: ``results.csv`` (one row per point) and the Markdown tables made
from it, with the seeds (or whatever field a table names) aggregated into mean ± sd and n.

The tables are a pure function of ``results.csv`` and the spec (:func:`render_table`), so
the published tables can be regenerated from a committed csv and compared byte for byte.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from ibvae.experiments.spec import CONFIG, Table
from ibvae.files import atomic_path, write_text

RESULTS_CSV = "results.csv"


def write_results(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """``rows`` as CSV, columns in order of first appearance, written atomically."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    columns.sort(key=lambda c: c == "run_dir")  # last, whatever columns later rows add
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in row.items()} for row in rows])
    return Path(path)


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``results.csv`` as strings (empty cells ``""``)."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def column(field: str) -> str:
    """The results column of a spec field: ``config``, or the leaf name of a dotted field."""
    return field if field == CONFIG else field.split(".")[-1]


def number(text: Any) -> float | None:
    """A cell as a finite float, or None (empty, text, NaN)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def mean_sd(values: list[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count."""
    n = len(values)
    return statistics.fmean(values), statistics.stdev(values) if n > 1 else 0.0, n


def _sort_key(text: str) -> tuple:
    value = number(text)
    return (0, value, "") if value is not None else (1, 0.0, text)


def aggregate(rows: list[dict[str, str]], table: Table) -> list[dict[str, Any]]:
    """One entry per distinct value of ``table.rows`` (in first-seen order of configs and
    numeric order of values): ``{"key": {field: value}, metric: (mean, sd, n) or None,
    "completed": (done, total)}``, over the completed points only. With ``table.choose``,
    each row keeps only the values of its ``over`` fields whose mean ``by`` is lowest (in
    ``"chosen"``, with ``"candidates"``: how many there were)."""
    keys = [column(f) for f in table.rows]
    over = [column(f) for f in table.choose_over]
    by = table.choose["by"] if table.choose else None
    metrics = list(dict.fromkeys([*table.columns, *([by] if by else [])]))
    groups: dict[tuple, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k, "") for k in [*keys, *over]), []).append(row)
    labels = list(dict.fromkeys(r.get(CONFIG, "") for r in rows))

    def order(key: tuple) -> tuple:
        return tuple((labels.index(v),) if k == CONFIG else _sort_key(v)
                     for k, v in zip([*keys, *over], key, strict=True))

    out: list[dict[str, Any]] = []
    for key in sorted(groups, key=order):
        members = groups[key]
        done = [r for r in members if r.get("status") == "completed"]
        entry: dict[str, Any] = {"key": dict(zip(keys, key[: len(keys)], strict=True)),
                                 "chosen": dict(zip(over, key[len(keys):], strict=True)),
                                 "completed": (len(done), len(members))}
        for metric in metrics:
            values = [v for r in done if (v := number(r.get(metric))) is not None]
            entry[metric] = mean_sd(values) if values else None
        out.append(entry)
    return _choose(out, keys, by) if by else out


def _choose(entries: list[dict[str, Any]], keys: list[str], by: str) -> list[dict[str, Any]]:
    """Per row key, the entry with the lowest mean ``by`` (entries without it never win; a
    row none of whose entries has it keeps its first, its chosen values shown as ``–``)."""
    rows: dict[tuple, list[dict[str, Any]]] = {}
    for e in entries:
        rows.setdefault(tuple(e["key"][k] for k in keys), []).append(e)
    out = []
    for candidates in rows.values():
        scored = [e for e in candidates if e[by] is not None]
        if scored:
            best = min(scored, key=lambda e: e[by][0])
        else:  # nothing to choose by yet: the first, with no value shown as chosen
            best = {**candidates[0], "chosen": dict.fromkeys(candidates[0]["chosen"], "–")}
        out.append({**best, "candidates": len(candidates)})
    return out


def format_number(value: float) -> str:
    """Four significant digits (a whole number as it is), without an exponent for the usual
    range."""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    digits = max(0, 3 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"


def format_cell(cell: tuple[float, float, int] | None) -> str:
    """``mean ± sd`` with the sd to two significant digits and the mean to the same
    decimal place; a single run's value to four significant digits; ``–`` for none."""
    if cell is None:
        return "–"
    mean, sd, n = cell
    if n == 1:
        return format_number(mean)
    if sd == 0:
        return f"{format_number(mean)} ± 0"
    decimals = max(0, 1 - int(math.floor(math.log10(sd))))
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def render_table(rows: list[dict[str, str]], table: Table, spec_name: str = "") -> str:
    """The Markdown table of ``table`` from the rows of ``results.csv``."""
    entries = aggregate(rows, table)
    keys = [column(f) for f in table.rows]
    over = [column(f) for f in table.choose_over]
    header = [*keys, *(f"chosen {k}" for k in over), *table.columns, "n"]
    lines = []
    if table.title:
        lines += [f"**{table.title}**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for e in entries:
        done, total = e["completed"]
        n = str(done) if done == total else f"{done} of {total}"
        cells = [e["key"][k] for k in keys] + [e["chosen"][k] for k in over]
        cells += [format_cell(e[m]) for m in table.columns] + [n]
        lines.append("| " + " | ".join(cells) + " |")
    aggregated = (f"mean ± sd over {table.aggregate_over}" if table.aggregate_over
                  else "one run each")
    source = f" of experiment `{spec_name}`" if spec_name else ""
    chosen = ""
    if table.choose:
        chosen = (f" Per row, the {', '.join(over)} with the lowest mean "
                  f"`{table.choose['by']}` of the completed runs (chosen values shown).")
    lines += ["", f"Table `{table.name}`{source}: {aggregated}; n = completed runs per row."
              f"{chosen}"]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict[str, str]], tables: list[Table], folder: Path,
                 spec_name: str = "") -> list[Path]:
    """Each table as ``folder/<name>.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_text(folder / f"{t.name}.md", render_table(rows, t, spec_name))
            for t in tables]
