"""The resumable training sampler: deterministic per epoch, mid-epoch skipping, sharding, enlargement."""
from lowlight3d.pipeline.data_loading import ResumableSampler


def test_order_depends_on_seed_and_epoch_only():
    a, b = ResumableSampler(10, seed=3, batch_size=2), ResumableSampler(10, seed=3, batch_size=2)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(5)
    assert list(a) != list(b)


def test_skip_resumes_mid_epoch():
    s = ResumableSampler(10, seed=0, batch_size=3)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, skip_batches=2)
    assert list(s) == full[6:] and len(s) == 4 and s.batches_per_epoch() == 3


def test_shards_partition_the_epoch():
    shards = []
    for rank in range(2):
        s = ResumableSampler(9, num_replicas=2, rank=rank, seed=1)
        s.set_epoch(0)
        shards.append(list(s))
    assert len(shards[0]) == len(shards[1]) == 5  # padded to a multiple of the world size
    assert set(shards[0]) | set(shards[1]) == set(range(9))


def test_enlarged_epoch_wraps_or_not():
    wrapped, raw = ResumableSampler(4, ratio=3, wrap=True), ResumableSampler(4, ratio=3, wrap=False)
    assert sorted(wrapped) == sorted(list(range(4)) * 3)
    assert sorted(raw) == list(range(12))  # datasets map index % len, with a seed of their own per index
