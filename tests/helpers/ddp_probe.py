"""`torchrun ... tests/helpers/ddp_probe.py PROBE_DIR train.py-overrides...`: train.py, with the
real trainer instrumented to record, on every rank, which examples each training batch held and
a digest of the weights after every optimizer step, and the run directory's lock record as each rank
sees it while training (tests/test_distributed.py reads them)."""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

import seqmodels.train
from seqmodels import cli
from seqmodels.training import distributed
from seqmodels.training.run_lock import LOCK_FILE
from seqmodels.training.trainer import Trainer

probe_dir = Path(sys.argv.pop(1))


class ProbedTrainer(Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.record = {"batches": [], "digests": []}
        loader, optimizer = self.data.train, self.optimizer
        make_batch, step = loader.make_batch, optimizer.step

        def recording_make_batch(indices):
            self.record["batches"].append({"epoch": self.epoch + 1, "indices": list(indices)})
            return make_batch(indices)

        def recording_step(*args, **kwargs):
            result = step(*args, **kwargs)
            digest = hashlib.sha256()
            for parameter in self.model.parameters():
                digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
            self.record["digests"].append(digest.hexdigest())
            return result

        loader.make_batch, optimizer.step = recording_make_batch, recording_step

    def fit(self):
        lock = self.run_dir / LOCK_FILE
        self.record["pid"] = os.getpid()
        self.record["lock"] = json.loads(lock.read_text()) if lock.is_file() else None
        try:
            return super().fit()
        finally:
            rank = distributed.world().rank
            (probe_dir / f"rank{rank}.json").write_text(json.dumps({**self.record, "threads": torch.get_num_threads()}))


seqmodels.train.Trainer = ProbedTrainer
cli.main()
