"""Reports over run directories: loading manifests, tables, renderers, comparisons, plots."""
