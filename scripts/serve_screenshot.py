"""The README's screenshot of the demo page: `textgan serve` on loopback, headless Chromium, one rewrite.

    python scripts/serve_screenshot.py --model runs/sentiment/filter-cpu --model runs/sentiment_zh/bootstrap-cpu \\
        --text "the food was cold and the waiter was rude ." --n 2 --out docs/serve.png

Needs Debian's chromium and chromium-driver (as the browser test does).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import free_port, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="runs to serve (the first is shown)")
    parser.add_argument("--text", required=True)
    parser.add_argument("--n", type=int, default=1, help="outputs shown side by side")
    parser.add_argument("--out", default="docs/serve.png")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    server = start_server(args.model[0], port, 10.0, 64, None, 1, extra=[x for m in args.model[1:] for x in ("--model", m)])
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=900,820", "--hide-scrollbars", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            wait = WebDriverWait(driver, 60)
            driver.get(f"http://127.0.0.1:{port}/")
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
            n = driver.find_element(By.ID, "n")
            n.clear()
            n.send_keys(str(args.n))
            driver.find_element(By.ID, "text").send_keys(args.text)
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#outputs .output")) == args.n)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
            print("outputs:", [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#outputs .output .text")])
        finally:
            driver.quit()
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
