"""One place that decides how the course runs: profile, online/offline, device and seeds.

Every notebook reads these in its parameters cell, so that a single environment variable
switches the whole course between a quick run (CI, a first look) and the full lesson.

- ``COURSE_PROFILE``: ``quick`` or ``full`` (default ``full``). The quick profile shrinks
  sizes, steps and data; it never skips a cell or a code path.
- ``HF_HUB_OFFLINE``: when set to a true value the course never tries the Hub. Otherwise a
  short network probe (at most about one second) decides, and its answer is cached.
- ``HF_ENDPOINT``: the Hub's address (a mirror, say); the probe asks it, as the Hub libraries do.
- ``COURSE_OFFLINE``: force offline mode for the course alone (``1``) or force online (``0``).
- ``COURSE_DEVICE``: force a device (``cpu``, ``cuda``, ``mps``).
"""

from __future__ import annotations

import os
import random
import sys
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from course_lib.errors import CourseInputError

T = TypeVar("T")

PROFILES = ("quick", "full")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# The probe sends one HEAD request to ``{endpoint}/api/models?limit=1``. A bare TCP connect is not
# enough: some networks accept every connection and drop it later, so we wait for a real HTTP answer.
HUB_ENDPOINT = "https://huggingface.co"  # the public Hub, used when HF_ENDPOINT is not set
HUB_URL = f"{HUB_ENDPOINT}/api/models?limit=1"

_online_cache: bool | None = None
_online_cache_url: str | None = None  # the address the cached answer is about


def profile() -> str:
    """The active profile, ``"quick"`` or ``"full"``, read from ``COURSE_PROFILE``."""
    value = os.environ.get("COURSE_PROFILE", "full").strip().lower() or "full"
    if value not in PROFILES:
        raise CourseInputError(
            f"COURSE_PROFILE={value!r} is not a known profile; use one of {PROFILES} "
            "(for example `export COURSE_PROFILE=quick`)."
        )
    return value


def is_quick() -> bool:
    """True in the quick profile (CI, a first look)."""
    return profile() == "quick"


def pick(quick: T, full: T) -> T:
    """Return ``quick`` in the quick profile and ``full`` otherwise.

    Use it for sizes, steps and data amounts, never to skip code: both values must take
    the same code path.
    """
    return quick if is_quick() else full


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise CourseInputError(f"{name}={raw!r} is not a yes/no value; use 1 or 0.")


def _probe(url: str, timeout: float) -> bool:
    """Send one HEAD request in a daemon thread and give up after ``timeout`` seconds.

    DNS look-ups ignore socket timeouts, so the whole attempt runs in a thread that we stop
    waiting for: the answer always comes within ``timeout`` seconds. Any HTTP answer (even an
    error status below 500) means the server is reachable.
    """
    import urllib.error
    import urllib.request

    result: list[bool] = []

    def attempt() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError as error:
            result.append(error.code < 500)
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_url() -> str:
    """The address the online probe asks: ``{HF_ENDPOINT}/api/models?limit=1``.

    ``HF_ENDPOINT`` is the Hub address the Hugging Face libraries use (a mirror, a company proxy, a
    local stand-in); without it, the public Hub (:data:`HUB_URL`).
    """
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    if not endpoint:
        return HUB_URL
    if not endpoint.startswith(("http://", "https://")):
        raise CourseInputError(f"HF_ENDPOINT={endpoint!r} is not a web address; give one such as "
                               "https://huggingface.co (or unset HF_ENDPOINT).")
    return f"{endpoint}/api/models?limit=1"


def is_online(timeout: float = 1.0, refresh: bool = False) -> bool:
    """Whether the model Hub can be used.

    Honours ``COURSE_OFFLINE``, then ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE``; otherwise
    probes the Hub at ``HF_ENDPOINT`` (default: the public Hub, see :func:`hub_url`) once, with a
    request that answers within ``timeout`` seconds, and caches the answer for that address.
    """
    global _online_cache, _online_cache_url
    course_offline = _env_flag("COURSE_OFFLINE")
    if course_offline is not None:
        return not course_offline
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE"):
        return False
    url = hub_url()
    if _online_cache is None or refresh or url != _online_cache_url:
        if not (0 < timeout <= 5):
            raise CourseInputError(f"timeout={timeout!r}: give a probe time between 0 and 5 seconds.")
        _online_cache, _online_cache_url = _probe(url, timeout), url
    return _online_cache


