"""``tune``: Optuna studies over a suite's ``tuned: true`` runs, on valid AUC."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import ADDRESS_HELP, DATA_DIR_HELP, DEVICE_HELP, SUITE_HELP, check_suite_installed, csv_list, \
    require_positive

NAME = "tune"
HELP = "search a suite's `tuned: true` runs on valid AUC (Optuna; resumable)"
DESCRIPTION = ("Each `tuned: true` run of the suite gets the suite's budget of trials "
               "(tuning.trials), searched by its sampler over the method's declared space; a "
               "trial never sees the test rows. Studies are stored in <results-dir>/tuning/"
               "<suite>.db: a killed tune resumes, two tuners share a study. Then `bench run` "
               "scores each chosen configuration on test as an ordinary run (label +tuned).")


def add_arguments(tune: argparse.ArgumentParser) -> None:
    tune.add_argument("--suite", required=True, help=SUITE_HELP)
    tune.add_argument("--methods", type=csv_list, help="comma-separated subset of the suite's tuned methods (METHOD:VARIANT too)")
    tune.add_argument("--datasets", type=csv_list, help="comma-separated subset of the suite's datasets")
    tune.add_argument("--trials", type=int, default=None, help="trials per tuned run (default: the suite's tuning.trials)")
    tune.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    tune.add_argument("--results-dir", default="results", type=Path,
                      help="where the studies go: <results-dir>/tuning/<suite>.db (default: results)")
    tune.add_argument("--device", default="auto", help=DEVICE_HELP)
    tune.add_argument("--executor", default="local", choices=["local", "ray"],
                      help="local: trials one after another in this process (default); ray: --workers Ray tasks "
                           "per study run its trials in parallel")
    tune.add_argument("--workers", type=int, default=2, help="parallel tuners per study with --executor ray (default: 2)")
    tune.add_argument("--address", default=None, help=ADDRESS_HELP)


def execute(args: argparse.Namespace) -> int:
    from bench.runner import check_device_name
    from bench.tuning import tune_suite

    if args.trials is not None:
        require_positive(args, "trials")
    check_device_name(args.device)
    check_suite_installed(args.suite, args.methods, args.datasets)
    require_positive(args, "workers")
    studies = tune_suite(args.suite, results_dir=args.results_dir, data_dir=args.data_dir,
                         methods=args.methods, datasets=args.datasets, trials=args.trials, device=args.device,
                         executor=args.executor, workers=args.workers, address=args.address)
    for info in studies:
        print(f"{info['study']}: valid auc {info['best_valid_auc']:.4f} with {info['params']} "
              f"({info['complete']} complete, {info['pruned']} pruned of {info['budget']})")
    print(f"studies: {len(studies)} in {args.results_dir / 'tuning'}; next: python -m bench run --suite "
          f"{args.suite} --results-dir {args.results_dir}")
    return 0
