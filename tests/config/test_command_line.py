"""Flags anywhere among the KEY VALUE overrides of the train_net command line."""

import pytest

from kdzoo.engine import default_argument_parser
from kdzoo.utils.errors import ConfigError


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "F", "--resume", "--num-gpus", "2", "SEED", "-1", "SOLVER.MAX_ITER", "9"],
        ["--config", "F", "SEED", "-1", "SOLVER.MAX_ITER", "9", "--resume", "--num-gpus", "2"],
        ["SEED", "-1", "--resume", "SOLVER.MAX_ITER", "9", "--config=F", "--num-gpus", "2"],
    ],
    ids=["before", "after", "between"],
)
def test_flags_before_between_or_after_the_overrides(argv):
    args = default_argument_parser().parse_args(argv)
    assert args.config_file == "F" and args.resume and args.num_gpus == 2
    assert not args.eval_only
    assert args.opts == ["SEED", "-1", "SOLVER.MAX_ITER", "9"]  # a negative value stays a value


@pytest.mark.parametrize(
    "argv, message",
    [
        (["SOLVER.MAX_ITER", "--resume"], "SOLVER.MAX_ITER needs a value before --resume"),
        (["SEED", "--num-gpus", "2"], "SEED needs a value before --num-gpus"),
        (["SEED", "--unknown"], "SEED needs a value before --unknown"),
        (["--resume", "SOLVER.MAX_ITER"], "SOLVER.MAX_ITER needs a value$"),
    ],
)
def test_a_missing_value_is_a_one_line_error(argv, message):
    with pytest.raises(ConfigError, match=f"^command line: {message}"):
        default_argument_parser().parse_args(argv)


def test_flags_are_not_abbreviated():
    # "--res" is no flag of train_net; were it read as --resume, "--res 1" would lose its value.
    with pytest.raises(SystemExit):
        default_argument_parser().parse_args(["--res"])
