import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMFY = Path(os.environ.get("COMFYUI_PATH") or ROOT / ".host" / "ComfyUI").resolve()

# ComfyUI first: its top-level `nodes` module must win over this pack's `nodes/` package.
for p in (str(COMFY), str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.append(p)


@pytest.fixture(scope="session")
def comfy_cpu():
    """Import ComfyUI's model code in CPU mode without starting a server."""
    if not (COMFY / "comfy").is_dir():
        pytest.fail(f"ComfyUI not found at {COMFY}; run scripts/setup_host.sh or set COMFYUI_PATH")
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import comfy.cli_args  # noqa: F401  (parses --cpu)
    import comfy.model_management as mm
    return mm


@pytest.fixture(scope="session")
def tiny_model(comfy_cpu):
    import tiny_sd15
    return tiny_sd15.load_model(tiny_sd15.unet_state_dict(seed=0, dtype=__import__("torch").float32))


@pytest.fixture(scope="session")
def models_dir(comfy_cpu):
    """Seeded random test models where the core loaders look, cached between runs."""
    import tiny_sd15
    d = Path(os.environ.get("DRAGNOISE_HOST", ROOT / ".host")) / "test-models"
    tiny_sd15.write_test_models(d)
    return d


@pytest.fixture(scope="session")
def sdxl_checkpoint(models_dir):
    """File name of the small SDXL-family checkpoint in models_dir/checkpoints (written once, ~1.9 GB)."""
    import tiny_sdxl
    return tiny_sdxl.write_checkpoint(models_dir)


@pytest.fixture(scope="session")
def server(models_dir, tmp_path_factory):
    """A real ComfyUI on 127.0.0.1 with this pack, the test models and a test image."""
    import graphs
    from comfy_server import ComfyServer
    base = tmp_path_factory.mktemp("comfy")
    (base / "input").mkdir()
    graphs.write_test_image(base / "input" / graphs.IMAGE)
    srv = ComfyServer(COMFY, base, models_dir)
    yield srv
    srv.stop()


LATEST = Path(os.environ.get("DRAGNOISE_HOST", ROOT / ".host")) / "frontend-latest" / "comfyui_frontend_package" / "static"


@pytest.fixture(scope="session")
def server_latest(models_dir, tmp_path_factory):
    """A second ComfyUI serving the newest frontend package instead of the pinned one."""
    if not (LATEST / "index.html").is_file():
        unavailable(f"newest frontend not installed at {LATEST}; run scripts/setup_host.sh")
    import graphs
    from comfy_server import ComfyServer
    base = tmp_path_factory.mktemp("comfy_latest")
    (base / "input").mkdir()
    graphs.write_test_image(base / "input" / graphs.IMAGE)
    srv = ComfyServer(COMFY, base, models_dir, extra_args=["--front-end-root", str(LATEST)])
    yield srv
    srv.stop()



CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def unavailable(why: str):
    """A missing browser part (Chromium, Playwright, a frontend, its Vue renderer) fails the run in CI
    (CI=true: .ci/run sets it, as GitHub Actions does) and skips it elsewhere."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole run (Playwright allows one sync driver at a time)."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"chromium not found ({CHROMIUM}); run scripts/setup_host.sh --browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("python playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()
