"""local_server stops its server when the process using it gets SIGTERM (no orphaned engine)."""

import os
import signal
import subprocess
import sys
import time

PARENT = r'''
import subprocess, sys, time
import ie_service.local_server as local

HEALTH = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
real_popen = subprocess.Popen

def health_server(cmd, **kwargs):  # stands in for `ie-service serve --port N`
    proc = real_popen([sys.executable, "-c", HEALTH, cmd[cmd.index("--port") + 1]], **kwargs)
    print(proc.pid, flush=True)
    return proc

local.subprocess.Popen = health_server
with local.local_server(timeout=30) as url:
    print(url, flush=True)
    time.sleep(120)
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_server():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().startswith("http://127.0.0.1:")
    assert alive(child)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