def go_offline() -> None:
    """Tell the Hub libraries not to try the network (used when the probe says offline).

    Without this, ``from_pretrained`` can spend minutes retrying a Hub it cannot reach.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:  # huggingface_hub reads the variable at import; update its constant too
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True
    except Exception:  # pragma: no cover - optional
        pass


def device(prefer: str | None = None) -> str:
    """The device to compute on: ``COURSE_DEVICE`` if set, else cuda, then mps, then cpu."""
    import torch

    choice = (prefer or os.environ.get("COURSE_DEVICE", "")).strip().lower()
    if choice:
        if choice not in ("cpu", "cuda", "mps") and not choice.startswith("cuda:"):
            raise CourseInputError(f"device {choice!r} is unknown; use 'cpu', 'cuda' or 'mps'.")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise CourseInputError(
                f"device {choice!r} was asked for but no CUDA GPU is visible; use 'cpu' or unset COURSE_DEVICE."
            )
        if choice == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise CourseInputError("device 'mps' was asked for but is not available; use 'cpu'.")
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def seed_everything(seed: int = 0) -> Any:
    """Seed Python, NumPy and torch, and return a ``torch.Generator`` seeded the same way.

    On the CPU the same seed gives the same output twice.
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise CourseInputError(f"seed={seed!r}: give a non-negative integer, e.g. seed_everything(0).")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def make_generator(seed: Any = None) -> Any:
    """The course's one seed rule: turn ``seed`` into a CPU ``torch.Generator``.

    - a ``torch.Generator`` on the CPU is used as it is (its state moves on as noise is drawn);
    - an int ``>= 0`` gives a generator seeded with it: the same seed, the same output on the CPU;
    - ``None`` draws a seed from torch's global generator, so after :func:`seed_everything` (which the
      parameters cell calls through :func:`setup`) a whole notebook is still repeatable.

    Noise is drawn on the CPU and then moved, so a seed gives the same numbers on every device.
    """
    import torch

    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise CourseInputError("generator: give a CPU torch.Generator (noise is drawn on the CPU, then "
                                   "moved), e.g. torch.Generator().manual_seed(0).")
        return seed
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"generator: expected a torch.Generator, a seed (int >= 0) or None, got {seed!r}; "
                               "e.g. generator=0 or torch.Generator().manual_seed(0).")
    return torch.Generator().manual_seed(int(seed))


PROGRESS_COLUMNS = 80  # a text bar this wide fits a notebook's output area and a terminal


def progress(iterable: Any = None, *, total: int | None = None, desc: str | None = None, unit: str = "it",
             disable: bool = False, leave: bool = True, **options: Any) -> Any:
    """A plain-text progress bar (tqdm) that every course_lib loop uses.

    Text, not a Jupyter widget: a widget bar (``tqdm.auto``) is stored as widget state, and a
    notebook saved without that state shows "Error displaying widget: model not found" when
    reopened; a text bar is ordinary output and reads the same after a reopen, in a terminal and in
    the course's tests. It writes to standard output, so Jupyter does not paint it like a warning.
    ``options`` go to ``tqdm`` (``initial``, ``postfix`` ...). Use it like tqdm:
    ``for batch in settings.progress(batches, desc="training"): ...``.
    """
    from tqdm.std import tqdm

    options.setdefault("ncols", PROGRESS_COLUMNS)
    options.setdefault("file", sys.stdout)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, **options)


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


@dataclass(frozen=True)
class Settings:
    """A snapshot of the settings a notebook runs with."""

    profile: str
    online: bool
    device: str
    seed: int
    colab: bool

    def __str__(self) -> str:
        where = "Colab" if self.colab else "local"
        net = "online (Hub models)" if self.online else "offline (course-made data and checkpoints)"
        return f"profile={self.profile} · {net} · device={self.device} · seed={self.seed} · {where}"


def setup(seed: int = 0, probe_timeout: float = 1.0) -> Settings:
    """Decide everything once, seed the generators and return the :class:`Settings`.

    Offline, the Hub libraries are told so, which keeps them from retrying for minutes.
    """
    online = is_online(timeout=probe_timeout)
    if not online:
        go_offline()
    seed_everything(seed)
    return Settings(profile=profile(), online=online, device=device(), seed=int(seed), colab=in_colab())
