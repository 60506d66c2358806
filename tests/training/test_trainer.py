"""The Trainer: a short loop with hooks around it, on real crops with a real (small) encoder."""

from __future__ import annotations

from contextlib import ExitStack

from training.pipelines.train_classifier import TrainOptions, build_hooks, build_parts, plan_run
from training.trainer import HookBase, Trainer, init_distributed

TINY = ["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=64", "batch_size=4", "workers=0",
        "drop_path_rate=0", "tensorboard_images=0", 'optimizer={"type": "Adam", "lr": 0.001}',
        "schedule.type=constant", "batches_per_epoch=2", "val_every=2", "augment=false", "hardcore=false"]


class Recorder(HookBase):
    """Writes down each call with what the trainer holds at that moment."""

    def __init__(self):
        self.calls: list[tuple] = []

    def before_train(self):
        self.calls.append(("before_train", self.trainer.start_epoch))

    def before_epoch(self):
        self.calls.append(("before_epoch", self.trainer.epoch))

    def after_step(self):
        self.calls.append(("after_step", self.trainer.epoch, self.trainer.step, round(self.trainer.last.loss, 6)))

    def after_epoch(self):
        # the validation and checkpoint hooks come first: their results are visible here
        self.calls.append(("after_epoch", self.trainer.epoch, self.trainer.validated))

    def after_train(self):
        self.calls.append(("after_train", list(self.trainer.epochs_run)))


def test_hooks_are_called_in_order_around_a_short_loop(preprocessed_root, tmp_path):
    options = TrainOptions(data_dir=str(preprocessed_root), overrides=TINY + ["epochs=3"], seed=111, progress=False,
                           output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs"))
    ctx, device = init_distributed("cpu")
    recorder = Recorder()
    with ExitStack() as held:
        plan, resume_data = plan_run(options, ctx, device, held)
        parts, val_loader = build_parts(options, plan, ctx, device)
        trainer = Trainer(parts, build_hooks(options, plan, ctx, val_loader, resume_data) + [recorder])
        trainer.train()
    losses = [round(x, 6) for x in trainer.step_losses]
    expected = [("before_train", 0)]
    for epoch in range(3):
        expected.append(("before_epoch", epoch))
        expected += [("after_step", epoch, step, losses[2 * epoch + step]) for step in range(2)]
        expected.append(("after_epoch", epoch, epoch in (1, 2)))  # every 2nd epoch and the last
    expected.append(("after_train", [0, 1, 2]))
    assert recorder.calls == expected
    assert len(losses) == 6 and trainer.metrics["n_videos"] > 0
    assert sorted(p.name for p in (tmp_path / "weights").glob(f"{plan.name}_*")) == sorted(
        f"{plan.name}_{which}" for which in (0, 1, 2, "best", "last", "args.json"))
