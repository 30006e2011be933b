"""api-connector: call an external HTTP API and return the response."""

import httpx


def main(input_data):
    url = input_data["url"]
    method = (input_data.get("method") or "GET").upper()
    timeout = float(input_data.get("timeout_seconds") or 10)
    response = httpx.request(
        method,
        url,
        headers=input_data.get("headers") or {},
        params=input_data.get("params") or None,
        json=input_data.get("json"),
        timeout=timeout,
        follow_redirects=True,
    )
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:100_000]
    else:
        body = response.text[:100_000]
    return {
        "status": response.status_code,
        "ok": response.is_success,
        "content_type": content_type,
        "body": body,
    }
