"""Learning-rate schedules: the rate each step really trains with, and what a checkpoint keeps."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.training.optim import LRSchedule, build_optimizer


def make(schedule: str, mode: str = "min", total_steps: int = 10, **options):
    cfg = OmegaConf.create(
        {"schedule": schedule, "warmup_steps": 0, "plateau_factor": 0.25, "plateau_patience": 0, **options}
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=20.0)
    return optimizer, LRSchedule(cfg, optimizer, total_steps, mode)


def train_steps(optimizer, schedule, steps: int) -> list[float]:
    """The learning rate of each of `steps` optimizer steps."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_step()
    return rates


def test_warm_up_then_cosine_and_linear_decay_per_step():
    optimizer, schedule = make("cosine", warmup_steps=2, total_steps=6)
    assert train_steps(optimizer, schedule, 6) == pytest.approx(
        [10.0, 20.0, 20.0, 20 * 0.5 * (1 + math.cos(math.pi / 4)), 10.0, 20 * 0.5 * (1 + math.cos(3 * math.pi / 4))]
    )
    optimizer, schedule = make("linear", total_steps=4)
    assert train_steps(optimizer, schedule, 4) == pytest.approx([20.0, 15.0, 10.0, 5.0])


def test_plateau_divides_the_rate_and_every_later_step_keeps_it():
    optimizer, schedule = make("plateau")
    assert train_steps(optimizer, schedule, 3) == [20.0] * 3
    schedule.after_validation(100.0)  # the first epoch: the best so far
    assert train_steps(optimizer, schedule, 3) == [20.0] * 3
    schedule.after_validation(101.0)  # worse: lr / 4 for all the steps of the next epoch
    assert train_steps(optimizer, schedule, 3) == [5.0] * 3
    schedule.after_validation(90.0)  # better: kept
    assert train_steps(optimizer, schedule, 3) == [5.0] * 3
    schedule.after_validation(89.999)  # better by less than the 1e-4 relative threshold: a plateau
    assert train_steps(optimizer, schedule, 2) == [1.25] * 2


def test_plateau_patience_and_a_metric_to_maximise():
    optimizer, schedule = make("plateau", mode="max", plateau_patience=1, plateau_factor=0.5)
    for f1 in (0.5, 0.4):
        schedule.after_validation(f1)
    assert train_steps(optimizer, schedule, 1) == [20.0]  # one bad epoch is within the patience
    schedule.after_validation(0.45)
    assert train_steps(optimizer, schedule, 1) == [10.0]
    schedule.after_validation(0.6)
    assert train_steps(optimizer, schedule, 1) == [10.0]


def test_a_resumed_schedule_trains_with_the_rate_it_had():
    optimizer, schedule = make("plateau")
    train_steps(optimizer, schedule, 4)
    for metric in (100.0, 120.0):
        schedule.after_validation(metric)
    state = schedule.state_dict()
    optimizer, resumed = make("plateau")
    resumed.load_state_dict(state)
    assert train_steps(optimizer, resumed, 2) == [5.0, 5.0]
    resumed.after_validation(99.0)  # compared with the best before the checkpoint
    resumed.after_validation(99.5)
    assert train_steps(optimizer, resumed, 1) == [1.25]


def test_a_checkpoint_from_the_reduce_lr_on_plateau_days_resumes_with_its_decayed_rate():
    optimizer, schedule = make("plateau")
    train_steps(optimizer, schedule, 4)
    old = {
        "per_step": schedule.per_step.state_dict(),
        "plateau": {
            "factor": 0.25,
            "patience": 0,
            "best": 159.79,
            "num_bad_epochs": 0,
            "_last_lr": [5.0],
            "mode": "min",
            "last_epoch": 6,
        },
    }
    optimizer, resumed = make("plateau")
    resumed.load_state_dict(old)
    assert resumed.best == 159.79 and train_steps(optimizer, resumed, 2) == [5.0, 5.0]


@pytest.mark.parametrize("name,reference", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_the_fused_optimizers_take_the_textbook_steps(name, reference):
    cfg = OmegaConf.create(
        {
            "name": name,
            "lr": 0.01,
            "betas": [0.9, 0.999],
            "weight_decay": 0.01,
            "momentum": 0.0,
            "schedule": "constant",
            "warmup_steps": 0,
            "plateau_factor": 0.25,
            "plateau_patience": 0,
        }
    )
    torch.manual_seed(0)
    start, grads = torch.randn(3, 4), [torch.randn(3, 4) for _ in range(5)]
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    optimizer = build_optimizer(cfg, [ours])
    assert optimizer.defaults["fused"] is True
    plain = reference([theirs], lr=0.01, betas=(0.9, 0.999), weight_decay=0.01, foreach=False)
    for grad in grads:
        for parameter, step in ((ours, optimizer), (theirs, plain)):
            parameter.grad = grad.clone()
            step.step()
    assert not torch.equal(ours, start) and torch.allclose(ours, theirs, atol=1e-6)
