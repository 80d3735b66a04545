"""The course's own networks: a readable 1-D U-Net (lesson 05), a spectrogram VAE (lesson 06), small
classifiers that judge generated sound, and the small mel UNet's configuration (lesson 02).

Import the module you need (``from course_lib.models.unet1d import UNet1D``); nothing is imported here.
"""
