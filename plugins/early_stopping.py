"""Early stopping on validation accuracy: the run ends (done, stopped early at epoch k) once
val accuracy has not improved for ``patience`` epochs in a row."""

from workbench import CallbackKind, hookimpl


class EarlyStopping:
    def __init__(self, config):
        self.patience = config["patience"]
        self.best, self.best_epoch = -1.0, 0

    def on_epoch_end(self, ctx):
        m = ctx.metrics
        if m.val_acc > self.best:
            self.best, self.best_epoch = m.val_acc, m.epoch
        elif m.epoch - self.best_epoch >= self.patience:
            ctx.request_stop(f"val accuracy has not improved for {self.patience} epochs "
                             f"(best {100 * self.best:.2f}% at epoch {self.best_epoch})")


@hookimpl
def register_callbacks(register):
    register(CallbackKind(
        name="early_stopping", make=EarlyStopping, params={"patience": 3},
        description="stop (done) when val accuracy has not improved for `patience` epochs"))
