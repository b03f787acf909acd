"""`ttspec train`: the spec's generated torch program trained on text (data.py: tokens, the held-out split and
the batches; schedule.py: AdamW with warmup and cosine decay; loop.py: the steps; checkpoint.py: weights in
ttspec's names and the state --resume reads; curve.py: metrics.jsonl and the loss curve; memory.py: the measured
peak memory of training steps)."""
