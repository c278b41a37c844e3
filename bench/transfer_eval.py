"""``xrec eval-transfer``: score the interest-transfer system and the baselines on Food→Kitchen.

One run: fit the bundle on train (``inference.fit``), tune a handful of scalars on valid, then
score system + baselines on valid and test — the headline cold-start protocol (both directions),
the 999-sampled-negatives protocol, and item cold start (20% of the target items hidden from a
refit). The system is scored through ``inference.transfer`` (``summarise`` + ``query_vector``),
the functions the streaming worker calls. Writes ``bench/results/transfer-food-kitchen.*``
(json rows, md report, png chart).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bench.baselines import (
    CoocKNN,
    Popularity,
    RandomScores,
    Scorer,
    TextOnly,
    TextRidge,
    TrainData,
)
from bench.transfer_data import DATA_ENV, DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR, DOMAINS, Dataset
from bench.transfer_protocols import (
    cold_item_cases,
    headline_cases,
    hide_items,
    rank_all,
    rank_sampled,
    sampled_cases,
    without_items,
)
from bench.transfer_report import RESULTS_DIR, write_results
from bench.transfer_tuning import SystemScorer, tune
from inference.fit import FitParams, ItemCatalogue, assemble, fit_item_space, fit_projections

log = logging.getLogger(__name__)
DIRECTIONS: tuple[tuple[str, str], ...] = (("food", "kitchen"), ("kitchen", "food"))
SPLITS = ("valid", "test")


@dataclass(frozen=True)
class EvalOptions:
    """What one evaluation run does."""

    params: FitParams = field(default_factory=FitParams)
    tune: bool = True
    cold_items: bool = True
    hidden_fraction: float = 0.2
    seed: int = 0


def row(protocol: str, split: str, direction: str, method: str, score) -> dict[str, object]:
    """One result row in the committed JSON format."""
    return {
        "protocol": protocol,
        "split": split,
        "direction": direction,
        "method": method,
        "recall@10": round(score.recall, 5),
        "ndcg@10": round(score.ndcg, 5),
        "users": score.users,
    }


def score_headline(dataset: Dataset, scorers: Sequence[Scorer]) -> list[dict[str, object]]:
    """Cold start in the target domain, full ranking, both directions, valid and test."""
    dom = dataset.catalogue.domains
    rows = []
    for split in SPLITS:
        for source, target in DIRECTIONS:
            cases = headline_cases(dataset.splits[split].sequences, dom, source, target)
            items = dataset.catalogue.items_of(target)
            for scorer in scorers:
                s = rank_all(scorer, cases, items, target)
                rows.append(row("headline", split, f"{source}->{target}", scorer.name, s))
    return rows


def score_sampled(
    dataset: Dataset, scorers: Sequence[Scorer], seed: int
) -> list[dict[str, object]]:
    """Next item of the mixed sequence against 999 sampled negatives, per target domain."""
    dom = dataset.catalogue.domains
    rows = []
    for split in SPLITS:
        cases = sampled_cases(dataset.splits[split].sequences, dom, seed=seed)
        for domain in DOMAINS:
            for scorer in scorers:
                s = rank_sampled(scorer, cases, dom, domain)
                rows.append(row("next-item-999neg", split, f"mixed->{domain}", scorer.name, s))
    return rows


def score_cold_items(
    dataset: Dataset, text: np.ndarray, params: FitParams, options: EvalOptions
) -> list[dict[str, object]]:
    """Refit with a fraction of the target items hidden; do they reach their consumers' top 10?"""
    cat = dataset.catalogue
    items = ItemCatalogue(tuple(str(i) for i in range(cat.n_items)), cat.domains)
    full_counts = TrainData(dataset.train.sequences, cat.domains).counts
    rows = []
    for source, target in DIRECTIONS:
        target_items = cat.items_of(target)
        hidden = hide_items(target_items, options.hidden_fraction, options.seed)
        train = without_items(dataset.train.sequences, hidden)
        space = fit_item_space(train, items, text, params)
        bundle = assemble(
            items, space, fit_projections(train, cat.domains, space.inputs, params), params
        )
        stripped = TrainData(train, cat.domains)
        scorers: list[Scorer] = [
            SystemScorer(bundle, cat.domains),
            Popularity(stripped, seed=options.seed),
            # a reference that cheats: it knows how popular the hidden items really became
            Popularity(stripped, options.seed, "oracle-popularity", full_counts),
            RandomScores({d: cat.items_of(d).size for d in DOMAINS}, seed=options.seed),
        ]
        is_new = np.isin(target_items, hidden)
        for split in SPLITS:
            full = headline_cases(dataset.splits[split].sequences, cat.domains, source, target)
            cases = cold_item_cases(full, hidden)
            for scorer in scorers:
                for protocol, allowed in (("cold-items-full", None), ("cold-items-new", is_new)):
                    s = rank_all(scorer, cases, target_items, target, allowed=allowed)
                    rows.append(row(protocol, split, f"{source}->{target}", scorer.name, s))
    return rows


