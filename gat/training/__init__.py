"""Training: from a `TrainConfig` to a trained, saved model.

- `config`, `presets`  the run as plain data; each dataset's paper settings (from the registry);
- `steps`              the pieces of an epoch: model and optimiser, the batch, one step, evaluation;
- `selection`          early stopping, and which epoch's model a run keeps (the rules of ``--select``);
- `loop`               `Run` (state, early stopping, checkpoints) and `run_epochs`, which every trainer shares;
- `fullbatch`, `minibatch`, `inductive`: the trainers; `distributed` their multi-process world;
- `trainer`            `train`, which picks the trainer from the config, and `load_model`;
- `checkpoints`, `tracking`, `progress`, `allocator`: files, logs, console output, memory settings.
"""
