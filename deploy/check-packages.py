#!/usr/bin/python3
"""Run every smoke of sandbox-profiles/packages.toml outside a jail.

Usage: /usr/bin/python3 deploy/check-packages.py [--packages DIR] [--catalogue FILE] [NAME...]

Each smoke runs in its own fresh `/usr/bin/python3 -I -B` process (as in a slot: isolated mode,
no bytecode writes, the package dir inserted at the front of sys.path, cwd a temporary dir),
with no network needed. A smoke passes when it sets `result`, the value is JSON-serializable and,
if the entry has `expect`, equals it. Prints one line per package and a summary; exit status 1
if any failed. This is the quick outside-a-jail check; the worker's in-jail test is the real one.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs inside the child: load the package dir, exec the smoke, print the result as JSON.
CHILD = r"""
import importlib, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
source = sys.stdin.read()
ns = {"__name__": "__main__"}
t0 = time.perf_counter()
importlib.import_module(sys.argv[2])
t1 = time.perf_counter()
exec(compile(source, "<smoke>", "exec"), ns)
t2 = time.perf_counter()
if "result" not in ns:
    raise SystemExit("smoke did not set `result`")
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.stdout.write(json.dumps({"result": ns["result"], "import_s": t1 - t0, "smoke_s": t2 - t1,
                             "peak_mib": peak_kib / 1024}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", default=os.environ.get("PADDOCK_PYTHON_PACKAGES", "/opt/paddock/python"))
    ap.add_argument("--catalogue", default=os.path.join(ROOT, "sandbox-profiles", "packages.toml"))
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("names", nargs="*", help="only these packages (distribution names)")
    args = ap.parse_args()

    with open(args.catalogue, "rb") as f:
        catalogue = tomllib.load(f)
    entries = [p for p in catalogue["python"] if not args.names or p["name"] in args.names]
    if not os.path.isdir(args.packages):
        sys.exit(f"check-packages: {args.packages} does not exist; run deploy/install-deps.sh first")

    failures = []
    started = time.monotonic()
    for p in entries:
        with tempfile.TemporaryDirectory(prefix="paddock-smoke-") as cwd:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": cwd, "TMPDIR": cwd}
            try:
                proc = subprocess.run(
                    [args.python, "-I", "-B", "-c", CHILD, args.packages, p["import"]],
                    input=p["smoke"], capture_output=True, text=True, cwd=cwd, env=env,
                    timeout=args.timeout,
                )
            except subprocess.TimeoutExpired:
                failures.append(p["name"])
                print(f"FAIL {p['name']:<22} timed out after {args.timeout} s")
                continue
        if proc.returncode != 0:
            failures.append(p["name"])
            tail = "\n      ".join(proc.stderr.strip().splitlines()[-6:])
            print(f"FAIL {p['name']:<22} exit {proc.returncode}\n      {tail}")
            continue
        out = json.loads(proc.stdout)
        if "expect" in p and out["result"] != p["expect"]:
            failures.append(p["name"])
            print(f"FAIL {p['name']:<22} result {json.dumps(out['result'])} != expect {json.dumps(p['expect'])}")
            continue
        print(f"ok   {p['name']:<22} import {out['import_s'] * 1000:6.0f} ms  smoke {out['smoke_s'] * 1000:6.0f} ms  "
              f"peak {out['peak_mib']:5.0f} MiB  {json.dumps(out['result'])[:50]}")
    total = time.monotonic() - started
    print(f"check-packages: {len(entries) - len(failures)}/{len(entries)} smokes passed in {total:.1f} s")
    if failures:
        print("check-packages: failed: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
