"""slack-notifier: post a message to a Slack incoming webhook."""

import httpx


def main(input_data):
    webhook_url = input_data["webhook_url"]
    if not webhook_url.startswith("https://hooks.slack.com/"):
        return {"ok": False, "status": 0, "error": "webhook_url must start with https://hooks.slack.com/"}
    payload = {"text": input_data["text"]}
    for field in ("channel", "username", "icon_emoji"):
        if input_data.get(field):
            payload[field] = input_data[field]
    response = httpx.post(webhook_url, json=payload, timeout=10.0)
    return {"ok": response.status_code == 200, "status": response.status_code, "response": response.text[:1000]}
