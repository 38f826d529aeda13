"""The fairness report: Plotly figures as data for the page, a printable HTML, and a PDF.

The page draws the figures with Plotly's JavaScript served from the installed wheel
(``/static/plotly/plotly.min.js``); the PDF is printed by headless chromium from a
self-contained HTML file that loads the same script from the wheel on disk, so nothing is
fetched from the network.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from datenlabor.errors import DatenlaborError

PDF_TIMEOUT_S = 60


def figures(result: dict[str, Any], lang: str = "de") -> list[dict[str, Any]]:
    """One bar chart per attribute: selection rate per group with its confidence interval,
    and a dashed line at ``min_ratio`` times the best group's rate (the four-fifths line)."""
    de = lang == "de"
    out = []
    for name, a in (result.get("attributes") or {}).items():
        groups = a["groups"]
        xs = [g["group"] for g in groups]
        ys = [g["selection_rate"] for g in groups]
        lo = [(g["selection_rate"] - g["selection_rate_ci"][0]) if g.get("selection_rate_ci")
              and g["selection_rate_ci"][0] is not None else 0 for g in groups]  # fmt: skip
        hi = [(g["selection_rate_ci"][1] - g["selection_rate"]) if g.get("selection_rate_ci")
              and g["selection_rate_ci"][1] is not None else 0 for g in groups]  # fmt: skip
        best = max((g["selection_rate"] for g in groups if not g["small"]), default=None)
        shapes = []
        if best:
            line = best * float(result.get("thresholds", {}).get("min_ratio", 0.8))
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": line,
                           "y1": line, "line": {"dash": "dash", "color": "#b00020"}})  # fmt: skip
        out.append({
            "id": "fig-" + "".join(ch if ch.isalnum() else "-" for ch in name),
            "title": name,
            "data": [{"type": "bar", "x": xs, "y": ys, "marker": {"color": "#1f5f8b"},
                      "error_y": {"type": "data", "symmetric": False, "array": hi,
                                  "arrayminus": lo}}],
            "layout": {"title": {"text": ("Auswahlquote nach " if de else "Selection rate by ")
                                 + name},
                       "yaxis": {"title": {"text": "Quote" if de else "rate"},
                                 "rangemode": "tozero"},
                       "shapes": shapes, "margin": {"t": 48}, "height": 320},
        })  # fmt: skip
    return out


def standalone_html(audit: dict[str, Any], lang: str = "de") -> str:
    """The report as one HTML document for printing (plots and tables)."""
    import json

    import plotly
    from jinja2 import Environment, PackageLoader, select_autoescape

    from datenlabor.web import i18n

    env = Environment(loader=PackageLoader("datenlabor.web", "templates"),
                      autoescape=select_autoescape())  # fmt: skip
    script = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return env.get_template("governance_report_print.html").render(
        audit=audit, figures=json.dumps(figures(audit["result"], lang)), lang=lang,
        plotly_src=script.as_uri(), t=lambda k, **kw: i18n.t(k, lang, **kw),
    )  # fmt: skip


def pdf(html: str) -> bytes:
    """Print ``html`` to PDF with headless chromium; a clear error if it is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
        "google-chrome")  # fmt: skip
    if exe is None:
        raise DatenlaborError(
            "PDF needs chromium (Debian: apt install chromium); it was not found on PATH"
        )
    with tempfile.TemporaryDirectory(prefix="dl-report-") as tmp:
        src, dst = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--allow-file-access-from-files",
               "--virtual-time-budget=10000", "--no-pdf-header-footer",
               f"--user-data-dir={tmp}/profile", f"--print-to-pdf={dst}", src.as_uri()]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=PDF_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DatenlaborError(f"chromium did not print the report within {PDF_TIMEOUT_S} s") from exc
        if not dst.is_file() or dst.stat().st_size == 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise DatenlaborError(f"chromium could not print the report: {' | '.join(tail)}")
        return dst.read_bytes()
