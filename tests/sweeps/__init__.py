"""Tests of scalelab.sweeps: the Optuna Hydra sweeper, its studies, presets and installs."""
