"""`shipyard train`: search the spec's candidates, evaluate, gate and register the best."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from shipyard.cli import _output

if TYPE_CHECKING:
    from shipyard.loop import TrainOutcome
    from shipyard.train import TrialResult


def train(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Option("--spec", help="The project spec.")] = Path("shipyard.yaml"),
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset version to train on (default: NAME@latest)."),
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Override train.search.trials.")
    ] = None,
    allow_rejected: Annotated[
        bool,
        typer.Option(
            "--allow-rejected",
            help="Exit 0 even when the model fails its gates (it is still registered rejected).",
        ),
    ] = False,
    json: _output.JsonFlag = False,
) -> None:
    """Train from shipyard.yaml: search, evaluate on held-out data, apply the gates, register.

    Exits 6 when the model fails a gate (it is registered as rejected), unless --allow-rejected.
    """
    from shipyard.core.spec import load_spec
    from shipyard.loop import train_and_register  # the trainer and model libraries: only here

    project = load_spec(spec)
    total = trials or project.train.search.trials
    with _output.workspace(ctx) as ws, _output.progress(unit="trials", disable=json) as bar:
        task = bar.add_task("searching", total=total)

        def on_trial(result: TrialResult, done: int, _total: int, best: TrialResult | None) -> None:
            shown = (
                f"best {best.score:.4f} ({_short(best.estimator)})"
                if best
                else "no trial succeeded yet"
            )
            bar.update(task, completed=done, description=f"trial {done}/{total}: {shown}")

        try:
            outcome = train_and_register(
                ws,
                project,
                dataset=dataset,
                on_trial=on_trial,
                trials=trials,
                on_dataset=lambda _version, reason: _output.err_console().print(
                    f"training on {reason}", markup=False, highlight=False
                ),
            )
        except KeyboardInterrupt:
            _output.err_console().print(
                "interrupted: the trials that finished are recorded (`shipyard runs ls`); no "
                "model was registered."
            )
            raise
    rejection = None if allow_rejected else outcome.rejection()
    if json:
        # One JSON document either way: the result, plus the error when the gates failed.
        _output.print_json(
            {**_plain(outcome), **({"error": rejection.to_dict()} if rejection else {})}
        )
        if rejection:
            raise typer.Exit(rejection.exit_code)
        return
    _output.console().print(_view(outcome))
    if rejection:
        raise rejection


def _short(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _plain(o: TrainOutcome) -> dict[str, Any]:
    r = o.result
    return {
        "run_id": r.run_id,
        "dataset": r.version.ref,
        "dataset_reason": o.dataset_reason,
        "metric": r.metric,
        "split": r.split.how,
        "features": r.plan.features,
        "excluded": r.plan.excluded,
        "interrupted": r.interrupted,
        "exhausted": r.exhausted,
        "seconds": r.seconds,
        "leaderboard": [
            {
                "trial": t.number,
                "run_id": t.run_id,
                "estimator": t.estimator,
                "params": t.params,
                "score": t.score,
                "std": t.std,
                "seconds": t.seconds,
            }
            for t in r.leaderboard
        ],
        "failed_trials": [{"trial": t.number, "error": t.error} for t in r.trials if not t.ok],
        "test_metrics": r.report.metrics,
        "gates": o.gates,
        "model": o.model,
    }


def _view(o: TrainOutcome) -> RenderableType:
    r = o.result
    head = Text.assemble(
        ("Trained on ", ""),
        (r.version.ref, "bold"),
        f" ({len(r.split.train):,} rows) in {r.seconds:.0f} s; ",
        f"{len(r.trials)} trials, metric {r.metric}",
        " (every configuration of the search space was tried)\n" if r.exhausted else "\n",
        f"split: {r.split.how}\n",
        f"features ({len(r.plan.features)}): {', '.join(r.plan.features)}",
        *(
            [f"\nleft out: {', '.join(f'{k} ({v})' for k, v in r.plan.excluded.items())}"]
            if r.plan.excluded
            else []
        ),
        *(["\nINTERRUPTED: registered the best of the finished trials"] if r.interrupted else []),
    )
    shown = r.leaderboard[:10]
    # Class names stay whole (the params column wraps between params instead).
    widest = max((len(_short(t.estimator)) for t in shown), default=9)
    board = _output.table(
        f"Leaderboard (cross-validated {r.metric}, "
        + (f"top 10 of {len(r.leaderboard)})" if len(r.leaderboard) > 10 else "best first)"),
        [  # best first: the order is the rank
            "TRIAL",
            _output.ident("ESTIMATOR", min_width=min(widest, 30)),
            "PARAMS",
            r.metric.upper(),
            "±",
            "SECONDS",
        ],
        [
            (
                t.number,
                _short(t.estimator),
                _params(t.params),
                f"{t.score:.4f}",
                f"{t.std:.4f}",
                f"{t.seconds:.1f}",
            )
            for t in shown
        ],
    )
    failed = [t for t in r.trials if not t.ok]
    metrics = _output.table(
        "Held-out metrics",
        [_output.ident("METRIC", min_width=16), "VALUE"],
        [(k, f"{v:.4f}") for k, v in r.report.metrics.items() if isinstance(v, float | int)],
    )
    gates = (
        _output.table(
            "Gates",
            ["GATE", "RESULT", "VALUE", "DETAIL"],
            [
                (
                    g.gate,
                    Text("pass", style="green") if g.passed else Text("FAIL", style="bold red"),
                    "" if g.value is None else f"{g.value:.4f}",
                    g.detail,
                )
                for g in o.gates
            ],
        )
        if o.gates
        else Text("Gates: none declared (gates: in shipyard.yaml).")
    )
    m = o.model
    if m.status.value == "rejected":
        verdict = Text(
            f"Registered {m.ref} as REJECTED: it failed {len(m.failed_gates)} gate(s) and can "
            "never "
            "be champion.",
            style="bold red",
        )
    else:
        verdict = Text.assemble(
            ("Registered ", "green"),
            (m.ref, "bold green"),
            f" ({m.flavor}, status {m.status.value}).\n",
            f"Next: shipyard models alias {m.ref} champion",
        )
    parts: list[RenderableType] = [head, board]
    if failed:
        parts.append(
            Text(
                f"{len(failed)} trial(s) failed, e.g. trial {failed[0].number}: {failed[0].error}",
                style="yellow",
            )
        )
    best = Text(
        f"Best: {_short(r.best.estimator)} {_params(r.best.params)} (trial {r.best.number}), "
        f"refit on the {len(r.split.train):,} training rows and tested on the "
        f"{len(r.split.test):,} held-out rows:"
    )
    parts += [best, metrics, gates, verdict]
    return Group(*parts)


def _params(params: dict[str, Any]) -> str:
    out = []
    for k, v in params.items():
        out.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(out)
