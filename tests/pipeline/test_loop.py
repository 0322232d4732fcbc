import sys
from pathlib import Path

from support import make_spec

import benchmark
from benchmark.pipeline import loop
from benchmark.pipeline.plan import RunOptions


def _stages(**settings) -> list[str]:
    """The modules of LeakBench's functions the run loop calls, in the order it calls them (not the
    callbacks of other libraries that run in its frame, e.g. torch.compile's weakref finalisers)."""
    calls = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_back is not None and frame.f_back.f_code is loop.run_targets.__code__:
            if (module := frame.f_globals["__name__"]).startswith("benchmark."):
                calls.append(module.removeprefix("benchmark.pipeline."))

    sys.setprofile(profile)
    try:
        benchmark.run(make_spec(), "idlg", max_steps=1, logger=None, **settings)
    finally:
        sys.setprofile(None)
    return calls


def test_a_run_goes_through_its_stages_once_per_group_in_order(tmp_path: Path):
    group = ["prepare", "attack", "evaluate", "store"]
    assert _stages(targets=2, problems=1, out=tmp_path) == ["prepare", *group, *group, "store"]
    assert _stages(targets=2, problems=2, out=tmp_path / "together") == ["prepare", *group, "store"]


def test_the_options_object_and_the_keywords_are_the_same_run():
    spec = make_spec()
    by_keywords = benchmark.run(spec, "idlg", targets=1, max_steps=2, logger=None)
    by_options = benchmark.run(spec, "idlg", RunOptions(targets=1, max_steps=2, logger=None))
    mixed = benchmark.run(spec, "idlg", RunOptions(targets=1, logger=None), max_steps=2)
    assert by_keywords.targets[0].metrics == by_options.targets[0].metrics == mixed.targets[0].metrics
    assert by_options.config == by_keywords.config
