"""Hydra finds sweepers only in the `hydra_plugins` namespace: this is seqmodels' resumable Optuna
sweeper, `hydra/sweeper=seqmodels_optuna` (configs/hparams_search/*); the logic lives in `seqmodels.sweeps`."""
