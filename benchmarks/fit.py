"""`edgekit fit` against hand settings and the greedy arm, measured on the target.

For each reference net (ResNet-8, MobileNet; trained by edgekit's examples on photo patches):

1. the original is deployed for the target and its cost measured (cortex-m4: instructions per
   inference of the firmware under QEMU; raspberry-pi-4: LiteRT latency on this host);
2. the budget is `--ratio` × that cost, at most `--max-drop` points of accuracy lost, within
   the profile's RAM and flash;
3. `edgekit.fit` searches `--trials` candidates (`--epochs-per-trial` epochs each, distilled
   from the original on the training inputs);
4. the NetAdapt-style greedy arm (`edgekit.fitting.greedy`) gets the same number of trials;
5. the hand settings: `prune_channels(target_macs=…)` with FPGM (the structured-compression
   benchmark's best criterion at 50 %) at 50/60/70 % fewer MACs, rounded to the profile's
   channel tile, fine-tuned with the same epochs as one trial, deployed and measured alike.

Every figure is the deploy's own (the same code as `edgekit deploy`). Wall times are of this
run, on this machine.

    python benchmarks/fit.py --target cortex-m4 --tflm-dir ../shared/tflm/cortex-m \
        --ratio 0.5 --trials 20 --json fit-m4.json
    python benchmarks/fit.py --target raspberry-pi-4 --ratio 0.6 --trials 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["resnet8", "mobilenet"])
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--tflm-dir", default=None)
    parser.add_argument("--ratio", type=float, default=0.5, help="cost budget vs the original")
    parser.add_argument("--max-drop", type=float, default=1.0, help="accuracy points")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs-per-trial", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", default=None, help="also run the search on this Ray cluster")
    parser.add_argument("--arms", nargs="+", default=["search", "greedy", "hand"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    rows = []
    for net in args.nets:
        rows += bench_net(net, args)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


def bench_net(net: str, args: argparse.Namespace) -> list[dict]:
    import keras

    import edgekit
    from edgekit.bench.store import ResultStore
    from edgekit.errors import UsageError
    from edgekit.examples import load_example
    from edgekit.examples.zoo import splits
    from edgekit.fitting.budgets import Budgets
    from edgekit.fitting.search import cost_metric
    from edgekit.fitting.trial import Candidate, FitData, run_trial
    from edgekit.options import DeployOptions
    from edgekit.targets import load_target

    example = load_example(net)
    model = example.model(keras)
    train, _, val = splits(net)
    data = FitData(train.x[: args.train_samples], train.y[: args.train_samples], val.x, val.y)
    profile = load_target(args.target)
    options = DeployOptions(analysis=False, tflm_dir=args.tflm_dir)
    work = Path(tempfile.mkdtemp(prefix=f"fit-bench-{net}-"))
    store = ResultStore(work / "results.db")

    probe = Budgets(max_instructions=1) if profile.is_mcu else Budgets(max_latency_ms=1e9)
    cost = cost_metric(probe)
    original, _ = run_trial(model, Candidate(), profile, probe, data, epochs=0, options=options)
    reference = original.measured(cost)
    if reference is None:
        raise SystemExit(f"{net}: the deploy did not measure {cost} (give --tflm-dir for an MCU)")
    limit = args.ratio * reference
    if profile.is_mcu:
        budgets = Budgets(max_instructions=int(limit), max_drop=args.max_drop / 100)
    else:
        budgets = Budgets(max_latency_ms=limit, max_drop=args.max_drop / 100)
    print(
        f"{net}: original {cost} {reference:,.4g}, accuracy {original.accuracy:.3f}; "
        f"budget {cost} ≤ {limit:,.4g}, drop ≤ {args.max_drop} pt",
        flush=True,
    )
    rows = [_row(net, "original", original, cost, reference, original.accuracy, 0.0, "-")]
    rows[0]["fits"] = None  # judged against probe budgets only

    def each(trial, so_far):
        if hasattr(trial, "error"):
            print(f"  trial {trial.number + 1} failed: {trial.error}", flush=True)
        else:
            print(
                f"  trial {trial.number + 1}: {trial.candidate.describe()}: acc "
                f"{trial.accuracy:.3f}, {cost} {trial.measured(cost) or 0:,.4g}, "
                f"{'fits' if trial.ok else 'misses ' + ', '.join(trial.failed)} "
                f"({trial.seconds:.0f} s)",
                flush=True,
            )

    def search_arm(folder: str, **where) -> None:
        """`edgekit.fit` on local workers or a Ray cluster; an early end is a row too."""
        started = time.perf_counter()
        try:
            result = edgekit.fit(
                model,
                profile,
                (data.x, data.y),
                budgets,
                validation=(data.x_val, data.y_val),
                trials=args.trials,
                epochs_per_trial=args.epochs_per_trial,
                out=work / folder,
                tflm_dir=args.tflm_dir,
                store=store,
                on_trial=each,
                progress=lambda m: print(f"  {m}", flush=True),
                **where,
            )
        except UsageError as exc:  # an early end: no candidate can meet the budget
            print(f"  edgekit fit ended early: {exc}", flush=True)
            early = {"arm": "edgekit fit: ended before the search", "fits": False}
            early.update(cost=None, ratio=None, accuracy=None)
            early["candidate"] = str(exc).split(": ", 1)[-1]
            rows.append({**rows[0], **early, "seconds": time.perf_counter() - started})
            return
        seconds = time.perf_counter() - started
        label = f"edgekit fit ({result.where})"
        rows.extend(_arms(net, label, result, reference, original, seconds))

    if "search" in args.arms:
        search_arm("local", workers=args.workers)
    if args.ray:
        search_arm("ray", ray=args.ray)
    if "greedy" in args.arms:
        from edgekit.fitting.greedy import greedy

        started = time.perf_counter()
        found = greedy(
            model,
            profile,
            budgets,
            data,
            max_trials=args.trials,
            epochs_per_trial=args.epochs_per_trial,
            options=options,
            progress=lambda m: print(f"  {m}", flush=True),
        )
        rows.extend(
            _arms(
                net,
                "greedy (NetAdapt-style)",
                found,
                reference,
                original,
                time.perf_counter() - started,
                note=found.stopped,
            )
        )
    if "hand" in args.arms:
        rows += hand_settings(
            net, model, profile, budgets, data, options, reference, original, args
        )
    return rows


def hand_settings(net, model, profile, budgets, data, options, reference, original, args):
    """FPGM at 50/60/70 % fewer MACs, tile-rounded, fine-tuned like one trial."""
    from edgekit.fitting.budgets import verdicts
    from edgekit.fitting.search import cost_metric
    from edgekit.keras import fine_tune, keras_macs, prune_channels
    from edgekit.pipeline import deploy

    cost = cost_metric(budgets)
    rows = []
    for removed in (0.5, 0.6, 0.7):
        started = time.perf_counter()
        smaller = prune_channels(
            model,
            target_macs=int(keras_macs(model) * (1 - removed)),
            criterion="fpgm",
            target=profile,
        )
        if args.epochs_per_trial:
            fine_tune(smaller, data.x, data.y, epochs=args.epochs_per_trial, teacher=model)
        done = deploy(
            smaller,
            profile,
            options,
            calibration=data.x[:500],
            validation=(data.x_val, data.y_val),
            write_bundle=False,
        )
        judged = verdicts(done.report, budgets.for_target(profile), profile, original.accuracy)
        m = done.report.metrics
        accuracy = m.deployed_accuracy
        ok = all(v.ok for v in judged)
        rows.append(
            {
                "net": net,
                "arm": f"hand: FPGM, {removed:.0%} fewer MACs, tile",
                "cost": m[cost],
                "ratio": m[cost] / reference,
                "accuracy": accuracy,
                "drop_pt": 100 * (original.accuracy - accuracy),
                "fits": ok,
                "ram": next((v.measured for v in judged if v.budget == "max_ram_bytes"), None),
                "flash": m.model_bytes,
                "seconds": time.perf_counter() - started,
                "candidate": f"FPGM {removed:.0%} fewer MACs",
                "trials": 1,
            }
        )
        print(
            f"  hand {removed:.0%}: acc {accuracy:.3f}, {cost} {m[cost]:,.4g} "
            f"({m[cost] / reference:.2f}x), {'fits' if ok else 'misses'}",
            flush=True,
        )
    return rows


def _row(net, arm, trial, cost, reference, accuracy, seconds, candidate, trials=0, note=""):
    from edgekit.fitting.search import ram_bytes

    cost_value = None if trial is None else trial.measured(cost)
    return {
        "net": net,
        "arm": arm,
        "cost": cost_value,
        "ratio": None if cost_value is None else cost_value / reference,
        "accuracy": accuracy,
        "drop_pt": None,
        "fits": None if trial is None else trial.ok,
        "ram": None if trial is None else ram_bytes(trial),
        "flash": None if trial is None else trial.report.metrics.model_bytes,
        "seconds": seconds,
        "candidate": candidate,
        "trials": trials,
        "note": note,
    }


def _arms(net, arm, result, reference, original, seconds, note=""):
    """The winner's row; without one, the two nearest misses: the most accurate trial within
    the cost budget and the cheapest within the accuracy budget (else the cheapest trial)."""
    if result.best is not None:
        return [_arm(net, arm, result, result.best, reference, original, seconds, note)]
    cost_ok = [t for t in result.trials if _holds(t, "max_instructions", "max_latency_ms")]
    accurate = [t for t in result.trials if _holds(t, "max_drop", "min_accuracy")]
    rows = []
    if cost_ok:
        chosen = max(cost_ok, key=lambda t: t.accuracy or 0.0)
        rows.append(
            _arm(
                net,
                f"{arm}: most accurate within the cost budget",
                result,
                chosen,
                reference,
                original,
                seconds,
                note,
            )
        )
    if accurate:
        chosen = min(accurate, key=lambda t: t.measured(result.cost) or float("inf"))
        rows.append(
            _arm(
                net,
                f"{arm}: cheapest within the accuracy budget",
                result,
                chosen,
                reference,
                original,
                seconds,
                note,
            )
        )
    return rows or [_arm(net, arm, result, result.closest(), reference, original, seconds, note)]


def _holds(trial, *budgets) -> bool:
    return all(v.ok for v in trial.verdicts if v.budget in budgets)


def _arm(net, arm, result, chosen, reference, original, seconds, note=""):
    best = result.best
    row = _row(
        net,
        arm,
        chosen,
        result.cost,
        reference,
        None if chosen is None else chosen.accuracy,
        seconds,
        "-" if chosen is None else chosen.candidate.describe(),
        trials=len(result.trials),
        note=note,
    )
    if chosen is not None and chosen.accuracy is not None:
        row["drop_pt"] = 100 * (original.accuracy - chosen.accuracy)
    row["fits"] = best is not None
    return row


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print()
    print(
        "| net | arm | trials | cost vs original | accuracy | drop (pt) | fits | RAM | "
        "flash | wall (s) | chosen |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        drop = "-" if r["drop_pt"] is None else f"{r['drop_pt']:+.1f}"
        ram = "-" if r["ram"] is None else f"{r['ram']:,.0f}"
        flash = "-" if r["flash"] is None else f"{r['flash']:,}"
        fits = {True: "yes", False: "no", None: "-"}[r["fits"]]
        print(
            f"| {r['net']} | {r['arm']} | {r['trials']} | {ratio} | {acc} | {drop} | {fits} "
            f"| {ram} | {flash} | {r['seconds']:.0f} | {r['candidate']} |"
        )


if __name__ == "__main__":
    main()
