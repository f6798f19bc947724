"""Reading result tables: statistics, cross-check verdicts, sanity flags, tables, figures, HTML.

Never imports ``adapters``: reports judge results, they do not produce them.

Modules, one job each:

- ``load``: ``load_run(run_dir) -> Run`` — the only reader of a run directory's files.
- ``schema``: required columns and manifest keys, checked where frames enter; ``eps_label`` ("0.1/255").
- ``stats``: Wald and Clopper-Pearson CIs, McNemar (χ² and exact), both attack-success rates, P/R/F1.
- ``crosscheck``: ``verdicts(results)`` — agree / disagree / invalid per library × attack × eps — and
  ``mismatches(...)``; the rules are in its docstring and ``RULES``.
- ``sanity``: named checks returning ``Finding`` objects, each with a one-sentence explanation.
- ``summary``: per-cell accuracy with CIs and the seed policy for random-start cells.
- ``paper``: the paper's published numbers (Tables 2–6 and the text), as data.
- ``tables``: the paper's Tables 2–6 per library, the agreement table; ``paper_comparison``: this run beside
  the paper's numbers; ``tablestats``: the numbers both build on; ``tablefiles``: CSV/MD/JSON.
- ``figures``: robustness curves, confusion matrices, training curves, linf_to_ref histogram (PNG).
- ``html``: the self-contained ``report.html``, assembled from ``html_sections``; ``verdict_text``: the
  report's three opening lines, ``verdict_summary_text`` and ``exit_code``.
- ``gradcam``: Grad-CAM measures per image and per class; ``gradcam_figures`` and ``gradcam_html`` show them.
- ``pipeline``: ``report(run_dir)`` — everything above in one call, for ``python -m advparity report``.
"""
