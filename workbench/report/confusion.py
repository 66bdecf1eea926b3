"""The best run's confusion matrix, its most-confused pairs and a strip of those digits."""

from __future__ import annotations

from typing import Any, Sequence

from workbench.report import figures
from workbench.report.context import Builder, Experiment, run_name
from workbench.report.document import Column, Heading, Para, Table
from workbench.report.environment import test_set
from workbench.report.tables import best_row, most_confused, pct


STRIP_PAIRS = 3  # most-confused pairs shown as digits


STRIP_DIGITS = 10  # digits per pair


def confusion_section(b: Builder, exps: Sequence[Experiment]) -> None:
    best = best_row([r for e in exps for r in e.done])
    b.add(Heading(2, "Confusion matrix of the best run"))
    if best is None:
        b.add(Para("No finished run yet."))
        return
    run = b.store.run(best["id"])
    if not run or not run["confusion"]:
        b.add(Para(f"The best run ({run_name(best)}) has no stored "
                   "confusion matrix."))
        return
    cm = run["confusion"]
    name = run_name(best)
    b.add(Para(f"Best run by test accuracy: {name}, {pct(best['test_acc'])} on "
               f"{best['dataset']}. Rows are the true digit, columns the prediction."))
    test = test_set(b, run["dataset"])
    classes = test[0].classes if test else tuple(str(i) for i in range(len(cm)))
    b.add(Table("confusion", (Column("true \\ predicted"), *[Column(c, "value") for c in classes]),
                tuple((classes[t], *line) for t, line in enumerate(cm))))
    b.figure("confusion", f"confusion matrix of {name}", figures.confusion_matrix, cm, classes,
             f"{name}: {pct(best['test_acc'])} test accuracy")
    pairs = most_confused(cm)
    if not pairs:
        b.add(Para("No test image was misclassified."))
        return
    b.add(Table("most-confused", (Column("true"), Column("predicted"), Column("count", "value"),
                                  Column("share of the true digit", "pct")),
                tuple((classes[t], classes[p], n, n / max(1, sum(cm[t])))
                      for t, p, n in pairs)))
    t, p, n = pairs[0]
    b.add(Para(f"The most frequent mistake: {classes[t]} read as {classes[p]}, {n} of "
               f"{sum(cm[t])} test images of {classes[t]}."))
    _digit_strip(b, run, pairs[:STRIP_PAIRS], test)


def _digit_strip(b: Builder, run: dict[str, Any], pairs: Sequence[tuple[int, int, int]],
                 test: Any) -> None:
    from workbench.report.testset import misclassified

    if test is None:
        b.add(Para(f"Digits not shown: the test images of {run['dataset']} are not available "
                   "on this machine."))
        return
    testset = test[0]
    preds = run.get("predictions")
    if not preds or len(preds) != len(testset.labels):
        b.add(Para("Digits not shown: the run has no stored predictions for this test set."))
        return
    if run.get("data_fingerprint") and run["data_fingerprint"] != testset.fingerprint:
        b.add(Para(f"Digits not shown: the {run['dataset']} files here differ from the ones "
                   "the run used (fingerprint)."))
        return
    rows = []
    for t, p, _ in pairs:
        idx = [int(i) for i in misclassified(testset.labels, preds, t, p)[:STRIP_DIGITS]]
        rows.append((f"{testset.classes[t]} -> {testset.classes[p]}",
                     [testset.images[i] for i in idx], idx))
    b.figure("confused-digits", "test digits of the most-confused pairs (true -> predicted; "
             "#test index)", figures.digit_strip, rows, STRIP_DIGITS)
