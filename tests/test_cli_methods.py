"""``olvido methods`` and the study options that name methods: driven by the registry, errors in one line."""

import json
from pathlib import Path

from olvido.cli import _run_config, build_parser, main
from olvido.methods import get_method, list_methods

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_methods_lists_every_registered_method_with_its_spec(capsys):
    assert main(["methods", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == list_methods()
    for entry in listed:
        spec = get_method(entry["name"])
        assert entry["knob"]["name"] == spec.knob.name and entry["label"] == spec.label
        assert set(entry["defaults"]) >= {"epochs", "lr", "batch_size", "optimizer"}
    assert main(["methods", "--scope", "head"]) == 0
    table = capsys.readouterr().out
    assert "| ct |" not in table and "| scrub |" in table


def test_the_methods_page_documents_every_registered_method():
    page = (DOCS / "methods.md").read_text()
    for name in list_methods():
        assert f"| `{name}` | {get_method(name).label} |" in page, f"docs/methods.md does not list {name}"


def test_study_options_naming_unknown_or_absent_methods_fail_in_one_line(tmp_path, capsys):
    base = ["--cache", str(tmp_path), "experiment", "sweep", "--data", "synthetic:1500"]
    assert main([*base, "--methods", "finetune", "--best", "scrub=2"]) == 2
    assert "not among the study's methods" in capsys.readouterr().err
    assert main([*base, "--methods", "finetune,teleport"]) == 2
    assert "'teleport': expected one of" in capsys.readouterr().err
    assert main([*base, "--methods", "ct"]) == 2
    assert "do not support the head scope" in capsys.readouterr().err


def test_memorising_shadows_set_skip_or_reject_the_memorising_regime(tmp_path, capsys):
    parser = build_parser()

    def regime(*flags: str, preset: str = "thesis"):
        args = parser.parse_args(["run", "--preset", preset, "--scopes", "head,last", *flags])
        return dict(_run_config(args, ("head", "last")).memorising_by_scope)

    assert regime()["last"].ulira_shadows == 8 and "head" not in regime()
    assert regime("--memorising-shadows", "12")["last"].ulira_shadows == 12
    assert regime("--memorising-shadows", "6", preset="quick")["last"].ulira_shadows == 6
    assert regime("--memorising-shadows", "0") == {} and regime("--no-verdicts") == {}
    assert main(["--cache", str(tmp_path), "run", "--memorising-shadows", "3", "--data", "synthetic:1500"]) == 2
    assert "ulira_shadows 3: expected 0 (no U-LiRA) or at least 6" in capsys.readouterr().err
