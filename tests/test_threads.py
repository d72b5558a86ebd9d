"""The thread policy's decisions (gat.threads): from the CPUs and the work, explicit choices first."""

import json
import os

import pytest
import torch

from gat import threads
from gat.data.registry import load_dataset
from gat.errors import GATError
from gat.threads import (
    WORK_PER_THREAD,
    CpuSample,
    apply_thread_policy,
    available_cpus,
    busy_elsewhere,
    cgroup_cpu_quota,
    choose_threads,
    requested_threads,
    sample_cpus,
    thread_policy,
)
from gat.training.config import TrainConfig
from gat.training.loop import attention_width
from gat.training.minibatch import sampled_edges
from gat.training.trainer import train

CORA_EDGES, CORA_CLASSES = 10_556, 7


def paper_work(edges: int) -> int:
    """Edge-feature values of one step of the paper's model (8 heads x 8, one output head) over ``edges``."""
    return edges * attention_width(TrainConfig(), CORA_CLASSES)


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 2), (4, 2), (64, 2)])
def test_a_cora_step_shares_a_few_idle_cpus(cpus, expected):
    assert choose_threads(cpus, paper_work(CORA_EDGES)) == expected


@pytest.mark.parametrize(
    ("cpus", "edges", "expected"), [(2, 10**6, 2), (16, 10**6, 16), (16, 10**7, 16), (1, 10**7, 1)]
)
def test_bigger_steps_get_more_threads_up_to_the_cpus(cpus, edges, expected):
    assert choose_threads(cpus, paper_work(edges)) == expected


def test_a_tiny_step_stays_on_one_thread():
    assert choose_threads(64, paper_work(1000)) == 1


@pytest.mark.parametrize(
    ("cpus", "busy", "expected"), [(2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 3.0, 1), (8, 2.0, 6), (8, 2.6, 5)]
)
def test_cpus_busy_elsewhere_are_not_planned_for(cpus, busy, expected):
    assert choose_threads(cpus, paper_work(10**7), busy_elsewhere=busy) == expected


