"""Start a real ComfyUI (CPU) with this pack installed, and talk to its HTTP API on 127.0.0.1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfy: Path, base: Path, models: Path, extra_args=(), python=sys.executable):
        self.base, self.port = base, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = base / "custom_nodes" / "comfyui-dragnoise"
        if not link.exists():
            link.symlink_to(ROOT)
        if not (base / "models").exists():
            (base / "models").symlink_to(models)
        for d in ("input", "output", "temp", "user"):
            (base / d).mkdir(exist_ok=True)
        self.log_path = base / "server.log"
        cmd = [python, str(comfy / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(base), "--disable-auto-launch", "--disable-api-nodes",
               "--database-url", "sqlite:///:memory:", *extra_args]
        self.proc = subprocess.Popen(cmd, cwd=str(comfy), stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.client_id = uuid.uuid4().hex
        deadline = time.time() + 240
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited at start-up:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not come up:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def post(self, path: str, data) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else {})
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def queue(self, prompt: dict) -> tuple[int, dict]:
        import graphs  # core nodes' inputs the test graph leaves out go in at this ComfyUI's defaults
        if not hasattr(self, "object_info"):
            self.object_info = self.get("/object_info")
        graphs.with_defaults(prompt, self.object_info)
        return self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.get(f"/history/{prompt_id}")
            if prompt_id in h and h[prompt_id].get("status", {}).get("completed") is not None:
                entry = h[prompt_id]
                if entry["status"]["status_str"] in ("success", "error"):
                    return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died:\n{self.log()[-4000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        """Queue, wait, and return the history entry; fail loudly on any error."""
        code, body = self.queue(prompt)
        assert code == 200, f"/prompt refused: {json.dumps(body)[:2000]}"
        entry = self.wait(body["prompt_id"], timeout)
        assert entry["status"]["status_str"] == "success", error_of(entry)
        return entry

    def image(self, entry: dict, node: str, index: int = 0) -> bytes:
        info = entry["outputs"][node]["images"][index]
        q = f"filename={info['filename']}&subfolder={info['subfolder']}&type={info['type']}"
        return self.get("/view?" + q)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def error_of(entry: dict) -> str:
    """The execution error message of a failed history entry ('' if none)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_type')}: {data.get('exception_message')}"
    return ""
