"""APGD's reference (``attacks/apgd.py``, written in this project) against the original code
(``pyautoattack``, Croce & Hein's ``autopgd_base.py``), bit for bit: from the same start, one run
returns the same highest-loss points, losses, robust flags and adversarial points, in L∞ and L2,
with the CE and the DLR loss; and ``perturb`` — the original's whole attack, its own start draw,
its choice of the samples to attack, its restarts — equals the definition's x_adv from the starts
the original draws."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from advparity.adapters.attacks import apgd
from support.small_nets import SmallNet, synthetic_batch, train_briefly
from torch import nn

autopgd = pytest.importorskip(
    "pyautoattack.autopgd_base",
    reason="pyautoattack (the original APGD) is not installed: pip install advparity[autoattack]",
)

EPS = {"linf": 8 / 255, "l2": 0.5}
CASES = [(loss, norm) for loss in apgd.LOSSES for norm in ("linf", "l2")]


@pytest.fixture(scope="module")
def five_logits() -> nn.Module:
    """The small task's net with five logits (APGD-T's loss reads the fourth-largest), trained."""
    torch.manual_seed(0)
    x, y = synthetic_batch(512, seed=100)
    return train_briefly(SmallNet(classes=5), x, y, steps=100, batch=64, seed=1)


def _original(  # type: ignore[no-untyped-def]
    model: nn.Module,
    norm: str,
    loss: str,
    steps: int,
    restarts: int = 1,
    seed: int = 0,
    targets: int | None = None,
):
    """The original's APGD (``APGDAttack``), or its APGD-T (``APGDAttack_targeted``) with ``targets``,
    built here from pyautoattack itself, every argument set."""
    common = dict(
        n_iter=steps,
        norm={"linf": "Linf", "l2": "L2"}[norm],
        n_restarts=restarts,
        eps=EPS[norm],
        seed=seed,
        eot_iter=1,
        rho=0.75,
        verbose=False,
        device=torch.device("cpu"),
    )
    if targets is not None:
        return autopgd.APGDAttack_targeted(model, n_target_classes=targets, **common)
    return autopgd.APGDAttack(model, loss=loss, **common)


def _original_targeted(
    model: nn.Module, norm: str, steps: int, targets: int, restarts: int = 1, seed: int = 0
):  # type: ignore[no-untyped-def]
    return _original(model, norm, "dlr", steps, restarts, seed, targets=targets)


@pytest.mark.parametrize(("loss", "norm"), CASES)
@pytest.mark.parametrize("steps", [5, 20])
def test_one_run_from_a_start_is_the_originals_bit_for_bit(
    small_net: nn.Module, loss: str, norm: str, steps: int
) -> None:
    x, y = synthetic_batch(24, seed=11)
    start = apgd.random_start(x, EPS[norm], norm, torch.Generator().manual_seed(3))  # type: ignore[arg-type]
    original = _original(small_net, norm, loss, steps)
    original.init_hyperparam(x)
    x_best, acc, loss_best, x_best_adv = original.attack_single_run(x, y, x_init=start)
    params = apgd.APGDParams(loss=loss, norm=norm, steps=steps)  # type: ignore[arg-type]
    ours = apgd.single_run(small_net, x, y, EPS[norm], params, start)
    assert torch.equal(ours.x_best, x_best)
    assert torch.equal(ours.robust, acc)
    assert torch.equal(ours.loss_best, loss_best)
    assert torch.equal(ours.x_best_adv, x_best_adv)
    # A run that fools some samples and halves some steps: the comparison is not of trivial runs.
    assert 0 < int((~acc).sum()) < len(y)


@pytest.mark.parametrize(("loss", "norm"), CASES)
@pytest.mark.parametrize("restarts", [1, 3])
def test_the_whole_attack_is_the_definitions_from_the_originals_starts(
    small_net: nn.Module, loss: str, norm: str, restarts: int
) -> None:
    """``perturb``: the original attacks only the samples it classifies correctly (the others come
    back as x), each restart only those no earlier restart fooled, each from a start drawn for that
    subset after it seeds the global RNG. Drawn the same way here, the definition's x_adv is the
    original's bit for bit."""
    x, y = synthetic_batch(24, seed=12)
    steps, eps, seed = 10, EPS[norm], 5
    params = apgd.APGDParams(loss=loss, norm=norm, steps=steps, restarts=restarts)  # type: ignore[arg-type]
    with torch.random.fork_rng():
        expected = _original(small_net, norm, loss, steps, restarts, seed).perturb(x, y)
        # The original's draws: restart r's start for the samples still unfooled, in order.
        torch.manual_seed(seed)
        with torch.no_grad():
            unfooled = small_net(x).max(1)[1] == y
        x_adv = x.clone()
        for _ in range(restarts):
            start = x.clone()
            start[unfooled] = apgd.random_start(x[unfooled], eps, norm, torch.default_generator)  # type: ignore[arg-type]
            candidate, _, fooled = apgd.ATTACK.from_start(
                small_net, x, y, eps, params, start, "sum", unfooled
            )
            x_adv[fooled] = candidate[fooled]
            unfooled = unfooled & ~fooled
    assert torch.equal(x_adv, expected)
    assert bool((x_adv != x).flatten(1).any(dim=1).any())


