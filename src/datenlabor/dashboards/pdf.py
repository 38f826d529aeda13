"""The whole dashboard as PDF, printed by headless chromium on the server.

The page is written to a private temporary folder together with the scripts and styles it
uses (Plotly from the installed wheel, our own files), and chromium prints that local file:
it needs no session, no network and no access to the running server, and the data in the
PDF is exactly what the caller was shown. ``--virtual-time-budget`` lets the chart script
finish before printing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from datenlabor.errors import DatenlaborError

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
ASSETS = ("datenlabor.css", "dashboard.css", "dashboard.js")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 90


class BrowserMissing(DatenlaborError):
    """No chromium to print with (HTTP 503)."""

    exit_code = 7
    status_code = 503


def find_browser() -> str | None:
    configured = os.environ.get("DATENLABOR_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else shutil.which(configured)
    return next((found for c in CANDIDATES if (found := shutil.which(c))), None)


def print_pdf(html: str, tmp_root: Path, *, timeout_s: float = TIMEOUT_S) -> bytes:
    """Print ``html`` (a page from ``dashboard_print.html``) to PDF bytes."""
    browser = find_browser()
    if browser is None:
        raise BrowserMissing(
            "PDF export needs chromium on the server: install Debian's package 'chromium' "
            "(or set DATENLABOR_CHROMIUM to the browser's path)"
        )
    import plotly

    tmp_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=tmp_root, prefix="dashboard-pdf-"))
    try:
        for name in ASSETS:
            shutil.copyfile(STATIC / name, work / name)
        shutil.copyfile(
            Path(plotly.__file__).parent / "package_data" / "plotly.min.js", work / "plotly.min.js"
        )
        page = work / "dashboard.html"
        page.write_text(html, encoding="utf-8")
        target = work / "dashboard.pdf"
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={work / 'profile'}",
            "--virtual-time-budget=20000",
            "--run-all-compositor-stages-before-draw",
            f"--print-to-pdf={target}",
            page.as_uri(),
        ]
        try:
            run = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise DatenlaborError(
                f"chromium did not finish the PDF within {timeout_s:.0f} s"
            ) from None
        if not target.exists() or target.stat().st_size == 0:
            detail = run.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise DatenlaborError(f"chromium could not print the dashboard: {' '.join(detail)}")
        return target.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
