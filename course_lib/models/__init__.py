"""The course's own networks: a readable 1-D U-Net (lesson 05), a spectrogram VAE (lesson 06), small
classifiers that judge generated sound, and the small mel UNet's configuration (lesson 02).

- ``base``: :class:`~course_lib.models.base.PretrainedModel`, the one ``save_pretrained`` / ``from_pretrained``.
- ``unet1d``, ``vae``, ``classifier``, ``mel_unet``: the models.
- ``clap``: :class:`~course_lib.models.clap.ClapJudge`, CLAP audio embeddings (``laion/clap-htsat-unfused``) as the
  judge of real music online, where the course's classifiers are out of their domain (lesson 03).
- ``release``: what the scripts that train the shipped checkpoints share (arguments, metrics, model card).

Import the module you need (``from course_lib.models.unet1d import UNet1D``); nothing is imported here.
"""
