"""A picture of multilabel/serve.py's page (docs/page.png in the README), taken in headless Chromium.

    python docs/screenshot.py --weights weights/demo               # the model of `make demo`, to a temporary file
    python docs/screenshot.py --weights W --example 1 --out docs/page.png   # the README's picture

Starts multilabel/serve.py on a free loopback port, opens the page, clicks one of its example sentences
and saves the page once the scores are shown. Needs Debian's `chromium` and `chromium-driver`
(`make setup` installs them as root) and selenium. tests/test_page.py opens the browser the
same way.
"""
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]

import config  # noqa: E402
import path  # noqa: E402

# Headless Chromium as root in a container, offline: no sandbox (root), no GPU, /tmp instead of a
# small /dev/shm, and none of the background calls home (updates, sync, first-run pages).
CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--no-first-run', '--window-size=900,1100')


def browser_missing():
    """Why no browser can be driven here, or None."""
    if not shutil.which('chromium'):
        return 'no chromium on PATH (Debian: apt-get install chromium chromium-driver; `make setup` does it as root)'
    if not shutil.which('chromedriver'):
        return 'no chromedriver on PATH (Debian: apt-get install chromium-driver; `make setup` does it as root)'
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is not installed (it is in requirements.txt)'
    return None


def open_browser(user_data_dir):
    """Headless Chromium through chromedriver, with a fresh profile in `user_data_dir`."""
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium')
    for flag in CHROMIUM_FLAGS + (f'--user-data-dir={user_data_dir}',):
        options.add_argument(flag)
    # The driver from the Debian package: given its path, selenium fetches nothing.
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which('chromedriver')))


def wait_for_result(driver, timeout=60):
    """Wait until the page shows a prediction or an error; returns the error text ('' for none)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, 'result').is_displayed() or d.find_element(By.ID, 'error').is_displayed())
    error = driver.find_element(By.ID, 'error')
    return error.text if error.is_displayed() else ''


def parse_args(argv=None):
    parser = config.ArgumentParser(description="Screenshot of multilabel/serve.py's page with an example predicted.")
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--example', type=int, default=0, help="which of the page's examples to click (default: 0)")
    # The tracked docs/page.png changes only when asked for by name.
    parser.add_argument('--out', help="PNG file to write; docs/page.png is the README's picture "
                                      '(default: a new temporary file, named when written)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    missing = browser_missing()
    if missing:
        sys.exit(f'error: {missing}')
    if not args.out:
        handle, args.out = tempfile.mkstemp(prefix='page-', suffix='.png')
        os.close(handle)
    import serve_load
    from selenium.webdriver.common.by import By
    with serve_load.running_server(args.weights) as url, tempfile.TemporaryDirectory() as profile:
        driver = open_browser(profile)
        try:
            driver.get(url + '/')
            driver.find_elements(By.CLASS_NAME, 'example')[args.example].click()
            error = wait_for_result(driver)
            if error:
                sys.exit(f'error: the page says: {error}')
            # The whole page and no more: a viewport as tall as the content (DevTools' device metrics,
            # since the window's size also counts the browser's own frame).
            bottom = driver.execute_script('return Math.ceil(document.body.getBoundingClientRect().bottom)')
            driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                                   {'width': 900, 'height': bottom, 'deviceScaleFactor': 1, 'mobile': False})
            path.atomic_write(args.out, lambda temporary: driver.save_screenshot(temporary))
        finally:
            driver.quit()
    print(f'wrote {args.out}')


if __name__ == '__main__':
    config.run_main(main)
