"""Progressive discovery for the functions package: `search` and `describe` over the
catalogue entries. Imported on first use only (keeps `import functions` cheap)."""


def _score(entry, tokens):
    """Sum over tokens (0 when one token matches nothing): exact name 100, name prefix
    60, name substring 40, service substring 20, description substring 10."""
    names = (entry["ident"].lower(), entry["name"].replace("-", "_").lower())
    services = (entry["service_ident"].lower(), entry["service"].replace("-", "_").lower())
    description = entry["description"].lower()
    score = 0
    for token in tokens:
        if token in names:
            s = 100
        elif any(n.startswith(token) for n in names):
            s = 60
        elif any(token in n for n in names):
            s = 40
        elif any(token in n for n in services):
            s = 20
        elif token in description:
            s = 10
        else:
            return 0
        score += s
    return score


def _summary(entry):
    return {
        "name": entry["call"],
        "service": entry["service"],
        "function": entry["name"],
        "signature": entry["signature"],
        "description": entry["description"],
        "language": entry["language"],
    }


def search(entries, query, limit=20):
    tokens = [t.replace("-", "_") for t in str(query).lower().split()]
    if not tokens:
        return [_summary(e) for e in entries[:limit]]
    scored = []
    for e in entries:
        s = _score(e, tokens)
        if s:
            scored.append((-s, e["key"], e))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [_summary(e) for _, _, e in scored[:limit]]


def _find(entries, namespace, name):
    wanted = str(name).strip().replace("-", "_")
    exact = [e for e in entries if wanted in (e["call"], e["key"])]
    if exact:
        return exact[0]
    short = [e for e in entries if e["ident"] == wanted]
    if len(short) == 1:
        return short[0]
    if len(short) > 1:
        options = ", ".join(e["key"] for e in short)
        raise LookupError(f"{name!r} names several functions; use one of: {options}")
    raise LookupError(
        f"no function {name!r} in namespace {namespace}; try functions.search({str(name)!r})"
    )


def describe(entries, namespace, name):
    entry = _find(entries, namespace, name)
    out = _summary(entry)
    out["qualified"] = entry["qualified"]
    out["input_schema"] = entry["input_schema"]
    out["version"] = entry["version"]
    return out