def test_threads_grow_with_the_work_and_never_exceed_the_cpus():
    counts = [choose_threads(8, work) for work in range(0, 20 * WORK_PER_THREAD, WORK_PER_THREAD // 3)]
    assert counts == sorted(counts) and counts[0] == 1 and max(counts) == 8
    assert choose_threads(8, 2 * WORK_PER_THREAD - 1) == 1 and choose_threads(8, 2 * WORK_PER_THREAD) == 2


def test_an_explicit_count_wins_over_the_work_and_the_cpus():
    assert choose_threads(2, paper_work(CORA_EDGES), requested=4) == 4
    assert choose_threads(2, paper_work(CORA_EDGES), requested=2, busy_elsewhere=2.0) == 2
    assert choose_threads(64, paper_work(10**7), requested=1) == 1
    with pytest.raises(GATError, match="threads must be >= 1"):
        choose_threads(2, 0, requested=0)


def test_flag_then_gat_threads_then_omp_num_threads():
    both = {"GAT_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert requested_threads(2, both) == 2
    assert requested_threads(None, both) == 3
    assert requested_threads(None, {"OMP_NUM_THREADS": "5,2"}) == 5  # a count per nesting level: the outer one
    assert requested_threads(None, {"OMP_NUM_THREADS": "5"}, honour_omp=False) is None  # torchrun's, in a rank
    assert requested_threads(None, {"GAT_THREADS": "", "OMP_NUM_THREADS": " "}) is None
    for bad in ("two", "0", "-1"):
        with pytest.raises(GATError, match="GAT_THREADS"):
            requested_threads(None, {"GAT_THREADS": bad})


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # cgroup v2: 1.5 CPUs, rounded up
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == expected


def test_available_cpus_is_the_affinity_capped_by_the_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == affinity  # no quota files: the affinity mask
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 8) * 100000} 100000\n")
    assert available_cpus(tmp_path) == affinity


def test_apply_sets_torch_and_the_context_restores_it(monkeypatch):
    monkeypatch.delenv("GAT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        assert apply_thread_policy(paper_work(1000), cpus=4) == 1 and torch.get_num_threads() == 1
        with thread_policy(paper_work(10**7), cpus=2, adapt=False) as policy:
            assert policy.threads == 2 and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("GAT_THREADS", "3")
        assert apply_thread_policy(0, cpus=2) == 3 and torch.get_num_threads() == 3
        assert apply_thread_policy(0, requested=2, cpus=2) == 2
    finally:
        torch.set_num_threads(before)


PROC_STAT_LINES = "cpu  {total} 0 0 900 0 0 0 0 0 0\n" + "".join(
    f"cpu{cpu} {{busy{cpu}}} 0 0 100 0 0 0 0 0 0\n" for cpu in range(64)
)


def write_proc_stat(path, busy_ticks: dict[int, int]) -> None:
    values = {f"busy{cpu}": busy_ticks.get(cpu, 0) for cpu in range(64)}
    path.write_text(PROC_STAT_LINES.format(total=sum(values.values()), **values) + "intr 1 2 3\nctxt 7\n")


def test_busy_elsewhere_is_the_cpus_busy_time_minus_our_own(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    ticks = os.sysconf("SC_CLK_TCK")
    write_proc_stat(stat, {0: 0, 1: 0, 2: 0})
    before = sample_cpus(stat)
    # Two seconds later: CPUs 0 and 1 were busy for 3 s in all, 1 s of which was this process; CPU 2 (not ours)
    # was busy throughout and does not count.
    write_proc_stat(stat, {0: 2 * ticks, 1: 1 * ticks, 2: 2 * ticks})
    after = sample_cpus(stat)
    later = CpuSample(before.wall + 2.0, after.busy, before.own + 1.0)
    assert busy_elsewhere(before, later) == pytest.approx(1.0)
    assert busy_elsewhere(before, CpuSample(before.wall + 2.0, before.busy, before.own + 5.0)) == 0.0
    assert sample_cpus(tmp_path / "missing") is None


def test_a_loop_takes_fewer_threads_while_others_are_busy_and_more_when_they_stop(monkeypatch):
    """ThreadPolicy.update re-chooses from the load measured since the last check (a fake clock and /proc/stat)."""
    monkeypatch.delenv("GAT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    first_look = [CpuSample(0.0, 0.0, 0.0), CpuSample(0.1, 0.0, 0.0)]  # idle while the policy looked
    later = [CpuSample(1.6, 3.0, 1.5), CpuSample(3.1, 4.5, 3.0)]
    readings = iter(first_look + later)
    monkeypatch.setattr(threads, "sample_cpus", lambda: next(readings))
    monkeypatch.setattr(threads.time, "monotonic", lambda: 10.0)  # every check is due
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    before = torch.get_num_threads()
    try:
        with thread_policy(paper_work(10**7), cpus=2) as policy:
            assert policy.threads == 2  # idle so far: both CPUs
            assert policy.update() == 1 and torch.get_num_threads() == 1  # others used 1.5 s of CPU in 1.5 s
            assert policy.update() == 2 and torch.get_num_threads() == 2  # only this process ran
    finally:
        torch.set_num_threads(before)


def test_an_explicit_count_never_adapts(monkeypatch):
    monkeypatch.setattr(threads, "sample_cpus", lambda: pytest.fail("an explicit count reads no load"))
    before = torch.get_num_threads()
    try:
        with thread_policy(paper_work(10**7), requested=3, cpus=2) as policy:
            assert policy.threads == 3 and policy.update() == 3
    finally:
        torch.set_num_threads(before)


def test_the_first_choice_comes_from_a_look_at_the_cpus_before_the_first_step(monkeypatch):
    monkeypatch.delenv("GAT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    slept = []
    monkeypatch.setattr(threads.time, "sleep", slept.append)
    busy = iter([CpuSample(0.0, 0.0, 0.0), CpuSample(0.1, 0.12, 0.0)])  # another process used 1.2 CPUs meanwhile
    monkeypatch.setattr(threads, "sample_cpus", lambda: next(busy))
    before = torch.get_num_threads()
    try:
        with thread_policy(paper_work(10**7), cpus=2) as policy:
            assert policy.threads == 1 and slept == [threads.FIRST_LOOK_SECONDS]
        with thread_policy(paper_work(10**7), cpus=2, adapt=False) as policy:  # a torchrun rank: its share
            assert policy.threads == 2 and len(slept) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("requested", "environment", "expected"), [(None, {}, "policy"), (2, {}, 2), (None, {"GAT_THREADS": "2"}, 2)]
)
def test_a_training_run_uses_the_policy_or_the_override_and_restores_torch(
    tmp_path, monkeypatch, requested, environment, expected
):
    for name in ("GAT_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(threads, "sample_cpus", lambda: None)  # no load to follow: the choice is the work's
    before = torch.get_num_threads()
    config = TrainConfig(dataset="synthetic", epochs=2, threads=requested, tensorboard=False, quiet=True,
                         runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / "models"))  # fmt: skip
    result = train(config)
    if expected == "policy":  # the whole synthetic graph's edges x 69 values a step
        graph = load_dataset("synthetic")
        expected = choose_threads(available_cpus(), graph.num_edges * attention_width(config, graph.num_classes))
    assert json.loads((result.run_dir / "metrics.json").read_text())["threads"] == expected
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("dataset", ["synthetic", "cora"])
def test_the_thread_count_never_changes_a_runs_numbers(tmp_path, dataset):
    """What lets the policy change the count mid-run: 1 and 2 threads give the same bits, epoch after epoch."""
    assert threads.thread_count_free_numbers()
    histories = []
    for count in (1, 2):
        folders = {"runs_dir": str(tmp_path / f"runs{count}"), "models_dir": str(tmp_path / f"models{count}")}
        config = TrainConfig(dataset=dataset, epochs=12, threads=count, tensorboard=False, quiet=True, **folders)
        histories.append([{k: v for k, v in record.items() if k != "seconds"} for record in train(config).history])
    assert histories[0] == histories[1]


def test_minibatch_work_is_the_sampled_edges_of_a_step():
    assert sampled_edges(1024, (10, 10), 10**7) == 1024 * 10 + 1024 * 10 * 10
    assert sampled_edges(1024, (10, 10), 5000) == 5000 + 5000  # never more than the graph's edges per layer
    assert choose_threads(2, sampled_edges(1024, (10, 10), 10**7) * attention_width(TrainConfig(), 7)) == 2


@pytest.mark.parametrize(("busy", "variables", "expected"), [
    (0.0, {}, 2),  # idle: every CPU
    (0.9, {}, 1),  # one CPU kept busy by another program: the other one
    (2.0, {}, 1),  # all busy: still one
    (0.0, {"GAT_THREADS": "3"}, 3),  # an explicit count wins
    (2.0, {"OMP_NUM_THREADS": "2"}, 2),
])  # fmt: skip
def test_long_work_gets_the_cpus_other_programs_leave_free(busy, variables, expected, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("GAT_THREADS", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(threads, "look_at_load", lambda: (None, busy))
    assert threads.threads_for_long_work(cpus=2) == expected


def test_tsne_maps_on_the_threads_of_long_work(monkeypatch):
    import numpy as np
    import openTSNE

    from visualization import maps

    used = []

    class Recorder:
        def __init__(self, **options):
            used.append(options["n_jobs"])

        def fit(self, features):
            return np.zeros((features.shape[0], 2))

    monkeypatch.setattr(openTSNE, "TSNE", Recorder)
    monkeypatch.setattr(maps, "threads_for_long_work", lambda: 7)
    maps.tsne(np.ones((20, 3)))
    assert used == [7]
