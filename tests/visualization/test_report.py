"""The run report and ``explain``: explanations worked out by hand on a four-node graph, the report's embedded
data against the library's attention, the commands, and the page in a real (headless Chromium) browser."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gat.data.graph import Graph
from gat.errors import GATError
from gat.nn.model import Inspection
from tests.helpers import HAND_ATTENTION, HAND_EDGE_INDEX, HAND_LABELS, REPO, count_tsne_fits, record_map_requests
from visualization.attention import neighbourhood_attention
from visualization.browser import missing_browser, open_report, select_node
from visualization.explain import Explainer, explanation_figure, format_explanation, reading
from visualization.loading import TrainedModel, load_trained
from visualization.report import DECIMALS, write_report

# Node 1 is predicted class 0 (right), node 2 class 0 (wrong: it is class 1); node 3 has no neighbour.
HAND_LOGITS = torch.tensor([[2.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


@pytest.fixture
def hand_model(tmp_path: Path) -> TrainedModel:
    """The four-node graph of tests.helpers with hand-made logits and attention, as if a model produced them."""
    masks = [torch.tensor(mask) for mask in ([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1])]
    edges = HAND_EDGE_INDEX[:, HAND_EDGE_INDEX[0] != HAND_EDGE_INDEX[1]]
    graph = Graph(torch.eye(4), HAND_LABELS, edges, *(mask.bool() for mask in masks), num_classes=2, name="hand")
    inspection = Inspection(HAND_LOGITS, [HAND_LOGITS], [HAND_ATTENTION], HAND_EDGE_INDEX)
    return TrainedModel(None, graph, inspection, "hand_run", tmp_path / "hand_run", best_epoch=3)


def test_explanation_of_a_wrong_prediction_by_hand(hand_model):
    explanation = Explainer(hand_model).explain(2)
    assert (explanation.split, explanation.true_class, explanation.predicted_class) == ("test", 1, 0)
    assert explanation.confidence == pytest.approx(np.exp(1) / (np.exp(1) + 1))
    assert explanation.neighbour_counts.tolist() == [1, 1]  # node 0 (class 0) and node 3 (class 1)
    np.testing.assert_allclose(explanation.attention_makeup[0], [[0.2, 0.8], [0.1, 0.9]])
    np.testing.assert_allclose(explanation.uniform_makeup, [1 / 3, 2 / 3])  # itself and node 3 are class 1
    # mean over the two heads: node 3 (0.6 + 0.4) / 2, node 0 (0.2 + 0.1) / 2; the self-loop is left out
    top = explanation.top_neighbours[0]
    assert [(n.node, n.correct) for n in top] == [(3, True), (0, True)]
    assert [n.attention for n in top] == pytest.approx([0.5, 0.15])
    assert reading(explanation) == (
        "Node 2 is a test node of class 1; the model predicts class 0 with 73% confidence, wrongly (class 1 gets "
        "27%). Of its 2 neighbours, 1 shares its class and 1 is of the predicted class 0. In the last layer the node "
        "puts 15% of its attention (itself included) on class-0 nodes, where uniform attention would put 33%. Its "
        "most attended neighbour is node 3 (class 1, correctly classified), with attention 0.500 against a uniform "
        "0.333. The prediction follows the most common class among its neighbours (a tie between classes 0, 1), but "
        "its own class 1 is as common: a tie decided the wrong way."
    )


def test_explanation_of_a_right_prediction_and_of_a_lonely_node(hand_model):
    explainer = Explainer(hand_model)
    assert reading(explainer.explain(1)) == (
        "Node 1 is a validation node of class 0; the model predicts class 0 with 95% confidence, correctly. Of its "
        "1 neighbour, 1 shares its class. In the last layer the node puts 100% of its attention (itself included) "
        "on class-0 nodes, where uniform attention would put 100%. Its most attended neighbour is node 0 (class 0, "
        "correctly classified), with attention 0.400 against a uniform 0.500. The prediction follows the most common "
        "class among its neighbours."
    )
    lonely = explainer.explain(3)
    assert lonely.degree == 0 and lonely.top_neighbours == [[]]
    assert reading(lonely).endswith("It has no neighbours, so the prediction rests on its own features alone.")


def test_explanation_text_and_figure(hand_model):
    explanation = Explainer(hand_model).explain(2)
    text = format_explanation(explanation)
    assert "true class 1 · predicted class 0 (73%) · WRONG" in text
    assert "    0     1    0.10   0.90" in text  # layer 0, head 1: the attention on class 0 and class 1
    assert "node      3  class 1  predicted 1 correct  attention 0.500" in text
    figure = explanation_figure(explanation, num_classes=2)
    assert len(figure.axes) == 3 and "why node 2" in figure._suptitle.get_text()


def unpack_report_data(page: str) -> dict:
    """The explorer's data as the page's script sees it (gzipped JSON in base64)."""
    packed = re.search(r'<script id="report-data" type="application/octet-stream">([^<]*)</script>', page).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def test_report_of_the_hand_graph_embeds_its_attention(hand_model):
    path = write_report(hand_model)
    assert path == hand_model.run_dir / "report.html"
    page = path.read_text()
    assert "Plotly.newPlot" in page and "no metrics.json" in page and "no pictures in" in page
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', page)  # nothing fetched from the web
    data = unpack_report_data(page)
    assert data["targets"] == [0, 1, 2, 3] and data["offsets"] == [0, 3, 5, 8, 9]
    assert data["sources"] == HAND_EDGE_INDEX[0].tolist() and data["heads"] == [2]
    assert data["attention"] == [HAND_ATTENTION.ravel().tolist()]  # edge-major, head-minor
    assert data["predicted"] == [0, 0, 0, 1] and data["degrees"] == [2, 1, 2, 0]
    assert data["readings"][2] == reading(Explainer(hand_model).explain(2))
    # the homophily finding of the hand-computed analysis (tests/nn/test_analysis.py): 78.3% and 68.3% vs 66.7%
    assert "layer 0 73.3% (heads 68.3%-78.3%)" in page and "against 66.7% for uniform attention" in page


@pytest.mark.parametrize(
    "contents,message",
    [
        ('{"final": {"test_accuracy": "high"}}', "'final.test_accuracy' must be a number or null, got str"),
        ('{"history": [{"loss": 1}]}', "'history[0].epoch' is missing"),
        ('{"final": ', "not a JSON file"),
    ],
)
def test_a_corrupt_metrics_json_is_one_line_naming_it(hand_model, contents, message):
    hand_model.run_dir.mkdir(parents=True)
    (hand_model.run_dir / "metrics.json").write_text(contents)
    with pytest.raises(GATError, match="metrics.json: ") as error:
        write_report(hand_model)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (hand_model.run_dir / "report.html").exists()


@pytest.fixture(scope="module")
def synthetic_report(synthetic_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    """The report of a model trained on the synthetic graph, its map a sample of 200 of the 2000 nodes."""
    data_dir = tmp_path_factory.mktemp("report_data")
    trained = load_trained(synthetic_binary, data_dir=data_dir)
    return trained, write_report(trained, tmp_path_factory.mktemp("report") / "report.html", max_nodes=200)


def test_report_of_a_trained_model(synthetic_report):
    trained, path = synthetic_report
    page = path.read_text()
    assert "a random 200 of the 2,000 nodes" in page  # the sample is said on the page
    assert "Training curves" in page and '"train loss"' in page and "edge_homophily" in page
    data = unpack_report_data(page)
    node = data["targets"][17]
    k = data["targets"].index(node)
    start, end = data["offsets"][k : k + 2]
    for layer, heads in enumerate(data["heads"]):
        expected = neighbourhood_attention(trained.inspection, node, layer)
        assert data["sources"][start:end] == expected.sources.tolist()
        embedded = np.array(data["attention"][layer][start * heads : end * heads]).reshape(-1, heads)
        np.testing.assert_allclose(embedded, expected.attention, rtol=0, atol=0.5 * 10**-DECIMALS)


def run_visualization(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visualization", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env={**os.environ, "MPLBACKEND": ""})  # fmt: skip


@pytest.mark.slow
def test_report_and_explain_commands(synthetic_binary, tmp_path):
    model = ["--model", str(synthetic_binary), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path)]
    result = run_visualization("report", *model, "--max-nodes", "100", "--layer", "-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(tmp_path / "report.html")]
    assert (
        f"explain --model {synthetic_binary} --node "
        in unpack_report_data((tmp_path / "report.html").read_text())["command"]
    )

    result = run_visualization("explain", "--node", "7", *model)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("node 7 · ") and "Node 7 is a" in result.stdout
    assert result.stdout.splitlines()[-1] == str(tmp_path / "explain_node7.png")

    result = run_visualization("explain", "--node", "2000", *model)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: node 2000 does not exist: the graph has nodes 0..1999"


# ---- in a browser ---------------------------------------------------------------------------------------------------


def test_a_missing_browser_is_named(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None if name == "chromedriver" else f"/usr/bin/{name}")
    assert missing_browser() == "chromedriver not on the PATH (Debian: apt-get install chromium chromium-driver)"


@pytest.fixture(scope="module")
def browser_available() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


def artifact_path(name: str, tmp_path: Path) -> Path:
    """Where a test keeps a file for people to look at: ``$GAT_TEST_ARTIFACTS`` if set, else the test's tmp dir."""
    folder = Path(os.environ.get("GAT_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def explorer_bars(driver) -> dict[str, float]:
    """The attention bars the explorer shows: source label -> height."""
    trace = driver.execute_script("return document.getElementById('explorer-bars').data[0]")
    return dict(zip(trace["x"], trace["y"], strict=True))


def expected_bars(trained: TrainedModel, node: int, layer: int, head: int) -> dict[str, float]:
    """The same, from the library: the attention of every edge into ``node``, the self-loop named as the page does."""
    neighbourhood = neighbourhood_attention(trained.inspection, node, layer)
    return {(f"{node} (self)" if source == node else str(source)): float(value)
            for source, value in zip(neighbourhood.sources, neighbourhood.attention[:, head], strict=True)}  # fmt: skip


@pytest.mark.slow
def test_report_in_a_browser(browser_available, synthetic_report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    trained, path = synthetic_report
    data = unpack_report_data(path.read_text())
    with open_report(path) as driver:
        assert severe_console_messages(driver) == []

        # every chart rendered: an SVG with a size, and the marks it should hold
        charts = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        ids = {chart.get_attribute("id") for chart in charts}
        assert {"embedding-map", "explorer-graph", "explorer-bars", "head-charts", "head-agreement",
                "training-curves"} <= ids  # fmt: skip
        for chart in charts:
            svg = chart.find_element(By.CSS_SELECTOR, "svg.main-svg")
            assert svg.size["width"] > 100 and svg.size["height"] > 100, chart.get_attribute("id")
        map_points = driver.find_elements(By.CSS_SELECTOR, "#embedding-map .scatterlayer .point")
        assert len(map_points) == 200 + 1  # the sampled nodes and the ring around the selected one
        assert driver.find_elements(By.CSS_SELECTOR, "#head-agreement .hm image, #head-agreement .heatmaplayer *")
        assert len(driver.find_elements(By.TAG_NAME, "img")) == 0  # no pictures in this run's folder yet

        # a click on the map (Plotly's own click event) shows that node's attention, as the library computes it
        layer = len(data["heads"]) - 1
        node = next(node for node, degree in zip(data["targets"], np.array(data["degrees"])[data["targets"]],
                                                   strict=True) if 3 <= degree <= 10)  # fmt: skip
        select_node(driver, node)
        assert driver.execute_script("return window.gatReport.state.node") == node
        assert driver.find_element(By.ID, "explorer-title").text.startswith(f"node {node} · class")
        shown = explorer_bars(driver)
        assert shown == pytest.approx(expected_bars(trained, node, layer, 0), abs=0.5 * 10**-DECIMALS)
        bars = driver.find_elements(By.CSS_SELECTOR, "#explorer-bars .bars .point")
        assert len(bars) == len(shown) == data["degrees"][node] + 1
        neighbours = driver.find_elements(By.CSS_SELECTOR, "#explorer-graph .scatterlayer .point")
        assert len(neighbours) == len(shown)  # the neighbours and the node in the centre
        reading_text = driver.find_element(By.ID, "explorer-reading").text
        assert reading_text.startswith(f"Node {node} is a")

        # another head of the first layer
        Select(driver.find_element(By.ID, "head-select")).select_by_value("0:1")
        assert explorer_bars(driver) == pytest.approx(expected_bars(trained, node, 0, 1), abs=0.5 * 10**-DECIMALS)

        # a node typed in
        other = data["targets"][0]
        field = driver.find_element(By.ID, "node-input")
        field.clear()
        field.send_keys(str(other))
        driver.find_element(By.ID, "node-button").click()
        assert driver.execute_script("return window.gatReport.state.node") == other
        assert explorer_bars(driver) == pytest.approx(expected_bars(trained, other, 0, 1), abs=0.5 * 10**-DECIMALS)

        # a node off the sampled map is refused with a message, not an error
        off_map = next(node for node in range(trained.graph.num_nodes) if node not in set(data["targets"]))
        assert driver.execute_script("return window.gatReport.explore(arguments[0])", off_map) is False
        assert "not on this page's map" in driver.find_element(By.ID, "explorer-message").text

        select_node(driver, node)
        screenshot = artifact_path("report.png", tmp_path)
        assert driver.save_screenshot(str(screenshot))
        print(f"report screenshot: {screenshot}")
        assert severe_console_messages(driver) == []
    assert screenshot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_pictures_and_the_report_share_one_t_sne_map(synthetic_binary, tmp_path, monkeypatch):
    """After training, the pictures map the last hidden layer and the logits, and the report maps the last hidden
    layer again, over the same nodes (all of a graph this size) with the same seed: that map is made once and
    shared. The worker is asked for the two maps, and this process makes none (every t-SNE made here goes through
    openTSNE's fit, which is counted)."""
    from visualization.reports import visualize_run

    requested = record_map_requests(monkeypatch)
    fitted = count_tsne_fits(monkeypatch)
    paths = visualize_run(synthetic_binary, tmp_path / "data", tensorboard=False)
    assert len(requested) == 2, f"one map per layer drawn, not {len(requested)}"
    assert fitted == [], "a map was made in this process"
    assert paths[-1].name == "report.html" and "embedding" in paths[-1].read_text()
