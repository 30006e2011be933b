"""scheduled-report: turn a list of metrics into a Markdown or JSON report."""

from datetime import datetime, timezone


def main(input_data):
    title = input_data.get("title") or "Report"
    items = input_data.get("items") or []
    fmt = input_data.get("format") or "markdown"
    generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    numeric = [i["value"] for i in items if isinstance(i.get("value"), (int, float))]
    summary = {
        "items": len(items),
        "total": sum(numeric) if numeric else None,
        "max": max(numeric) if numeric else None,
        "min": min(numeric) if numeric else None,
    }
    if fmt == "json":
        report = {"title": title, "generated_at": generated_at, "items": items, "summary": summary}
    else:
        lines = [f"# {title}", "", f"_Generated {generated_at}_", "", "| Metric | Value |", "|---|---|"]
        for item in items:
            lines.append(f"| {item.get('label', '')} | {item.get('value', '')} |")
        if numeric:
            lines += ["", f"**Total:** {summary['total']}  **Max:** {summary['max']}  **Min:** {summary['min']}"]
        report = "\n".join(lines)
    return {"format": fmt, "report": report, "summary": summary}
