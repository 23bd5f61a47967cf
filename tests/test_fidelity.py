"""Each method does what its authors' code does (docs/fidelity.md): one test per point of the audit
(``../shared/docs/AUDIT-METHODS.md``), each failing on the code before the fix."""

import numpy as np
import torch
from torch import nn

from olvido.methods import make_config, unlearn
from olvido.methods import msg as msg_module
from olvido.models.heads import ThesisHead
from olvido.training import ArrayDataset, ConcatSamples, make_loader, predict

from helpers import Line, StripesNet, StripesProblem, Untouchable


def _sets(seed=0, retain=60, forget=20):
    """Feature 0 appears only in forget samples; features 1-3 in both."""
    rng = np.random.default_rng(seed)
    xr = rng.normal(size=(retain, 4)).astype(np.float32)
    xr[:, 0] = 0
    xf = rng.normal(size=(forget, 4)).astype(np.float32)
    xf[:, 0] = rng.uniform(1, 2, forget)
    xf[:, 1] *= 3  # feature 1 matters 9x more (squared) to the forget set
    y = lambda x: torch.from_numpy(x @ np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32) + 40)  # noqa: E731
    return ArrayDataset(torch.from_numpy(xr), y(xr)), ArrayDataset(torch.from_numpy(xf), y(xf))


def _unlearn(name, model, retain, forget, **values):
    config = make_config(name, **values)
    return unlearn(name, model, retain, forget, Untouchable(), config, label_range=(0.0, 100.0)).model


EXACT = dict(estimator="per_sample", max_samples=None)


def test_assd_takes_its_reference_importance_from_the_retain_set_alone():
    # the authors' notebook: original_importances = calc_importance(retain_loader). A weight only the forget
    # set uses has I_r = 0: an infinite ratio, always selected, dampened to 0. With the former mixture
    # (1 - rho) I_r + rho I_f its ratio was 1 / rho, and the dampening could not go below lambda rho.
    retain, forget = _sets()
    model = _unlearn("assd", Line([1.0, 1.0, 1.0, 1.0], 40.0), retain, forget, **EXACT)
    assert float(model.linear.weight.detach()[0, 0]) == 0.0
    assert float(model.linear.weight.detach()[0, 2]) == 1.0  # used alike by both sets: kept


def test_ssd_alpha_means_the_same_ratio_whatever_the_forget_fraction():
    # the retain set doubled (rho 0.25 -> 0.14) leaves I_r, I_f and so the selection unchanged
    retain, forget = _sets()
    doubled = ConcatSamples([retain, retain])
    start = Line([1.0, 1.0, 1.0, 1.0], 40.0)
    once = _unlearn("ssd", start, retain, forget, alpha=5.0, **EXACT)
    twice = _unlearn("ssd", start, doubled, forget, alpha=5.0, **EXACT)
    torch.testing.assert_close(once.linear.weight, twice.linear.weight)
    assert float(once.linear.weight.detach()[0, 1]) < 1.0  # feature 1 (9x) is selected at alpha 5
    # the authors' rule (reference "full") is still there, and there rho changes what alpha selects
    full_once = _unlearn("ssd", start, retain, forget, alpha=3.0, reference="full", **EXACT)
    full_twice = _unlearn("ssd", start, doubled, forget, alpha=3.0, reference="full", **EXACT)
    assert not torch.equal(full_once.linear.weight, full_twice.linear.weight)


def test_lfssd_importances_do_not_weigh_samples_by_their_predicted_value():
    # the same model with its output shifted by 100 years: the output's gradients are the same, so a label-free
    # importance must be too (d f^2 = 2 f df weighed each sample by its prediction)
    retain, forget = _sets()
    low = _unlearn("lfssd", Line([1.0, 1.0, 1.0, 1.0], 0.0), retain, forget, alpha=2.0, max_samples=None)
    high = _unlearn("lfssd", Line([1.0, 1.0, 1.0, 1.0], 100.0), retain, forget, alpha=2.0, max_samples=None)
    torch.testing.assert_close(low.linear.weight, high.linear.weight)
    assert float(low.linear.weight.detach()[0, 0]) == 0.0  # the forget-only feature is dampened away
    assert make_config("lfssd").estimator == "batch_abs"  # the authors' imp += grad.abs()


def test_scrub_distillation_carries_the_originals_t_squared_factor():
    # KD.py: kl_div(...) * T**2. For a scalar logit T^2 ((s - t) / T)^2 = (s - t)^2: the temperature cancels,
    # where without the factor alpha 0.5 at T = 4 acted like 0.03
    problem = StripesProblem(n=400)
    values = dict(epochs=2, max_steps=1, batch_size=32, forget_batch_size=8)
    runs = [
        predict(
            unlearn(
                "scrub",
                problem.original,
                problem.dataset("retain"),
                problem.dataset("forget"),
                Untouchable(),
                make_config("scrub", temperature=t, **values),
                label_range=(20.0, 60.0),
            ).model,
            problem.dataset("train"),
        )
        for t in (2.0, 4.0)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert make_config("scrub").weight_decay == 5e-4  # the large-scale notebook's


def test_msg_counts_forget_samples_not_batches_when_given_a_dataloader(monkeypatch):
    limits = []
    original = msg_module.accumulate_gradients

    def spy(model, data, sign, batch_size, seed, device, limit=None):
        limits.append(limit)
        return original(model, data, sign, batch_size, seed, device, limit)

    monkeypatch.setattr(msg_module, "accumulate_gradients", spy)
    retain, forget = _sets(forget=40)
    loaders = [make_loader(d, 8, shuffle=True) for d in (retain, forget)]
    config = make_config("msg", epochs=0)
    unlearn("msg", Line([1.0, 1.0, 1.0, 1.0], 40.0), *loaders, Untouchable(), config, label_range=(0.0, 100.0))
    assert limits[0] == 40  # the retain subset matches the forget set's 40 samples, not its 5 batches


def test_blindspot_compares_attention_at_block_outputs():
    # the original's maps are conv -> BatchNorm -> ReLU block outputs, not raw convolution outputs
    from olvido.methods.layers import block_outputs

    net = StripesNet(0)
    assert block_outputs(net) == [net.features[2], net.head[1]]
    head = ThesisHead(1280)
    assert block_outputs(head) == [head.layers[2], head.layers[5]]
    assert all(isinstance(m, nn.ReLU) for m in block_outputs(head))


def test_salun_draws_its_random_labels_from_the_label_prior_by_default():
    # RL.py draws uniformly random classes; the regression counterpart draws from the training-label prior
    assert make_config("salun").labels == "prior"
