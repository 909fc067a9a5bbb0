"""Two gloo processes adjust ADA's p on different data (`python -m tests.helpers.ada_ranks DIR`).

Rank 0's D is always sure of its reals; rank 1's is wrong on every third adjustment. Each rank writes
its final p to DIR/p<rank>."""
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline.gan.augment import ADA_INTERVAL, Augment

PER_RANK = 8


def rank_main(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    aug = Augment("ada", target=0.6, ada_kimg=0.1)
    for step in range(6):
        sign = 1.0 if rank == 0 or step % 3 != 2 else -1.0
        for _ in range(ADA_INTERVAL):
            aug.observe(torch.full((PER_RANK, 1), sign * (3 - 2 * rank)))
        aug.adjust(2 * PER_RANK, world=2)
    Path(folder, f"p{rank}").write_text(repr(aug.probability))
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.start_processes(rank_main, args=(sys.argv[1],), nprocs=2, start_method="spawn")
