"""The index run, in clip-retrieval's seams: ``plan`` (what to do, against the store; moves;
the run lock) -> ``feed`` (walk, headers read once, decode + ``prepare`` in worker
processes or threads) -> the model's ``embed`` -> ``sink`` (one track assembler and its
writers: the SQLite store or Parquet shards), joined by ``runner`` on this machine and by
``cluster`` on Ray; ``ingest`` writes precomputed shards through the same sink."""
