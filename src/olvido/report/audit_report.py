"""The audit report of one deletion request: JSON (the record) and Markdown (for people), side by side.

Both name the request, what was deleted (ids and file names; never pixels), the method and its
configuration, the wall time, the model hashes before and after, the checks of every model audited and the
verdict. ``render_audit`` returns both files' bytes, which the ledger writes with the model (both or neither).
"""

from __future__ import annotations

import json
from pathlib import Path

from olvido.report.study_report import format_cell, markdown_table

CHECK_ROWS = (
    ("deleted_mae", "MAE on the deleted faces (years)"),
    ("unseen_same_age_mae", "MAE on unseen faces of the same ages"),
    ("membership_auc", "membership attack AUC (0.5 = like unseen)"),
    ("membership_p", "p-value (two-sided)"),
    ("finding", "finding"),
    ("test_mae", "test MAE"),
)
REFERENCE_ROWS = (("utility", "Utility"), ("forgetting", "Forgetting"), ("F", "F"), ("wasserstein", "Wasserstein"))


def audit_paths(bundle_path: str | Path) -> tuple[Path, Path]:
    """``model-v2.olvido`` -> ``model-v2.audit.md``, ``model-v2.audit.json``."""
    bundle_path = Path(bundle_path)
    stem = bundle_path.with_suffix("")
    return stem.with_name(stem.name + ".audit.md"), stem.with_name(stem.name + ".audit.json")


def audit_markdown(record: dict) -> str:
    request, models, method, audit = record["request"], record["models"], record["method"], record["audit"]
    lines = [
        f"# Deletion request {request['id']}",
        "",
        f"**Verdict: {audit['verdict']}.** {audit['summary']}",
        "",
        "## Request",
        "",
        f"- received {record['created']}; {len(request['ids'])} image(s) deleted, with "
        f"{len(request['copies'])} augmented cop{'y' if len(request['copies']) == 1 else 'ies'} of them",
        f"- ids: {', '.join(map(str, request['ids']))}",
        f"- files: {', '.join(request['files'])}",
        f"- earlier deletions kept deleted: {record['data']['deleted_before']} image(s); the model now trains on "
        f"{record['data']['retain_train']} training and {record['data']['retain_val']} validation samples",
        "",
        "## Models",
        "",
        markdown_table(
            ["", "hash", "file", "generation"],
            [
                [name, models[name]["hash"], models[name]["path"], models[name]["generation"]]
                for name in ("before", "after")
            ],
        ),
        "",
        f"Method: **{method['name']}** ({method['label']}); configuration: `{json.dumps(method['config'])}`.",
        f"Wall time: {record['seconds']['total']} s in all (unlearning {record['seconds']['unlearn']} s, "
        f"checks {record['seconds']['checks']} s, retrained reference {record['seconds']['verify']} s).",
        "",
        "## Checks",
        "",
        "Deleted faces against unseen test faces of the same ages (an age-stratified loss-threshold membership "
        f"attack, significance level {audit['level']}); `retrained` is a model trained from scratch without "
        "every deleted image (only with --verify).",
        "",
    ]
    names = list(audit["checks"])
    rows = [[label] + [format_cell(audit["checks"][n][key]) for n in names] for key, label in CHECK_ROWS]
    lines += [markdown_table(["check"] + names, rows), ""]
    if "against_retrained" in audit:
        against = audit["against_retrained"]
        rows = [[label] + [format_cell(against[n][key]) for n in against] for key, label in REFERENCE_ROWS]
        lines += [
            f"Against the retrained reference (the thesis's metrics, alpha {audit['alpha']:g}; Wasserstein distance "
            "between predictions on the deleted faces, years):",
            "",
            markdown_table(["metric"] + list(against), rows),
            "",
        ]
    return "\n".join(lines)


def render_audit(bundle_path: str | Path, record: dict) -> dict[Path, bytes]:
    """Both reports' bytes by path (``audit_paths``)."""
    markdown_path, json_path = audit_paths(bundle_path)
    return {
        markdown_path: (audit_markdown(record) + "\n").encode(),
        json_path: (json.dumps(record, indent=2) + "\n").encode(),
    }
