"""Tests of scalelab.prepare: `scalelab data prepare` and training on a prepared folder."""
