"""Issue 32: the SSD family's defaults on real UTKFace, head scope, one ImageNet-initialised member (a proxy
for the face-pretrained backbone), seed 0: how far each setting moves the forget MAE from O's toward R's,
and its test MAE, Forgetting and F, per forget group.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_ssd_defaults.py \
        --settings '[["ssd", {}], ["assd", {}], ["lfssd", {}], ["ssd", {"alpha": 10}]]' --groups 0,1,2,3,4 \
        --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE
"""

from __future__ import annotations

import argparse
import json

from olvido.data import parse_forget, prepare_dataset
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.metrics import f_score, forgetting, mean_absolute_error, utility


def _score(ws, model, split, test, reference, reference_test) -> tuple[float, float, float, float]:
    """(forget MAE, test MAE, Forgetting, F) of ``model`` against the retrained model's predictions."""
    ages, test_ages = ws.ages(split.forget), ws.ages(test)
    forget, on_test = ws.predict(model, split.forget), ws.predict(model, test)
    u = utility(mean_absolute_error(test_ages, reference_test), mean_absolute_error(test_ages, on_test))
    fg = forgetting(ages, forget, reference)
    return mean_absolute_error(ages, forget), mean_absolute_error(test_ages, on_test), fg, f_score(u, fg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default='[["ssd", {}], ["assd", {}], ["lfssd", {}]]')
    parser.add_argument("--groups", default="0,1,2,3,4")
    parser.add_argument("--data", default="../shared/data/utkface/UTKFace.tar.gz")
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    prepared = prepare_dataset(args.data, progress=False)
    ws = Workspace(prepared, ModelConfig(init="imagenet", ensemble=1), cache=args.cache, progress=False)
    original, test = ws.original(0).model, ws.split_ids("test")
    for group in map(int, args.groups.split(",")):
        split = parse_forget(prepared.manifest, f"group:{group}")
        retrained = ws.retrained(split, 0).model
        reference, reference_test = ws.predict(retrained, split.forget), ws.predict(retrained, test)

        score = lambda model: _score(ws, model, split, test, reference, reference_test)  # noqa: E731, B023

        o, r = score(original), score(retrained)
        print(f"group {group}: O forget MAE {o[0]:.3f}, test {o[1]:.3f}, F {o[3]:.3f}; R forget MAE {r[0]:.3f}")
        for name, values in json.loads(args.settings):
            s = score(ws.unlearn(name, original, split, None, 0, **values).model)
            moved = (s[0] - o[0]) / (r[0] - o[0])
            print(
                f"  {name} {values}: forget MAE {s[0]:.3f} (moved {moved:.2f}), test {s[1]:.3f}, Fg {s[2]:.3f}, F {s[3]:.3f}"
            )


if __name__ == "__main__":
    main()
