"""Command-line entry point: `python -m train.main --config CONFIG[:ARGS] --workdir DIR`.

Examples:
  python -m train.main --config train/configs/ckbd.py --workdir runs/ckbd-full-q3
  python -m train.main --config train/configs/ckbd.py:smoke --workdir /tmp/smoke \
      --config.num_steps=20 --config.lmbda=0.0067 --config.model=ckbd-gmm
  python -m train.main --config train/configs/cheng2020.py --workdir runs/c \
      --config.data.source=tfds:clic

SIGTERM or Ctrl-C finishes the current step, checkpoints it and exits (status 143 / 130); the
same command resumes the run. A second signal stops at once.

Multi-host: add `--config.distributed` (and `--config.coordinator_address=HOST:PORT
--config.num_processes=P --config.process_id=I` where JAX cannot detect them); start the same
command on every host with a shared workdir.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlic.errors import JaxlicError
from train import input_pipeline, trainer
from train.run_control import TrainingInterrupted
from train.state import initialize_distributed

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and exports.")
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    initialize_distributed(config)
    logging.info("Config:\n%s", config)
    try:
        trainer.train_and_evaluate(config, _WORKDIR.value)
    except (input_pipeline.DataError, JaxlicError) as e:
        sys.exit(f"error: {e}")
    except TrainingInterrupted as e:
        logging.warning("%s", e)
        print(f"training {e}", file=sys.stderr)
        sys.exit(128 + e.signum)  # the shell's status for a process ended by that signal


if __name__ == "__main__":
    app.run(main)
