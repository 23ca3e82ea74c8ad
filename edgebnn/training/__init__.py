"""Training: train / resume / evaluate, callbacks, distillation and the papers' recipes."""
