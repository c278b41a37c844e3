"""Write the transfer evaluation's results: JSON rows, a markdown report and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.report import machine, now_iso

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STEM = "transfer-food-kitchen"
COMMAND = "xrec eval-transfer --data ../shared/datasets/amazon-food-kitchen"
GOALS = {"food->kitchen": 0.030, "kitchen->food": 0.060}  # test Recall@10 of the headline
Row = Mapping[str, object]
METHOD = """\
Method (system): truncated SVD (rank 128) of the train user×item matrix with columns scaled by
count^-0.3 and the rows of users active in both domains weighted ×3; item input vectors
v·count^-a_in and output vectors v·count^a_out, fused with a per-domain ridge bridge from the
MiniLM title vector (weight n/(n+3)), which also places items with no interactions. A user's
per-domain state is the recency-decayed mean of input vectors (`inference.transfer.summarise`);
the target query blends own state and ridge-projected (towards identity, top-r coordinates)
states of other domains (`query_vector`); items are ranked by q·output, the last output
coordinate being log-popularity. Scalars (half-life, projection rank and ridge, popularity
weight, own rank and prior) are tuned on valid in the same run; test is scored once.
Baselines: see bench/baselines.py (`cooc-knn-raw` is an extra, stronger co-occurrence variant
that is not in the dataset README)."""


def _pick(rows: Sequence[Row], **match: object) -> list[Row]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _table(rows: Sequence[Row], protocol: str, split: str, directions: Sequence[str]) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in _pick(rows, protocol=protocol, split=split)))
    head = "| method | " + " | ".join(f"{d} R@10 | {d} N@10" for d in directions) + " | users |"
    out = [head, "|---" * (2 * len(directions) + 2) + "|"]
    for m in methods:
        cells, users = [], []
        for d in directions:
            found = _pick(rows, protocol=protocol, split=split, direction=d, method=m)
            if found:
                cells += [f"{found[0]['recall@10']:.4f}", f"{found[0]['ndcg@10']:.4f}"]
                users.append(str(found[0]["users"]))
            else:
                cells += ["–", "–"]
        name = f"**{m}**" if m == "system" else m
        out.append(f"| {name} | " + " | ".join(cells) + f" | {'/'.join(users)} |")
    return out


def goal_check(rows: Sequence[Row]) -> list[str]:
    """Lines saying whether the test goals of the headline protocol are met."""
    lines = []
    for direction, goal in GOALS.items():
        test = _pick(rows, protocol="headline", split="test", direction=direction)
        system = next((r for r in test if r["method"] == "system"), None)
        if system is None:
            continue
        ok = system["recall@10"] >= goal
        lines.append(
            f"- {direction}: system Recall@10 {system['recall@10']:.4f} vs goal {goal:.3f}: "
            f"{'met' if ok else 'NOT met'}"
        )
        for r in test:
            if r["method"] == "system":
                continue
            for metric in ("recall@10", "ndcg@10"):
                if r[metric] >= system[metric]:
                    lines.append(
                        f"  - NOT above {r['method']} on {metric}: {system[metric]:.4f} vs "
                        f"{r[metric]:.4f}"
                    )
    return lines


def markdown(rows: Sequence[Row], facts: Mapping[str, object]) -> str:
    """The human-readable report."""
    dirs = list(GOALS)
    mixed = ["mixed->food", "mixed->kitchen"]
    parts = [
        "# Interest transfer on Amazon Food→Kitchen",
        "",
        f"Generated {now_iso()} by `{COMMAND}` (bench/transfer_eval.py).",
        f"Bundle `{facts.get('bundle_version')}`, text encoder `{facts.get('text_model')}`.",
        "",
        METHOD,
        "",
        "## Headline: cold start in the target domain (full ranking, test)",
        *_table(rows, "headline", "test", dirs),
        "",
        "Goals (test):",
        *goal_check(rows),
        "",
        "## Headline on valid (where the scalars were tuned)",
        *_table(rows, "headline", "valid", dirs),
        "",
        "## Next item, 999 sampled negatives (HR@10 / NDCG@10; history = whole mixed sequence)",
        "test:",
        "",
        *_table(rows, "next-item-999neg", "test", mixed),
        "",
        "valid:",
        "",
        *_table(rows, "next-item-999neg", "valid", mixed),
        "",
        "## Item cold start (20% of target items hidden from fitting; truth = hidden items only)",
        "`cold-items-full`: ranked among all target items; `cold-items-new`: among the hidden",
        "(new) items only. Popularity after the refit knows nothing of the hidden items.",
        "",
    ]
    for protocol in ("cold-items-full", "cold-items-new"):
        for split in ("test", "valid"):
            parts += [f"{protocol}, {split}:", "", *_table(rows, protocol, split, dirs), ""]
    parts += ["## Run facts", "", "```json", json.dumps(facts, indent=1, default=str), "```"]
    return "\n".join(parts) + "\n"


def chart(rows: Sequence[Row], path: Path) -> None:
    """Grouped bars of the test headline metrics per method and direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = _pick(rows, protocol="headline", split="test")
    methods = list(dict.fromkeys(r["method"] for r in test))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(methods))
    for ax, metric in zip(axes, ("recall@10", "ndcg@10"), strict=True):
        for k, m in enumerate(methods):
            values = [
                next((r[metric] for r in test if r["method"] == m and r["direction"] == d), 0.0)
                for d in GOALS
            ]
            ax.bar([i + k * width for i in range(len(GOALS))], values, width, label=m)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(GOALS))], list(GOALS))
        ax.set_title(f"{metric}, test, cold start in target domain")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(rows: Sequence[Row], facts: Mapping[str, object], out: Path) -> list[Path]:
    """Write ``<out>/transfer-food-kitchen.{json,md,png}``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    facts = {**facts, "machine": machine()}
    paths = [out / f"{STEM}.json", out / f"{STEM}.md", out / f"{STEM}.png"]
    paths[0].write_text(json.dumps(list(rows), indent=1) + "\n")
    paths[1].write_text(markdown(rows, facts))
    chart(rows, paths[2])
    return paths
