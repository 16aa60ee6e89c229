"""`jaxrl57.request`: the command line parsed once into a typed request."""

from __future__ import annotations

import json

import pytest

from jaxrl57.cli import build_parser, request_of
from jaxrl57.request import (
    Member,
    ReportRequest,
    TrainRequest,
    UsageError,
    parse_env_args,
    parse_members,
)


def test_members_are_the_sweep_grid_times_the_seeds():
    seeds, overrides = parse_members(3, 2, ["a=1,2", "b=x"])
    assert seeds == [3, 4, 3, 4]
    assert overrides == [{"a": "1", "b": "x"}] * 2 + [{"a": "2", "b": "x"}] * 2
    request = TrainRequest(seed=3, seeds=2, sweep=("a=1,2", "b=x"))
    assert request.members == tuple(Member(s, o) for s, o in zip(seeds, overrides, strict=True))


def test_argv_becomes_a_typed_request():
    args = build_parser().parse_args(
        ["train", "c51", "--env", "jax:Catch", "--env-arg", "size=8", "--seeds", "2",
         "--set", "learning_rate=1e-3", "--no-progress", "--checkpoint-every", "3"])
    request = request_of(args)
    assert isinstance(request, TrainRequest)
    assert (request.agent, request.env, request.seeds, request.checkpoint_every) == \
        ("c51", "jax:Catch", 2, 3)
    assert request.env_kwargs == {"size": 8}
    assert request.overrides == {"learning_rate": "1e-3"}
    assert request.progress is False and request.tensorboard is False
    report = request_of(build_parser().parse_args(["report", "d1", "d2", "--reps", "10"]))
    assert report == ReportRequest(dirs=("d1", "d2"), out="report", reps=10)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(seeds=0), "--seeds"),
    (dict(sweep=("lr",)), "--sweep"),
    (dict(set=("lr=",)), "--set"),
    (dict(env_arg=("seed=3",)), "--seed S"),
    (dict(checkpoint_every=0), "--checkpoint-every"),
])
def test_bad_parts_fail_at_check(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        TrainRequest(**kwargs).check()


def test_env_args_are_typed():
    assert parse_env_args(["a=3", "b=0.5", "c=true", "d=abc"]) == \
        {"a": 3, "b": 0.5, "c": True, "d": "abc"}


def test_resume_reads_the_run_settings_and_keeps_the_invocations_own():
    original = TrainRequest(agent="c51", env="jax:Catch", seed=5, seeds=2, sweep=("x=1,2",),
                            set=("num_rows=2",), out="somewhere", checkpoint_every=2)
    saved = json.loads(json.dumps(original.saved()))  # as written to and read from args.json
    invocation = TrainRequest(resume="run", progress=False, checkpoint_every=4)
    resumed = invocation.resumed_from(saved, "run")
    assert (resumed.agent, resumed.env, resumed.seed, resumed.seeds, resumed.sweep,
            resumed.set) == ("c51", "jax:Catch", 5, 2, ("x=1,2",), ("num_rows=2",))
    assert resumed.out == "run" and resumed.progress is False and resumed.checkpoint_every == 4


@pytest.mark.parametrize("saved", [[], "text", {"env": "jax:Catch"},
                                   {"agent": "dqn", "env": "jax:Catch", "sweep": "a=1"},
                                   {"agent": "dqn", "env": "jax:Catch", "seeds": "many"}])
def test_resume_from_a_bad_record_is_a_usage_error(saved):
    with pytest.raises(UsageError, match="args.json"):
        TrainRequest(resume="run").resumed_from(saved, "run")
