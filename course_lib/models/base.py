"""``save_pretrained`` / ``from_pretrained`` once, for every model of the course.

A model subclasses :class:`PretrainedModel` instead of ``torch.nn.Module`` and says only how its
config becomes a JSON-friendly dict (:meth:`~PretrainedModel.config_to_dict`) and back
(:meth:`~PretrainedModel.config_from_dict`). The files are the ones diffusers and transformers
write: ``config.json`` next to ``model.safetensors`` (weights only, no pickle, so loading a folder
can never run code), each written atomically by :func:`course_lib.io.save_pretrained_files`.

Whatever can go wrong with a folder (missing, a missing or corrupt file, a config of another model,
weights that do not fit the config) is a :class:`~course_lib.errors.CourseInputError` that names the
file and says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from course_lib.errors import CourseInputError
from course_lib.hub import checkpoint_dir, missing_checkpoint_error
from course_lib.io import CONFIG_NAME, WEIGHTS_NAME, load_pretrained_files, save_pretrained_files
from course_lib.validate import check_choice

__all__ = ["PretrainedModel"]

M = TypeVar("M", bound="PretrainedModel")

# The storage types save_pretrained offers: float16 halves a checkpoint; from_pretrained loads float32.
STORAGE_DTYPES = ("float32", "float16", "bfloat16")


class PretrainedModel(nn.Module):
    """A ``torch.nn.Module`` whose ``__init__(config)`` builds it from a config, saved next to its weights.

    Subclasses implement :meth:`config_to_dict` and :meth:`config_from_dict`; the config file also
    records the class (``"_class_name"``), so loading a folder of another model says so.
    """

    def config_to_dict(self) -> dict[str, Any]:
        """This model's config as a JSON-friendly dict (what ``config.json`` holds)."""
        raise NotImplementedError

    @classmethod
    def config_from_dict(cls, config: dict[str, Any]) -> Any:
        """The argument of ``cls(...)`` from a dict :meth:`config_to_dict` wrote; ``CourseInputError`` if it is
        not this model's."""
        raise NotImplementedError

    def save_pretrained(self, folder: str | os.PathLike, dtype: str = "float32") -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed); returns the folder.

        ``dtype="float16"`` stores floating-point weights at half the size (how the drum model ships);
        :meth:`from_pretrained` loads them back into the model's float32 parameters. Each file is
        written to a temporary name and moved into place, so an interrupted save never leaves half a file.
        """
        check_choice(dtype, "dtype", STORAGE_DTYPES)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        config = {"_class_name": type(self).__name__, **self.config_to_dict()}
        return save_pretrained_files(folder, state, config, dtype=getattr(torch, dtype))

    @classmethod
    def from_pretrained(cls: type[M], folder: str | os.PathLike, device: str | torch.device | None = None) -> M:
        """Load a model written by :meth:`save_pretrained`; it is returned in eval mode (on ``device`` if given)."""
        hint = (f"Restore the folder from the repository, or give one written by {cls.__name__}.save_pretrained "
                f"(it holds {CONFIG_NAME} and {WEIGHTS_NAME}).")
        if isinstance(folder, (str, os.PathLike)) and not Path(folder).is_dir():
            raise CourseInputError(f"folder: {str(folder)!r} is not an existing folder. {hint}")
        config, state = load_pretrained_files(folder, hint)
        config_path, weights_path = Path(folder) / CONFIG_NAME, Path(folder) / WEIGHTS_NAME
        saved_as = config.pop("_class_name", cls.__name__)
        if saved_as != cls.__name__:
            raise CourseInputError(f"folder: {str(config_path)!r} describes a {saved_as}, not a {cls.__name__}. {hint}")
        try:
            model = cls(cls.config_from_dict(config))
        except CourseInputError as err:
            raise CourseInputError(
                f"folder: {str(config_path)!r} is not a valid {cls.__name__} config: {err} Restore the file from "
                f"the repository or save the model again."
            ) from err
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]
            raise CourseInputError(
                f"folder: the weights in {str(weights_path)!r} do not fit the config next to them ({detail[:300]}); "
                "keep the two files of one checkpoint together, or save the model again."
            ) from err
        if device is not None:
            model.to(device)
        return model.eval()

    @classmethod
    def load_shipped(cls: type[M], name: str, folder: str | os.PathLike | None = None,
                     device: str | torch.device | None = None) -> M:
        """The shipped checkpoint ``name`` (``checkpoints/<name>``, see :data:`course_lib.hub.SHIPPED`), or the
        model saved in ``folder`` instead."""
        if folder is not None:
            return cls.from_pretrained(folder, device=device)
        root = checkpoint_dir(name)
        if not (root / CONFIG_NAME).is_file():
            raise missing_checkpoint_error(name, root)
        return cls.from_pretrained(root, device=device)
