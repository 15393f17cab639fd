"""Renders a run report in headless Chromium to a PNG, to look at it as a person would.

  python -m pipeline.report.screenshot outputs/synthetic/report/report.html [--out shot.png]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_browser() -> Optional[str]:
  """The first Chromium-like browser on PATH, or None."""
  return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(page: str, out: str, width: int = 1280, height: int = 4000,
               browser: Optional[str] = None, timeout: float = 120) -> str:
  """Writes a ``width`` x ``height`` screenshot of the HTML file ``page`` to ``out``."""
  browser = browser or find_browser()
  if browser is None:
    raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(BROWSERS)})")
  with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
    command = [browser, *FLAGS, f"--user-data-dir={profile}",
               f"--screenshot={os.path.abspath(out)}", f"--window-size={width},{height}",
               "file://" + os.path.abspath(page)]
    subprocess.run(command, check=True, timeout=timeout, capture_output=True)
  if not os.path.isfile(out):
    raise RuntimeError(f"{browser} wrote no screenshot to {out}")
  return out


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("report", help="the report's HTML file")
  parser.add_argument("--out", help="PNG to write (default: beside the report, screenshot.png)")
  parser.add_argument("--height", type=int, default=4000)
  args = parser.parse_args(argv)
  out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.report)), "screenshot.png")
  try:
    print(screenshot(args.report, out, height=args.height))
  except (OSError, RuntimeError, subprocess.SubprocessError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
