"""multilabel/serve.py's page at GET /, in a real browser: headless Chromium through chromedriver, driven by
selenium, against the real server on the tiny trained model. Skips, saying why, where no browser
is installed (`make setup` installs Debian's chromium and chromium-driver as root)."""
import os
import re
import subprocess
import sys

import pytest

import path
from conftest import ROOT

sys.path[:0] = [os.path.join(ROOT, 'docs'), os.path.join(ROOT, 'bench')]
import screenshot  # noqa: E402  (docs/screenshot.py: how the browser is opened)
import serve_load  # noqa: E402
from multilabel import explain

MAX_TEXT_CHARS = 1000


@pytest.fixture(scope='module')
def page(request, tmp_path_factory):
    """(browser on the page, weights folder)."""
    missing = screenshot.browser_missing()
    if missing:
        pytest.skip(missing)
    weights, _ = request.getfixturevalue('trained')  # not trained at all when the browser is missing
    with serve_load.running_server(weights, '--max-text-chars', str(MAX_TEXT_CHARS)) as url:
        driver = screenshot.open_browser(tmp_path_factory.mktemp('chromium-profile'))
        try:
            driver.get(url + '/')
            yield driver, weights
        finally:
            driver.quit()


def find(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def submit(driver, text):
    """Put `text` in the box as a user would (typed; set directly when long), press Predict, wait."""
    box = find(driver, '#text')[0]
    box.clear()
    if len(text) < 100:
        box.send_keys(text)
    else:
        driver.execute_script('arguments[0].value = arguments[1]', box, text)
    return click_and_wait(driver, find(driver, '#predict')[0])


def click_and_wait(driver, element):
    """Click `element`, wait for the answer; returns the error shown ('' for none)."""
    from selenium.webdriver.support.ui import WebDriverWait
    driver.execute_script("document.getElementById('result').style.display = 'none'")  # the previous answer
    element.click()  # the click handler disables Predict until the answer is shown
    WebDriverWait(driver, 60).until(lambda d: find(d, '#predict')[0].is_enabled())
    return screenshot.wait_for_result(driver)


def shown_labels(driver):
    return [item.text for item in find(driver, '#labels li')]


@pytest.fixture(scope='module')
def classifier(trained):
    """In the inference precision that `python predict.py` and multilabel/serve.py use by default."""
    import config
    import predict
    return predict.Classifier(trained[0], precision=config.DEFAULTS.inference_precision)


def predicted(classifier, text):
    """The labels predict.py gives `text` (its Classifier: the code behind `python predict.py TEXT`)."""
    return classifier.predict_batch([text])[1][0]


def test_typed_text_gets_the_labels_of_predict_py_and_every_score_as_a_sorted_bar(page, classifier):
    driver, weights = page
    text = '某汽车品牌宣布召回两万辆新车'
    assert submit(driver, text) == ''
    assert shown_labels(driver) == predicted(classifier, text)
    _, _, scores = classifier.predict_batch([text])
    rows = find(driver, '#scores tr')
    assert sorted(row.get_attribute('data-label') for row in rows) == sorted(classifier.labels)
    shown = [float(row.find_element('css selector', '.value').get_attribute('textContent')) for row in rows]
    assert shown == sorted(shown, reverse=True)
    expected = dict(zip(classifier.labels, scores[0].tolist()))
    for row, value in zip(rows, shown):
        assert value == pytest.approx(expected[row.get_attribute('data-label')], abs=6e-4)
    # Each bar's threshold mark sits at that label's threshold (tuned per label by the `trained` run).
    thresholds = path.read_json(os.path.join(weights, path.THRESHOLDS_NAME))
    for row in rows:
        left = row.find_element('css selector', '.threshold').get_attribute('style')
        assert float(re.search(r'left: ([\d.]+)%', left).group(1)) == pytest.approx(
            100 * thresholds[row.get_attribute('data-label')], abs=0.06)
    chosen = [row.get_attribute('data-label') for row in rows if 'chosen' in row.get_attribute('class')]
    assert sorted(chosen) == sorted(shown_labels(driver))


def test_each_predicted_label_shows_its_text_with_the_explaining_characters_shaded(page, classifier):
    import predict
    driver, _ = page
    text = '青岛地铁施工段坍塌致3人遇难'
    assert submit(driver, text) == ''
    lines = find(driver, '#why .why')
    assert [line.get_attribute('data-label') for line in lines] == shown_labels(driver)
    expected = explain.explained_spans(classifier, text)
    for line in lines:
        label = line.get_attribute('data-label')
        marks = line.find_elements('css selector', 'mark')
        spans = sorted(expected[label], key=lambda s: s['start'])
        assert [m.get_attribute('textContent') for m in marks] == [s['text'] for s in spans]
        assert line.get_attribute('textContent') == label + text  # the whole text, nothing lost or doubled
        if marks:  # the strongest span is shaded darkest
            strongest = max(range(len(spans)), key=lambda i: spans[i]['weight'])
            shades = [float(re.search(r'--weight: ([\d.]+)', m.get_attribute('style')).group(1)) for m in marks]
            assert shades[strongest] == max(shades) == 1.0


def test_a_clicked_chinese_example_is_predicted_and_rendered_with_a_cjk_font(page, classifier):
    driver, _ = page
    example = find(driver, '.example')[0]
    text = example.text
    assert re.search(r'[\u4e00-\u9fff]', text)
    assert click_and_wait(driver, example) == ''
    assert find(driver, '#text')[0].get_attribute('value') == text
    assert shown_labels(driver) == predicted(classifier, text)

    # The font Chromium really drew the first label with (DevTools' CSS.getPlatformFontsForNode)
    # is one of the installed fonts that cover Chinese (fontconfig's list), not a box-drawing fallback.
    chinese_fonts = subprocess.run(['fc-list', ':lang=zh', 'family'], capture_output=True, text=True).stdout
    if not chinese_fonts.strip():
        pytest.skip('no font with Chinese glyphs is installed (Debian: fonts-wqy-microhei)')
    driver.execute_cdp_cmd('DOM.enable', {})
    driver.execute_cdp_cmd('CSS.enable', {})
    root = driver.execute_cdp_cmd('DOM.getDocument', {})['root']['nodeId']
    node = driver.execute_cdp_cmd('DOM.querySelector', {'nodeId': root, 'selector': '#labels li'})['nodeId']
    used = driver.execute_cdp_cmd('CSS.getPlatformFontsForNode', {'nodeId': node})['fonts']
    families = {family.strip() for line in chinese_fonts.splitlines() for family in line.split(',')}
    assert any(font['familyName'] in families and font['glyphCount'] > 0 for font in used), used


def test_errors_are_shown_in_words(page):
    driver, _ = page
    assert 'empty' in submit(driver, '   ')
    assert not find(driver, '#result')[0].is_displayed()
    too_long = submit(driver, '长' * (MAX_TEXT_CHARS + 1))
    assert 'too long' in too_long and str(MAX_TEXT_CHARS) in too_long
    # An overloaded server answers 503: the page's own fetch is answered so here, as the server would.
    driver.execute_script("window.fetch = async () => new Response("
                          "JSON.stringify({detail: 'the queue is full'}), {status: 503})")
    busy = submit(driver, '中国队3比1击败日本队')
    assert 'busy' in busy and '503' in busy and 'the queue is full' in busy
    driver.refresh()  # the real fetch again


def test_with_many_labels_the_first_15_bars_show_and_a_button_shows_the_rest(page):
    driver, _ = page
    scores = {f'label {i:02d}': round(1 - i / 40, 3) for i in range(40)}  # as the real corpus' 65 would
    driver.execute_script('show(arguments[0])', {'labels': ['label 00'], 'scores': scores})
    rows = find(driver, '#scores tr')
    assert len(rows) == 40 and sum(row.is_displayed() for row in rows) == 15
    button = find(driver, '#all')[0]
    assert button.is_displayed() and 'Show all 40 labels (25 more)' in button.text
    button.click()
    assert all(row.is_displayed() for row in rows) and not button.is_displayed()
    driver.refresh()


def test_the_page_loads_nothing_from_elsewhere():
    with open(path.SERVE_PAGE, encoding='utf-8') as f:
        html = f.read()
    assert not re.search(r'''(src|href)\s*=\s*["']?(https?:)?//|@import|url\(|<link\b''', html, re.I)
