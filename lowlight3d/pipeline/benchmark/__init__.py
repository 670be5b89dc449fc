"""Train and test a list of methods at an equal budget over seeds and write one comparison table.

``python scripts/benchmark_demo.py --list <list.yml>`` (``make benchmark-demo``, ``make benchmark-real``, ...): for
every stage (method) of the list and every seed the stage is trained (``--auto_resume``: a finished run is reused)
and tested on the test sets of its test file (every method sees the same inputs: test sets are seeded by image name
only); then ``<out>/benchmark.md`` and ``benchmark.csv`` hold per test set and metric the mean ± std over seeds, the
training cost and the size of each method, and ``<out>/faces_*.png`` show the same faces across all methods.

The parts:

- :mod:`.spec`: the list file, its format, and the one function that reads and checks it.
- :mod:`.budget`: how many iterations each learned stage trains (one precedence of command line, list entry, CPU
  budget and option file) and the probe that measures a stage's CPU seconds per iteration.
- :mod:`.runner`: training and testing one stage with one seed (resume or retrain; its timing), and the
  prerequisites.
- :mod:`.report`: the table rows (mean ± sample std) and the markdown / CSV files.
- :mod:`.grids`: the face pictures.
- :mod:`.ablation`: what each component brings (the reference row minus each ablation row, against the seed spread).
- :mod:`.suite`: the whole benchmark, stage after stage.
- :mod:`.cli`: the command line.
"""
from lowlight3d.pipeline.benchmark.budget import plan_iterations, probe_stage
from lowlight3d.pipeline.benchmark.cli import main
from lowlight3d.pipeline.benchmark.report import summarise, write_report
from lowlight3d.pipeline.benchmark.runner import run_prerequisites, run_stage
from lowlight3d.pipeline.benchmark.spec import DEFAULT_LIST, OWN_ITERATIONS, load_benchmark_list
from lowlight3d.pipeline.benchmark.suite import run_benchmark

__all__ = ['load_benchmark_list', 'OWN_ITERATIONS', 'DEFAULT_LIST', 'run_prerequisites', 'probe_stage',
           'plan_iterations', 'run_stage', 'summarise', 'write_report', 'run_benchmark', 'main']
