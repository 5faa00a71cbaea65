"""local_server stops its server when the process using it gets SIGTERM (no orphaned engine)."""

import os
import signal
import subprocess
import sys

from waits import wait_until

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
    wait_until(lambda: not alive(child), 10, interval=0.1, what=f"the server (pid {child}) stopped")


HEALTH = PARENT.split('HEALTH = """', 1)[1].split('"""', 1)[0]


def test_local_servers_start_together_and_a_failed_start_stops_the_others(monkeypatch):
    import httpx
    import pytest

    import ie_service.local_server as local

    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def fake_serve(cmd, **kwargs):  # a health server, or one that exits 3 for "--fail"
        child = ([sys.executable, "-c", "import sys; sys.exit(3)"] if "--fail" in cmd
                 else [sys.executable, "-c", HEALTH, cmd[cmd.index("--port") + 1]])
        started.append(real_popen(child, **kwargs))
        return started[-1]

    monkeypatch.setattr(local.subprocess, "Popen", fake_serve)
    with local.local_servers([([], None), ([], None)], timeout=30) as urls:
        assert len(set(urls)) == 2
        assert all(httpx.get(f"{url}/health").status_code == 200 for url in urls)
        assert all(proc.poll() is None for proc in started)
        urls.stop(urls[0])  # one ends early, the other keeps serving
        assert started[0].poll() is not None and httpx.get(f"{urls[1]}/health").status_code == 200
    assert len(started) == 2 and all(proc.poll() is not None for proc in started)
    started.clear()
    with pytest.raises(RuntimeError, match="exited with 3"):
        with local.local_servers([([], None), (["--fail"], None)], timeout=30):
            pass
    assert len(started) == 2 and all(proc.poll() is not None for proc in started)
