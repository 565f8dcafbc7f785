"""Plain-text summary of a finished run's results.json (what `kgalign train` prints on stdout)."""

from __future__ import annotations

from tabulate import tabulate

from kgalign.training.selection import pool_text

_COLS = ("hits@1", "hits@5", "hits@10", "mrr", "mr")


def metrics_rows(label: str, metrics: dict | None) -> list[list]:
    if not metrics:
        return []
    rows = []
    for sim in ("cosine", "csls"):
        for direction in ("l2r", "r2l"):
            m = metrics.get(sim, {}).get(direction)
            if m:
                # the candidate counts, so every figure shows how hard its ranking was
                rows.append([label, sim, direction] + [round(float(m[c]), 4) for c in _COLS] + [pool_text(metrics)])
    return rows


def format_results(res: dict) -> str:
    """Header lines, a warning when selected on test, and the valid/test metrics table."""
    sel = res["selection"]
    lines = []
    if sel.get("selected_on_test"):
        lines += ["!" * 78, "WARNING: " + res.get("warning", "model selected on the test links"), "!" * 78]
    value = sel.get("value")
    chosen = f"epoch {sel['epoch']} selected on {sel['split']}" + (
        f" ({sel['metric']} = {value:.4f})" if value is not None else " (last epoch)"
    )
    lines.append(
        f"model {res['model']}: {res['epochs_run']}/{res['epochs_planned']} epochs"
        f"{' (early stop)' if res.get('stopped_early') else ''}; {chosen}; "
        f"{res['train_links']['seed']} seed + {res['train_links']['bootstrapped']} bootstrapped training links"
    )
    rows = metrics_rows("valid", res.get("valid")) + metrics_rows("test", res.get("test"))
    if rows:
        lines.append(tabulate(rows, headers=["split", "sim", "dir", "H@1", "H@5", "H@10", "MRR", "MR", "candidates"], floatfmt=".4f"))
    bot = res.get("best_on_test")
    if bot and not sel.get("selected_on_test"):
        sim = "csls" if "csls" in bot["test"] else "cosine"
        m = bot["test"][sim]["l2r"]
        lines.append(
            f"for comparison only, papers' protocol (best test epoch {bot['epoch']}): "
            f"test {sim} l2r H@1 {m['hits@1']:.4f} MRR {m['mrr']:.4f} (optimistic)"
        )
    lines.append(
        f"{res['seconds_per_epoch']:.3f} s/epoch on {res['device']} ({res['precision']}), "
        f"peak RSS {res['peak_memory']['max_rss_mib']:.0f} MiB"
        + (f", peak GPU {res['peak_memory']['cuda_max_allocated_mib']:.0f} MiB" if "cuda_max_allocated_mib" in res["peak_memory"] else "")
    )
    return "\n".join(lines)
