"""Learning-rate schedules on the training-callback seam (the seed's "change the learning rate
during training"). Each sets the learning rate of every epoch from ``lr`` (the base rate):

- ``step``: lr * step_gamma ** ((epoch - 1) // step_every)
- ``cosine``: min_lr + (lr - min_lr) * (1 + cos(pi * (epoch - 1) / epochs)) / 2
- ``one_cycle``: from lr / 25 up to lr over the first ``cycle_warmup`` of the epochs
  (linear), then down to lr / 25e4 (cosine), as torch's OneCycleLR, per epoch
- ``plateau``: lr * plateau_factor each time the validation loss has not improved (by a
  relative 1e-4) for more than ``plateau_patience`` epochs, as torch's ReduceLROnPlateau
"""

import math

from workbench import CallbackKind, hookimpl


class Step:
    def __init__(self, config):
        self.every, self.gamma = config["step_every"], config["step_gamma"]

    def on_epoch_start(self, ctx):
        ctx.set_lr(ctx.base_lr * self.gamma ** ((ctx.epoch - 1) // self.every))


class Cosine:
    def __init__(self, config):
        self.min_lr = config["min_lr"]

    def on_epoch_start(self, ctx):
        fraction = (ctx.epoch - 1) / ctx.epochs
        ctx.set_lr(self.min_lr + (ctx.base_lr - self.min_lr) * (1 + math.cos(math.pi * fraction)) / 2)


DIV, FINAL_DIV = 25.0, 1e4  # torch.optim.lr_scheduler.OneCycleLR's defaults


class OneCycle:
    def __init__(self, config):
        self.warmup = config["cycle_warmup"]

    def on_epoch_start(self, ctx):
        top, start = ctx.base_lr, ctx.base_lr / DIV
        low = start / FINAL_DIV
        t = (ctx.epoch - 1) / max(1, ctx.epochs - 1)  # 0 at the first epoch, 1 at the last
        if t <= self.warmup and self.warmup > 0:
            ctx.set_lr(start + (top - start) * t / self.warmup)
        else:
            down = (t - self.warmup) / (1 - self.warmup)
            ctx.set_lr(low + (top - low) * (1 + math.cos(math.pi * down)) / 2)


class Plateau:
    def __init__(self, config):
        self.patience, self.factor = config["plateau_patience"], config["plateau_factor"]
        self.best, self.bad = math.inf, 0

    def on_epoch_end(self, ctx):
        loss = ctx.metrics.val_loss
        if loss < self.best * (1 - 1e-4):
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad > self.patience:
            ctx.set_lr(ctx.lr * self.factor)
            self.bad = 0


@hookimpl
def register_callbacks(register):
    register(CallbackKind(
        name="step", make=Step, params={"step_every": 2, "step_gamma": 0.5},
        description="step decay: lr * step_gamma every step_every epochs"))
    register(CallbackKind(
        name="cosine", make=Cosine, params={"min_lr": 0.0}, uses_total_epochs=True,
        description="cosine annealing from lr towards min_lr over the run's epochs"))
    register(CallbackKind(
        name="one_cycle", make=OneCycle, params={"cycle_warmup": 0.3}, uses_total_epochs=True,
        description="one cycle: up from lr/25 to lr, then down to lr/25e4 (per epoch)"))
    register(CallbackKind(
        name="plateau", make=Plateau, params={"plateau_patience": 1, "plateau_factor": 0.5},
        description="reduce lr by plateau_factor when val loss stalls for more than "
                    "plateau_patience epochs"))
