"""``python -m advparity gradcam RUN_DIR``: Grad-CAM clean vs adversarial on a bounded sample of a finished run.

Over ~400 lines on purpose: choosing the settings, regenerating each library's x_adv exactly as the run did and checking it against the run's rows are one pass over a run directory.

What it does, from the run directory alone (``manifest.json``, ``clean.parquet``, ``cells/``):

1. picks the first ``per_class`` test images of each true class in the run's sample order;
2. loads the checkpoint the run used (its sha256 must match the manifest's), the images and lung masks;
3. regenerates each library's x_adv for the chosen settings (default: the run's eps closest to 0.1/255
   and its largest PGD eps; FGSM and PGD; seed 0 with the run's steps, alpha and random start) through
   ``adapters`` — on the *whole* attack batches the run used, because a random start draws its noise
   for the batch as a whole, so a sample's x_adv depends on the batch it came in;
4. checks that the regenerated predictions equal the ``pred_adv`` the run recorded (a mismatch means
   the run is not reproducible, and is reported, not hidden);
5. computes the maps and per-image rows with :mod:`reports.gradcam` and writes ``RUN_DIR/gradcam/``:
   ``gradcam.parquet``, ``summary.csv``, ``meta.json`` and ``figures/<label>__<class>.png``.

Its cost is the regenerated attacks on those batches (for PGD, at most the run's own cost for one cell
per setting) plus two Grad-CAM passes per image and setting; ``meta.json`` records both next to the
run's own attack time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from advparity.adapters.base import AttackOutputError
from advparity.harness import cam
from advparity.harness.environment import configure_torch
from advparity.harness.group import targets_for
from advparity.harness.store import RunStore, params_of
from advparity.model.checkpoint import load_checkpoint, sha256_file
from advparity.model.data import load_image, load_mask, load_split
from advparity.reports import gradcam as rg
from advparity.reports.schema import (
    LibraryNames,
    eps_label,
    library_label,
    library_sort_key,
    naming_libraries,
    with_attack_labels,
)
from tqdm.auto import tqdm

from advparity import adapters

log = logging.getLogger(__name__)

PAPER_EPS = 0.1 / 255  # the paper's headline eps: its Grad-CAM figures are at this eps
DEFAULT_PER_CLASS = 4
FIGURE_SAMPLES = 2  # images per class shown in the figures (all are measured)
FIGURE_LIBRARY = "reference"  # the arbiter; another library's maps are in the table
_SAME_EPS = 1e-12  # eps values from the same TOML string parse to the same float; this absorbs re-typing


@dataclass(frozen=True)
class GradcamRequest:
    """Everything one ``python -m advparity gradcam`` needs; None means "the default"."""

    run_dir: Path
    per_class: int = DEFAULT_PER_CLASS
    eps: tuple[float, ...] | None = None  # default: closest to 0.1/255 and the largest PGD eps
    libraries: tuple[str, ...] | None = None  # default: every library the run attacked with
    attacks: tuple[str, ...] | None = None  # default: fgsm and pgd
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    trust: bool = False
    cam_batch_size: int = 16
    # The layer to map, by its name in model.named_modules() (e.g. "backbone.layer3"); default:
    # harness.cam.target_layer (DenseNet's norm5, else the last convolution).
    cam_layer: str | None = None


@dataclass(frozen=True)
class GradcamOutcome:
    """What :func:`compute` wrote and measured."""

    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    figures: list[Path]
    settings: list[rg.Setting]
    mismatches: pd.DataFrame  # regenerated adversarial prediction != the run's (empty when reproducible)
    clean_mismatches: list[int]  # samples whose clean prediction != the run's
    failures: list[str]  # settings that could not be mapped (the library raised)
    seconds: dict[str, float]
    run_attack_seconds: float

    @property
    def reproducible(self) -> bool:
        return self.mismatches.empty and not self.clean_mismatches and not self.failures

    def text(self) -> str:
        """A few lines for the terminal."""
        n_images = self.rows["sample"].nunique() if not self.rows.empty else 0
        lines = [
            f"grad-cam: {n_images} images x {len(self.settings)} settings in {self.seconds['total']:.1f} s "
            f"(x_adv regenerated {self.seconds['attacks']:.1f} s, maps {self.seconds['cam']:.1f} s; "
            f"the run's attacks took {self.run_attack_seconds:.0f} s)"
        ]
        if self.mismatches.empty:
            lines.append(f"reproduction check: all {len(self.rows)} regenerated predictions equal the run's")
        else:
            lines.append(
                f"REPRODUCTION CHECK FAILED: {len(self.mismatches)} of {len(self.rows)} regenerated "
                "predictions differ from the run's (listed in meta.json)"
            )
        if self.clean_mismatches:
            lines.append(
                f"REPRODUCTION CHECK FAILED: clean predictions differ for samples {self.clean_mismatches}"
            )
        lines.extend(f"NOT MAPPED: {f}" for f in self.failures)
        overall = self.summary[(self.summary["subset"] == "all")] if not self.summary.empty else self.summary
        for row in overall[overall["library"] == FIGURE_LIBRARY].itertuples():
            lines.append(
                f"  {row.class_name:<16} {row.attack_label:<6} "
                f"{row.eps_label:>8}: Sc {row.sc_mean:.2f} (n={row.n}), lung share "
                f"{row.lung_share_clean:.2f} -> {row.lung_share_adv:.2f}"
            )
        lines.append(f"written: {self.out_dir}")
        return "\n".join(lines)


# --- choosing what to map ----------------------------------------------------------------------------


def choose_settings(
    results: pd.DataFrame,
    eps: Sequence[float] | None = None,
    libraries: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
) -> list[rg.Setting]:
    """The run's seed-0 cells at the chosen eps values, for the chosen libraries and attacks.

    Default eps: the run's eps closest to 0.1/255 (the paper's Grad-CAM figures) and its largest PGD
    eps (where the attack actually flips predictions on a model as robust as the demo's). An eps,
    library or attack the run has no cell for is an error that lists what it has.
    """
    columns = ["library", "attack", "attack_label", "eps", "steps", "alpha", "random_start", "seed"]
    recorded = with_attack_labels(results)
    recorded = recorded.assign(params=recorded["params"] if "params" in recorded.columns else "")
    # Runs recorded before the rows carried the norm hold L∞ attacks only.
    recorded = recorded if "norm" in recorded.columns else recorded.assign(norm="linf")
    cells = recorded[recorded["seed"] == 0][[*columns, "norm", "params"]].drop_duplicates()
    if cells.empty:
        raise ValueError("expected finished seed-0 cells in the run, found none")
    grid = sorted(set(cells["eps"].astype(float)))
    if eps is None:
        # The paper's settings are L∞: an L2 eps (a plain number such as 0.5) is no pixel level.
        linf = cells[cells["norm"] == "linf"]
        grid_linf = sorted(set(linf["eps"].astype(float))) or grid
        chosen = {min(grid_linf, key=lambda e: abs(math.log(e / PAPER_EPS)))}
        pgd = linf[linf["attack"] == "pgd"]["eps"]
        if not pgd.empty:
            chosen.add(float(pgd.max()))
    else:
        chosen = set()
        for e in eps:
            match = [g for g in grid if abs(g - e) <= _SAME_EPS]
            if not match:
                raise ValueError(
                    f"--eps {eps_label(e)} is not in this run's grid; expected some of {[eps_label(g) for g in grid]}"
                )
            chosen.add(match[0])
    for flag, values, known in (
        ("--libraries", libraries, sorted(set(cells["library"]), key=library_sort_key)),
        ("--attacks", attacks, sorted(set(cells["attack"]))),
    ):
        if values is not None:
            outside = [v for v in values if v not in known]
            if outside:
                raise ValueError(
                    f"{flag}: {outside} has no finished cells in this run; expected some of {known}"
                )
    picked = cells[
        cells["eps"].isin(chosen)
        & ((cells["norm"] == "linf") if eps is None else True)
        & (cells["library"].isin(libraries) if libraries is not None else True)
        & (cells["attack"].isin(attacks) if attacks is not None else True)
    ]
    if picked.empty:
        raise ValueError(
            f"no finished cells for eps {[eps_label(e) for e in sorted(chosen)]} with these libraries and attacks"
        )
    settings = [
        rg.Setting(
            library=str(r.library),
            attack=str(r.attack),
            eps=float(r.eps),
            steps=int(r.steps),
            alpha=float(r.alpha),
            random_start=bool(r.random_start),
            seed=int(r.seed),
            params=str(r.params) if isinstance(r.params, str) else "",
            attack_label=str(r.attack_label),
            norm=str(r.norm),
        )
        for r in picked.itertuples()
    ]
    return sorted(settings, key=lambda s: (s.attack, s.attack_label, s.eps, library_sort_key(s.library)))


def choose_samples(clean: pd.DataFrame, classes: Sequence[str], per_class: int) -> pd.DataFrame:
    """The first ``per_class`` rows of each true class in sample order (the runner's shuffled order)."""
    if per_class < 1:
        raise ValueError(f"expected --per-class >= 1, got {per_class}")
    ordered = clean.sort_values("sample", kind="stable")
    chosen = ordered.groupby("label", sort=True).head(per_class)
    short = {
        classes[label]: int((chosen["label"] == label).sum())
        for label in range(len(classes))
        if (chosen["label"] == label).sum() < per_class
    }
    if short:
        log.warning("fewer than %d attacked test images for %s", per_class, short)
    return chosen.sort_values(["label", "sample"]).reset_index(drop=True)


# --- the run's files ---------------------------------------------------------------------------------


def _locate(recorded: str, run_dir: Path, what: str) -> Path:
    """A path from the manifest: as written (relative to where the run was started), or under the run dir."""
    path = Path(recorded)
    for candidate in (path, run_dir / path):
        if candidate.exists():
            return candidate
    raise ValueError(
        f"{what} {recorded!r} recorded in {run_dir / 'manifest.json'} not found; paths in the manifest are "
        "relative to the folder the run was started from: run this command from there"
    )


def _run_attack_seconds(results: pd.DataFrame) -> float:
    keys = ["library", "attack", "eps", "steps", "random_start", "seed"]
    return float(results.groupby(keys)["seconds"].first().fillna(0.0).sum())


@torch.inference_mode()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    probs = torch.softmax(model(x), dim=1)
    conf, pred = probs.max(dim=1)
    return pred.cpu().numpy(), conf.cpu().numpy()


def _regenerate(
    model: torch.nn.Module,
    setting: rg.Setting,
    x_batches: dict[int, torch.Tensor],
    y_batches: dict[int, torch.Tensor],
    device: torch.device,
    batch_size: int,
) -> dict[int, torch.Tensor]:
    """The library's x_adv for each needed batch, exactly as the runner called it (same batch, same
    spec, the same targets where it is targeted)."""
    columns = {"steps": setting.steps, "alpha": setting.alpha, "random_start": setting.random_start}
    params = params_of(setting.attack, setting.params, columns)
    spec = adapters.AttackSpec(setting.attack, setting.eps, setting.seed, params)
    adapter = adapters.get(setting.library)
    out = {}
    for b, x in x_batches.items():
        x, y = x.to(device), y_batches[b].to(device)
        target = targets_for(model, params, x, y, np.arange(b * batch_size, b * batch_size + len(x)))
        try:
            x_adv = adapter.run(model, x, target if target is not None else y, spec).x_adv
        except AttackOutputError as err:
            # The runner scored such an output anyway (and its verdict is "invalid"); map it the same way.
            if err.x_adv is None or err.x_adv.shape != x.shape:
                raise
            log.warning("%s", err)
            x_adv = err.x_adv.to(device=device, dtype=x.dtype)
        out[b] = x_adv.detach()
    return out


# --- the step ----------------------------------------------------------------------------------------


def compute(request: GradcamRequest, progress: bool = True) -> GradcamOutcome:
    """Map, check and write ``RUN_DIR/gradcam/``; see the module docstring."""
    started = time.perf_counter()
    store = RunStore(request.run_dir)
    manifest = store.manifest()
    # Settings, figure titles and the summary name and order libraries as the run recorded them.
    with naming_libraries(LibraryNames.from_manifest(manifest)):
        return _compute(request, progress, store, manifest, started)


def _compute(
    request: GradcamRequest, progress: bool, store: RunStore, manifest: dict[str, Any], started: float
) -> GradcamOutcome:
    seconds = {"load": 0.0, "attacks": 0.0, "cam": 0.0, "figures": 0.0}
    device = request.device
    configure_torch(device)
    clean = store.read_clean()
    results = store.read_results()
    if results.empty:
        raise ValueError(f"{str(request.run_dir)!r} has no finished cells; run the attacks first")
    results = with_attack_labels(results)  # a run recorded before its rows carried the label
    classes = [str(c) for c in manifest["classes"]]
    config = manifest["config"]
    image_size = int(config["image_size"])
    batch_size = int(config["attack"]["batch_size"])
    settings = choose_settings(results, request.eps, request.libraries, request.attacks)
    samples = choose_samples(clean, classes, request.per_class)

    # The checkpoint and split the run used, checked by hash: other weights would map another model.
    checkpoint = _locate(manifest["checkpoint"]["path"], request.run_dir, "checkpoint")
    if sha256_file(checkpoint) != manifest["checkpoint"]["sha256"]:
        raise ValueError(f"{str(checkpoint)!r} is not the checkpoint this run attacked (sha256 differs)")
    data_root = _locate(manifest["data_root"], request.run_dir, "data root")
    split_path = _locate(manifest["split"]["path"], request.run_dir, "split file")
    split = load_split(split_path)
    model, _ = load_checkpoint(checkpoint, trust=request.trust, device=device)
    model.eval()
    layer_name, layer = cam.target_layer(model, request.cam_layer)

    # Whole attack batches, as the runner cut them: sample s sat in batch s // batch_size.
    load_started = time.perf_counter()
    ordered = clean.sort_values("sample").reset_index(drop=True)
    if not np.array_equal(ordered["sample"].to_numpy(), np.arange(len(ordered))):
        raise ValueError(f"expected samples 0..{len(ordered) - 1} in {request.run_dir / 'clean.parquet'}")
    needed = sorted({int(s) // batch_size for s in samples["sample"]})
    x_batches: dict[int, torch.Tensor] = {}
    y_batches: dict[int, torch.Tensor] = {}
    for b in needed:
        rows = ordered.iloc[b * batch_size : (b + 1) * batch_size]
        x_batches[b] = torch.stack([load_image(data_root / p, image_size) for p in rows["image"]])
        y_batches[b] = torch.tensor(rows["label"].to_numpy(), dtype=torch.int64)
    positions = [(int(s) // batch_size, int(s) % batch_size) for s in samples["sample"]]
    x = torch.stack([x_batches[b][i] for b, i in positions]).to(device)
    mask_paths = dict(zip(split["image"], split["mask"], strict=True))
    masks: list[np.ndarray | None] = []
    for image in samples["image"]:
        mask = mask_paths.get(image, "")
        masks.append(load_mask(data_root / mask, image_size).numpy() if mask else None)
    if not any(m is not None for m in masks):
        log.warning("no lung masks for the chosen images: lung shares will be empty")
    seconds["load"] = time.perf_counter() - load_started

    failures: list[str] = []
    frames: list[pd.DataFrame] = []
    panels: dict[int, list[tuple[int, rg.CamPanel]]] = {}  # label -> (image index, panel), setting order
    rank_in_class = samples.groupby("label").cumcount().to_numpy()
    bar = tqdm(total=1 + len(settings), desc="grad-cam", unit="setting", disable=not progress)
    cam_started = time.perf_counter()
    pred_clean, _ = _predict(model, x)
    # The clean predictions are the first reproduction check: another model or other pixels show here.
    clean_mismatches = [int(s) for s in samples["sample"][pred_clean != samples["pred_clean"].to_numpy()]]
    if clean_mismatches:
        log.warning("clean predictions differ from the run's for samples %s", clean_mismatches)
    clean_maps = cam.grad_cam(model, x, layer, pred_clean, request.cam_batch_size)
    seconds["cam"] += time.perf_counter() - cam_started
    bar.update()
    samples = samples.assign(pred_clean=pred_clean)
    for setting in settings:
        bar.set_postfix_str(setting.label)
        attack_started = time.perf_counter()
        try:
            adv_batches = _regenerate(model, setting, x_batches, y_batches, device, batch_size)
        except Exception as err:  # one library's crash must not sink the other settings
            log.warning("%s crashed: %r", setting.label, err, exc_info=True)
            failures.append(f"{setting.label}: the library raised {type(err).__name__}: {err}")
            bar.update()
            continue
        x_adv = torch.stack([adv_batches[b][i] for b, i in positions]).to(device)
        seconds["attacks"] += time.perf_counter() - attack_started
        cam_started = time.perf_counter()
        pred_adv, conf_adv = _predict(model, x_adv)
        adv_maps = cam.grad_cam(model, x_adv, layer, pred_adv, request.cam_batch_size)
        seconds["cam"] += time.perf_counter() - cam_started
        recorded = _recorded(results, setting, samples["sample"].to_numpy())
        frame = rg.image_rows(
            setting, samples, pred_adv, clean_maps.maps, adv_maps.maps, masks, recorded["pred_adv"].to_numpy()
        )
        frame["conf_adv"] = conf_adv
        frame["conf_adv_run"] = recorded["conf_adv"].to_numpy()
        frames.append(frame)
        if setting.library == FIGURE_LIBRARY or (
            FIGURE_LIBRARY not in {s.library for s in settings} and setting.library == settings[0].library
        ):
            delta = ((x_adv - x).mean(dim=1) / setting.eps).cpu().numpy()
            for i, row in enumerate(frame.to_dict("records")):
                if rank_in_class[i] >= FIGURE_SAMPLES:
                    continue
                panel = rg.CamPanel(
                    image=x[i, 0].cpu().numpy(),
                    cam_clean=clean_maps.maps[i],
                    cam_adv=adv_maps.maps[i],
                    perturbation=delta[i],
                    mask=masks[i],
                    titles=rg.panel_titles(row, classes),
                )
                panels.setdefault(int(row["label"]), []).append((i, panel))
        bar.update()
    bar.close()
    if not frames:
        raise ValueError(f"no setting could be mapped: {failures}")
    rows = pd.concat(frames, ignore_index=True)
    summary = rg.summarize(rows)

    out_dir = request.run_dir / rg.GRADCAM_DIR
    figures_dir = out_dir / rg.FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):  # figures of an earlier call with other settings
        stale.unlink()
    figures_started = time.perf_counter()
    figure_library = (
        FIGURE_LIBRARY if FIGURE_LIBRARY in {s.library for s in settings} else settings[0].library
    )
    figures = []
    for label in sorted(panels):
        # Panels arrive setting by setting; a stable sort by image puts each image's settings together.
        ordered_panels = [p for _, p in sorted(panels[label], key=lambda item: item[0])]
        name = classes[label]
        figures.append(
            rg.figure_grid(
                ordered_panels,
                f"{name}: Grad-CAM clean vs adversarial ({library_label(figure_library)})",
                figures_dir / f"{label}__{name.replace(' ', '_')}.png",
            )
        )
    seconds["figures"] = time.perf_counter() - figures_started

    mismatches = rows[rows["reproduced"].astype("boolean").eq(False).fillna(False)]
    if not mismatches.empty:
        log.warning(
            "%d of %d regenerated adversarial predictions differ from the run's: the run is not reproducible "
            "for them (see %s)",
            len(mismatches),
            len(rows),
            out_dir / rg.META_FILE,
        )
    seconds["total"] = time.perf_counter() - started
    run_attack_seconds = _run_attack_seconds(results)
    meta: dict[str, Any] = {
        "target_layer": layer_name,
        "feature_shape": list(clean_maps.feature_shape),
        "image_size": image_size,
        "per_class": request.per_class,
        "n_images": len(samples),
        "samples": samples["sample"].tolist(),
        "settings": [s.label for s in settings],
        "attack_batches": needed,
        "attack_batch_size": batch_size,
        "reproduction": {
            "compared": len(rows),
            "differ": len(mismatches),
            "examples": [
                f"{library_label(r.library)} {r.attack_label} {eps_label(r.eps, r.norm)} sample {r.sample}: "
                f"{r.pred_adv_run} in the run, {r.pred_adv} now"
                for r in mismatches.itertuples()
            ][:20],
            "max_conf_adv_difference": float(np.nanmax(np.abs(rows["conf_adv"] - rows["conf_adv_run"]))),
            "clean_differ": clean_mismatches,
        },
        "failures": failures,
        "seconds": seconds,
        "run_attack_seconds": run_attack_seconds,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
    }
    _write_parquet(rows, out_dir / rg.ROWS_FILE)
    summary.to_csv(out_dir / rg.SUMMARY_FILE, index=False)
    (out_dir / rg.META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return GradcamOutcome(
        out_dir=out_dir,
        rows=rows,
        summary=summary,
        figures=figures,
        settings=settings,
        mismatches=mismatches.reset_index(drop=True),
        clean_mismatches=clean_mismatches,
        failures=failures,
        seconds=seconds,
        run_attack_seconds=run_attack_seconds,
    )


def _recorded(results: pd.DataFrame, setting: rg.Setting, samples: np.ndarray) -> pd.DataFrame:
    """The run's rows of ``setting``'s cell for ``samples``, in that order."""
    cell = results[
        (results["library"] == setting.library)
        & (results["attack"] == setting.attack)
        & (results["attack_label"] == setting.attack_label)
        & (results["eps"] == setting.eps)
        & (results["steps"] == setting.steps)
        & (results["random_start"] == setting.random_start)
        & (results["seed"] == setting.seed)
    ].set_index("sample")
    return cell.loc[samples, ["pred_adv", "conf_adv"]].reset_index()


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # atomic: the report never reads half a file
