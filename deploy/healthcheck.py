"""Container health check: GET /health, with the first API key if keys are set."""

import os
import sys
import urllib.request

key = os.environ.get("IE_SERVICE_API_KEYS", "").split(",")[0].strip()
request = urllib.request.Request(f"http://127.0.0.1:{os.environ.get('IE_PORT', '8090')}/health")
if key:
    request.add_header("Authorization", f"Bearer {key}")
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
