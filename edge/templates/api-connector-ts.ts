// api-connector-ts: call an external HTTP API with fetch and return the response.

interface Input {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  timeout_seconds?: number;
}

interface Output {
  status: number;
  ok: boolean;
  content_type: string;
  body: unknown;
}

export default async function main(input: Input): Promise<Output> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), (input.timeout_seconds ?? 10) * 1000);
  try {
    const init: RequestInit = {
      method: (input.method ?? "GET").toUpperCase(),
      headers: input.headers ?? {},
      signal: controller.signal,
    };
    if (input.body !== undefined) {
      init.body = JSON.stringify(input.body);
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    const response = await fetch(input.url, init);
    const contentType = response.headers.get("content-type") ?? "";
    const text = await response.text();
    let body: unknown = text.slice(0, 100_000);
    if (contentType.includes("json")) {
      try {
        body = JSON.parse(text);
      } catch {
        // keep the text
      }
    }
    return { status: response.status, ok: response.ok, content_type: contentType, body };
  } finally {
    clearTimeout(timer);
  }
}