def test_dlr_needs_three_classes(tmp_path: Path) -> None:
    """A run refuses DLR on a two-class model before it writes anything, naming the reason."""
    from advparity.harness.api import crosscheck

    x, y = synthetic_batch(8, seed=14)
    torch.manual_seed(0)
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 2)).eval()
    table = {"attack": "apgd", "eps": ["8/255"], "steps": 5, "loss": "dlr"}
    with pytest.raises(ValueError, match='loss = "dlr" needs a model with at least 3 classes'):
        crosscheck(two_classes, x, y.clamp(max=1), attacks=[table], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"loss": "cw"}, "loss to be one of"),
        ({"steps": 0}, "steps to be an integer >= 1"),
        ({"restarts": 0}, "restarts to be an integer >= 1"),
        ({"rho": 1.0}, "rho to be a real number in"),
        ({"norm": "l1"}, "norm"),
    ],
)
def test_bad_parameters_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apgd.APGDParams(**values)  # type: ignore[arg-type]


def test_the_checkpoint_schedule_is_the_originals() -> None:
    for steps in (1, 5, 10, 100, 250):
        attack = autopgd.APGDAttack(lambda v: v, n_iter=steps, eps=0.1)
        assert apgd.Checkpoints.of(steps) == apgd.Checkpoints(
            attack.n_iter_2, attack.n_iter_min, attack.size_decr
        )


def test_a_run_judges_the_references_apgd_and_refuses_it_elsewhere(small_net: nn.Module) -> None:
    """Registered, APGD is one more attack of a run: the reference computes it (its passes: the clean
    forward, then the start and every iteration), and a library without an offer gets no cell."""
    from advparity.harness.api import crosscheck

    x, y = synthetic_batch(16, seed=13)
    table = {"attack": "apgd", "eps": ["8/255"], "steps": 5, "loss": "dlr"}
    checked = crosscheck(small_net, x, y, attacks=[table], libraries=["foolbox"])
    rows = checked.results
    assert set(rows["library"]) == {"reference"} and set(rows["attack_label"]) == {"APGD-DLR-5"}
    assert set(rows["forward_passes"]) == {7.0} and set(rows["backward_passes"]) == {6.0}
    assert set(checked.verdicts["verdict"]) == {"agree"}
    assert (rows["pred_adv"] != rows["label"]).any()


