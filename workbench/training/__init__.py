"""Training: one run (loop), a stack of compatible runs (stacked, stacked_math), and the unit
every executor trains (unit.train_unit)."""

from workbench.training.loop import (EVAL_BATCH, PROGRESS_SECONDS, Callbacks,  # noqa: F401
                                     build_model, confusion_matrix, epoch_generator, evaluate,
                                     make_optimizer, pick_device, stop_note, train)
