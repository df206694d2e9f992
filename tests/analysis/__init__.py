"""Tests of scalelab.analysis: fits, laws, tables, dashboards and the analysis CLI."""