@pytest.mark.parametrize("name", ["autoattack", "torchattacks"])
@pytest.mark.parametrize(("loss", "norm"), CASES)
@pytest.mark.parametrize("restarts", [1, 3])
def test_a_library_apgd_equals_its_expectation(
    small_net: nn.Module, name: str, loss: str, norm: str, restarts: int
) -> None:
    """The original (``autoattack``) and torchattacks' port of it: x_adv bit for bit the expectation
    built from the declaration (the starts drawn per subset while the expectation runs), the passes
    spent those the expectation counted in the same batches, and the caller's global RNG left as it was."""
    from advparity.adapters import AttackSpec, get
    from advparity.adapters.expected import compare, expectation

    x, y = synthetic_batch(24, seed=15)
    # 40 steps: intervals of 8, 7, … iterations, where rho (0.75 vs 0.7, say) changes a decision.
    spec = AttackSpec("apgd", EPS[norm], seed=4, loss=loss, norm=norm, steps=40, restarts=restarts)
    adapter = get(name)
    before = torch.random.get_rng_state()
    result = adapter.run(small_net, x, y, spec)
    assert torch.equal(torch.random.get_rng_state(), before)
    expected = expectation(small_net, x, y, spec, adapter.declaration)
    assert expected.exact and expected.passes is not None
    assert torch.equal(result.x_adv, expected.x_adv), compare(result.x_adv, expected).pixels_differ.tolist()
    assert (
        result.stats.forward_passes_per_sample,
        result.stats.backward_passes_per_sample,
    ) == expected.passes
    # Fewer passes than attacking every sample at every restart: the original skips the fooled ones.
    most = adapter.declaration.passes(spec)
    assert expected.passes[1] <= most[1] and (restarts == 1 or expected.passes[1] < most[1])


def test_torchattacks_scales_the_start_in_its_own_order() -> None:
    """The same draws, scaled as (eps · t) / max|t| instead of eps · (t / (max|t| + 1e-12)): other last
    bits on some pixels (on DenseNet-121, through the first momentum step, 4 of 64 APGD-CE-100 outputs
    — docs/libraries.md), hence the declared order; from torchattacks' own formula, bit for bit."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    eps = 1 / 255
    ours = apgd.random_start(x, eps, "linf", torch.Generator().manual_seed(1), order="torchattacks")
    original = apgd.random_start(x, eps, "linf", torch.Generator().manual_seed(1))
    t = 2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1
    theirs = x + eps * torch.ones([16, 1, 1, 1]) * t / (
        t.reshape([16, -1]).abs().max(dim=1, keepdim=True)[0].reshape([-1, 1, 1, 1])
    )
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, original)
    assert float((ours - original).abs().max()) < 1e-6  # round-off, not another distribution


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_one_targeted_run_is_the_originals_bit_for_bit(five_logits: nn.Module, norm: str) -> None:
    """APGD-T's run, from a start and for the targets the original picks (the 2nd-largest logit at x)."""
    x, y = synthetic_batch(24, seed=16)
    start = apgd.random_start(x, EPS[norm], norm, torch.Generator().manual_seed(3))  # type: ignore[arg-type]
    original = _original_targeted(five_logits, norm, 20, targets=1)
    original.init_hyperparam(x)
    original.y_target = five_logits(x).sort(dim=1)[1][:, -2]
    x_best, acc, loss_best, x_best_adv = original.attack_single_run(x, y, x_init=start)
    target = apgd.target_of_rank(five_logits, x, 2)
    assert torch.equal(target, original.y_target) and bool((target != y).all())
    params = apgd.APGDParams(loss="dlr", norm=norm, steps=20, targets=1)  # type: ignore[arg-type]
    ours = apgd.single_run(five_logits, x, y, EPS[norm], params, start, target=target)
    assert torch.equal(ours.x_best, x_best)
    assert torch.equal(ours.loss_best, loss_best)
    assert torch.equal(ours.x_best_adv, x_best_adv)
    assert 0 < int((~acc).sum()) < len(y)
    # Not the untargeted run: the loss is another one.
    untargeted = apgd.single_run(
        five_logits, x, y, EPS[norm], apgd.APGDParams(loss="dlr", norm=norm, steps=20), start
    )  # type: ignore[arg-type]
    assert not torch.equal(untargeted.loss_best, ours.loss_best)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize(("targets", "restarts"), [(1, 1), (3, 2)])
