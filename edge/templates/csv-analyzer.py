"""csv-analyzer: parse CSV text and return summary statistics per column."""

import csv
import io
import statistics


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def main(input_data):
    text = input_data.get("csv") or ""
    delimiter = input_data.get("delimiter") or ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    rows = list(reader)
    columns = reader.fieldnames or []
    summary = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v not in (None, "")]
        numbers = [n for n in (_number(v) for v in present) if n is not None]
        stats = {"count": len(present), "missing": len(values) - len(present)}
        if numbers and len(numbers) == len(present):
            stats.update(
                {
                    "type": "number",
                    "min": min(numbers),
                    "max": max(numbers),
                    "mean": statistics.fmean(numbers),
                    "median": statistics.median(numbers),
                }
            )
        else:
            stats.update({"type": "text", "unique": len(set(present))})
        summary[column] = stats
    return {"rows": len(rows), "columns": columns, "summary": summary}