def run(
    dataset: Dataset,
    text: np.ndarray,
    text_model: str,
    options: EvalOptions = EvalOptions(),
    bundle_dir: Path | None = None,
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The whole evaluation; returns result rows and run facts (timings, choices, versions)."""
    cat = dataset.catalogue
    items = ItemCatalogue(tuple(str(i) for i in range(cat.n_items)), cat.domains)
    facts: dict[str, object] = {"text_model": text_model}
    started = time.perf_counter()
    params = options.params
    space = fit_item_space(dataset.train.sequences, items, text, params)
    facts["fit_item_space_s"] = round(time.perf_counter() - started, 1)
    if options.tune:
        t0 = time.perf_counter()
        params, trials = tune(space, items, dataset, params)
        facts["tuning_s"] = round(time.perf_counter() - t0, 1)
        facts["tuning_trials"] = trials
    t0 = time.perf_counter()
    projections = fit_projections(dataset.train.sequences, cat.domains, space.inputs, params)
    bundle = assemble(items, space, projections, params, text_model)
    facts["fit_projections_s"] = round(time.perf_counter() - t0, 1)
    facts["fit_total_s"] = round(facts["fit_item_space_s"] + facts["fit_projections_s"], 1)
    facts["bundle_version"] = bundle.version
    facts["params"] = {"bundle": bundle.params.__dict__, **bundle.fit_info}
    if bundle_dir is not None:
        bundle.save(bundle_dir)
        facts["bundle_dir"] = str(bundle_dir)
    train = TrainData(dataset.train.sequences, cat.domains)
    system = SystemScorer(bundle, cat.domains)
    baselines = [
        Popularity(train, seed=options.seed),
        CoocKNN(train, normalise=True),
        CoocKNN(train, normalise=False, name="cooc-knn-raw"),
        TextOnly(text, cat.domains),
        TextRidge(train, text),
    ]
    rows = score_headline(dataset, [system, *baselines])
    rows += score_sampled(dataset, [system, *baselines[:3]], options.seed)
    if options.cold_items:
        t0 = time.perf_counter()
        rows += score_cold_items(dataset, text, params, options)
        facts["cold_items_s"] = round(time.perf_counter() - t0, 1)
    facts["total_s"] = round(time.perf_counter() - started, 1)
    return rows, facts


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.callback(invoke_without_command=True)
def evaluate(
    data: Annotated[
        Path | None,
        typer.Option(envvar=DATA_ENV, help="dataset folder (items/train/valid/test.tsv)"),
    ] = None,
    model_dir: Annotated[
        Path, typer.Option(envvar="MODEL_DIR", help="exported text encoder")
    ] = DEFAULT_MODEL_DIR,
    out: Annotated[
        Path, typer.Option(envvar="XREC_TRANSFER_OUT", help="folder for the result files")
    ] = RESULTS_DIR,
    bundle_out: Annotated[
        Path | None,
        typer.Option(envvar="XREC_TRANSFER_BUNDLE_OUT", help="write the fitted bundle here"),
    ] = DEFAULT_CACHE_DIR / "bundle",
    no_tune: Annotated[
        bool, typer.Option("--no-tune", envvar="XREC_TRANSFER_NO_TUNE", help="skip tuning on valid")
    ] = False,
    no_cold: Annotated[
        bool,
        typer.Option(
            "--no-cold", envvar="XREC_TRANSFER_NO_COLD", help="skip the item cold-start refits"
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option(envvar="XREC_TRANSFER_SEED", help="seed of sampling and hiding")
    ] = 0,
) -> None:
    """Fit, tune on valid, score system and baselines on valid and test, write the results."""
    from bench.transfer_data import load_dataset, title_vectors

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.perf_counter()
    dataset = load_dataset(data)
    text, text_model = title_vectors(dataset, model_dir)
    encode_s = round(time.perf_counter() - t0, 1)
    options = EvalOptions(tune=not no_tune, cold_items=not no_cold, seed=seed)
    rows, facts = run(dataset, text, text_model, options, bundle_out)
    facts["load_and_encode_s"] = encode_s
    paths = write_results(rows, facts, out)
    typer.echo("\n".join(str(p) for p in paths))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the evaluation command with ``argv`` (default: the process arguments)."""
    app(args=list(argv) if argv is not None else None, standalone_mode=True)


if __name__ == "__main__":
    main()