def test_the_whole_targeted_attack_is_the_definitions_from_the_originals_starts(
    five_logits: nn.Module, norm: str, targets: int, restarts: int
) -> None:
    """``APGDAttack_targeted.perturb``: per target class r = 2 … targets + 1, per restart, the samples
    still to fool target their r-th logit at x, from a start drawn for them after the one seeding."""
    x, y = synthetic_batch(24, seed=17)
    steps, eps, seed = 10, EPS[norm] / 2, 6
    params = apgd.APGDParams(loss="dlr", norm=norm, steps=steps, restarts=restarts, targets=targets)  # type: ignore[arg-type]
    with torch.random.fork_rng():
        original = _original_targeted(five_logits, norm, steps, targets, restarts, seed)
        original.eps = eps
        expected = original.perturb(x, y)
        torch.manual_seed(seed)
        with torch.no_grad():
            unfooled = five_logits(x).max(1)[1] == y
        x_adv = x.clone()
        for rank in range(2, targets + 2):
            for _ in range(restarts):
                start = x.clone()
                start[unfooled] = apgd.random_start(x[unfooled], eps, norm, torch.default_generator)  # type: ignore[arg-type]
                target = apgd.target_of_rank(five_logits, x, rank)
                candidate, _, fooled = apgd.ATTACK.from_start(
                    five_logits, x, y, eps, params, start, "sum", unfooled, target
                )
                x_adv[fooled] = candidate[fooled]
                unfooled = unfooled & ~fooled
    assert torch.equal(x_adv, expected)
    assert bool((x_adv != x).flatten(1).any(dim=1).any())
    # The definition's own scheme, the one a library's expectation runs, gives the same points.
    ours, _ = apgd.ATTACK.on_subsets(five_logits, x, y, eps, params, apgd.SubsetDraws(seed), "sum")
    assert torch.equal(ours, expected)


