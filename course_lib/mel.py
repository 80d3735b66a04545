"""``Mel``: audio <-> mel-spectrogram images, a drop-in replacement for diffusers' ``Mel``.

The audio-diffusion pipelines of diffusers (and the course's :mod:`course_lib.diffusion`) draw
pictures of mel spectrograms; ``Mel`` cuts audio into slices and turns each into a greyscale
image, and turns images back into audio (mel -> linear by non-negative least squares, then
Griffin-Lim). Same constructor, attributes and methods as diffusers' ``Mel``, images equal to
diffusers' within one grey level, plus batched ``audio_to_images`` / ``images_to_audio`` that are
several times faster. The spectrogram maths it uses is in :mod:`course_lib.spectrogram`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.audio import load_audio
from course_lib.io import read_json, write_json
from course_lib.spectrogram import (
    _check_hop,
    _check_mel_args,
    _frame_spectrum,
    _griffin_lim_tf,
    _mel_ops,
    _mel_to_linear_tf,
    _MelOps,
    _power_tf,
    _window,
)
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_file,
    check_number,
    check_positive_int,
    check_sample_rate,
    prepare_output_dir,
)

__all__ = ["Mel", "FAST", "QUALITY"]

# Image -> audio settings for ``Mel`` (pass as ``Mel(**QUALITY)``). FAST is the default: 8
# multiplicative NNLS updates for the mel -> linear step (cheap, already far better than a clamped
# pseudo-inverse) and 32 Griffin-Lim iterations. QUALITY runs more of both: slower, clearer audio.
FAST: dict[str, Any] = {"inversion": "nnls", "nnls_iter": 8, "n_iter": 32}
QUALITY: dict[str, Any] = {"inversion": "nnls", "nnls_iter": 40, "n_iter": 64}


def _read_audio_file(path: Path, sample_rate: int) -> np.ndarray:
    """Read a file as mono float32 at ``sample_rate`` (course_lib.audio does the checking)."""
    try:
        audio, _ = load_audio(path, sample_rate=sample_rate, mono=True)
    except CourseInputError as error:
        raise CourseInputError(f"audio_file: {error}") from None
    return audio


class Mel:
    """Audio <-> mel spectrogram images, a drop-in replacement for diffusers' ``Mel``.

    Same constructor arguments and defaults, attributes (``x_res, y_res, n_mels, slice_size,
    hop_length, sr, n_fft, top_db, n_iter, audio``) and methods, so ``pipe.mel = Mel()`` works
    on an ``AudioDiffusionPipeline``. Images are ``y_res`` mel bands (row 0 = lowest band) by
    ``x_res`` frames, bytes = ``round((dB + top_db) * 255 / top_db)`` with dB relative to each
    image's loudest value; they match diffusers' within one grey level.

    Extras: batched :meth:`audio_to_images` / :meth:`images_to_audio`, a ``device``, and
    quality knobs for image -> audio:

    - ``inversion="nnls"`` with ``nnls_iter`` multiplicative non-negative updates (default 8,
      :data:`FAST`), or ``"lstsq"``: the clamped pseudo-inverse alone (what librosa's NNLS gives
      diffusers in practice).
    - ``Mel(**QUALITY)`` is the "quality" setting: 40 updates and 64 Griffin-Lim iterations.
    - ``n_iter`` Griffin-Lim iterations with ``momentum``; the random starting phase comes
      from ``seed`` (or a generator you pass), so the same image always gives the same audio.

    First met in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
    """

    config_name = "mel_config.json"
    # diffusers' Mel knows the first seven settings; the course's own four are saved under one key
    # starting with "_", which diffusers' ConfigMixin skips, so diffusers loads the file without a warning.
    _DIFFUSERS_KEYS = ("x_res", "y_res", "sample_rate", "n_fft", "hop_length", "top_db", "n_iter")
    _EXTRA_KEYS = ("inversion", "nnls_iter", "momentum", "seed")
    _EXTRAS_KEY = "_course_lib"
    _CONFIG_KEYS = _DIFFUSERS_KEYS + _EXTRA_KEYS

    def __init__(self, x_res: int = 256, y_res: int = 256, sample_rate: int = 22050, n_fft: int = 2048,
                 hop_length: int = 512, top_db: int = 80, n_iter: int = 32, *, inversion: str = "nnls",
                 nnls_iter: int = 8, momentum: float = 0.99, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        self.sr = check_sample_rate(sample_rate)
        self.n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
        self.hop_length = _check_hop(hop_length, self.n_fft)
        top = check_number(top_db, "top_db", low=0.0, low_open=True)
        self.top_db = int(top) if float(top).is_integer() else top
        self.n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
        self.inversion = check_choice(inversion, "inversion", ("lstsq", "nnls"))
        self.nnls_iter = check_positive_int(nnls_iter, "nnls_iter", minimum=0)
        self.momentum = check_number(momentum, "momentum", low=0.0, high=1.0)
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.audio: np.ndarray | None = None
        self.set_resolution(x_res, y_res)

    # -- diffusers' API ------------------------------------------------------------------

    def set_resolution(self, x_res: int, y_res: int) -> None:
        """Set the image size: ``x_res`` frames (time) by ``y_res`` mel bands (frequency)."""
        self.x_res = check_positive_int(x_res, "x_res", minimum=2)
        self.y_res = check_positive_int(y_res, "y_res", minimum=1)
        self.n_mels = self.y_res
        self.slice_size = self.x_res * self.hop_length - 1
        _check_mel_args(self.sr, self.n_fft, self.n_mels, 0.0, None, "slaney", False)

    def load_audio(self, audio_file: str | os.PathLike | None = None, raw_audio: Any = None) -> None:
        """Keep a clip to slice: read ``audio_file`` (mono, resampled to ``sr``) or take ``raw_audio``.

        Clips shorter than ``x_res * hop_length`` samples are padded with silence, as diffusers does.
        """
        if audio_file is not None:
            audio = _read_audio_file(check_file(audio_file, "audio_file"), self.sr)
        elif raw_audio is not None:
            audio = self._mono(raw_audio, "raw_audio").cpu().numpy()
        else:
            raise CourseInputError("load_audio: give audio_file=<path> or raw_audio=<1-D array of samples>.")
        need = self.x_res * self.hop_length
        if audio.shape[0] < need:
            audio = np.concatenate([audio, np.zeros(need - audio.shape[0], dtype=np.float32)])
        self.audio = audio

    def get_number_of_slices(self) -> int:
        """How many whole slices of ``slice_size`` samples the loaded audio holds."""
        return len(self._loaded()) // self.slice_size

    def get_audio_slice(self, slice: int = 0) -> np.ndarray:
        """Samples of slice number ``slice`` (``0 <= slice < get_number_of_slices()``)."""
        audio = self._loaded()
        count = len(audio) // self.slice_size
        if isinstance(slice, bool) or not isinstance(slice, (int, np.integer)) or not 0 <= int(slice) < count:
            raise CourseInputError(
                f"slice: {slice!r} is not a slice number of the loaded audio, which has {count} slice(s) "
                f"(0 to {count - 1})."
            )
        return audio[self.slice_size * int(slice): self.slice_size * (int(slice) + 1)]

    def get_sample_rate(self) -> int:
        """The sample rate of the audio, in Hz."""
        return self.sr

    def audio_slice_to_image(self, slice: int = 0) -> Any:
        """Spectrogram image (PIL, mode ``"L"``, ``x_res`` by ``y_res``) of slice number ``slice``."""
        from PIL import Image

        samples = torch.from_numpy(self.get_audio_slice(slice)).to(self.device)
        pixels = self._slices_to_images(samples.unsqueeze(0))[0]
        return Image.fromarray(pixels.cpu().numpy())  # a 2-D uint8 array becomes a mode "L" image

    def image_to_audio(self, image: Any) -> np.ndarray:
        """Audio (float32 NumPy, ``(x_res - 1) * hop_length`` samples) from one spectrogram image."""
        return self.images_to_audio([image])[0].cpu().numpy()

    # -- batched API ---------------------------------------------------------------------

    def audio_to_images(self, audio: Any, pad: bool = False, chunk: int = 8) -> torch.Tensor:
        """All whole slices of ``audio`` (T,) or (B, T) as uint8 images (N, y_res, x_res).

        Slices are cut every ``slice_size`` samples as in diffusers; with a batch, the images of
        clip 0 come first. ``pad=True`` pads clips shorter than one slice with silence (as
        :meth:`load_audio` does) instead of refusing them. Work is done ``chunk`` slices at a time.
        """
        x = as_float_tensor(audio, "audio", max_ndim=2).to(self.device)
        chunk = check_positive_int(chunk, "chunk")
        if x.shape[-1] < self.slice_size:
            if not pad:
                raise CourseInputError(
                    f"audio: {x.shape[-1]} samples is shorter than one slice ({self.slice_size} samples = "
                    f"x_res * hop_length - 1); give a longer clip, or pass pad=True to pad it with silence."
                )
            x = F.pad(x, (0, self.x_res * self.hop_length - x.shape[-1]))
        slices = x.reshape(-1, x.shape[-1]).unfold(-1, self.slice_size, self.slice_size)
        slices = slices.reshape(-1, self.slice_size)
        parts = [self._slices_to_images(slices[i:i + chunk]) for i in range(0, slices.shape[0], chunk)]
        return torch.cat(parts, dim=0)

    def images_to_audio(self, images: Any, generator: torch.Generator | None = None, chunk: int = 4
                        ) -> torch.Tensor:
        """Audio (N, (x_res - 1) * hop_length) from images: a uint8 array/tensor (N, y_res, x_res),
        one image (y_res, x_res), or a list of PIL images.

        bytes -> dB -> power mel -> linear power (``inversion``) -> Griffin-Lim, batched
        ``chunk`` images at a time. Without a ``generator`` the phases come from ``seed``.
        """
        pixels = self._pixels(images)
        chunk = check_positive_int(chunk, "chunk")
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.seed)
        elif not isinstance(generator, torch.Generator):
            raise CourseInputError(f"generator: expected a torch.Generator, got {type(generator).__name__}.")
        ops = self._ops(self.device)
        n_iter = self.nnls_iter if self.inversion == "nnls" else 0
        outputs = []
        for start in range(0, pixels.shape[0], chunk):
            part = pixels[start:start + chunk].to(torch.float32)
            log_s = part.transpose(1, 2) * (self.top_db / 255.0) - self.top_db  # (B, T, n_mels)
            mel_power = torch.pow(10.0, 0.1 * log_s)
            linear = _mel_to_linear_tf(mel_power, ops, self.inversion, n_iter)
            outputs.append(_griffin_lim_tf(linear.sqrt_(), self.n_fft, self.hop_length, self.n_fft, self.n_iter,
                                           self.momentum, True, None, "random", generator))
        return torch.cat(outputs, dim=0)

    # -- configuration -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments as a JSON-ready dict (``Mel.from_config(d)`` rebuilds it)."""
        values = {"x_res": self.x_res, "y_res": self.y_res, "sample_rate": self.sr, "n_fft": self.n_fft,
                  "hop_length": self.hop_length, "top_db": self.top_db, "n_iter": self.n_iter,
                  "inversion": self.inversion, "nnls_iter": self.nnls_iter, "momentum": self.momentum,
                  "seed": self.seed}
        return {"_class_name": "Mel", **values}

    @property
    def config(self) -> dict[str, Any]:
        """The settings, as diffusers' ``Mel.config`` gives them (a fresh dict; edit via the constructor)."""
        return self.to_dict()

    def save_config(self, save_directory: str | os.PathLike) -> Path:
        """Write ``mel_config.json`` into a folder; return its path.

        diffusers' seven settings sit at the top level; the course's own (``inversion``,
        ``nnls_iter``, ``momentum``, ``seed``) sit under ``"_course_lib"``, a key diffusers ignores,
        so ``DiffusionPipeline.from_pretrained`` loads the folder without a warning and
        ``Mel.from_config`` reads every setting back.
        """
        folder = prepare_output_dir(save_directory, "save_directory")
        flat = self.to_dict()
        layout = {k: v for k, v in flat.items() if k not in self._EXTRA_KEYS}
        layout[self._EXTRAS_KEY] = {k: flat[k] for k in self._EXTRA_KEYS}
        return write_json(folder / self.config_name, layout, indent=2, sort_keys=True)

    save_pretrained = save_config

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | os.PathLike, **overrides: Any) -> "Mel":
        """Build a ``Mel`` from a dict, a ``mel_config.json`` file or a folder holding one.

        Reads the layout :meth:`save_config` writes (the course's settings under ``"_course_lib"``)
        and the flat one of older course files and of :meth:`to_dict`. Other keys starting with
        ``_`` (such as diffusers' ``_class_name``) are ignored, so diffusers' own ``mel_config.json``
        files load too. ``overrides`` (e.g. ``device="cuda"``) win.
        """
        if isinstance(config, (str, os.PathLike)):
            path = Path(config)
            if path.is_dir():
                path = path / cls.config_name
            config = read_json(path, "config", hint="Save it again with Mel.save_config(folder).")
            if not isinstance(config, dict):
                raise CourseInputError(f"config: {str(path)!r} holds a JSON {type(config).__name__}, not the "
                                       "settings of a Mel (a JSON object); save it again with Mel.save_config(folder).")
        if not isinstance(config, dict):
            raise CourseInputError(f"config: expected a dict or a path to mel_config.json, got {type(config).__name__}.")
        values = {k: v for k, v in config.items() if not str(k).startswith("_")}
        unknown = sorted(set(values) - set(cls._CONFIG_KEYS))
        if unknown:
            raise CourseInputError(f"config: unknown key(s) {unknown}; known keys are {list(cls._CONFIG_KEYS)}.")
        extras = config.get(cls._EXTRAS_KEY, {})
        if not isinstance(extras, dict) or set(extras) - set(cls._EXTRA_KEYS):
            raise CourseInputError(f"config: {cls._EXTRAS_KEY!r} must be a dict with keys among "
                                   f"{list(cls._EXTRA_KEYS)}, got {extras!r}; save it again with Mel.save_config(folder).")
        clash = sorted(k for k in extras if k in values and values[k] != extras[k])
        if clash:
            raise CourseInputError(f"config: {clash} given twice with different values (at the top level and under "
                                   f"{cls._EXTRAS_KEY!r}); keep one.")
        values = {**extras, **values, **overrides}
        return cls(**values)

    from_pretrained = from_config

    def to(self, device: str | torch.device) -> "Mel":
        """Compute on ``device`` from now on (returns ``self``, like ``nn.Module.to``)."""
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if not k.startswith("_"))
        return f"Mel({inner})"

    # -- internals -----------------------------------------------------------------------

    def _loaded(self) -> np.ndarray:
        if self.audio is None:
            raise CourseInputError("Mel: no audio loaded yet; call mel.load_audio(audio_file=...) or "
                                   "mel.load_audio(raw_audio=...) first.")
        return self.audio

    def _mono(self, audio: Any, name: str) -> torch.Tensor:
        x = as_float_tensor(audio, name)
        if x.ndim != 1:
            raise CourseInputError(
                f"{name}: expected mono audio of shape (T,), got shape {tuple(x.shape)}. For stereo, average the "
                "channels (e.g. x.mean(axis=0)) or load with course_lib.audio.load_audio(path, mono=True)."
            )
        return x

    def _ops(self, device: torch.device) -> _MelOps:
        return _mel_ops(self.sr, self.n_fft, self.n_mels, 0.0, self.sr / 2.0, "slaney", False, device)

    def _slices_to_images(self, slices: torch.Tensor) -> torch.Tensor:
        """(B, slice_size) float -> (B, y_res, x_res) uint8."""
        window = _window(self.n_fft, self.n_fft, slices.device)
        spec = _frame_spectrum(slices, self.n_fft, self.hop_length, window, center=True)  # (B, T, F)
        p = _power_tf(spec, 2.0)
        mel = self._ops(slices.device).to_mel(p)  # (B, T, n_mels)
        # dB relative to each image's maximum, floored at -top_db, as librosa.power_to_db(ref=np.max);
        # then bytes = floor((dB + top_db) * 255 / top_db + 0.5), clipped to 0..255, as diffusers does.
        log_s = torch.log10(mel.clamp_min(1e-10)).mul_(10.0)
        log_s.sub_(torch.log10(mel.amax(dim=(1, 2), keepdim=True).clamp_min(1e-10)).mul_(10.0))
        scaled = log_s.add_(self.top_db).mul_(255.0 / self.top_db).clamp_(0.0, 255.0).add_(0.5)
        return scaled.to(torch.uint8).transpose(1, 2).contiguous()  # truncation = floor for x ≥ 0

    def _pixels(self, images: Any) -> torch.Tensor:
        """Images in any accepted form -> uint8 tensor (N, y_res, x_res) on the device."""
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise CourseInputError("images: the list is empty; give at least one image.")
            arrays = [self._one_image(im, f"images[{i}]") for i, im in enumerate(images)]
            pixels = torch.stack(arrays)
        else:
            pixels = self._one_image(images, "images", batch_ok=True)
            if pixels.ndim == 2:
                pixels = pixels.unsqueeze(0)
        return pixels.to(self.device)

    def _one_image(self, image: Any, name: str, batch_ok: bool = False) -> torch.Tensor:
        shape_hint = f"({self.y_res}, {self.x_res})"
        if hasattr(image, "mode") and hasattr(image, "tobytes") and hasattr(image, "size"):
            if image.mode != "L":
                raise CourseInputError(
                    f"{name}: a PIL image in mode {image.mode!r}; spectrogram images are greyscale, "
                    "convert with image.convert('L')."
                )
            if image.size != (self.x_res, self.y_res):
                raise CourseInputError(
                    f"{name}: image is {image.size[0]}x{image.size[1]} (width x height) but this Mel makes "
                    f"{self.x_res}x{self.y_res} images; use Mel(x_res={image.size[0]}, y_res={image.size[1]}) "
                    "or resize the image."
                )
            return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(self.y_res, self.x_res)
        if isinstance(image, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(image)) if image.dtype != object else None
        elif isinstance(image, torch.Tensor):
            tensor = image.detach()
        else:
            tensor = None
        if tensor is None:
            raise CourseInputError(f"{name}: expected a PIL image or a uint8 array/tensor, got {type(image).__name__}.")
        if tensor.dtype != torch.uint8:
            raise CourseInputError(
                f"{name}: has dtype {tensor.dtype}; images are uint8 grey levels 0..255. From floats in [0, 1] use "
                "(x * 255).round() then .astype('uint8') (NumPy) or .to(torch.uint8) (torch)."
            )
        ok_ndim = (2, 3) if batch_ok else (2,)
        if tensor.ndim not in ok_ndim or tuple(tensor.shape[-2:]) != (self.y_res, self.x_res):
            want = f"(N, {self.y_res}, {self.x_res}) or {shape_hint}" if batch_ok else shape_hint
            raise CourseInputError(
                f"{name}: has shape {tuple(tensor.shape)} but this Mel needs {want} (y_res mel bands by x_res "
                "frames); check x_res/y_res, or drop a channel axis with x[..., 0] / x.squeeze(1)."
            )
        if tensor.numel() == 0:
            raise CourseInputError(f"{name}: is empty.")
        return tensor

