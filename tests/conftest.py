import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
# Jupyter's python3 kernelspec runs "python" from PATH: make it this environment's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright: the website tests' and the JupyterLab
    tests' browser (the one `make pdf` prints with: tools/build_pdf.py's CHROMIUM and CHROMIUM_ARGS,
    CHROMIUM from the environment variable of that name)."""
    from tools.build_pdf import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs it when run as root, "
                    "else: sudo apt-get install chromium chromium-driver (or set CHROMIUM=/path)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
