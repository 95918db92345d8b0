"""A real headless browser for tests of HTML pages (Debian's ``chromium``).

Tests skip, saying so, when no browser is installed (``apt-get install -y chromium``).
:func:`probe_page` loads a page with a script appended that measures it once it has loaded:
horizontal overflow at :data:`WIDTH` px and broken images; console messages come back on stderr.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1280
PROBE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const broken = [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute("data-probe",
    `scroll=${root.scrollWidth};client=${root.clientWidth};broken=${broken}`);
});
</script>"""


def browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def run_browser(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={WIDTH},2000", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@dataclass(frozen=True)
class Probe:
    scroll: int
    client: int
    broken: int
    dom: str
    """The page's DOM after load, as the browser dumped it."""
    console_errors: list[str]


def probe_page(binary: str, page: Path) -> Probe:
    """Load ``page`` (a copy with :data:`PROBE` appended, next to it) and measure it."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    res = run_browser(binary, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-probe="scroll=(\d+);client=(\d+);broken=(\d+)"', res.stdout)
    if not found:
        raise AssertionError(f"the probe did not run: {res.stderr[-2000:]}")
    errors = [line for line in res.stderr.splitlines() if "Uncaught" in line or ":CONSOLE" in line]
    scroll, client, broken = map(int, found.groups())
    return Probe(scroll, client, broken, res.stdout, errors)


def screenshot(binary: str, page: Path, shot: Path) -> subprocess.CompletedProcess[str]:
    """A PNG of ``page`` at :data:`WIDTH` px wide."""
    return run_browser(binary, f"--screenshot={shot}", page.as_uri())
