"""benchmarks/pictures.py times each case it names, in fresh processes, and refuses a case it does not know."""

import re

import pytest

from benchmarks import pictures
from tests.helpers import train_synthetic


@pytest.mark.slow
def test_it_times_visualize_after_and_a_command_without_the_worker(tmp_path, capsys):
    binary = train_synthetic(tmp_path)  # its own: visualize-after draws into the run's folder
    cases = "visualize-after-no-worker,all-no-worker"
    arguments = ["--model", str(binary), "--data-dir", str(tmp_path / "data_dir"), "--out", str(tmp_path / "out")]
    assert pictures.main([*arguments, "--rounds", "1", "--cases", cases]) == 0
    rows = dict(re.findall(r"^\| ([\w-]+) \| ([\d.]+) \|", capsys.readouterr().out, re.MULTILINE))
    assert set(rows) == {"visualize-after-no-worker", "all-no-worker"}
    assert all(float(seconds) > 0 for seconds in rows.values())
    assert (tmp_path / "out" / "tsne_layer0-1.png").stat().st_size > 0


def test_an_unknown_case_is_refused(capsys):
    with pytest.raises(SystemExit):
        pictures.main(["--cases", "visualize-after,everything"])
    assert "unknown case 'everything'" in capsys.readouterr().err