@pytest.mark.parametrize("name", ["autoattack", "torchattacks"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize(("targets", "restarts"), [(1, 1), (3, 2)])
def test_a_library_apgd_t_equals_its_expectation(
    five_logits: nn.Module, name: str, norm: str, targets: int, restarts: int
) -> None:
    """The original's APGD-T and torchattacks' APGDT: bit for bit their expectation, passes included
    (APGD-T's extra forward per run that picks the targets) — except torchattacks' L2, which steps
    every sample by the first one's step size (its declared departure), and so differs."""
    from advparity.adapters import AttackSpec, get
    from advparity.adapters.expected import expectation

    x, y = synthetic_batch(24, seed=18)
    spec = AttackSpec(
        "apgd", EPS[norm], seed=4, loss="dlr", norm=norm, steps=40, restarts=restarts, targets=targets
    )
    adapter = get(name)
    before = torch.random.get_rng_state()
    result = adapter.run(five_logits, x, y, spec)
    assert torch.equal(torch.random.get_rng_state(), before)
    expected = expectation(five_logits, x, y, spec, adapter.declaration)
    assert expected.exact and expected.passes is not None
    assert (
        result.stats.forward_passes_per_sample,
        result.stats.backward_passes_per_sample,
    ) == expected.passes
    departs = adapter.declaration.departure(spec)
    assert bool(departs) == (name == "torchattacks" and norm == "l2")
    if departs:
        assert not torch.equal(result.x_adv, expected.x_adv)
    else:
        assert torch.equal(result.x_adv, expected.x_adv)
    most = adapter.declaration.passes(spec)
    assert expected.passes[0] <= most[0] and expected.passes[1] <= most[1]


def test_apgd_t_is_a_variant_with_its_own_label_and_checks() -> None:
    params = apgd.APGDParams(loss="dlr", steps=100, targets=3, restarts=2)
    assert apgd.ATTACK.label(params) == "APGD-T-100 ×2 top-3"
    assert apgd.ATTACK.variants(params) == ("restarts", "targets")
    # The clean forward; per run (3 targets × 2 restarts) the target forward, the start and 100 steps.
    assert apgd.ATTACK.passes(params) == (1.0 + 6 * 102, 6.0 * 101)
    with pytest.raises(ValueError, match='expected loss = "dlr"'):
        apgd.APGDParams(loss="ce", targets=3)
    with pytest.raises(ValueError, match="targets to be an integer >= 1"):
        apgd.APGDParams(loss="dlr", targets=0)
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd.ATTACK.check_classes(apgd.APGDParams(loss="dlr", targets=2), 3)
    with pytest.raises(ValueError, match="more than 4"):
        apgd.ATTACK.check_classes(apgd.APGDParams(loss="dlr", targets=4), 4)
    apgd.ATTACK.check_classes(apgd.APGDParams(loss="dlr", targets=3), 4)


def test_the_targeted_dlr_loss_is_each_codes_own(five_logits: nn.Module) -> None:
    """The targeted DLR as the original rounds it, z_π1 − ½·(z_π3 + z_π4), and as torchattacks' APGDT
    does, z_π1 − ½·z_π3 − ½·z_π4: each equal to that code's own method, and not to each other."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = synthetic_batch(64, seed=19)
    with torch.no_grad():
        logits = five_logits(x)
    target = apgd.target_of_rank(five_logits, x, 3)
    original = _original_targeted(five_logits, "linf", 10, targets=2)
    original.y_target = target
    ours = apgd.targeted_dlr_loss(logits, y, target)
    assert torch.equal(ours, original.dlr_loss_targeted(logits, y))
    port = torchattacks.APGDT(five_logits, n_classes=5)
    theirs = apgd.targeted_dlr_loss(logits, y, target, order="torchattacks")
    assert torch.equal(theirs, port.dlr_loss_targeted(logits, y, target))
    assert not torch.equal(ours, theirs)
    assert float((ours - theirs).abs().max()) < 1e-5


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", apgd.LOSSES)
def test_art_returns_its_own_start_where_it_fails_and_spends_its_declared_passes(
    small_net: nn.Module, norm: str, loss: str
) -> None:
    """ART's AutoProjectedGradientDescent, another APGD (its declared departure): where it fools no
    sample it returns the sample's random start — bit for bit the start the declaration draws for the
    samples it attacks (those classified correctly at x), where the original returns x; its passes
    are those the declaration derives from the definition's run on the same samples."""
    pytest.importorskip("art")
    import numpy as np
    from advparity.adapters import AttackSpec, get
    from advparity.adapters.art import _apgd_draw
    from advparity.adapters.expected import compare, expectation

    x, y = synthetic_batch(24, seed=15)
    eps = {"linf": 1 / 255, "l2": 0.1}[norm]
    spec = AttackSpec("apgd", eps, seed=4, loss=loss, norm=norm, steps=10)
    art = get("art")
    numpy_before = np.random.get_state()[1].copy()
    result = art.run(small_net, x, y, spec)
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    expected = expectation(small_net, x, y, spec, art.declaration)
    assert expected.exact and expected.passes is not None
    assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == pytest.approx(
        expected.passes
    )
    with torch.no_grad():
        attacked = small_net(x).argmax(1) == y
        unfooled = small_net(result.x_adv).argmax(1) == y
    start = _apgd_draw(x[attacked], eps, norm, np.random.RandomState(4))  # type: ignore[arg-type]
    kept = unfooled[attacked]
    assert int(kept.sum()) > 0 and torch.equal(result.x_adv[attacked][kept], start[kept])
    # The original returns x for those: the cells disagree, with the departure quoted.
    assert (compare(result.x_adv, expected).pixels_differ[attacked][kept] > 0).all()
    assert "random start" in art.declaration.departure(spec)
    with pytest.raises(ValueError, match="one untargeted restart only"):
        art.run(small_net, x, y, AttackSpec("apgd", eps, seed=4, loss=loss, norm=norm, steps=10, restarts=2))


def test_art_refuses_a_rho_it_cannot_set() -> None:
    pytest.importorskip("art")
    from advparity.adapters import AttackSpec, get

    refusal = get("art").declaration.refusal(AttackSpec("apgd", 1 / 255, rho=0.5))
    assert refusal == "has no rho: ART's AutoProjectedGradientDescent fixes `rho = 0.75` in generate"
    assert get("art").declaration.accepts(AttackSpec("apgd", 1 / 255, rho=0.75))
