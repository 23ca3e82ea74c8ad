"""Run directories: the one place the stages share (model, manifest, artifacts, bench results)."""
